use core::sync::atomic::{AtomicU64, Ordering};
use kernel::kprobes::hit::{Fault, Hit};
use kernel::kprobes::kprobe::{Kprobe, KprobeHandler};
use kernel::task::Pid;
use kernel::time::{delay::fsleep, Delta};

/// Counts one task's calls of `usleep_range_state()` and keeps their `min` argument.
struct Sleeps {
    pid: Pid,
    calls: AtomicU64,
    min_us: AtomicU64,
}

impl KprobeHandler for Sleeps {
    fn pre(&self, hit: &Hit<'_>) -> Result<(), Fault> {
        // void usleep_range_state(unsigned long min, unsigned long max, unsigned int state)
        if kernel::current!().pid() == self.pid {
            if let Some(min) = hit.regs.arg::<u64>(0) {
                self.min_us.store(min, Ordering::Relaxed);
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn fault(&self, _hit: &Hit<'_>, _fault: &Fault) {}
}

let sleeps = Sleeps {
    pid: kernel::current!().pid(),
    calls: AtomicU64::new(0),
    min_us: AtomicU64::new(0),
};
let probe = KBox::pin_init(Kprobe::new(c"usleep_range_state", 0, sleeps), GFP_KERNEL)?;
// Sleeps in `usleep_range_state(100, ...)`.
fsleep(Delta::from_micros(100));
let done = Kprobe::unregister(probe);
assert_eq!(done.handler.calls.load(Ordering::Relaxed), 1);
assert_eq!(done.handler.min_us.load(Ordering::Relaxed), 100);
# Ok::<(), Error>(())
