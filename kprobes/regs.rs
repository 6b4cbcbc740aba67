// SPDX-License-Identifier: GPL-2.0

//! The probed function's registers at a hit: the one place that knows, per architecture,
//! which `pt_regs` slot holds which argument (as aya's `args.rs` does for eBPF).

use super::bindings::pt_regs;

/// Read-only view of the `pt_regs` a handler is given.
pub(crate) struct Regs<'a>(&'a pt_regs);

impl<'a> Regs<'a> {
    /// # Safety
    ///
    /// `regs` must be the valid `pt_regs` the kprobe core passed to the running handler.
    pub(crate) unsafe fn from_raw(regs: *const pt_regs) -> Self {
        // SAFETY: valid for the handler's duration, per this function's contract.
        Self(unsafe { &*regs })
    }

    /// Argument `n` (from 0) of the probed function, if it is passed in a register. Valid at
    /// function entry (a kprobe at offset 0, or a kretprobe's entry handler) only.
    pub(crate) fn arg(&self, n: usize) -> Option<u64> {
        arch::arg(self.0, n)
    }

    /// The return register: valid in a kretprobe's return handler. For a C `int` function only
    /// the low 32 bits are defined.
    pub(crate) fn return_value(&self) -> u64 {
        arch::return_value(self.0)
    }

    /// Instruction pointer.
    pub(crate) fn ip(&self) -> u64 {
        arch::ip(self.0)
    }

    /// Stack pointer.
    pub(crate) fn sp(&self) -> u64 {
        arch::sp(self.0)
    }
}

/// x86-64 System V ABI, as the kernel uses it:
///
/// | arg 0 | arg 1 | arg 2 | arg 3 | arg 4 | arg 5 | return | ip | sp |
/// |-------|-------|-------|-------|-------|-------|--------|----|----|
/// | `di`  | `si`  | `dx`  | `cx`  | `r8`  | `r9`  | `ax`   | `ip` | `sp` |
#[cfg(CONFIG_X86_64)]
mod arch {
    use super::pt_regs;

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

    pub(super) fn return_value(r: &pt_regs) -> u64 {
        r.ax as u64
    }

    pub(super) fn ip(r: &pt_regs) -> u64 {
        r.ip as u64
    }

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
mod arch {
    use super::pt_regs;
    use crate::kprobes::bindings::user_pt_regs;

    fn user(r: &pt_regs) -> &user_pt_regs {
        // SAFETY: both members of the union are plain `u64` fields with the same layout, so
        // every bit pattern is a valid `user_pt_regs`.
        unsafe { &r.__bindgen_anon_1.user_regs }
    }

    pub(super) fn arg(r: &pt_regs, n: usize) -> Option<u64> {
        (n < 8).then(|| user(r).regs[n])
    }

    pub(super) fn return_value(r: &pt_regs) -> u64 {
        user(r).regs[0]
    }

    pub(super) fn ip(r: &pt_regs) -> u64 {
        user(r).pc
    }

    pub(super) fn sp(r: &pt_regs) -> u64 {
        user(r).sp
    }
}

#[cfg(not(any(CONFIG_X86_64, CONFIG_ARM64)))]
compile_error!("rust-kprobes: `Regs` is implemented for x86_64 and arm64 only");
