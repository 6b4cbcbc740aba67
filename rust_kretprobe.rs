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

use kernel::prelude::*;
use kprobes::logic::{self, Filter, RetType, BUCKETS, TALLY_SLOTS};
use kprobes::task::{self, Comm};
use kprobes::kprobe::Hit;
use kprobes::kretprobe::{Kretprobe, KretprobeHandler};
use kprobes::percpu::PerCpu;

module! {
    type: RustKretprobe,
    name: "rust_kretprobe",
    author: "rust-kprobes",
    description: "kretprobe: return value and time taken of func= (Rust)",
    license: "GPL",
}

/// The kernel's own limit is none at all (6.12 allocates whatever is asked).
const MAXACTIVE_LIMIT: i32 = 4096;

/// Per-CPU counters, by index: totals, then the histogram, then the return-value tally.
const HITS: usize = 0;
const FILTERED: usize = 1;
const KTHREADS: usize = 2;
const COUNT: usize = 3;
const SUM_NS: usize = 4;
const HIST: usize = 5;
const TALLY: usize = HIST + BUCKETS;
const NCOUNTERS: usize = TALLY + TALLY_SLOTS;

struct Timing {
    func: &'static CStr,
    rettype: RetType,
    pid: i32,
    comm: &'static CStr,
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

    fn entry(&self, _hit: &Hit<'_>) -> Option<Stamp> {
        self.stats.add(HITS, 1);
        if task::is_kthread() {
            self.stats.add(KTHREADS, 1);
            return None;
        }
        let filter = Filter { pid: self.pid, comm: self.comm.as_bytes(), port: 0 };
        if !filter.task(task::pid(), Comm::current().as_bytes()) {
            self.stats.add(FILTERED, 1);
            return None;
        }
        Some(Stamp { entry_ns: kprobes::now_ns() })
    }

    fn ret(&self, hit: &Hit<'_>, stamp: &Stamp) {
        let ns = (kprobes::now_ns() - stamp.entry_ns).max(0) as u64;
        let ret = self.rettype.value(hit.regs.return_value());
        if self.events {
            pr_info!("{} returned {} and took {} ns to execute\n", self.func, ret, ns);
        }
        self.stats.add(COUNT, 1);
        self.stats.add(SUM_NS, ns);
        self.stats.add(HIST + logic::bucket(ns), 1);
        self.stats.add(TALLY + logic::tally_slot(ret.as_i64()), 1);
    }
}

struct RustKretprobe {
    probe: Kretprobe<Timing>,
    hist: bool,
}

impl kernel::Module for RustKretprobe {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let p = kprobes::params::kretprobe();
        if p.func.as_bytes().is_empty() {
            pr_err!("func= is empty: name the function to probe\n");
            return Err(EINVAL);
        }
        if !(0..=MAXACTIVE_LIMIT).contains(&p.maxactive) {
            pr_err!("maxactive={} is out of range 0..={}\n", p.maxactive, MAXACTIVE_LIMIT);
            return Err(EINVAL);
        }
        let Some(rettype) = RetType::parse(p.rettype.as_bytes()) else {
            pr_err!("rettype={} is not one of int, long, ulong, ptr\n", p.rettype);
            return Err(EINVAL);
        };
        let handler = Timing {
            func: p.func,
            rettype,
            pid: p.pid,
            comm: p.comm,
            events: p.events,
            stats: PerCpu::new()?,
        };
        let probe = Kretprobe::register(p.func, p.maxactive, handler).inspect_err(|e| {
            pr_err!("cannot probe {}: {} (errno {})\n", p.func, kprobes::why(*e), e.to_errno());
        })?;
        pr_info!("Planted return probe at {}: {:#x}\n", p.func, probe.addr());
        Ok(RustKretprobe { probe, hist: p.hist })
    }
}

impl Drop for RustKretprobe {
    fn drop(&mut self) {
        self.probe.unregister();
        let t = self.probe.handler();
        let s = &t.stats;
        pr_info!("kretprobe at {:#x} unregistered\n", self.probe.addr());
        pr_info!("Missed probing {} instances of {}\n", self.probe.nmissed(), t.func);
        if self.hist {
            let count = s.sum(COUNT);
            let mut buckets = [0u64; BUCKETS];
            for (i, b) in buckets.iter_mut().enumerate() {
                *b = s.sum(HIST + i);
            }
            pr_info!("{}: {} calls, avg {} ns\n", t.func, count, s.sum(SUM_NS).checked_div(count).unwrap_or(0));
            pr_info!("{:>12}    {:<12} : {:<8} distribution\n", "nsecs", "", "count");
            for row in logic::hist_rows(&buckets) {
                pr_info!("{}\n", row);
            }
        }
    }
}
