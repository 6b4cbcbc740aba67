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
#[cfg(rk_fprobe)]
use super::bindings;
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

// rk-out-of-tree-begin
/// Read-only view of the registers a handler is given: the `pt_regs` of a kprobe or kretprobe
/// hit, or (`kind=fprobe`, kernels with `CONFIG_FPROBE`) the `ftrace_regs` of an fprobe hit,
/// which hold only some registers (see [`Src`]).
pub(crate) struct Regs<'a>(Src<'a>);

/// Where a [`Regs`] reads from. The handlers are inlined into each kind's trampolines, which
/// build a `Regs` of one variant only, so the compiler resolves the `match` of each accessor at
/// compile time: no branch on the hot path.
#[derive(Clone, Copy)]
enum Src<'a> {
    /// A kprobe's or kretprobe's full `pt_regs`.
    Pt(&'a pt_regs),
    /// An fprobe's entry: the argument registers, the stack pointer and the ftrace call site.
    #[cfg(rk_fprobe)]
    FtraceEntry(&'a bindings::__arch_ftrace_regs),
    /// An fprobe's exit: the return value registers, the return address as the instruction
    /// pointer, and (x86_64 only) the stack pointer.
    #[cfg(rk_fprobe)]
    FtraceExit(&'a bindings::__arch_ftrace_regs),
}
// rk-out-of-tree-end
// rk-in-tree: /// Read-only view of the `pt_regs` a handler is given.
// rk-in-tree: pub struct Regs<'a>(&'a pt_regs);

impl<'a> Regs<'a> {
    /// The registers of the hit being handled.
    ///
    /// # Safety
    ///
    /// `regs` must be the valid `pt_regs` the kprobe core passed to the running handler.
    pub(in crate::kprobes) unsafe fn from_raw(regs: *const pt_regs) -> Self {
        // rk-out-of-tree-begin
        // SAFETY: valid for the handler's duration, per this function's contract.
        Self(Src::Pt(unsafe { &*regs }))
        // rk-out-of-tree-end
        // rk-in-tree: // SAFETY: valid for the handler's duration, per this function's contract.
        // rk-in-tree: Self(unsafe { &*regs })
    }
    // rk-out-of-tree-begin

    /// The registers of an fprobe hit: its entry (`exit` false) or its exit.
    ///
    /// # Safety
    ///
    /// `fregs` must be the valid `ftrace_regs` fprobe passed to the running entry or exit
    /// handler, as `exit` says.
    #[cfg(rk_fprobe)]
    #[inline(always)]
    pub(in crate::kprobes) unsafe fn from_ftrace(
        fregs: *const bindings::ftrace_regs,
        exit: bool,
    ) -> Self {
        // SAFETY: the empty `struct ftrace_regs` is only a name for the arch's
        // `struct __arch_ftrace_regs` (`arch_ftrace_regs()` is this cast in C); valid for the
        // handler's duration, per this function's contract.
        let r = unsafe { &*fregs.cast::<bindings::__arch_ftrace_regs>() };
        Self(if exit {
            Src::FtraceExit(r)
        } else {
            Src::FtraceEntry(r)
        })
    }
    // rk-out-of-tree-end

    /// Argument `n` (from 0) of the probed function as its C type `T`, if it is passed in a
    /// register (the per-arch table below). Valid at function entry only: a kprobe at offset 0,
    /// or a kretprobe's entry handler.
    // rk-out-of-tree-begin
    /// At an fprobe's exit, `None`: the arguments are not saved there.
    // rk-out-of-tree-end
    #[inline(always)]
    pub(crate) fn arg<T: FromReg>(&self, n: usize) -> Option<T> {
        // rk-out-of-tree-begin
        let v = match self.0 {
            Src::Pt(r) => imp::arg(r, n),
            #[cfg(rk_fprobe)]
            Src::FtraceEntry(r) => imp::ftrace::arg(r, n),
            #[cfg(rk_fprobe)]
            Src::FtraceExit(_) => None,
        };
        v.map(T::from_reg)
        // rk-out-of-tree-end
        // rk-in-tree: imp::arg(self.0, n).map(T::from_reg)
    }

    /// The return value as the function's C type `T`: valid in a kretprobe's return handler.
    // rk-out-of-tree-begin
    /// At an fprobe's entry, 0: the return register is not saved there.
    // rk-out-of-tree-end
    #[inline(always)]
    pub(crate) fn return_value<T: FromReg>(&self) -> T {
        // rk-out-of-tree-begin
        T::from_reg(match self.0 {
            Src::Pt(r) => imp::return_value(r),
            #[cfg(rk_fprobe)]
            Src::FtraceEntry(_) => 0,
            #[cfg(rk_fprobe)]
            Src::FtraceExit(r) => imp::ftrace::return_value(r),
        })
        // rk-out-of-tree-end
        // rk-in-tree: T::from_reg(imp::return_value(self.0))
    }

    /// Instruction pointer.
    // rk-out-of-tree-begin
    /// At an fprobe's entry, the address after the ftrace call site; at its exit, the address
    /// the function returns to.
    // rk-out-of-tree-end
    pub(crate) fn ip(&self) -> u64 {
        // rk-out-of-tree-begin
        match self.0 {
            Src::Pt(r) => imp::ip(r),
            #[cfg(rk_fprobe)]
            Src::FtraceEntry(r) | Src::FtraceExit(r) => imp::ftrace::ip(r),
        }
        // rk-out-of-tree-end
        // rk-in-tree: imp::ip(self.0)
    }

    /// Stack pointer.
    // rk-out-of-tree-begin
    /// At an fprobe's exit on arm64, 0: its exit path does not save it.
    // rk-out-of-tree-end
    pub(crate) fn sp(&self) -> u64 {
        // rk-out-of-tree-begin
        match self.0 {
            Src::Pt(r) => imp::sp(r),
            #[cfg(rk_fprobe)]
            Src::FtraceEntry(r) => imp::ftrace::sp(r),
            #[cfg(rk_fprobe)]
            Src::FtraceExit(r) => imp::ftrace::exit_sp(r),
        }
        // rk-out-of-tree-end
        // rk-in-tree: imp::sp(self.0)
    }
}

/// How many of a function's first arguments [`Regs::arg`] reads from their registers.
pub(crate) const ARG_REGS: usize = imp::ARG_REGS;

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

    // rk-out-of-tree-begin
    /// fprobe's `ftrace_regs`: x86_64 has no `HAVE_ARCH_FTRACE_REGS`, so its
    /// `struct __arch_ftrace_regs` is `<linux/ftrace_regs.h>`'s `{ struct pt_regs regs; }`
    /// (`CONFIG_HAVE_FTRACE_REGS_HAVING_PT_REGS`), of which `ftrace_caller` fills the argument
    /// registers, `ip` and `sp` at entry, and `return_to_handler` `ax`, `dx`, `bp` and `sp` at
    /// exit (fgraph sets `ip` to the return address): the generic accessors read them as
    /// `pt_regs` fields, as these do.
    #[cfg(rk_fprobe)]
    pub(super) mod ftrace {
        use crate::kprobes::bindings::__arch_ftrace_regs;

        #[cfg(not(CONFIG_HAVE_FTRACE_REGS_HAVING_PT_REGS))]
        compile_error!(
            "rust-kprobes: this x86_64 kernel's `ftrace_regs` is not a `pt_regs` \
             (no CONFIG_HAVE_FTRACE_REGS_HAVING_PT_REGS): `kprobes/arch.rs` does not know it"
        );

        /// `ftrace_regs_get_argument()`: `regs_get_kernel_argument()`.
        #[inline(always)]
        pub(in crate::kprobes::arch) fn arg(r: &__arch_ftrace_regs, n: usize) -> Option<u64> {
            super::arg(&r.regs, n)
        }

        /// `ftrace_regs_get_return_value()`: `regs_return_value()`, `ax`.
        #[inline(always)]
        pub(in crate::kprobes::arch) fn return_value(r: &__arch_ftrace_regs) -> u64 {
            super::return_value(&r.regs)
        }

        /// `ftrace_regs_get_instruction_pointer()`.
        #[inline(always)]
        pub(in crate::kprobes::arch) fn ip(r: &__arch_ftrace_regs) -> u64 {
            super::ip(&r.regs)
        }

        /// `ftrace_regs_get_stack_pointer()` at entry.
        #[inline(always)]
        pub(in crate::kprobes::arch) fn sp(r: &__arch_ftrace_regs) -> u64 {
            super::sp(&r.regs)
        }

        /// The stack pointer at exit: `return_to_handler` saves it.
        #[inline(always)]
        pub(in crate::kprobes::arch) fn exit_sp(r: &__arch_ftrace_regs) -> u64 {
            super::sp(&r.regs)
        }
    }

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
    /// fprobe's `ftrace_regs`: arm64 has `HAVE_ARCH_FTRACE_REGS`, its own
    /// `struct __arch_ftrace_regs { regs[9] (x0-x8), direct_tramp, fp, lr, sp, pc }` and
    /// accessors (`<asm/ftrace.h>`), which these follow. `ftrace_caller` fills x0-x8, fp, lr,
    /// sp and pc at entry; `return_to_handler` fills x0-x7 and fp at exit (fgraph sets pc to
    /// the return address), not sp.
    #[cfg(rk_fprobe)]
    pub(super) mod ftrace {
        use crate::kprobes::bindings::__arch_ftrace_regs;

        #[cfg(not(CONFIG_DYNAMIC_FTRACE_WITH_ARGS))]
        compile_error!(
            "rust-kprobes: this arm64 kernel has no CONFIG_DYNAMIC_FTRACE_WITH_ARGS, so no \
             `struct __arch_ftrace_regs`: `kprobes/arch.rs` does not know its `ftrace_regs`"
        );

        /// `ftrace_regs_get_argument()`: x0-x7.
        #[inline(always)]
        pub(in crate::kprobes::arch) fn arg(r: &__arch_ftrace_regs, n: usize) -> Option<u64> {
            (n < 8).then(|| r.regs[n] as u64)
        }

        /// `ftrace_regs_get_return_value()`: x0.
        #[inline(always)]
        pub(in crate::kprobes::arch) fn return_value(r: &__arch_ftrace_regs) -> u64 {
            r.regs[0] as u64
        }

        /// `ftrace_regs_get_instruction_pointer()`.
        #[inline(always)]
        pub(in crate::kprobes::arch) fn ip(r: &__arch_ftrace_regs) -> u64 {
            r.pc as u64
        }

        /// `ftrace_regs_get_stack_pointer()` at entry.
        #[inline(always)]
        pub(in crate::kprobes::arch) fn sp(r: &__arch_ftrace_regs) -> u64 {
            r.sp as u64
        }

        /// At exit arm64's `return_to_handler` does not save sp: 0.
        #[inline(always)]
        pub(in crate::kprobes::arch) fn exit_sp(_r: &__arch_ftrace_regs) -> u64 {
            0
        }
    }

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
