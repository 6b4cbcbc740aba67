// SPDX-License-Identifier: GPL-2.0

//! rust_kretprobe: return value and time taken of `func=` (default `inet_release`).
//!
//! `insmod rust_kretprobe.ko [func=inet_release] [kind=kretprobe] [maxactive=20] [rettype=int]
//! [pid=] [comm=] [events=Y] [hist=N]`
//!
//! `kind=fprobe` (kernels with `CONFIG_FPROBE`, e.g. Debian's) puts the same handler on an
//! fprobe instead of a kretprobe: ftrace's entry and exit hook, the entry time kept by fprobe
//! on the task's shadow stack. It has no instance pool, so `maxactive=` does not apply to it
//! (still range-checked); its misses are calls with no room left on the shadow stack.
//!
//! Policy only: what to stamp, what to print. The probe plumbing is in `kprobes/`.

#[allow(dead_code)]
#[path = "kprobes/mod.rs"]
mod kprobes;

use core::fmt::{self, Write};
use kernel::c_str;
use kernel::prelude::*;
use kprobes::debugfs::{Published, SeqWriter, ShowFn};
#[cfg(rk_fprobe)]
use kprobes::fprobe::Fprobe;
use kprobes::hit::Hit;
use kprobes::kretprobe::{Kretprobe, KretprobeHandler};
use kprobes::logic::{self, Filter, RetType, BUCKETS, TALLY_SLOTS};
use kprobes::percpu::{Counter, PerCpu};
use kprobes::probe::Unregistered;
use kprobes::task;

kprobes::compat::rk_module! {
    type: RustKretprobe,
    name: "rust_kretprobe",
    description: "kretprobe (or fprobe, kind=): return value and time taken of func= (Rust)",
}

kprobes::params::module_params! {
    func: str[512] = "inet_release", "Function to kretprobe; reports its return value and time taken (default inet_release)";
    kind: str[16] = "kretprobe", "kretprobe (default) or fprobe: ftrace-based entry and exit, entry data kept by fprobe, no maxactive (kernels with CONFIG_FPROBE)";
    maxactive: i32 = 20, "Concurrent instances to track, 0..=4096 (0: the kernel's default; default 20; kind=kretprobe only: an fprobe has no instance pool)";
    rettype: str[8] = "int", "Return type of func: int (default), long, ulong or ptr";
    pid: i32 = 0, "Only report this pid (0: all)";
    comm: str[16] = "", "Only report tasks with this name (empty: all)";
    events: bool = true, "Log one line per call (default Y)";
    hist: bool = false, "Print a log2 latency histogram and return-value tally at unload (default N)";
}

/// The kernel's own limit is none at all (6.12 allocates whatever is asked).
const MAXACTIVE_LIMIT: i32 = 4096;

/// What the handlers count, per CPU.
#[derive(Zeroable)]
struct Stats {
    /// Entries.
    hits: Counter,
    /// Entries the `pid=` or `comm=` filter dropped.
    filtered: Counter,
    /// Entries in kernel threads, which are not timed.
    kthreads: Counter,
    /// Returns timed, and their times.
    count: Counter,
    sum_ns: Counter,
    max_ns: Counter,
    /// `!min`, so that a zeroed counter means "none yet" here too.
    not_min_ns: Counter,
    /// Log2 histogram of the times (`logic::bucket`).
    hist: [Counter; BUCKETS],
    /// Return values (`RetType::tally`).
    tally: [Counter; TALLY_SLOTS],
}

struct Timing {
    /// For printing (`&str` formats in one piece, `CStr` byte by byte).
    func: &'static str,
    rettype: RetType,
    pid: i32,
    comm: kprobes::params::ParamStr,
    /// `pid=` or `comm=` is set: one test on the common path, which has neither.
    filtering: bool,
    events: bool,
    stats: PerCpu<Stats>,
}

/// Per-instance data: when the call entered.
#[derive(Clone, Copy)]
struct Stamp {
    entry_ns: u64,
}

#[cfg(rk_fprobe)]
// SAFETY: one `u64`: any bits are a `Stamp` (what an fprobe's exit handler may be given, see
// `kprobes/fprobe.rs`).
unsafe impl kernel::transmute::FromBytes for Stamp {}

impl KretprobeHandler for Timing {
    type Data = Stamp;

    #[inline]
    fn entry(&self, _hit: &Hit<'_>) -> Option<Stamp> {
        let stats = self.stats.this_cpu();
        stats.hits.add(1);
        let task = task::current();
        if task.kthread {
            stats.kthreads.add(1);
            return None;
        }
        if self.filtering && !self.passes() {
            stats.filtered.add(1);
            return None;
        }
        Some(Stamp {
            entry_ns: kprobes::now_ns(),
        })
    }

    #[inline]
    fn ret(&self, hit: &Hit<'_>, stamp: &Stamp) {
        // The clock can step back by a few ns (see `now_ns`): such a call took 0 ns.
        let ns = kprobes::now_ns().saturating_sub(stamp.entry_ns);
        // The whole register; `rettype=` says which of its bits the function defines.
        let raw = hit.regs.return_value::<u64>();
        if self.events {
            self.line(raw, ns);
        }
        let stats = self.stats.this_cpu();
        stats.count.add(1);
        stats.sum_ns.add(ns);
        stats.max_ns.raise_to(ns);
        stats.not_min_ns.raise_to(!ns);
        stats.hist[logic::bucket(ns)].add(1);
        self.rettype.tally(raw, |slot| stats.tally[slot].add(1));
    }
}

/// `kind=`: what the handler is planted on.
#[derive(Clone, Copy)]
enum Kind {
    Kretprobe,
    #[cfg(rk_fprobe)]
    Fprobe,
}

/// The probe the handler runs on.
enum Planted {
    Kretprobe(Published<Kretprobe<Timing>>),
    #[cfg(rk_fprobe)]
    Fprobe(Published<Fprobe<Timing>>),
}

/// The live files in `/sys/kernel/debug/rust_kretprobe/`, for either kind.
const FILES: [(&CStr, ShowFn<Timing>); 2] = [
    (c_str!("stats"), Timing::show_stats),
    (c_str!("histogram"), Timing::show_histogram),
];

struct RustKretprobe {
    /// `None` only while the module is being removed.
    probe: Option<Planted>,
    hist: bool,
}

/// The one line of a load that ran out of memory for `what`.
fn no_memory(what: &str) {
    pr_err!("cannot allocate the {what}: out of memory (errno -12)\n");
}

/// The one line of a probe that did not register.
fn refused(func: kprobes::params::ParamStr, why: &str, e: Error) {
    pr_err!("cannot probe {}: {} (errno {})\n", func, why, e.to_errno());
}

/// The one line of a failed debugfs directory: live counters are a convenience, and without
/// debugfs the probe works all the same.
fn no_debugfs(e: Error) {
    pr_info!(
        "no /sys/kernel/debug/rust_kretprobe (errno {}): counters at unload only\n",
        e.to_errno()
    );
}

impl kernel::Module for RustKretprobe {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let p = Params::get();
        // First, before anything is allocated or registered.
        let kind = match p.kind.bytes() {
            b"kretprobe" => Kind::Kretprobe,
            #[cfg(rk_fprobe)]
            b"fprobe" => Kind::Fprobe,
            #[cfg(not(rk_fprobe))]
            b"fprobe" => return Err(kprobes::no_fprobe()),
            _ => {
                pr_err!("kind={} is not one of kretprobe, fprobe\n", p.kind);
                return Err(EINVAL);
            }
        };
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
            filtering: p.pid != 0 || !p.comm.bytes().is_empty(),
            events: p.events,
            stats: PerCpu::new().inspect_err(|_| no_memory("per-CPU counters"))?,
        };
        let dir = MODULE_NAME;
        let planted = match kind {
            Kind::Kretprobe => {
                let probe = KBox::pin_init(
                    Kretprobe::new(p.func.as_cstr(), p.maxactive, handler),
                    GFP_KERNEL,
                )
                .inspect_err(|e| refused(p.func, kprobes::why(*e), *e))?;
                // The address and symbol+offset the kprobe core holds (past an x86 `endbr64` on
                // an IBT kernel), as in /sys/kernel/debug/kprobes/list.
                pr_info!(
                    "Planted return probe at {}: {:#x} ({})\n",
                    p.func,
                    probe.addr(),
                    kprobes::SymbolOffset::of(probe.addr()).as_str()
                );
                let mut probe = Published::new(probe);
                if let Err(e) = probe.publish(dir, &FILES) {
                    no_debugfs(e);
                }
                Planted::Kretprobe(probe)
            }
            #[cfg(rk_fprobe)]
            Kind::Fprobe => {
                let probe = KBox::pin_init(Fprobe::new(p.func.as_cstr(), handler), GFP_KERNEL)
                    .inspect_err(|e| refused(p.func, kprobes::fprobe::why(*e), *e))?;
                // The function's ftrace call site fprobe hooks (past an x86 `endbr64` on an IBT
                // kernel), as in /sys/kernel/tracing/enabled_functions.
                pr_info!(
                    "Planted fprobe at {}: {:#x} ({})\n",
                    p.func,
                    probe.addr(),
                    kprobes::SymbolOffset::of(probe.addr()).as_str()
                );
                let mut probe = Published::new(probe);
                if let Err(e) = probe.publish(dir, &FILES) {
                    no_debugfs(e);
                }
                Planted::Fprobe(probe)
            }
        };
        Ok(RustKretprobe {
            probe: Some(planted),
            hist: p.hist,
        })
    }
}

impl Timing {
    /// Whether the task passes `pid=` and `comm=`. Out of line: with neither set, entry keeps
    /// its registers (inlined, the filters' loads and a counter offset were set up on every
    /// call).
    #[inline(never)]
    fn passes(&self) -> bool {
        let task = task::current();
        let filter = Filter {
            pid: self.pid,
            comm: self.comm.bytes(),
            port: 0,
        };
        filter.task(task.pid, |want| task.comm_is(want))
    }

    /// The line of a call. Cold and out of line: inlined, its arguments kept an 80-byte frame
    /// and a spill on the `events=0` path, which prints nothing.
    #[cold]
    #[inline(never)]
    fn line(&self, raw: u64, ns: u64) {
        pr_info!(
            "{} returned {} and took {} ns to execute\n",
            self.func,
            self.rettype.value(raw),
            ns
        );
    }

    fn histogram(&self) -> [u64; BUCKETS] {
        let mut b = [0u64; BUCKETS];
        for (i, c) in b.iter_mut().enumerate() {
            *c = self.stats.sum(|s| &s.hist[i]);
        }
        b
    }

    /// `(count, min, avg, max)` of the times taken, in ns.
    fn summary(&self) -> (u64, u64, u64, u64) {
        let s = &self.stats;
        let count = s.sum(|s| &s.count);
        let min = if count == 0 {
            0
        } else {
            !s.max(|s| &s.not_min_ns)
        };
        (
            count,
            min,
            s.sum(|s| &s.sum_ns).checked_div(count).unwrap_or(0),
            s.max(|s| &s.max_ns),
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
            s.sum(|s| &s.hits),
            s.sum(|s| &s.filtered) + s.sum(|s| &s.kthreads)
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
        let Some(planted) = self.probe.take() else {
            return;
        };
        let (kind, gone) = match planted {
            Planted::Kretprobe(probe) => ("kretprobe", probe.unregister()),
            #[cfg(rk_fprobe)]
            Planted::Fprobe(probe) => ("fprobe", probe.unregister()),
        };
        let Unregistered {
            addr,
            nmissed,
            handler: t,
        } = gone;
        pr_info!("{} at {:#x} unregistered\n", kind, addr);
        pr_info!("Missed probing {} instances of {}\n", nmissed, t.func);
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
                let n = t.stats.sum(|s| &s.tally[slot]);
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
