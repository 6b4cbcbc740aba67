// SPDX-License-Identifier: GPL-2.0

//! `struct kretprobe` owned by a Rust value, with entry/return handlers as a trait and typed
//! per-instance data.

use super::debugfs::{Debugfs, ShowFn, Source};
use super::kprobe::Hit;
use super::{bindings, regs::Regs};
use core::marker::PhantomPinned;
use core::pin::Pin;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::types::Opaque;

/// The handlers of a kretprobe; atomic context, as for [`super::KprobeHandler`].
pub(crate) trait KretprobeHandler: Sync + Send + Sized {
    /// Per-instance data, stored by the kernel between entry and return (`data_size` is its
    /// size).
    type Data: Copy;

    /// At function entry. `None` skips this call: no return handler will run for it.
    fn entry(&self, hit: &Hit<'_>) -> Option<Self::Data>;

    /// When the function returns, with what [`KretprobeHandler::entry`] stored.
    fn ret(&self, hit: &Hit<'_>, data: &Self::Data);
}

#[repr(C)]
struct Inner<T> {
    /// First field: a `*mut kretprobe` from the core is a `*const Inner<T>`.
    rp: Opaque<bindings::kretprobe>,
    handler: T,
    _pin: PhantomPinned,
}

/// A registered kretprobe; unregistered by [`Kretprobe::unregister`] or on drop, exactly once.
pub(crate) struct Kretprobe<T: KretprobeHandler> {
    inner: Pin<KBox<Inner<T>>>,
    registered: bool,
    debugfs: Option<Debugfs<Inner<T>>>,
}

// SAFETY: the `rp` struct is written only by the kprobe core (under its own locks) and read
// here with volatile word reads; the handler is `Send + Sync`.
unsafe impl<T: KretprobeHandler> Send for Kretprobe<T> {}
// SAFETY: as above.
unsafe impl<T: KretprobeHandler> Sync for Kretprobe<T> {}

impl<T: KretprobeHandler> Source for Inner<T> {
    type Handler = T;
    fn handler(&self) -> &T {
        &self.handler
    }
    fn nmissed(&self) -> u64 {
        // SAFETY: a word-sized read of a counter the core updates; a stale value is harmless.
        unsafe { core::ptr::read_volatile(&(*self.rp.get()).nmissed) as u64 }
    }
}

impl<T: KretprobeHandler> Kretprobe<T> {
    /// Plants a return probe on `symbol`, tracking at most `maxactive` concurrent calls (0: the
    /// kernel's default). On error nothing stays registered or allocated.
    pub(crate) fn register(symbol: &'static CStr, maxactive: i32, handler: T) -> Result<Self> {
        let rp = bindings::kretprobe {
            kp: bindings::kprobe {
                symbol_name: symbol.as_char_ptr(),
                ..Default::default()
            },
            handler: Some(ret_trampoline::<T>),
            entry_handler: Some(entry_trampoline::<T>),
            maxactive,
            data_size: core::mem::size_of::<T::Data>(),
            ..Default::default()
        };
        let inner = KBox::pin(
            Inner {
                rp: Opaque::new(rp),
                handler,
                _pin: PhantomPinned,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `rp` is initialised and pinned in `inner`, which outlives the registration:
        // it is only freed after `unregister_kretprobe`, or right here on error.
        to_result(unsafe { bindings::register_kretprobe(inner.rp.get()) })?;
        Ok(Self {
            inner,
            registered: true,
            debugfs: None,
        })
    }

    /// The address the probe was planted at (the function's entry).
    pub(crate) fn addr(&self) -> u64 {
        // SAFETY: written by `register_kretprobe` before it returns and not changed after.
        unsafe { (*self.inner.rp.get()).kp.addr as u64 }
    }

    /// Calls not probed because all `maxactive` instances were in use.
    pub(crate) fn nmissed(&self) -> i32 {
        // SAFETY: a word-sized read of a counter the core updates; a stale value is harmless.
        unsafe { core::ptr::read_volatile(&(*self.inner.rp.get()).nmissed) }
    }

    /// The handler, for reading its state from process context.
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
            unsafe { bindings::unregister_kretprobe(self.inner.rp.get()) };
        }
    }
}

impl<T: KretprobeHandler> Drop for Kretprobe<T> {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// `get_kretprobe(ri)`: with rethook (x86_64, arm64) the field read inline, as the static
/// inline does, since it is on every call's path; otherwise the helpers.c shim.
///
/// # Safety
///
/// `ri` must be a live instance of a registered kretprobe.
#[inline(always)]
unsafe fn kretprobe_of(ri: *mut bindings::kretprobe_instance) -> *mut bindings::kretprobe {
    #[cfg(CONFIG_KRETPROBE_ON_RETHOOK)]
    // SAFETY: a live instance's `node.rethook` points to its kretprobe's rethook, whose `data`
    // is set to the kretprobe at registration and never changed ("rethook::data is non-changed
    // field, so that you can access it freely", <linux/kprobes.h>).
    return unsafe { (*(*ri).node.rethook).data.cast() };
    #[cfg(not(CONFIG_KRETPROBE_ON_RETHOOK))]
    // SAFETY: `ri` is live, per this function's contract.
    return unsafe { bindings::rk_get_kretprobe(ri) };
}

/// # Safety
///
/// Called by the kretprobe core with an instance of a kretprobe registered by
/// `Kretprobe::<T>::register` and the `pt_regs` of this entry or return.
unsafe fn instance<'a, T: KretprobeHandler>(
    ri: *mut bindings::kretprobe_instance,
    regs: *mut bindings::pt_regs,
) -> Option<(&'a Inner<T>, Hit<'a>, *mut T::Data)> {
    // SAFETY: `ri` is a live instance of our kretprobe.
    let rp = unsafe { kretprobe_of(ri) };
    if rp.is_null() {
        return None;
    }
    // SAFETY: `rp` is the first field of the `#[repr(C)]` `Inner<T>`, alive while registered.
    let inner = unsafe { &*rp.cast::<Inner<T>>() };
    // SAFETY: `kp.addr` was set at registration and does not change while armed.
    let addr = unsafe { (*rp).kp.addr as u64 };
    // SAFETY: the instance carries `data_size == size_of::<T::Data>()` bytes after its header.
    let data = unsafe { (*ri).data.as_mut_ptr() }.cast::<T::Data>();
    // SAFETY: `regs` is valid for this call.
    let regs = unsafe { Regs::from_raw(regs) };
    Some((inner, Hit { addr, regs }, data))
}

/// # Safety
///
/// Called by the kretprobe core only, for a probe registered by `Kretprobe::<T>::register`.
unsafe extern "C" fn entry_trampoline<T: KretprobeHandler>(
    ri: *mut bindings::kretprobe_instance,
    regs: *mut bindings::pt_regs,
) -> kernel::ffi::c_int {
    // SAFETY: called by the kretprobe core for our kretprobe.
    let Some((inner, hit, data)) = (unsafe { instance::<T>(ri, regs) }) else {
        return 1;
    };
    match inner.handler.entry(&hit) {
        Some(d) => {
            // SAFETY: `data` points to `size_of::<T::Data>()` bytes owned by this instance;
            // their alignment is not promised, hence the unaligned write.
            unsafe { data.write_unaligned(d) };
            0
        }
        // Non-zero: the core recycles the instance and no return handler runs.
        None => 1,
    }
}

/// # Safety
///
/// Called by the kretprobe core only, for a probe registered by `Kretprobe::<T>::register`.
unsafe extern "C" fn ret_trampoline<T: KretprobeHandler>(
    ri: *mut bindings::kretprobe_instance,
    regs: *mut bindings::pt_regs,
) -> kernel::ffi::c_int {
    // SAFETY: called by the kretprobe core for our kretprobe.
    if let Some((inner, hit, data)) = unsafe { instance::<T>(ri, regs) } {
        // SAFETY: the return handler only runs for instances whose entry handler returned 0,
        // i.e. after `entry_trampoline` wrote a `T::Data` there.
        let d = unsafe { data.read_unaligned() };
        inner.handler.ret(&hit, &d);
    }
    0
}
