// SPDX-License-Identifier: GPL-2.0

//! Everything that differs per architecture, in one place:
//!
//! - [`Regs`]: which `pt_regs` slot holds which argument, read as the type the probed function
// rk-out-of-tree-begin
//!   declares ([`FromReg`]; as aya's `args.rs` does for eBPF);
// rk-out-of-tree-end
// rk-in-tree: //!   declares ([`FromReg`]);
// rk-out-of-tree-begin
//! - [`this_cpu_offset`] and [`current_task`]: what `this_cpu_ptr()` and `current` read. They
//!   are C macros and static inlines; a helpers.c shim for them costs a call and its register
//!   spills on every hit, so the handlers' hot path reads them here, as the C macros do.
// rk-out-of-tree-end
// rk-in-tree: //! - whether the kprobe core emulates the probed instruction (`emulated`, for the
// rk-in-tree: //!   post handler's [`Step`](super::kprobe::Step)).
//!
//! C headers: [`arch/x86/include/asm/ptrace.h`](srctree/arch/x86/include/asm/ptrace.h),
// rk-out-of-tree-begin
//! [`arch/arm64/include/asm/ptrace.h`](srctree/arch/arm64/include/asm/ptrace.h),
//! [`arch/x86/include/asm/current.h`](srctree/arch/x86/include/asm/current.h),
//! [`arch/arm64/include/asm/current.h`](srctree/arch/arm64/include/asm/current.h)
// rk-out-of-tree-end
// rk-in-tree: //! [`arch/arm64/include/asm/ptrace.h`](srctree/arch/arm64/include/asm/ptrace.h)

// rk-out-of-tree-begin
use super::bindings::{pt_regs, task_struct};
// rk-out-of-tree-end
// rk-in-tree: use crate::bindings::pt_regs;

/// A C type that an argument or return register holds: the integers and pointers.
///
/// A C argument narrower than the register (an `int` in `rdi` or `x0`) leaves the register's
/// upper bits undefined in both ABIs; `from_reg` takes the low bits, as C's conversion does.
pub(crate) trait FromReg: Sized {
    /// The value of type `Self` in register value `r`.
    fn from_reg(r: u64) -> Self;
}

macro_rules! from_reg_int {
    ($($t:ty),*) => {
        $(
            impl FromReg for $t {
                #[inline(always)]
                fn from_reg(r: u64) -> Self {
                    // Truncation (and sign reinterpretation) is the point: see `FromReg`.
                    r as $t
                }
            }
        )*
    };
}
from_reg_int!(i8, u8, i16, u16, i32, u32, i64, isize, usize);

impl FromReg for u64 {
    #[inline(always)]
    fn from_reg(r: u64) -> Self {
        r
    }
}

impl FromReg for bool {
    /// C `bool`: the low byte is 0 or 1.
    #[inline(always)]
    fn from_reg(r: u64) -> Self {
        r as u8 != 0
    }
}

impl<T> FromReg for *const T {
    /// A pointer argument: an address, not a reference; reading through it is the handler's
    /// business (e.g. `Hit::read`).
    #[inline(always)]
    fn from_reg(r: u64) -> Self {
        r as usize as *const T
    }
}

impl<T> FromReg for *mut T {
    /// As for `*const T`.
    #[inline(always)]
    fn from_reg(r: u64) -> Self {
        r as usize as *mut T
    }
}

/// Read-only view of the `pt_regs` a handler is given.
pub(crate) struct Regs<'a>(&'a pt_regs);

impl<'a> Regs<'a> {
    /// The registers of the hit being handled.
    ///
    /// # Safety
    ///
    /// `regs` must be the valid `pt_regs` the kprobe core passed to the running handler.
    pub(in crate::kprobes) unsafe fn from_raw(regs: *const pt_regs) -> Self {
        // SAFETY: valid for the handler's duration, per this function's contract.
        Self(unsafe { &*regs })
    }

    /// Argument `n` (from 0) of the probed function as its C type `T`, if it is passed in a
    /// register (the per-arch table below). Valid at function entry only: a kprobe at offset 0,
    /// or a kretprobe's entry handler.
    #[inline(always)]
    pub(crate) fn arg<T: FromReg>(&self, n: usize) -> Option<T> {
        imp::arg(self.0, n).map(T::from_reg)
    }

    /// The return value as the function's C type `T`: valid in a kretprobe's return handler.
    #[inline(always)]
    pub(crate) fn return_value<T: FromReg>(&self) -> T {
        T::from_reg(imp::return_value(self.0))
    }

    /// Instruction pointer.
    pub(crate) fn ip(&self) -> u64 {
        imp::ip(self.0)
    }

    /// Stack pointer.
    pub(crate) fn sp(&self) -> u64 {
        imp::sp(self.0)
    }
}

// rk-out-of-tree-begin
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
// rk-out-of-tree-end

/// Whether the kprobe core emulates (x86) or simulates (arm64) the probed instruction of a
/// breakpoint probe instead of executing it out of line, from the `ainsn` that
/// `arch_prepare_kprobe()` filled in (meaningless for a probe that was not prepared).
#[inline(always)]
pub(in crate::kprobes) fn emulated(ainsn: &super::bindings::arch_specific_insn) -> bool {
    imp::emulated(ainsn)
}

/// x86-64 System V ABI, as the kernel uses it:
///
/// | arg 0 | arg 1 | arg 2 | arg 3 | arg 4 | arg 5 | return | ip | sp |
/// |-------|-------|-------|-------|-------|-------|--------|----|----|
/// | `di`  | `si`  | `dx`  | `cx`  | `r8`  | `r9`  | `ax`   | `ip` | `sp` |
///
// rk-out-of-tree-begin
/// Per-CPU data is addressed through `%gs`; `this_cpu_off` holds the CPU's offset and
/// `pcpu_hot.current_task` (Linux 6.2 to 6.14) or `current_task` (6.15 on) the running task,
/// as `<asm/percpu.h>` and `<asm/current.h>` read them.
// rk-out-of-tree-end
#[cfg(CONFIG_X86_64)]
mod imp {
    // rk-out-of-tree-begin
    use super::{pt_regs, task_struct};
    use crate::kprobes::bindings;
    use core::arch::asm;
    #[cfg(rk_x86_pcpu_hot)]
    use core::mem::offset_of;
    // rk-out-of-tree-end
    // rk-in-tree: use super::pt_regs;
    // rk-in-tree: use crate::bindings;

    #[inline(always)]
    pub(super) fn arg(r: &pt_regs, n: usize) -> Option<u64> {
        let v = match n {
            0 => r.di,
            1 => r.si,
            2 => r.dx,
            3 => r.cx,
            4 => r.r8,
            5 => r.r9,
            _ => return None,
        };
        Some(v as u64)
    }

    #[inline(always)]
    pub(super) fn return_value(r: &pt_regs) -> u64 {
        r.ax as u64
    }

    /// `prepare_emulation()` sets `emulate_op` for the instructions the core emulates (call,
    /// jmp, jcc, ret, loop, int3, ...); the others are executed out of line.
    #[inline(always)]
    pub(super) fn emulated(ainsn: &bindings::arch_specific_insn) -> bool {
        ainsn.emulate_op.is_some()
    }

    #[inline(always)]
    pub(super) fn ip(r: &pt_regs) -> u64 {
        r.ip as u64
    }

    #[inline(always)]
    pub(super) fn sp(r: &pt_regs) -> u64 {
        r.sp as u64
    }

    // rk-out-of-tree-begin
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
         `current_task`; `kprobes/arch.rs` does not know how it reads `current`"
    );
    // rk-out-of-tree-end
}

/// AArch64 procedure call standard (AAPCS64):
///
/// | args 0..=7 | return | ip   | sp   |
/// |------------|--------|------|------|
/// | `x0`..`x7` | `x0`   | `pc` | `sp` |
///
/// `struct pt_regs` starts with a union of `struct user_pt_regs { regs[31], sp, pc, pstate }`
/// and the same fields unnamed; this reads `user_pt_regs`.
///
// rk-out-of-tree-begin
/// `sp_el0` holds `current` while the kernel runs (`<asm/current.h>`). The per-CPU offset is in
/// `tpidr_el1`, or in `tpidr_el2` when the kernel itself runs at EL2 (VHE): C patches the
/// choice in at boot (`ALTERNATIVE(..., ARM64_HAS_VIRT_HOST_EXTN)`); Rust cannot, so it asks
/// `CurrentEL`, the very test that sets that capability (`is_kernel_in_hyp_mode()`).
// rk-out-of-tree-end
#[cfg(CONFIG_ARM64)]
mod imp {
    // rk-out-of-tree-begin
    use super::{pt_regs, task_struct};
    use crate::kprobes::bindings::{self, user_pt_regs};
    use core::arch::asm;
    // rk-out-of-tree-end
    // rk-in-tree: use super::pt_regs;
    // rk-in-tree: use crate::bindings::{self, user_pt_regs};

    fn user(r: &pt_regs) -> &user_pt_regs {
        // SAFETY: both members of the union are plain `u64` fields with the same layout, so
        // every bit pattern is a valid `user_pt_regs`.
        unsafe { &r.__bindgen_anon_1.user_regs }
    }

    #[inline(always)]
    pub(super) fn arg(r: &pt_regs, n: usize) -> Option<u64> {
        (n < 8).then(|| user(r).regs[n])
    }

    #[inline(always)]
    pub(super) fn return_value(r: &pt_regs) -> u64 {
        user(r).regs[0]
    }

    // rk-out-of-tree-begin
    /// `arch_prepare_kprobe()` leaves the out-of-line slot NULL for the instructions it
    /// simulates (`INSN_GOOD_NO_SLOT`: branches, PC-relative loads); the slot is `xol_insn`
    /// since Linux 6.15 (`rk_arm64_xol_insn`, from `<asm/probes.h>`), `api.insn` before.
    // rk-out-of-tree-end
    // rk-in-tree: /// `arch_prepare_kprobe()` leaves the out-of-line slot (`xol_insn`) NULL for the
    // rk-in-tree: /// instructions it simulates (`INSN_GOOD_NO_SLOT`: branches, PC-relative loads).
    #[inline(always)]
    pub(super) fn emulated(ainsn: &bindings::arch_specific_insn) -> bool {
        // rk-out-of-tree-begin
        #[cfg(rk_arm64_xol_insn)]
        let slot = ainsn.xol_insn;
        #[cfg(not(rk_arm64_xol_insn))]
        let slot = ainsn.api.insn;
        slot.is_null()
        // rk-out-of-tree-end
        // rk-in-tree: ainsn.xol_insn.is_null()
    }

    #[inline(always)]
    pub(super) fn ip(r: &pt_regs) -> u64 {
        user(r).pc
    }

    #[inline(always)]
    pub(super) fn sp(r: &pt_regs) -> u64 {
        user(r).sp
    }

    // rk-out-of-tree-begin
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
    // rk-out-of-tree-end
}

#[cfg(not(any(CONFIG_X86_64, CONFIG_ARM64)))]
// rk-out-of-tree-begin
compile_error!("rust-kprobes: `kprobes/arch.rs` is implemented for x86_64 and arm64 only");
// rk-out-of-tree-end
// rk-in-tree: compile_error!("`kernel::kprobes` is implemented for x86_64 and arm64 only");
