// SPDX-License-Identifier: GPL-2.0

//! `struct kprobe` owned by a Rust value, with pre/post/fault handlers as a trait.

use super::debugfs::{Debugfs, ShowFn, Source};
use super::{bindings, regs::Regs};
use core::marker::PhantomPinned;
use core::pin::Pin;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::types::Opaque;

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

#[repr(C)]
struct Inner<T> {
    /// First field: a `*mut kprobe` from the core is a `*const Inner<T>`.
    kp: Opaque<bindings::kprobe>,
    handler: T,
    _pin: PhantomPinned,
}

/// A registered kprobe; unregistered by [`Kprobe::unregister`] or on drop, exactly once.
pub(crate) struct Kprobe<T: KprobeHandler> {
    inner: Pin<KBox<Inner<T>>>,
    registered: bool,
    debugfs: Option<Debugfs<Inner<T>>>,
}

// SAFETY: the `kp` struct is written only by the kprobe core (under its own locks) and read
// here with volatile word reads; the handler is `Send + Sync`.
unsafe impl<T: KprobeHandler> Send for Kprobe<T> {}
// SAFETY: as above.
unsafe impl<T: KprobeHandler> Sync for Kprobe<T> {}

impl<T: KprobeHandler> Source for Inner<T> {
    type Handler = T;
    fn handler(&self) -> &T {
        &self.handler
    }
    fn nmissed(&self) -> u64 {
        // SAFETY: a word-sized read of a counter the core updates; a stale value is harmless.
        unsafe { core::ptr::read_volatile(&(*self.kp.get()).nmissed) as u64 }
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
        let inner = KBox::pin(
            Inner {
                kp: Opaque::new(kp),
                handler,
                _pin: PhantomPinned,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `kp` is initialised and pinned in `inner`, which outlives the registration:
        // it is only freed after `unregister_kprobe` (in `unregister`), or right here on error.
        to_result(unsafe { bindings::register_kprobe(inner.kp.get()) })?;
        Ok(Self {
            inner,
            registered: true,
            debugfs: None,
        })
    }

    /// The address the probe was planted at.
    pub(crate) fn addr(&self) -> u64 {
        // SAFETY: `addr` is written by `register_kprobe` before it returns and not changed after.
        unsafe { (*self.inner.kp.get()).addr as u64 }
    }

    /// Hits the kprobe core skipped (recursion, or another probe running on that CPU).
    pub(crate) fn nmissed(&self) -> u64 {
        // SAFETY: a word-sized read of a counter the core updates; a torn value is impossible
        // and a stale one harmless.
        unsafe { core::ptr::read_volatile(&(*self.inner.kp.get()).nmissed) as u64 }
    }

    /// The handler, for reading its state (counters) from process context.
    pub(crate) fn handler(&self) -> &T {
        &self.inner.handler
    }

    /// Shows the handler's state in `/sys/kernel/debug/<dir>/`, one file per `(name, show)`,
    /// until the probe is unregistered. Without debugfs this is an error the caller may ignore.
    pub(crate) fn publish(&mut self, dir: &CStr, files: &[(&'static CStr, ShowFn<T>)]) -> Result {
        let src: *const Inner<T> = &*self.inner;
        // SAFETY: `src` is pinned in `self.inner`, which is freed only after `self.debugfs`
        // (removed first in `unregister`, and fields drop in order after it).
        self.debugfs = Some(unsafe { Debugfs::new(dir, files, src) }?);
        Ok(())
    }

    /// Removes the probe (and its debugfs files); waits until no handler runs. Idempotent.
    pub(crate) fn unregister(&mut self) {
        self.debugfs = None;
        if core::mem::take(&mut self.registered) {
            // SAFETY: registered by `register`, not unregistered since (flag taken above).
            unsafe { bindings::unregister_kprobe(self.inner.kp.get()) };
        }
    }
}

impl<T: KprobeHandler> Drop for Kprobe<T> {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// # Safety
///
/// Called by the kprobe core with the `kprobe` of an `Inner<T>` and the hit's `pt_regs`.
unsafe fn hit<'a, T>(
    p: *mut bindings::kprobe,
    regs: *mut bindings::pt_regs,
) -> (&'a Inner<T>, Hit<'a>) {
    // SAFETY: `kp` is the first field of the `#[repr(C)]` `Inner<T>`, alive while registered.
    let inner = unsafe { &*p.cast::<Inner<T>>() };
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
