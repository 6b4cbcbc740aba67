// SPDX-License-Identifier: GPL-2.0

//! The module parameters, which live in `helpers.c` (the 6.12 `module!` macro has none).

use super::bindings;
use kernel::prelude::*;

/// # Safety
///
/// `p` must point to a NUL-terminated module parameter buffer (alive as long as the module).
unsafe fn param_str(p: *const kernel::ffi::c_char) -> &'static CStr {
    // SAFETY: per this function's contract; `module_param_string` keeps the buffer terminated.
    unsafe { CStr::from_char_ptr(p) }
}

/// A symbol name for printing: kernel symbols are ASCII, so `None` means a bad parameter.
pub(crate) fn symbol_str(s: &'static CStr) -> Option<&'static str> {
    s.to_str().ok()
}

/// Parameters of `rust_kprobe.ko`.
pub(crate) struct KprobeParams {
    pub(crate) symbol: &'static CStr,
    pub(crate) offset: u32,
    pub(crate) pid: i32,
    pub(crate) comm: &'static CStr,
    pub(crate) port: u32,
    pub(crate) ratelimit: u32,
    pub(crate) events: bool,
}

/// Reads the parameters of `rust_kprobe.ko` (set at load, read-only after).
pub(crate) fn kprobe() -> KprobeParams {
    let mut p = bindings::rk_kprobe_params::default();
    // SAFETY: fills `p` from the module's parameter variables.
    unsafe { bindings::rk_kprobe_params(&mut p) };
    KprobeParams {
        // SAFETY: module parameter buffers of helpers.c.
        symbol: unsafe { param_str(p.symbol) },
        offset: p.offset,
        pid: p.pid,
        // SAFETY: as above.
        comm: unsafe { param_str(p.comm) },
        port: p.port,
        ratelimit: p.ratelimit,
        events: p.events,
    }
}

/// Parameters of `rust_kretprobe.ko`.
pub(crate) struct KretprobeParams {
    pub(crate) func: &'static CStr,
    pub(crate) maxactive: i32,
    pub(crate) rettype: &'static CStr,
    pub(crate) pid: i32,
    pub(crate) comm: &'static CStr,
    pub(crate) events: bool,
    pub(crate) hist: bool,
}

/// Reads the parameters of `rust_kretprobe.ko` (set at load, read-only after).
pub(crate) fn kretprobe() -> KretprobeParams {
    let mut p = bindings::rk_kretprobe_params::default();
    // SAFETY: fills `p` from the module's parameter variables.
    unsafe { bindings::rk_kretprobe_params(&mut p) };
    KretprobeParams {
        // SAFETY: module parameter buffers of helpers.c.
        func: unsafe { param_str(p.func) },
        maxactive: p.maxactive,
        // SAFETY: as above.
        rettype: unsafe { param_str(p.rettype) },
        pid: p.pid,
        // SAFETY: as above.
        comm: unsafe { param_str(p.comm) },
        events: p.events,
        hist: p.hist,
    }
}
