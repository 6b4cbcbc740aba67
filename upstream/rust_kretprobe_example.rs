// SPDX-License-Identifier: GPL-2.0

//! Rust kretprobe sample, the counterpart of `samples/kprobes/kretprobe_example.c`.
//!
//! Plants a return probe on `inet_release()` and logs, for each call made by a user task, its
//! return value and duration: `inet_release returned <ret> and took <ns> ns to execute`. At
//! unload it reports the calls it could not time because all `maxactive` instances were in
//! use: `Missed probing <n> instances of inet_release`.

use kernel::kprobes::hit::Hit;
use kernel::kprobes::kretprobe::{Kretprobe, KretprobeHandler};
use kernel::kprobes::now_ns;
use kernel::kprobes::probe::Probe;
use kernel::prelude::*;

module! {
    type: RustKretprobeExample,
    name: "rust_kretprobe_example",
    authors: ["@AUTHOR@"],
    description: "Rust kretprobe sample",
    license: "GPL",
    params: {
        maxactive: i32 {
            default: 20,
            description: "Concurrent calls to time (0: the kernel's default)",
        },
    },
}

/// The handlers; they run in atomic context, so they only read and print.
struct ReleaseTimer;

impl KretprobeHandler for ReleaseTimer {
    /// When the call entered, in ns.
    type Data = u64;

    fn entry(&self, _hit: &Hit<'_>) -> Option<u64> {
        // Kernel threads have no `mm`: skip them, as the C sample does.
        kernel::current!().mm().map(|_| now_ns())
    }

    fn ret(&self, hit: &Hit<'_>, entry_ns: &u64) {
        // int inet_release(struct socket *sock)
        let ret = hit.regs.return_value::<i32>();
        let ns = now_ns().saturating_sub(*entry_ns);
        pr_info!("inet_release returned {ret} and took {ns} ns to execute\n");
    }
}

struct RustKretprobeExample {
    probe: Option<Pin<KBox<Kretprobe<ReleaseTimer>>>>,
}

impl kernel::Module for RustKretprobeExample {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let maxactive = module_parameters::maxactive.value();
        let probe = KBox::pin_init(
            Kretprobe::new(c"inet_release", maxactive, ReleaseTimer),
            GFP_KERNEL,
        )
        .inspect_err(|e| pr_err!("register_kretprobe failed, returned {}\n", e.to_errno()))?;
        pr_info!("Planted return probe at inet_release: {:#x}\n", probe.addr());
        Ok(Self { probe: Some(probe) })
    }
}

impl Drop for RustKretprobeExample {
    fn drop(&mut self) {
        if let Some(probe) = self.probe.take() {
            let done = Probe::unregister(probe);
            pr_info!("kretprobe at {:#x} unregistered\n", done.addr);
            pr_info!("Missed probing {} instances of inet_release\n", done.nmissed);
        }
    }
}
