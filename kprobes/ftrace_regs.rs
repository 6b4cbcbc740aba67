// SPDX-License-Identifier: GPL-2.0

//! The registers of an fprobe or direct-call hit: the `ftrace_regs` ftrace saves at a
//! function's entry (its call site) and exit (`return_to_handler`), as [`Frame`]s, so that the
//! handlers read them through the same [`super::arch::Regs`] as a kprobe's `pt_regs`.
//!
//! An `ftrace_regs` holds only some registers: at entry the arguments, the stack pointer and
//! the call site (`ip`: the address after it); at exit the return value, the return address as
//! `ip`, and (x86_64 only) the stack pointer. What a frame does not hold reads as `None` (an
//! argument) or 0.
//!
//! C header: [`include/linux/ftrace_regs.h`](srctree/include/linux/ftrace_regs.h)

use super::arch::Frame;
use super::bindings::{__arch_ftrace_regs, ftrace_regs};

/// The `ftrace_regs` of a function's entry.
#[repr(transparent)]
pub(crate) struct FtraceEntry(__arch_ftrace_regs);

/// The `ftrace_regs` of a function's exit.
#[repr(transparent)]
pub(crate) struct FtraceExit(__arch_ftrace_regs);

impl FtraceEntry {
    /// The entry registers at `fregs`.
    ///
    /// # Safety
    ///
    /// `fregs` must be the valid `ftrace_regs` of a function's entry, passed to the running
    /// handler, and stay valid for `'a`.
    #[inline(always)]
    pub(crate) unsafe fn from_raw<'a>(fregs: *const ftrace_regs) -> &'a Self {
        // SAFETY: the empty `struct ftrace_regs` is only a name for the arch's
        // `struct __arch_ftrace_regs` (`arch_ftrace_regs()` is this cast in C), which `Self`
        // wraps transparently; valid for `'a`, per this function's contract.
        unsafe { &*fregs.cast::<Self>() }
    }
}

impl FtraceExit {
    /// The exit registers at `fregs`.
    ///
    /// # Safety
    ///
    /// `fregs` must be the valid `ftrace_regs` of a function's exit, passed to the running
    /// handler, and stay valid for `'a`.
    #[inline(always)]
    pub(crate) unsafe fn from_raw<'a>(fregs: *const ftrace_regs) -> &'a Self {
        // SAFETY: as in `FtraceEntry::from_raw`, for an exit.
        unsafe { &*fregs.cast::<Self>() }
    }
}

impl Frame for FtraceEntry {
    /// `ftrace_regs_get_argument()`.
    #[inline(always)]
    fn arg(&self, n: usize) -> Option<u64> {
        imp::arg(&self.0, n)
    }

    /// Not saved at entry: 0.
    #[inline(always)]
    fn return_value(&self) -> u64 {
        0
    }

    /// `ftrace_regs_get_instruction_pointer()`: the address after the ftrace call site.
    #[inline(always)]
    fn ip(&self) -> u64 {
        imp::ip(&self.0)
    }

    /// `ftrace_regs_get_stack_pointer()`.
    #[inline(always)]
    fn sp(&self) -> u64 {
        imp::sp(&self.0)
    }
}

impl Frame for FtraceExit {
    /// Not saved at exit: `None`.
    #[inline(always)]
    fn arg(&self, _n: usize) -> Option<u64> {
        None
    }

    /// `ftrace_regs_get_return_value()`.
    #[inline(always)]
    fn return_value(&self) -> u64 {
        imp::return_value(&self.0)
    }

    /// The address the function returns to (fgraph sets it as the instruction pointer).
    #[inline(always)]
    fn ip(&self) -> u64 {
        imp::ip(&self.0)
    }

    /// x86_64's `return_to_handler` saves it; arm64's does not: 0.
    #[inline(always)]
    fn sp(&self) -> u64 {
        imp::exit_sp(&self.0)
    }
}

/// x86_64 has no `HAVE_ARCH_FTRACE_REGS`, so its `struct __arch_ftrace_regs` is
/// `<linux/ftrace_regs.h>`'s `{ struct pt_regs regs; }`
/// (`CONFIG_HAVE_FTRACE_REGS_HAVING_PT_REGS`), of which `ftrace_caller` fills the argument
/// registers, `ip` and `sp` at entry, and `return_to_handler` `ax`, `dx`, `bp` and `sp` at exit
/// (fgraph sets `ip` to the return address): the generic accessors read them as `pt_regs`
/// fields, as these do (through `pt_regs`'s own [`Frame`]).
#[cfg(CONFIG_X86_64)]
mod imp {
    use super::{__arch_ftrace_regs, Frame};

    #[cfg(not(CONFIG_HAVE_FTRACE_REGS_HAVING_PT_REGS))]
    compile_error!(
        "rust-kprobes: this x86_64 kernel's `ftrace_regs` is not a `pt_regs` \
         (no CONFIG_HAVE_FTRACE_REGS_HAVING_PT_REGS): `kprobes/ftrace_regs.rs` does not know it"
    );

    #[inline(always)]
    pub(super) fn arg(r: &__arch_ftrace_regs, n: usize) -> Option<u64> {
        r.regs.arg(n)
    }

    #[inline(always)]
    pub(super) fn return_value(r: &__arch_ftrace_regs) -> u64 {
        r.regs.return_value()
    }

    #[inline(always)]
    pub(super) fn ip(r: &__arch_ftrace_regs) -> u64 {
        Frame::ip(&r.regs)
    }

    #[inline(always)]
    pub(super) fn sp(r: &__arch_ftrace_regs) -> u64 {
        Frame::sp(&r.regs)
    }

    #[inline(always)]
    pub(super) fn exit_sp(r: &__arch_ftrace_regs) -> u64 {
        Frame::sp(&r.regs)
    }
}

/// arm64 has `HAVE_ARCH_FTRACE_REGS`, its own
/// `struct __arch_ftrace_regs { regs[9] (x0-x8), direct_tramp, fp, lr, sp, pc }` and accessors
/// (`<asm/ftrace.h>`), which these follow. `ftrace_caller` fills x0-x8, fp, lr, sp and pc at
/// entry; `return_to_handler` fills x0-x7 and fp at exit (fgraph sets pc to the return
/// address), not sp.
#[cfg(CONFIG_ARM64)]
mod imp {
    use super::__arch_ftrace_regs;

    #[cfg(not(CONFIG_DYNAMIC_FTRACE_WITH_ARGS))]
    compile_error!(
        "rust-kprobes: this arm64 kernel has no CONFIG_DYNAMIC_FTRACE_WITH_ARGS, so no \
         `struct __arch_ftrace_regs`: `kprobes/ftrace_regs.rs` does not know its `ftrace_regs`"
    );

    /// x0-x7.
    #[inline(always)]
    pub(super) fn arg(r: &__arch_ftrace_regs, n: usize) -> Option<u64> {
        (n < 8).then(|| r.regs[n] as u64)
    }

    /// x0.
    #[inline(always)]
    pub(super) fn return_value(r: &__arch_ftrace_regs) -> u64 {
        r.regs[0] as u64
    }

    #[inline(always)]
    pub(super) fn ip(r: &__arch_ftrace_regs) -> u64 {
        r.pc as u64
    }

    #[inline(always)]
    pub(super) fn sp(r: &__arch_ftrace_regs) -> u64 {
        r.sp as u64
    }

    /// arm64's `return_to_handler` does not save sp: 0.
    #[inline(always)]
    pub(super) fn exit_sp(_r: &__arch_ftrace_regs) -> u64 {
        0
    }
}
