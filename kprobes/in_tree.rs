// SPDX-License-Identifier: GPL-2.0

//! Kprobes and kretprobes: dynamic probes on kernel functions, with handlers in Rust.
//!
//! - [`kprobe::Kprobe`] / [`kretprobe::Kretprobe`]: both a [`probe::Probe`], a registration
//!   created pinned by a pin-initializer and unregistered exactly once (on drop, or by
//!   [`probe::Probe::unregister`], which hands back the handler); a failed registration leaves
//!   nothing behind.
//! - [`kprobe::KprobeHandler`] / [`kretprobe::KretprobeHandler`]: what a module implements
//!   (pre/post/fault, entry/return with typed per-instance data), given a [`hit::Hit`] and
//!   reporting a failed read as a [`hit::Fault`].
//! - [`arch`]: all per-architecture code: [`arch::Regs`], the probed function's arguments
//!   and return value as their C types.
//!
//! Handlers run in atomic context: nothing in them may sleep, allocate or take a lock.
//! Samples: `samples/rust/rust_kprobe_example.rs`, `samples/rust/rust_kretprobe_example.rs`.
//!
//! C header: [`include/linux/kprobes.h`](srctree/include/linux/kprobes.h)

pub(crate) mod arch;
pub(crate) mod hit;
pub(crate) mod kprobe;
#[cfg(CONFIG_KRETPROBES)]
pub(crate) mod kretprobe;
pub(crate) mod probe;

use super::bindings;

/// Reads `buf.len()` bytes of kernel memory at `src` without faulting (any context, NMI
/// included); the error is `copy_from_kernel_nofault()`'s errno.
pub(crate) fn read_kernel(src: *const u8, buf: &mut [u8]) -> Result<(), i32> {
    // SAFETY: `copy_from_kernel_nofault()` accepts any source address: it refuses user and
    // non-canonical ones and recovers from a fault on the others. The destination is `buf`, valid
    // for writes of `buf.len()` bytes, which nothing else accesses during the call.
    let ret = unsafe {
        bindings::copy_from_kernel_nofault(buf.as_mut_ptr().cast(), src.cast(), buf.len())
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(ret as i32)
    }
}

/// Nanoseconds of the monotonic clock, NMI-safe (`ktime_get_mono_fast_ns()`).
///
/// Not `ktime_get()`: on x86_64 a kprobe hit is an int3, which the kernel handles as an NMI,
/// and `ktime_get()` there can spin forever on the timekeeper's seqcount if the hit interrupted
/// its writer (lockdep reports "inconsistent {INITIAL USE} -> {IN-NMI} usage").
///
/// Monotonic on one CPU except that, if the read interrupted a timekeeping update, it can step
/// back by a few nanoseconds (see `ktime_get_mono_fast_ns()` in `kernel/time/timekeeping.c`):
/// subtract with `saturating_sub`.
pub(crate) fn now_ns() -> u64 {
    // SAFETY: the function takes no argument and only reads the timekeeper through its NMI-safe
    // latch; it may be called in any context.
    unsafe { bindings::ktime_get_mono_fast_ns() }
}
