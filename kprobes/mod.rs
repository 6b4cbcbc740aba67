// SPDX-License-Identifier: GPL-2.0

// rk-out-of-tree-begin
//! Kprobes and kretprobes: the safe Rust layer under `rust_kprobe.rs` and `rust_kretprobe.rs`.
//!
//! No kernel release has a Rust kprobe abstraction; this is one, small enough to read:
// rk-out-of-tree-end
// rk-in-tree: //! Kprobes and kretprobes: dynamic probes on kernel functions, with handlers in Rust.
//!
//! - [`kprobe::Kprobe`] / [`kretprobe::Kretprobe`]: both a [`probe::Probe`], a registration
//!   created pinned by a pin-initializer and unregistered exactly once (on drop, or by
//!   [`probe::Probe::unregister`], which hands back the handler); a failed registration leaves
//!   nothing behind.
//! - [`kprobe::KprobeHandler`] / [`kretprobe::KretprobeHandler`]: what a module implements
//!   (pre/post/fault, entry/return with typed per-instance data).
// rk-out-of-tree-begin
//! - [`arch`]: all per-architecture code: [`arch::Regs`] (the probed function's arguments and
//!   return value), the per-CPU offset and `current`.
//! - `fprobe::Fprobe` (kernels with 7.3's fprobe, `rk_fprobe` from Kbuild): ftrace's entry and
//!   exit hook with per-call data, run by any kretprobe handler (`rust_kretprobe kind=fprobe`),
//!   or its entry hook alone (`rust_kprobe kind=fprobe`).
//! - `direct::Direct` (kernels with ftrace direct calls, `rk_direct`): the function's ftrace
//!   call site calls the module's own trampoline, which runs an entry-only fprobe handler
//!   (`rust_kprobe kind=direct`).
//! - [`percpu::PerCpu`], [`debugfs`], [`task`], [`params`]: what the handlers need in atomic
//!   context, and what shows their state.
//! - [`layout`]: C's struct layouts, checked against the bindings before any registration.
//! - [`logic`]: plain Rust (filters, rate limit, histogram, sockaddr decoding), unit-tested on
//!   the host by `logic/` (`cargo test`).
//!
//! Both modules include this layer with `#[path]`; each uses a part of it.
// rk-out-of-tree-end
// rk-in-tree: //! - [`arch`]: all per-architecture code: [`arch::Regs`], the probed function's arguments
// rk-in-tree: //!   and return value as their C types.
// rk-in-tree: //!
// rk-in-tree: //! Handlers run in atomic context: nothing in them may sleep, allocate or take a lock.
// rk-in-tree: //! Samples: `samples/rust/rust_kprobe_example.rs`, `samples/rust/rust_kretprobe_example.rs`.
//!
//! C header: [`include/linux/kprobes.h`](srctree/include/linux/kprobes.h)

pub(crate) mod arch;
// rk-out-of-tree-begin
pub(crate) mod bindings;
pub(crate) mod compat;
pub(crate) mod debugfs;
#[cfg(rk_direct)]
pub(crate) mod direct;
/// The documentation's examples, compiled so that they stay correct; nothing calls them.
mod example_kprobe;
mod example_kretprobe;
#[cfg(rk_fprobe)]
pub(crate) mod fprobe;
// rk-out-of-tree-end
pub(crate) mod kprobe;
#[cfg(CONFIG_KRETPROBES)]
pub(crate) mod kretprobe;
// rk-out-of-tree-begin
pub(crate) mod layout;
pub(crate) mod logic;
pub(crate) mod params;
pub(crate) mod percpu;
// rk-out-of-tree-end
pub(crate) mod probe;
// rk-out-of-tree-begin
pub(crate) mod task;
// rk-out-of-tree-end

// rk-in-tree: use crate::bindings;

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

// rk-out-of-tree-begin
/// `symbol+offset` of a kernel text address, as `/sys/kernel/debug/kprobes/list` names it:
/// what `sprint_symbol()` writes, without its `/size` and ` [module]`. For init-time lines:
/// it is `KSYM_SYMBOL_LEN` bytes on the stack.
pub(crate) struct SymbolOffset {
    buf: [u8; bindings::rk_ksym_symbol_len as usize],
    len: usize,
}

impl SymbolOffset {
    /// Looks `addr` up in kallsyms (a search of the symbol tables: for init and exit, not for
    /// handlers).
    pub(crate) fn of(addr: u64) -> Self {
        let mut s = Self {
            buf: [0; bindings::rk_ksym_symbol_len as usize],
            len: 0,
        };
        // SAFETY: `buf` is `KSYM_SYMBOL_LEN` bytes, the most `sprint_symbol()` writes (its
        // contract), and `addr` is only looked up, never dereferenced.
        let n = unsafe {
            bindings::sprint_symbol(s.buf.as_mut_ptr().cast(), addr as kernel::ffi::c_ulong)
        };
        let n = usize::try_from(n).unwrap_or(0).min(s.buf.len());
        s.len = s.buf[..n]
            .iter()
            .position(|&b| b == b'/' || b == b' ')
            .unwrap_or(n);
        s
    }

    /// The name, e.g. `inet_bind+0x4` (the address in hex when kallsyms has no symbol there).
    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

// rk-out-of-tree-end

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

// rk-out-of-tree-begin
/// `kind=fprobe` on a kernel without 7.3's fprobe (no `rk_fprobe` from Kbuild): its one line,
/// and `EOPNOTSUPP`.
#[cfg(not(rk_fprobe))]
pub(crate) fn no_fprobe() -> kernel::error::Error {
    if cfg!(CONFIG_FPROBE) {
        kernel::pr_err!(
            "kind=fprobe: this kernel's fprobe is not 7.3's fgraph-based one, which this module \
             was written for\n"
        );
    } else {
        kernel::pr_err!("kind=fprobe: this kernel has no fprobe (CONFIG_FPROBE)\n");
    }
    // (6.12's kernel crate has no `EOPNOTSUPP` constant.)
    kernel::error::Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

/// `kind=direct` on a kernel without ftrace direct calls, or without 7.3's `ftrace_regs` (no
/// `rk_direct` from Kbuild): its one line, and `EOPNOTSUPP`.
#[cfg(not(rk_direct))]
pub(crate) fn no_direct() -> kernel::error::Error {
    kernel::pr_err!(
        "kind=direct: this kernel has no ftrace direct calls \
         (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS) with 7.3's ftrace_regs\n"
    );
    kernel::error::Error::from_errno(-(bindings::EOPNOTSUPP as i32))
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
        bindings::EAGAIN => {
            "registered, but the kprobe core does not hold the probe: arming it failed, and \
             its register_kprobe() said 0 (EAGAIN)"
        }
        _ => "refused by the kprobe core",
    }
}
// rk-out-of-tree-end
