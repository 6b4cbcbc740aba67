// SPDX-License-Identifier: GPL-2.0

//! What `this_cpu_ptr()` and `current` read, per architecture: this CPU's per-CPU offset
//! ([`this_cpu_offset`], for [`super::percpu`]) and the running task ([`current_task`], for
//! [`super::task`]).
//!
//! They are C macros and static inlines; a helpers.c shim for them costs a call and its register
//! spills on every hit, so the handlers' hot path reads them here, as the C macros do.
//!
//! C headers: [`arch/x86/include/asm/current.h`](srctree/arch/x86/include/asm/current.h),
//! [`arch/arm64/include/asm/current.h`](srctree/arch/arm64/include/asm/current.h)

use super::bindings::task_struct;

/// This CPU's per-CPU offset: `this_cpu_ptr(p)` is `p` plus this. Only meaningful while the
/// caller cannot migrate (preemption off, as in every kprobe handler).
#[inline(always)]
pub(crate) fn this_cpu_offset() -> usize {
    imp::this_cpu_offset()
}

/// `current`: the running task. Read its fields at C's offsets (`layout::c()`), not through
/// `task_struct`'s bindgen layout, which is wrong on some configs (see `layout`).
#[inline(always)]
pub(crate) fn current_task() -> *mut task_struct {
    imp::current_task()
}

/// Per-CPU data is addressed through `%gs`; `this_cpu_off` holds the CPU's offset and
/// `pcpu_hot.current_task` (Linux 6.2 to 6.14) or `current_task` (6.15 on) the running task,
/// as `<asm/percpu.h>` and `<asm/current.h>` read them.
#[cfg(CONFIG_X86_64)]
mod imp {
    use super::task_struct;
    use crate::kprobes::bindings;
    use core::arch::asm;
    #[cfg(rk_x86_pcpu_hot)]
    use core::mem::offset_of;

    #[inline(always)]
    pub(super) fn this_cpu_offset() -> usize {
        let off: usize;
        // SAFETY: `this_cpu_off` is a per-CPU variable every CPU has from boot; this is the
        // `%gs`-relative load `raw_cpu_read_long(this_cpu_off)` emits. Reads memory only.
        unsafe {
            asm!(
                "mov {off}, qword ptr gs:[rip + {var}]",
                off = out(reg) off,
                var = sym bindings::this_cpu_off,
                options(nostack, preserves_flags, readonly, pure),
            )
        };
        off
    }

    /// Linux 6.2 to 6.14: `current` is `pcpu_hot.current_task` (`<asm/current.h>` has
    /// `struct pcpu_hot`; Kbuild sets `rk_x86_pcpu_hot`).
    #[cfg(rk_x86_pcpu_hot)]
    #[inline(always)]
    pub(super) fn current_task() -> *mut task_struct {
        let task: *mut task_struct;
        // SAFETY: `pcpu_hot` is a per-CPU variable every CPU has from boot; this is the load
        // `this_cpu_read_stable(pcpu_hot.current_task)` emits. Reads memory only.
        unsafe {
            asm!(
                "mov {task}, qword ptr gs:[{var} + {field}]",
                task = out(reg) task,
                var = sym bindings::pcpu_hot,
                field = const offset_of!(
                    bindings::pcpu_hot,
                    __bindgen_anon_1.__bindgen_anon_1.current_task
                ),
                options(nostack, preserves_flags, readonly, pure),
            )
        };
        task
    }

    /// Linux 6.15 and later: `current` is the per-CPU pointer `current_task` (Kbuild sets
    /// `rk_x86_current_task` when `<asm/current.h>` declares it).
    #[cfg(rk_x86_current_task)]
    #[inline(always)]
    pub(super) fn current_task() -> *mut task_struct {
        let task: *mut task_struct;
        // SAFETY: `current_task` is a per-CPU `struct task_struct *` every CPU has from boot
        // (`init_task` until the CPU runs a task); this is the `%gs`-relative load
        // `this_cpu_read_stable(current_task)` emits. Reads memory only.
        unsafe {
            asm!(
                "mov {task}, qword ptr gs:[rip + {var}]",
                task = out(reg) task,
                var = sym bindings::current_task,
                options(nostack, preserves_flags, readonly, pure),
            )
        };
        task
    }

    #[cfg(not(any(rk_x86_pcpu_hot, rk_x86_current_task)))]
    compile_error!(
        "rust-kprobes: this kernel's <asm/current.h> has neither `pcpu_hot` nor a per-CPU \
         `current_task`; `kprobes/cpu.rs` does not know how it reads `current`"
    );
}

/// `sp_el0` holds `current` while the kernel runs (`<asm/current.h>`). The per-CPU offset is in
/// `tpidr_el1`, or in `tpidr_el2` when the kernel itself runs at EL2 (VHE): C patches the
/// choice in at boot (`ALTERNATIVE(..., ARM64_HAS_VIRT_HOST_EXTN)`); Rust cannot, so it asks
/// `CurrentEL`, the very test that sets that capability (`is_kernel_in_hyp_mode()`).
#[cfg(CONFIG_ARM64)]
mod imp {
    use super::task_struct;
    use core::arch::asm;

    /// `CurrentEL` of a kernel running at EL2.
    const CURRENT_EL_EL2: u64 = 2 << 2;

    /// `pure` is given only to reads that cannot trap at EL1 or EL2: the compiler may execute
    /// a `pure` block on a path that did not ask for it (run both arms and select), and rustc
    /// 1.85.1 did, with `tpidr_el2` at EL1: an undefined-instruction oops on the first hit.
    #[inline(always)]
    pub(super) fn this_cpu_offset() -> usize {
        let el: u64;
        let off: usize;
        // SAFETY: `CurrentEL` is readable at EL1 and EL2 (so `pure` is sound: it cannot trap
        // wherever the kernel runs); reading it has no side effect.
        unsafe {
            asm!("mrs {}, CurrentEL", out(reg) el, options(nomem, nostack, preserves_flags, pure))
        };
        if el == CURRENT_EL_EL2 {
            // SAFETY: at EL2 `tpidr_el2` is accessible and is the kernel's per-CPU offset. Not
            // `pure`: at EL1 this read is an undefined instruction, so it must run on this path
            // only, never be hoisted or speculated into the other.
            unsafe {
                asm!("mrs {}, tpidr_el2", out(reg) off, options(nomem, nostack, preserves_flags))
            };
        } else {
            // SAFETY: at EL1 `tpidr_el1` is the kernel's per-CPU offset; it is readable at EL2 as
            // well, so `pure` cannot make it trap.
            unsafe {
                asm!("mrs {}, tpidr_el1", out(reg) off, options(nomem, nostack, preserves_flags, pure))
            };
        }
        off
    }

    #[inline(always)]
    pub(super) fn current_task() -> *mut task_struct {
        let task: *mut task_struct;
        // SAFETY: the kernel keeps `current` in `sp_el0`; reading it has no side effect.
        unsafe {
            asm!("mrs {}, sp_el0", out(reg) task, options(nomem, nostack, preserves_flags, pure))
        };
        task
    }
}

#[cfg(not(any(CONFIG_X86_64, CONFIG_ARM64)))]
compile_error!("rust-kprobes: `kprobes/cpu.rs` is implemented for x86_64 and arm64 only");
