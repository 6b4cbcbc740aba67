// SPDX-License-Identifier: GPL-2.0

//! `struct kretprobe` owned by a Rust value, with entry/return handlers as a trait and typed
//! per-instance data.

use super::kprobe::Hit;
use super::probe::{Inner, Probe, Raw};
use super::{arch::Regs, bindings};
use kernel::prelude::*;

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

/// A registered kretprobe; unregistered by `unregister()` or on drop, exactly once.
pub(crate) type Kretprobe<T> = Probe<bindings::kretprobe, T>;

// SAFETY: the kernel's kretprobe calls; `kp` is the struct's own `struct kprobe`.
unsafe impl Raw for bindings::kretprobe {
    unsafe fn register(p: *mut Self) -> kernel::ffi::c_int {
        // SAFETY: per the trait's contract.
        unsafe { bindings::register_kretprobe(p) }
    }
    unsafe fn unregister(p: *mut Self) {
        // SAFETY: per the trait's contract.
        unsafe { bindings::unregister_kretprobe(p) }
    }
    fn kprobe(p: *mut Self) -> *mut bindings::kprobe {
        // SAFETY: only the field's address is taken.
        unsafe { core::ptr::addr_of_mut!((*p).kp) }
    }
    unsafe fn nmissed(p: *mut Self) -> u64 {
        // SAFETY: a word-sized read of a counter the core updates (calls not probed because
        // all `maxactive` instances were in use); a stale value is harmless.
        unsafe { core::ptr::read_volatile(&(*p).nmissed) as u64 }
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
        Self::register_raw(rp, handler)
    }
}

/// `get_kretprobe(ri)`: with rethook (x86_64, arm64) the field read inline, as the static
/// inline does, since it is on every call's path; otherwise the helpers.c shim, which returns
/// NULL once the kretprobe is being unregistered.
///
/// # Safety
///
/// `ri` must be a live instance of a registered kretprobe.
#[inline(always)]
unsafe fn kretprobe_of(ri: *mut bindings::kretprobe_instance) -> Option<*mut bindings::kretprobe> {
    #[cfg(CONFIG_KRETPROBE_ON_RETHOOK)]
    // SAFETY: a live instance's `node.rethook` points to its kretprobe's rethook, whose `data`
    // is set to the kretprobe at registration and never changed ("rethook::data is non-changed
    // field, so that you can access it freely", <linux/kprobes.h>); the core never calls a
    // handler with it NULL (`kretprobe_rethook_handler` warns and returns).
    return Some(unsafe { (*(*ri).node.rethook).data.cast() });
    #[cfg(not(CONFIG_KRETPROBE_ON_RETHOOK))]
    // SAFETY: `ri` is live, per this function's contract.
    return Some(unsafe { bindings::rk_get_kretprobe(ri) }).filter(|rp| !rp.is_null());
}

/// # Safety
///
/// Called by the kretprobe core with an instance of a kretprobe registered by
/// `Kretprobe::<T>::register` and the `pt_regs` of this entry or return.
unsafe fn instance<'a, T: KretprobeHandler>(
    ri: *mut bindings::kretprobe_instance,
    regs: *mut bindings::pt_regs,
) -> Option<(&'a Inner<bindings::kretprobe, T>, Hit<'a>, *mut T::Data)> {
    // SAFETY: `ri` is a live instance of our kretprobe.
    let rp = unsafe { kretprobe_of(ri) }?;
    // SAFETY: `rp` is the first field of the `#[repr(C)]` `Inner`, alive while registered.
    let inner = unsafe { &*rp.cast::<Inner<bindings::kretprobe, T>>() };
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
