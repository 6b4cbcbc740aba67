// SPDX-License-Identifier: GPL-2.0

//! An example [`super::kretprobe::KretprobeHandler`], compiled with the layer (and never called),
//! that `docs/layer.md` shows: the return value and duration of each `inet_release` call.

use super::hit::Hit;
use super::kretprobe::{Kretprobe, KretprobeHandler};
use kernel::c_str;
use kernel::prelude::*;

/// The handler: atomic context, no sleeping, no allocation, no lock.
struct Timing;

impl KretprobeHandler for Timing {
    /// When the call entered, kept by the core in the instance until the call returns.
    type Data = u64;

    fn entry(&self, _hit: &Hit<'_>) -> Option<u64> {
        Some(super::now_ns())
    }

    fn ret(&self, hit: &Hit<'_>, entry_ns: &u64) {
        // int inet_release(struct socket *sock)
        let ret = hit.regs.return_value::<i32>();
        let ns = super::now_ns().saturating_sub(*entry_ns);
        pr_info!("inet_release returned {ret} after {ns} ns\n");
    }
}

/// Probes `inet_release` until the returned value is dropped (process context).
fn example() -> Result<Pin<KBox<Kretprobe<Timing>>>> {
    // 0: the kernel's default number of concurrent calls tracked.
    KBox::pin_init(
        Kretprobe::new(c_str!("inet_release"), 0, Timing),
        GFP_KERNEL,
    )
}
