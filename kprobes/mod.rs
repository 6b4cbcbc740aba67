// SPDX-License-Identifier: GPL-2.0

//! Kprobes and kretprobes: the safe Rust layer under `rust_kprobe.rs` and `rust_kretprobe.rs`.
//!
//! No kernel release has a Rust kprobe abstraction; this is one, small enough to read. Its
//! in-tree part ([`in_tree`], what `make patches` offers upstream as `rust/kernel/kprobes*`) is
//! compiled here as it is, and re-exported: [`kprobe::Kprobe`] / [`kretprobe::Kretprobe`], their
//! handler traits, [`hit::Hit`] and [`hit::Fault`], [`arch::Regs`]. Around it, what only these
//! modules need, each in a file of its own:
//!
//! - [`bindings`]: the module's own bindgen run; with [`helpers`] (`get_kretprobe()` inline)
//!   and [`register`] (the layout check, and the core's hold on a registered probe) it gives
//!   the in-tree code what `kernel::bindings` gives it in tree;
//! - `fprobe::Fprobe` (kernels with 7.3's fprobe, `rk_fprobe` from Kbuild): ftrace's entry and
//!   exit hook with per-call data, run by any kretprobe handler (`rust_kretprobe kind=fprobe`),
//!   or its entry hook alone (`rust_kprobe kind=fprobe`); `direct::Direct` (kernels with ftrace
//!   direct calls, `rk_direct`): the function's ftrace call site calls the module's own
//!   trampoline, which runs an entry-only fprobe handler (`rust_kprobe kind=direct`); both read
//!   their `ftrace_regs` through `ftrace_regs`'s [`arch::Frame`]s;
//! - [`percpu::PerCpu`], [`cpu`], [`task`], [`params`]: what the handlers need in atomic
//!   context; [`debugfs`] ([`debugfs::Published`]) and [`list`]: what shows their state;
//! - [`layout`]: C's struct layouts, checked against the bindings before any registration;
//! - [`compat`]: what differs between the kernel crates of 6.12 and 7.3;
//! - [`logic`]: plain Rust (filters, rate limit, histogram, sockaddr decoding), unit-tested on
//!   the host by `logic/` (`cargo test`).
//!
//! Both modules include this layer with `#[path]`; each uses a part of it.

mod in_tree;
pub(crate) use in_tree::*;

pub(crate) mod bindings;
pub(crate) mod compat;
pub(crate) mod cpu;
pub(crate) mod debugfs;
#[cfg(rk_direct)]
pub(crate) mod direct;
/// The documentation's examples, compiled so that they stay correct; nothing calls them.
mod example_kprobe;
mod example_kretprobe;
#[cfg(rk_fprobe)]
pub(crate) mod fprobe;
#[cfg(rk_fprobe)]
pub(crate) mod ftrace_regs;
pub(crate) mod helpers;
pub(crate) mod layout;
pub(crate) mod list;
pub(crate) mod logic;
pub(crate) mod params;
pub(crate) mod percpu;
pub(crate) mod register;
pub(crate) mod task;

// A module that prints no planted line (the template's) uses none of it.
#[allow(unused_imports)]
pub(crate) use list::SymbolOffset;

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
