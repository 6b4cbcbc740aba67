// SPDX-License-Identifier: GPL-2.0

//! `register_kprobe()` and `register_kretprobe()` as the layer's [`bindings`](super::bindings)
//! give them out of tree: the kernel's, with two checks around the call.
//!
//! - Before: the bindings size the structs the kprobe core and the handlers share as C does
//!   ([`super::layout::check`]): this module's bindgen run is its own, and a wrong layout here
//!   would be handed to the core.
//! - After a 0: the core holds the probe. Linux 7.x's `__register_kprobe()` (since its
//!   conversion to `guard()`) drops `arm_kprobe()`'s error: when arming fails (an ftrace-based
//!   probe's ftrace hash or ops allocation) it takes the probe out of its table again but
//!   returns 0, for a probe that never fires and that unregistering then does not find.
//!   `enable_kprobe()` on a registered, enabled probe does nothing and returns 0; on one the
//!   core does not hold, `EINVAL`. Then the registration is undone (a kretprobe's rethook; the
//!   core finds no kprobe and says nothing) and fails with `EAGAIN`, [`super::why`]'s word for
//!   it: nothing stays registered, as on any failed registration.
//!
//! C header: [`include/linux/kprobes.h`](srctree/include/linux/kprobes.h)

use super::bindings::{self, kprobe, kretprobe, raw};
use core::ptr::addr_of_mut;
use kernel::ffi::c_int;
use kernel::prelude::*;

/// `register_kprobe(p)`, checked (see the module's documentation).
///
/// # Safety
///
/// As for `register_kprobe()`: `p` must point to an initialised `struct kprobe` that is not
/// registered and stays valid at the same address until it is unregistered, if this returns 0.
pub(crate) unsafe fn register_kprobe(p: *mut kprobe) -> c_int {
    if let Err(e) = super::layout::check() {
        return e.to_errno();
    }
    // SAFETY: as this function's contract.
    let ret = unsafe { raw::register_kprobe(p) };
    if ret != 0 {
        return ret;
    }
    let undo = move || {
        // SAFETY: `p` is registered as far as the core said (above), and this is its only
        // unregistration (`held` calls this at most once, and then the result is an error).
        unsafe { bindings::unregister_kprobe(p) }
    };
    // SAFETY: `p` is registered as far as the core said, and not unregistered; it is its own
    // `struct kprobe`, and `undo` unregisters it.
    unsafe { held(p, undo) }
}

/// `register_kretprobe(rp)`, checked (see the module's documentation).
///
/// # Safety
///
/// As for `register_kretprobe()`: `rp` must point to an initialised `struct kretprobe` that is
/// not registered and stays valid at the same address until it is unregistered, if this
/// returns 0.
pub(crate) unsafe fn register_kretprobe(rp: *mut kretprobe) -> c_int {
    if let Err(e) = super::layout::check() {
        return e.to_errno();
    }
    // SAFETY: as this function's contract.
    let ret = unsafe { raw::register_kretprobe(rp) };
    if ret != 0 {
        return ret;
    }
    let undo = move || {
        // SAFETY: `rp` is registered as far as the core said (above), and this is its only
        // unregistration (`held` calls this at most once, and then the result is an error).
        unsafe { bindings::unregister_kretprobe(rp) }
    };
    // SAFETY: `rp` is valid (this function's contract): only the address of its `kp` is
    // computed.
    let kp = unsafe { addr_of_mut!((*rp).kp) };
    // SAFETY: `rp` is registered as far as the core said, and not unregistered; `kp` is its
    // `struct kprobe`, and `undo` unregisters it.
    unsafe { held(kp, undo) }
}

/// 0 if the core holds `kp`, a probe `register_k(ret)probe()` just said 0 for; else `unregister`
/// undoes the registration and the result is `-EAGAIN`.
///
/// # Safety
///
/// `kp` must be the `struct kprobe` of a probe registered as far as the core said, and not
/// unregistered; `unregister` must unregister that probe.
unsafe fn held(kp: *mut kprobe, unregister: impl FnOnce()) -> c_int {
    // Testing only: `RK_TEST_NO_CHECK_KEPT=1` (see Kbuild) takes the check out.
    if cfg!(rk_no_check_kept) {
        return 0;
    }
    // SAFETY: `kp` is valid (the caller guarantees it); `enable_kprobe()` takes the core's mutex
    // and only reads the probe unless it is disabled, which it is not (never registered
    // disabled).
    if unsafe { bindings::enable_kprobe(kp) } == 0 {
        return 0;
    }
    // The core finds no kprobe in its table and frees what else the registration allocated.
    unregister();
    EAGAIN.to_errno()
}
