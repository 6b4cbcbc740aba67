// SPDX-License-Identifier: GPL-2.0

//! The safe Rust layer under `rust_kprobe.rs` and `rust_kretprobe.rs`.
//!
//! Mainline 6.12 has no Rust kprobe abstraction; this is one, small enough to read:
//!
//! - [`kprobe::Kprobe`] / [`kretprobe::Kretprobe`]: both a [`probe::Probe`], a registration
//!   owned by a value, unregistered exactly once (on `unregister()` or drop); a failed
//!   registration leaves nothing behind.
//! - [`kprobe::KprobeHandler`] / [`kretprobe::KretprobeHandler`]: what a module implements (pre/post/fault,
//!   entry/return with typed per-instance data).
//! - [`arch`]: all per-architecture code: [`arch::Regs`] (the probed function's arguments and
//!   return value), the per-CPU offset and `current`.
//! - [`percpu::PerCpu`], [`debugfs`], [`task`], [`params`]: what the handlers need in atomic context.
//! - [`layout`]: C's struct layouts, checked against the bindings before any registration.
//! - [`logic`]: plain Rust (filters, rate limit, histogram, sockaddr decoding), unit-tested on
//!   the host by `logic/` (`cargo test`).
//!
//! Both modules include this layer with `#[path]`; each uses a part of it.

pub(crate) mod arch;
pub(crate) mod bindings;
pub(crate) mod compat;
pub(crate) mod debugfs;
pub(crate) mod kprobe;
pub(crate) mod kretprobe;
pub(crate) mod layout;
pub(crate) mod logic;
pub(crate) mod params;
pub(crate) mod percpu;
pub(crate) mod probe;
pub(crate) mod task;

/// Reads `buf.len()` bytes of kernel memory at `addr` without faulting (any context).
pub(crate) fn read_kernel(addr: u64, buf: &mut [u8]) -> Result<(), i32> {
    // SAFETY: `copy_from_kernel_nofault` checks the source address and recovers from any fault
    // on it; the destination is a live, writable buffer of `buf.len()` bytes.
    let ret = unsafe {
        bindings::copy_from_kernel_nofault(
            buf.as_mut_ptr().cast(),
            addr as usize as *const _,
            buf.len(),
        )
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
/// its writer (lockdep reports "inconsistent {INITIAL USE} -> {IN-NMI} usage"; seen here).
pub(crate) fn now_ns() -> i64 {
    // SAFETY: no arguments; safe in any context, NMI included.
    unsafe { bindings::ktime_get_mono_fast_ns() as i64 }
}

/// Why `register_k(ret)probe` refused, in words, for the one error line a module prints.
pub(crate) fn why(e: kernel::error::Error) -> &'static str {
    match e.to_errno().unsigned_abs() {
        bindings::ENOENT => "no such symbol (ENOENT)",
        bindings::EINVAL => {
            "not a probe point: blacklisted, in a non-kernel text section, or bad offset (EINVAL)"
        }
        bindings::EILSEQ => "offset is not at an instruction boundary (EILSEQ)",
        bindings::EOPNOTSUPP => "probing is not supported here (EOPNOTSUPP)",
        bindings::EBUSY => "already probed in a way that conflicts (EBUSY)",
        bindings::ENOMEM => "out of memory (ENOMEM)",
        _ => "refused by the kprobe core",
    }
}
