// SPDX-License-Identifier: GPL-2.0

//! What `rust/helpers/kprobes.c` gives the kernel crate in tree, for the layer's
//! [`bindings`](super::bindings) here: `get_kretprobe()`, a static inline, read inline as C
//! does. It is on every kretprobe call's path (entry and return): a helpers.c shim cost a call
//! and its spills each time on arm64.
//!
//! C header: [`include/linux/kprobes.h`](srctree/include/linux/kprobes.h)

use super::bindings::{kretprobe, kretprobe_instance};
#[cfg(not(CONFIG_KRETPROBE_ON_RETHOOK))]
use core::ptr::addr_of;

/// `get_kretprobe(ri)`: with rethook (x86_64) the rethook's `data`, without (arm64) the
/// holder's `rp`, which is NULL once the kretprobe is being unregistered.
///
/// # Safety
///
/// `ri` must be a live instance of a registered kretprobe.
#[inline(always)]
pub(crate) unsafe fn get_kretprobe(ri: *mut kretprobe_instance) -> *mut kretprobe {
    #[cfg(CONFIG_KRETPROBE_ON_RETHOOK)]
    {
        // SAFETY: a live instance's `node.rethook` points to its kretprobe's rethook, whose
        // `data` is set to the kretprobe at registration and never changed ("rethook::data is
        // non-changed field, so that you can access it freely", <linux/kprobes.h>).
        let rp: *mut kretprobe = unsafe { (*(*ri).node.rethook).data.cast() };
        if rp.is_null() {
            // SAFETY: that kretprobe is not NULL: the core never calls a handler with it NULL
            // (`kretprobe_rethook_handler()` warns and returns). Said to the compiler, the
            // in-tree code's test of a NULL `get_kretprobe()` (which arm64 needs) costs nothing
            // here. (Not `assert_unchecked()`: 6.12's minimum rustc is 1.78.)
            unsafe { core::hint::unreachable_unchecked() }
        }
        rp
    }
    #[cfg(not(CONFIG_KRETPROBE_ON_RETHOOK))]
    // SAFETY: a live instance's `rph` points to its kretprobe's holder, which is freed only
    // after the last instance (`objpool_fini()` once all are back). `unregister_kretprobe()`
    // sets the holder's `rp` to NULL while handlers may run on other CPUs, hence a volatile
    // load (`rcu_dereference_check()` is `READ_ONCE()`), and no reference to the field.
    // (`kretprobe_holder` may come from `kernel::bindings`, with its own `kretprobe` type: the
    // same C struct, hence the cast.)
    return unsafe { core::ptr::read_volatile(addr_of!((*(*ri).rph).rp)) }.cast();
}
