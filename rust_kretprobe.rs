// SPDX-License-Identifier: GPL-2.0

//! rust_kretprobe: return value and time taken of `func=` (default `inet_release`).
//!
//! `insmod rust_kretprobe.ko [func=inet_release] [maxactive=20] [rettype=int] [pid=] [comm=]
//! [events=Y] [hist=N]`
//!
//! Policy only: what to stamp, what to print. The probe plumbing is in `kprobes/`.

#[allow(dead_code)]
#[path = "kprobes/mod.rs"]
mod kprobes;

use core::fmt::{self, Write};
use kernel::c_str;
use kernel::prelude::*;
use kprobes::debugfs::SeqWriter;
use kprobes::kprobe::Hit;
use kprobes::kretprobe::{Kretprobe, KretprobeHandler};
use kprobes::logic::{self, Filter, RetType, BUCKETS, TALLY_SLOTS};
use kprobes::percpu::PerCpu;
use kprobes::task;

kprobes::compat::rk_module! {
    type: RustKretprobe,
    name: "rust_kretprobe",
    description: "kretprobe: return value and time taken of func= (Rust)",
}

/// The kernel's own limit is none at all (6.12 allocates whatever is asked).
const MAXACTIVE_LIMIT: i32 = 4096;

/// Per-CPU counters, by index: totals, then the histogram, then the return-value tally.
const HITS: usize = 0;
const FILTERED: usize = 1;
const KTHREADS: usize = 2;
const COUNT: usize = 3;
const SUM_NS: usize = 4;
const MAX_NS: usize = 5;
/// `!min`, so that zeroed counters mean "none yet" here too.
const NOT_MIN_NS: usize = 6;
const HIST: usize = 7;
const TALLY: usize = HIST + BUCKETS;
const NCOUNTERS: usize = TALLY + TALLY_SLOTS;

struct Timing {
    /// For printing (`&str` formats in one piece, `CStr` byte by byte).
    func: &'static str,
    rettype: RetType,
    pid: i32,
    comm: kprobes::params::ParamStr,
    events: bool,
    stats: PerCpu<NCOUNTERS>,
}

/// Per-instance data: when the call entered.
#[derive(Clone, Copy)]
struct Stamp {
    entry_ns: i64,
}

impl KretprobeHandler for Timing {
    type Data = Stamp;

    #[inline]
    fn entry(&self, _hit: &Hit<'_>) -> Option<Stamp> {
        let stats = self.stats.this_cpu();
        stats.add(HITS, 1);
        let task = task::current();
        if task.kthread {
            stats.add(KTHREADS, 1);
            return None;
        }
        let filter = Filter {
            pid: self.pid,
            comm: self.comm.bytes(),
            port: 0,
        };
        if !filter.task(task.pid, |want| task.comm_is(want)) {
            stats.add(FILTERED, 1);
            return None;
        }
        Some(Stamp {
            entry_ns: kprobes::now_ns(),
        })
    }

    #[inline]
    fn ret(&self, hit: &Hit<'_>, stamp: &Stamp) {
        // The clock is monotonic: the difference is never negative, nor does it overflow.
        let ns = kprobes::now_ns().wrapping_sub(stamp.entry_ns).max(0) as u64;
        let raw = hit.regs.return_value();
        if self.events {
            pr_info!(
                "{} returned {} and took {} ns to execute\n",
                self.func,
                self.rettype.value(raw),
                ns
            );
        }
        let stats = self.stats.this_cpu();
        stats.add(COUNT, 1);
        stats.add(SUM_NS, ns);
        stats.max(MAX_NS, ns);
        stats.max(NOT_MIN_NS, !ns);
        stats.add(HIST + logic::bucket(ns), 1);
        stats.add(TALLY + logic::tally_slot(self.rettype.signed(raw)), 1);
    }
}

struct RustKretprobe {
    probe: Kretprobe<Timing>,
    hist: bool,
}

impl kernel::Module for RustKretprobe {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let p = kprobes::params::kretprobe();
        if p.func.bytes().is_empty() {
            pr_err!("func= is empty: name the function to probe\n");
            return Err(EINVAL);
        }
        if !(0..=MAXACTIVE_LIMIT).contains(&p.maxactive) {
            pr_err!(
                "maxactive={} is out of range 0..={}\n",
                p.maxactive,
                MAXACTIVE_LIMIT
            );
            return Err(EINVAL);
        }
        let Some(rettype) = RetType::parse(p.rettype.bytes()) else {
            pr_err!(
                "rettype={} is not one of int, long, ulong, ptr\n",
                p.rettype
            );
            return Err(EINVAL);
        };
        let Some(func) = p.func.as_str() else {
            pr_err!("func= is not a kernel symbol name\n");
            return Err(EINVAL);
        };
        let handler = Timing {
            func,
            rettype,
            pid: p.pid,
            comm: p.comm,
            events: p.events,
            stats: PerCpu::new()?,
        };
        let mut probe =
            Kretprobe::register(p.func.as_cstr(), p.maxactive, handler).inspect_err(|e| {
                pr_err!(
                    "cannot probe {}: {} (errno {})\n",
                    p.func,
                    kprobes::why(*e),
                    e.to_errno()
                );
            })?;
        pr_info!("Planted return probe at {}: {:#x}\n", p.func, probe.addr());
        // Live counters are a convenience: without debugfs the probe works all the same.
        let _ = probe.publish(
            c_str!("rust_kretprobe"),
            &[
                (c_str!("stats"), Timing::show_stats),
                (c_str!("histogram"), Timing::show_histogram),
            ],
        );
        Ok(RustKretprobe {
            probe,
            hist: p.hist,
        })
    }
}

impl Timing {
    fn histogram(&self) -> [u64; BUCKETS] {
        let mut b = [0u64; BUCKETS];
        for (i, c) in b.iter_mut().enumerate() {
            *c = self.stats.sum(HIST + i);
        }
        b
    }

    /// `(count, min, avg, max)` of the times taken, in ns.
    fn summary(&self) -> (u64, u64, u64, u64) {
        let s = &self.stats;
        let count = s.sum(COUNT);
        let min = if count == 0 {
            0
        } else {
            !s.max_all(NOT_MIN_NS)
        };
        (
            count,
            min,
            s.sum(SUM_NS).checked_div(count).unwrap_or(0),
            s.max_all(MAX_NS),
        )
    }

    /// `/sys/kernel/debug/rust_kretprobe/stats`.
    fn show_stats(&self, missed: u64, w: &mut SeqWriter) -> fmt::Result {
        let s = &self.stats;
        let (count, min, avg, max) = self.summary();
        let suppressed = if self.events { 0 } else { count };
        writeln!(
            w,
            "hits {}\nmissed {missed}\nfiltered {}",
            s.sum(HITS),
            s.sum(FILTERED) + s.sum(KTHREADS)
        )?;
        writeln!(
            w,
            "suppressed {suppressed}\ncount {count}\nmin_ns {min}\navg_ns {avg}\nmax_ns {max}"
        )
    }

    /// `/sys/kernel/debug/rust_kretprobe/histogram`.
    fn show_histogram(&self, _missed: u64, w: &mut SeqWriter) -> fmt::Result {
        writeln!(
            w,
            "{:>12}    {:<12} : {:<8} distribution",
            "nsecs", "", "count"
        )?;
        for row in logic::hist_rows(&self.histogram()) {
            writeln!(w, "{row}")?;
        }
        Ok(())
    }
}

impl Drop for RustKretprobe {
    fn drop(&mut self) {
        self.probe.unregister();
        let t = self.probe.handler();
        pr_info!("kretprobe at {:#x} unregistered\n", self.probe.addr());
        pr_info!(
            "Missed probing {} instances of {}\n",
            self.probe.nmissed(),
            t.func
        );
        if self.hist {
            let (count, min, avg, max) = t.summary();
            pr_info!(
                "{}: count {count}, min {min} ns, avg {avg} ns, max {max} ns\n",
                t.func
            );
            pr_info!(
                "{:>12}    {:<12} : {:<8} distribution\n",
                "nsecs",
                "",
                "count"
            );
            for row in logic::hist_rows(&t.histogram()) {
                pr_info!("{}\n", row);
            }
            for slot in 0..TALLY_SLOTS {
                let n = t.stats.sum(TALLY + slot);
                match slot {
                    0 if n > 0 => pr_info!("{} returned 0: {n} times\n", t.func),
                    s if s == TALLY_SLOTS - 1 && n > 0 => {
                        pr_info!("{} returned other values: {n} times\n", t.func)
                    }
                    s if n > 0 => pr_info!("{} returned -{s}: {n} times\n", t.func),
                    _ => {}
                }
            }
        }
    }
}
