// SPDX-License-Identifier: GPL-2.0

//! Everything that differs per architecture, in one place:
//!
//! - [`Regs`]: which `pt_regs` slot holds which argument, read as the type the probed function
//!   declares ([`FromReg`]);
//! - whether the kprobe core emulates the probed instruction (`emulated`, for the post
//!   handler's [`Step`](super::kprobe::Step)).
//!
//! C headers: [`arch/x86/include/asm/ptrace.h`](srctree/arch/x86/include/asm/ptrace.h),
//! [`arch/arm64/include/asm/ptrace.h`](srctree/arch/arm64/include/asm/ptrace.h)

use super::bindings::{self, pt_regs};

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

/// The registers a handler reads through [`Regs`]: the `pt_regs` of a kprobe or kretprobe hit.
///
/// A hook that saves a register frame of its own (ftrace's `ftrace_regs`, say) implements it to
/// run the same handlers: each method answers for what that frame holds.
pub(crate) trait Frame {
    /// Argument `n` (from 0) of the probed function, as its register holds it, if it is passed
    /// in a register that the frame holds.
    fn arg(&self, n: usize) -> Option<u64>;

    /// The return value register (0 if the frame does not hold it).
    fn return_value(&self) -> u64;

    /// The instruction pointer.
    fn ip(&self) -> u64;

    /// The stack pointer (0 if the frame does not hold it).
    fn sp(&self) -> u64;
}

impl Frame for pt_regs {
    #[inline(always)]
    fn arg(&self, n: usize) -> Option<u64> {
        imp::arg(self, n)
    }

    #[inline(always)]
    fn return_value(&self) -> u64 {
        imp::return_value(self)
    }

    #[inline(always)]
    fn ip(&self) -> u64 {
        imp::ip(self)
    }

    #[inline(always)]
    fn sp(&self) -> u64 {
        imp::sp(self)
    }
}

/// Read-only view of the registers a handler is given.
///
/// Each kind's trampoline builds a `Regs` of one [`Frame`] type only: a handler inlined into it
/// (`#[inline(always)]`, as `rust_kprobe`'s `pre`) reads an argument with one load; one left out
/// of line reads it through the vtable (x86_64 6.12: 12 instructions a read).
pub(crate) struct Regs<'a>(&'a dyn Frame);

impl<'a> Regs<'a> {
    /// The registers of the hit being handled.
    ///
    /// # Safety
    ///
    /// `regs` must be the valid `pt_regs` the kprobe core passed to the running handler.
    #[inline(always)]
    pub(in crate::kprobes) unsafe fn from_raw(regs: *const pt_regs) -> Self {
        // SAFETY: valid for the handler's duration, per this function's contract.
        Self(unsafe { &*regs })
    }

    /// The registers in `frame`.
    #[inline(always)]
    pub(crate) fn new(frame: &'a dyn Frame) -> Self {
        Self(frame)
    }

    /// Argument `n` (from 0) of the probed function as its C type `T`, if it is passed in a
    /// register (the per-arch table below). Valid at function entry only: a kprobe at offset 0,
    /// or a kretprobe's entry handler.
    #[inline(always)]
    pub(crate) fn arg<T: FromReg>(&self, n: usize) -> Option<T> {
        self.0.arg(n).map(T::from_reg)
    }

    /// The return value as the function's C type `T`: valid in a kretprobe's return handler.
    #[inline(always)]
    pub(crate) fn return_value<T: FromReg>(&self) -> T {
        T::from_reg(self.0.return_value())
    }

    /// Instruction pointer.
    #[inline(always)]
    pub(crate) fn ip(&self) -> u64 {
        self.0.ip()
    }

    /// Stack pointer.
    #[inline(always)]
    pub(crate) fn sp(&self) -> u64 {
        self.0.sp()
    }
}

/// How many of a function's first arguments [`Regs::arg`] reads from their registers.
pub(crate) const ARG_REGS: usize = imp::ARG_REGS;

/// Whether the kprobe core emulates (x86) or simulates (arm64) the probed instruction of a
/// breakpoint probe instead of executing it out of line, from the `ainsn` that
/// `arch_prepare_kprobe()` filled in (meaningless for a probe that was not prepared).
#[inline(always)]
pub(in crate::kprobes) fn emulated(ainsn: &bindings::arch_specific_insn) -> bool {
    imp::emulated(ainsn)
}

/// x86-64 System V ABI, as the kernel uses it:
///
/// | arg 0 | arg 1 | arg 2 | arg 3 | arg 4 | arg 5 | return | ip | sp |
/// |-------|-------|-------|-------|-------|-------|--------|----|----|
/// | `di`  | `si`  | `dx`  | `cx`  | `r8`  | `r9`  | `ax`   | `ip` | `sp` |
#[cfg(CONFIG_X86_64)]
mod imp {
    use super::{bindings, pt_regs};

    /// rdi, rsi, rdx, rcx, r8, r9 (the SysV ABI).
    pub(super) const ARG_REGS: usize = 6;

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
}

/// AArch64 procedure call standard (AAPCS64):
///
/// | args 0..=7 | return | ip   | sp   |
/// |------------|--------|------|------|
/// | `x0`..`x7` | `x0`   | `pc` | `sp` |
///
/// `struct pt_regs` starts with a union of `struct user_pt_regs { regs[31], sp, pc, pstate }`
/// and the same fields unnamed; this reads `user_pt_regs`.
#[cfg(CONFIG_ARM64)]
mod imp {
    use super::{bindings, pt_regs};

    fn user(r: &pt_regs) -> &bindings::user_pt_regs {
        // SAFETY: both members of the union are plain `u64` fields with the same layout, so
        // every bit pattern is a valid `user_pt_regs`.
        unsafe { &r.__bindgen_anon_1.user_regs }
    }

    /// x0-x7 (AAPCS64).
    pub(super) const ARG_REGS: usize = 8;

    #[inline(always)]
    pub(super) fn arg(r: &pt_regs, n: usize) -> Option<u64> {
        (n < ARG_REGS).then(|| user(r).regs[n])
    }

    #[inline(always)]
    pub(super) fn return_value(r: &pt_regs) -> u64 {
        user(r).regs[0]
    }

    /// `arm_kprobe_decode_insn()` sets `api.handler` to the simulation of the instructions the
    /// core simulates (`INSN_GOOD_NO_SLOT`: branches, PC-relative loads), and leaves it NULL
    /// for those it steps out of line.
    #[inline(always)]
    pub(super) fn emulated(ainsn: &bindings::arch_specific_insn) -> bool {
        ainsn.api.handler.is_some()
    }

    #[inline(always)]
    pub(super) fn ip(r: &pt_regs) -> u64 {
        user(r).pc
    }

    #[inline(always)]
    pub(super) fn sp(r: &pt_regs) -> u64 {
        user(r).sp
    }
}

#[cfg(not(any(CONFIG_X86_64, CONFIG_ARM64)))]
compile_error!("the kprobe abstraction is implemented for x86_64 and arm64 only");
