// SPDX-License-Identifier: GPL-2.0

//! Kprobes: a `struct kprobe` owned by a Rust value, with pre/post/fault handlers as a trait.
//!
//! C header: [`include/linux/kprobes.h`](srctree/include/linux/kprobes.h)
//!
//! Reference: [`Documentation/trace/kprobes.rst`](srctree/Documentation/trace/kprobes.rst)

use super::arch::Regs;
use super::bindings;
use super::hit::{Fault, Hit};
use super::probe::{Probe, RawProbe};
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::prelude::*;

/// How the probed instruction was passed, as the post handler is told: the kprobe core has
/// three paths, and `/sys/kernel/debug/kprobes/list` shows which one a probe is on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A breakpoint (x86 `int3`, arm64 `brk`) at the instruction, which the core then executed
    /// out of line: what `Documentation/trace/kprobes.rst` calls single-stepping.
    SingleStepped,
    /// A breakpoint, and the instruction emulated (x86: call, jmp, ret, ...) or simulated
    /// (arm64: branches, PC-relative loads) by the core: nothing was stepped.
    Emulated,
    /// An ftrace-based probe (`[FTRACE]`, `CONFIG_KPROBES_ON_FTRACE`): the hit came from the
    /// function's ftrace call site, with no breakpoint and nothing stepped; the core sets `ip`
    /// past the call site for the post handler as if a nop had been stepped.
    Ftrace,
}

/// The handlers of a kprobe.
///
/// They run in atomic context on any CPU, with preemption disabled, and on x86_64 as an int3
/// trap handled like an NMI: nothing in them may sleep, allocate or take a lock. Handlers of one
/// probe do not nest on a CPU (the core counts such a hit as missed instead).
///
/// # Examples
///
/// A kprobe on `usleep_range_state()` that checks the argument a sleep passed it:
///
// doctest: upstream/doctest_kprobe.rs
pub(crate) trait KprobeHandler: Sync + Send + Sized + 'static {
    /// Whether [`KprobeHandler::post`] is wanted, asked once at registration (a post handler
    /// costs a second trap per hit and prevents jump optimization).
    fn has_post(&self) -> bool {
        false
    }

    /// Runs before the probed instruction.
    fn pre(&self, hit: &Hit<'_>) -> Result<(), Fault>;

    /// Runs after the probed instruction, right after it (not at the function's return), with
    /// how the core passed it: single-stepped, emulated, or an ftrace call site ([`Step`]).
    /// Never runs on an optimized (jump) probe: a post handler keeps a probe from being
    /// optimized.
    fn post(&self, _hit: &Hit<'_>, _step: Step) {}

    /// Runs when [`KprobeHandler::pre`] returned a [`Fault`]. Since Linux 5.14 `struct kprobe`
    /// has no `fault_handler`: faults in handlers are fixed up by nofault accessors, and this
    /// is where the module learns of one.
    fn fault(&self, hit: &Hit<'_>, fault: &Fault);
}

/// A registered kprobe; unregistered on drop or by [`Probe::unregister`], exactly once.
pub(crate) type Kprobe<T> = Probe<bindings::kprobe, T>;

// SAFETY: `register_kprobe()` / `unregister_kprobe()` are the kernel's pair for a
// `struct kprobe`; the core calls its handlers with the `struct kprobe *` that was registered,
// and the `struct kprobe` of a `struct kprobe` is itself.
unsafe impl RawProbe for bindings::kprobe {
    unsafe fn register(p: *mut Self) -> kernel::ffi::c_int {
        // SAFETY: the caller guarantees that `p` is initialised, unregistered, and stays valid
        // and in place until it is unregistered.
        unsafe { bindings::register_kprobe(p) }
    }

    unsafe fn unregister(p: *mut Self) {
        // SAFETY: the caller guarantees that `p` is registered.
        unsafe { bindings::unregister_kprobe(p) }
    }

    unsafe fn kprobe(p: *mut Self) -> *mut bindings::kprobe {
        p
    }

    /// Hits skipped because another kprobe's handler was running on that CPU, or the handler
    /// recursed (`kprobes_inc_nmissed_count()`).
    unsafe fn nmissed(p: *mut Self) -> u64 {
        // SAFETY: `p` is valid (the caller guarantees it), so its `unsigned long nmissed` is an
        // aligned, live word; the core increments it concurrently without a lock, hence an
        // atomic load, and no reference to the field.
        let n = unsafe { AtomicUsize::from_ptr(addr_of_mut!((*p).nmissed)) };
        n.load(Ordering::Relaxed) as u64
    }
}

impl<T: KprobeHandler> Kprobe<T> {
    /// Whether the core placed the probe on the function's entry (see [`Hit::entry`]).
    pub(crate) fn on_func_entry(&self) -> bool {
        self.flags() & bindings::KPROBE_FLAG_ON_FUNC_ENTRY != 0
    }

    /// A pin-initializer of a kprobe at `symbol` + `offset` running `handler`. On error nothing
    /// stays registered, and `handler` is dropped.
    pub(crate) fn new(symbol: &'static CStr, offset: u32, handler: T) -> impl PinInit<Self, Error> {
        let kp = bindings::kprobe {
            symbol_name: symbol.as_char_ptr(),
            offset,
            pre_handler: Some(pre_trampoline::<T>),
            post_handler: if handler.has_post() {
                Some(post_trampoline::<T>)
            } else {
                None
            },
            ..Default::default()
        };
        // SAFETY: the handlers are this module's trampolines for `T`, which take their pointer
        // for a `Kprobe<T>`; `symbol` is `'static`.
        unsafe { Probe::with_raw(kp, handler) }
    }
}

/// The probe and the hit a trampoline was called for.
///
/// # Safety
///
/// `p` must be the `struct kprobe` of a live `Kprobe<T>` and `regs` the valid `pt_regs` of the
/// hit, both for `'a`: as the kprobe core guarantees while it runs a handler.
#[inline(always)]
unsafe fn hit<'a, T: KprobeHandler>(
    p: *mut bindings::kprobe,
    regs: *mut bindings::pt_regs,
) -> (&'a Kprobe<T>, Hit<'a>) {
    // SAFETY: `p` is the `raw` field of a live `Kprobe<T>` (this function's contract).
    let probe = unsafe { Kprobe::<T>::from_raw(p) };
    // SAFETY: `regs` is valid for `'a` (this function's contract).
    let regs = unsafe { Regs::from_raw(regs) };
    let hit = Hit {
        addr: probe.addr(),
        regs,
        entry: probe.on_func_entry(),
    };
    (probe, hit)
}

/// The `pre_handler` of a `Kprobe<T>`. In `.kprobes.text` (as C's `__kprobes` places a
/// function), so that the kprobe core refuses to probe it while it is loaded: a probe on a
/// handler would recurse into it.
///
/// # Safety
///
/// Only the kprobe core may call this, for a probe created by `Kprobe::<T>::new`.
#[link_section = ".kprobes.text"]
unsafe extern "C" fn pre_trampoline<T: KprobeHandler>(
    p: *mut bindings::kprobe,
    regs: *mut bindings::pt_regs,
) -> kernel::ffi::c_int {
    // SAFETY: the core calls this with the registered `struct kprobe` of a `Kprobe<T>`, which
    // outlives the call (unregistration waits for running handlers), and this hit's `pt_regs`.
    let (probe, hit) = unsafe { hit::<T>(p, regs) };
    if let Err(fault) = probe.handler().pre(&hit) {
        probe.handler().fault(&hit, &fault);
    }
    // 0: let the core single-step the probed instruction as usual.
    0
}

/// The `post_handler` of a `Kprobe<T>`; in `.kprobes.text`, as [`pre_trampoline`].
///
/// # Safety
///
/// Only the kprobe core may call this, for a probe created by `Kprobe::<T>::new`.
#[link_section = ".kprobes.text"]
unsafe extern "C" fn post_trampoline<T: KprobeHandler>(
    p: *mut bindings::kprobe,
    regs: *mut bindings::pt_regs,
    _flags: kernel::ffi::c_ulong,
) {
    // SAFETY: as in `pre_trampoline`.
    let (probe, hit) = unsafe { hit::<T>(p, regs) };
    let ftrace = probe.flags() & bindings::KPROBE_FLAG_FTRACE != 0;
    // SAFETY: `p` is the registered `struct kprobe` (as above); the core filled its `ainsn`
    // when it prepared the probe, before arming it, and does not write it while armed, so a
    // shared reference to it is sound for the call.
    let emulated = !ftrace && super::arch::emulated(unsafe { &(*p).ainsn });
    let step = match (ftrace, emulated) {
        (true, _) => Step::Ftrace,
        (false, true) => Step::Emulated,
        (false, false) => Step::SingleStepped,
    };
    probe.handler().post(&hit, step);
}
