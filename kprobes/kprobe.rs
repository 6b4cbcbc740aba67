// SPDX-License-Identifier: GPL-2.0

//! `struct kprobe` owned by a Rust value, with pre/post/fault handlers as a trait.

use super::probe::{Inner, Probe, Raw};
use super::{arch::Regs, bindings};
use kernel::prelude::*;

/// What a handler was given at one hit.
pub(crate) struct Hit<'a> {
    /// Address of the probe (the probed instruction).
    pub(crate) addr: u64,
    /// Registers at the hit.
    pub(crate) regs: Regs<'a>,
}

/// A read of probed memory that faulted (the modern meaning of the pre-5.14 `fault_handler`).
pub(crate) struct Fault {
    /// What was being read, for the log line.
    pub(crate) what: &'static str,
    /// The address that could not be read.
    pub(crate) addr: u64,
    /// The errno of the nofault copy.
    pub(crate) errno: i32,
}

impl Hit<'_> {
    /// Copies `buf.len()` bytes at kernel address `addr`; a fault becomes a [`Fault`] naming
    /// `what`, which the layer hands to [`KprobeHandler::fault`].
    pub(crate) fn read(&self, what: &'static str, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        super::read_kernel(addr, buf).map_err(|errno| Fault { what, addr, errno })
    }
}

/// The handlers of a kprobe. They run in atomic context on any CPU, with preemption disabled:
/// nothing in them may sleep or allocate with `GFP_KERNEL`.
pub(crate) trait KprobeHandler: Sync + Send + Sized {
    /// Whether [`KprobeHandler::post`] is wanted, asked once at registration (a post handler
    /// costs a second trap per hit and prevents jump optimization).
    fn has_post(&self) -> bool {
        false
    }

    /// Runs before the probed instruction.
    fn pre(&self, hit: &Hit<'_>) -> Result<(), Fault>;

    /// Runs after the probed instruction has been single-stepped: right after it, not at the
    /// function's return.
    fn post(&self, _hit: &Hit<'_>) {}

    /// Runs when [`KprobeHandler::pre`] returned a [`Fault`]. Since Linux 5.14 `struct kprobe`
    /// has no `fault_handler`: faults in handlers are fixed up by nofault accessors, and this
    /// is where the module learns of one.
    fn fault(&self, hit: &Hit<'_>, fault: &Fault);
}

/// A registered kprobe; unregistered by `unregister()` or on drop, exactly once.
pub(crate) type Kprobe<T> = Probe<bindings::kprobe, T>;

// SAFETY: the kernel's kprobe calls; the struct is its own `struct kprobe`.
unsafe impl Raw for bindings::kprobe {
    unsafe fn register(p: *mut Self) -> kernel::ffi::c_int {
        // SAFETY: per the trait's contract.
        unsafe { bindings::register_kprobe(p) }
    }
    unsafe fn unregister(p: *mut Self) {
        // SAFETY: per the trait's contract.
        unsafe { bindings::unregister_kprobe(p) }
    }
    fn kprobe(p: *mut Self) -> *mut bindings::kprobe {
        p
    }
    unsafe fn nmissed(p: *mut Self) -> u64 {
        // SAFETY: a word-sized read of a counter the core updates (hits skipped for recursion
        // or another probe running on that CPU); a stale value is harmless.
        unsafe { core::ptr::read_volatile(&(*p).nmissed) as u64 }
    }
}

impl<T: KprobeHandler> Kprobe<T> {
    /// Plants a kprobe at `symbol` + `offset`. On error nothing stays registered or allocated.
    pub(crate) fn register(symbol: &'static CStr, offset: u32, handler: T) -> Result<Self> {
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
        Self::register_raw(kp, handler)
    }
}

/// # Safety
///
/// Called by the kprobe core with the `kprobe` of an `Inner<kprobe, T>` and the hit's `pt_regs`.
unsafe fn hit<'a, T>(
    p: *mut bindings::kprobe,
    regs: *mut bindings::pt_regs,
) -> (&'a Inner<bindings::kprobe, T>, Hit<'a>) {
    // SAFETY: `kp` is the first field of the `#[repr(C)]` `Inner`, alive while registered.
    let inner = unsafe { &*p.cast::<Inner<bindings::kprobe, T>>() };
    // SAFETY: `addr` was set at registration and is not changed while the probe is armed.
    let addr = unsafe { (*p).addr as u64 };
    // SAFETY: `regs` is the valid `pt_regs` of this hit.
    let regs = unsafe { Regs::from_raw(regs) };
    (inner, Hit { addr, regs })
}

/// # Safety
///
/// Called by the kprobe core only, for a probe registered by `Kprobe::<T>::register`.
unsafe extern "C" fn pre_trampoline<T: KprobeHandler>(
    p: *mut bindings::kprobe,
    regs: *mut bindings::pt_regs,
) -> kernel::ffi::c_int {
    // SAFETY: called by the kprobe core for a probe registered by `Kprobe::<T>::register`.
    let (inner, hit) = unsafe { hit::<T>(p, regs) };
    if let Err(fault) = inner.handler.pre(&hit) {
        inner.handler.fault(&hit, &fault);
    }
    // 0: let the core single-step the probed instruction as usual.
    0
}

/// # Safety
///
/// Called by the kprobe core only, for a probe registered by `Kprobe::<T>::register`.
unsafe extern "C" fn post_trampoline<T: KprobeHandler>(
    p: *mut bindings::kprobe,
    regs: *mut bindings::pt_regs,
    _flags: kernel::ffi::c_ulong,
) {
    // SAFETY: called by the kprobe core for a probe registered by `Kprobe::<T>::register`.
    let (inner, hit) = unsafe { hit::<T>(p, regs) };
    inner.handler.post(&hit);
}
