// SPDX-License-Identifier: GPL-2.0

//! What a kprobe and a kretprobe registration share: a pinned `{ kernel struct, handler }`,
//! registered once and unregistered exactly once (explicitly or on drop), with the handler's
//! debugfs files removed before that.

use super::bindings;
use super::debugfs::{Debugfs, ShowFn, Source};
use core::marker::PhantomPinned;
use core::pin::Pin;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::types::Opaque;

/// A probe kind's kernel struct (`struct kprobe`, `struct kretprobe`) and its calls.
///
/// # Safety
///
/// `register` and `unregister` must be the kernel's pair for `Self`, and `kprobe` must return
/// the `struct kprobe` in `*p`.
pub(crate) unsafe trait Raw {
    /// # Safety
    ///
    /// `p` is initialised, pinned until `unregister`, and not registered.
    unsafe fn register(p: *mut Self) -> kernel::ffi::c_int;

    /// # Safety
    ///
    /// `p` is registered.
    unsafe fn unregister(p: *mut Self);

    /// The `struct kprobe` of `*p`.
    fn kprobe(p: *mut Self) -> *mut bindings::kprobe;

    /// The core's missed count.
    ///
    /// # Safety
    ///
    /// `p` is valid.
    unsafe fn nmissed(p: *mut Self) -> u64;
}

#[repr(C)]
pub(crate) struct Inner<R, T> {
    /// First field: the pointer the core passes to a handler is a `*const Inner<R, T>`.
    pub(crate) raw: Opaque<R>,
    pub(crate) handler: T,
    _pin: PhantomPinned,
}

/// A registered probe of kind `R` with handler `T`.
pub(crate) struct Probe<R: Raw, T: Send + Sync> {
    inner: Pin<KBox<Inner<R, T>>>,
    registered: bool,
    debugfs: Option<Debugfs<Inner<R, T>>>,
}

// SAFETY: the kernel struct is written only by the kprobe core (under its own locks) and read
// here with volatile word reads; the handler is `Send + Sync`.
unsafe impl<R: Raw, T: Send + Sync> Send for Probe<R, T> {}
// SAFETY: as above.
unsafe impl<R: Raw, T: Send + Sync> Sync for Probe<R, T> {}

impl<R: Raw, T: Send + Sync> Source for Inner<R, T> {
    type Handler = T;
    fn handler(&self) -> &T {
        &self.handler
    }
    fn nmissed(&self) -> u64 {
        // SAFETY: `raw` is valid while `self` is.
        unsafe { R::nmissed(self.raw.get()) }
    }
}

impl<R: Raw, T: Send + Sync> Probe<R, T> {
    /// Registers `raw` (its handlers set to trampolines for `T`). On error nothing stays
    /// registered or allocated.
    pub(crate) fn register_raw(raw: R, handler: T) -> Result<Self> {
        super::layout::check()?;
        let inner = KBox::pin(
            Inner {
                raw: Opaque::new(raw),
                handler,
                _pin: PhantomPinned,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `raw` is initialised and pinned in `inner`, which outlives the registration:
        // it is only freed after `unregister` (below), or right here on error.
        to_result(unsafe { R::register(inner.raw.get()) })?;
        Ok(Self {
            inner,
            registered: true,
            debugfs: None,
        })
    }

    /// The address the probe was planted at.
    pub(crate) fn addr(&self) -> u64 {
        // SAFETY: `addr` is written by the registration before it returns, not changed after.
        unsafe { (*R::kprobe(self.inner.raw.get())).addr as u64 }
    }

    /// What the core did not run the handlers for (see each kind).
    pub(crate) fn nmissed(&self) -> u64 {
        self.inner.nmissed()
    }

    /// The handler, for reading its state from process context.
    pub(crate) fn handler(&self) -> &T {
        &self.inner.handler
    }

    /// Shows the handler's state in `/sys/kernel/debug/<dir>/`, one file per `(name, show)`,
    /// until the probe is unregistered. Without debugfs this is an error the caller may ignore.
    pub(crate) fn publish(&mut self, dir: &CStr, files: &[(&'static CStr, ShowFn<T>)]) -> Result {
        let src: *const Inner<R, T> = &*self.inner;
        // SAFETY: `src` is pinned in `self.inner`, which is freed only after `self.debugfs`
        // (removed first in `unregister`, and fields drop in order after it).
        self.debugfs = Some(unsafe { Debugfs::new(dir, files, src) }?);
        Ok(())
    }

    /// Removes the probe (and its debugfs files); waits until no handler runs. Idempotent.
    pub(crate) fn unregister(&mut self) {
        self.debugfs = None;
        if core::mem::take(&mut self.registered) {
            // SAFETY: registered by `register_raw`, not unregistered since (flag taken above).
            unsafe { R::unregister(self.inner.raw.get()) };
        }
    }
}

impl<R: Raw, T: Send + Sync> Drop for Probe<R, T> {
    fn drop(&mut self) {
        self.unregister();
    }
}
