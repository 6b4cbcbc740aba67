use core::sync::atomic::{AtomicU64, Ordering};
use kernel::kprobes::{hit::Hit, now_ns};
use kernel::kprobes::kretprobe::{Kretprobe, KretprobeHandler};
use kernel::task::Pid;
use kernel::time::{delay::fsleep, Delta};

/// Times one task's calls of `usleep_range_state()`.
struct Sleeps {
    pid: Pid,
    calls: AtomicU64,
    longest_ns: AtomicU64,
}

impl KretprobeHandler for Sleeps {
    /// When the call entered, kept by the core in the instance until it returns.
    type Data = u64;

    fn entry(&self, _hit: &Hit<'_>) -> Option<u64> {
        (kernel::current!().pid() == self.pid).then(now_ns)
    }

    fn ret(&self, _hit: &Hit<'_>, entry_ns: &u64) {
        let ns = now_ns().saturating_sub(*entry_ns);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.longest_ns.fetch_max(ns, Ordering::Relaxed);
    }
}

let sleeps = Sleeps {
    pid: kernel::current!().pid(),
    calls: AtomicU64::new(0),
    longest_ns: AtomicU64::new(0),
};
// 0: the kernel's default number of calls tracked at once.
let probe = KBox::pin_init(Kretprobe::new(c"usleep_range_state", 0, sleeps), GFP_KERNEL)?;
fsleep(Delta::from_micros(100));
let done = Kretprobe::unregister(probe);
assert_eq!(done.handler.calls.load(Ordering::Relaxed), 1);
assert!(done.handler.longest_ns.load(Ordering::Relaxed) >= 100_000);
# Ok::<(), Error>(())
