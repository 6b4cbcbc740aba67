// SPDX-License-Identifier: GPL-2.0

//! Struct layouts as C has them (`rk_layout` in helpers.c), against what the bindings say.
//!
//! bindgen can get a kernel struct wrong: on 6.12 without `CONFIG_SCHEDSTATS` it drops the
//! alignment of the empty `____cacheline_aligned` `struct sched_statistics`, so in
//! `kernel::bindings` every `task_struct` field after it is 16 bytes off (x86_64). Hence
//! `current`'s fields are read at C's offsets, and every struct handed to the kprobe core is
//! checked before a probe is registered.

use super::bindings::{self, kprobe, kretprobe, kretprobe_instance, pt_regs, rk_layout};
use super::bindings::{sockaddr_in, sockaddr_in6};
use core::mem::size_of;
use kernel::prelude::*;

/// C's layouts.
#[inline(always)]
pub(crate) fn c() -> &'static rk_layout {
    // SAFETY: `rk_layout` is a `const` C object initialised at compile time and never written,
    // so a shared `'static` reference to it is valid.
    unsafe { &bindings::rk_layout }
}

/// `current`'s fields at C's offsets, as constants (libclang's, through bindgen: see
/// `bindings_helper.h`), so that a handler's load has the offset as an immediate. [`check`]
/// compares them with the kernel compiler's.
pub(crate) const TASK_MM: usize = bindings::rk_off_task_mm as usize;
pub(crate) const TASK_PID: usize = bindings::rk_off_task_pid as usize;
pub(crate) const TASK_COMM: usize = bindings::rk_off_task_comm as usize;

/// Checks that the bindings size the structs the kprobe core and the handlers share as C does,
/// and that the task offsets above are the kernel compiler's; one error line and `ENOEXEC` if
/// not (the module was built against other headers, or bindgen laid a struct out wrongly).
pub(crate) fn check() -> Result {
    let c = c();
    for (name, rust, c) in [
        ("task_struct.mm", TASK_MM, c.task_mm),
        ("task_struct.pid", TASK_PID, c.task_pid),
        ("task_struct.comm", TASK_COMM, c.task_comm),
    ] {
        if rust != c {
            pr_err!(
                "libclang disagrees with the compiler: {name} is at {rust} in Rust, {c} in C\n"
            );
            return Err(ENOEXEC);
        }
    }
    for (name, rust, c) in [
        ("struct kprobe", size_of::<kprobe>(), c.kprobe),
        ("struct kretprobe", size_of::<kretprobe>(), c.kretprobe),
        (
            "struct kretprobe_instance",
            size_of::<kretprobe_instance>(),
            c.kretprobe_instance,
        ),
        ("struct pt_regs", size_of::<pt_regs>(), c.pt_regs),
        (
            "struct sockaddr_in",
            size_of::<sockaddr_in>(),
            c.sockaddr_in,
        ),
        (
            "struct sockaddr_in6",
            size_of::<sockaddr_in6>(),
            c.sockaddr_in6,
        ),
    ] {
        if rust != c {
            pr_err!("bindings disagree with C: {name} is {rust} bytes in Rust, {c} in C\n");
            return Err(ENOEXEC);
        }
    }
    Ok(())
}
