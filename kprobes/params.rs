// SPDX-License-Identifier: GPL-2.0

//! The module parameters, which live in `helpers.c` (the 6.12 `module!` macro has none).

use super::bindings;
use kernel::prelude::*;

/// A string parameter: a NUL-terminated buffer of helpers.c, fixed once the module is loaded.
#[derive(Clone, Copy)]
pub(crate) struct ParamStr(&'static CStr);

impl ParamStr {
    /// # Safety
    ///
    /// `p` must point to a NUL-terminated module parameter buffer (alive as long as the module).
    unsafe fn from_ptr(p: *const kernel::ffi::c_char) -> Self {
        // SAFETY: per this function's contract; `module_param_string` keeps the buffer
        // terminated.
        Self(unsafe { CStr::from_char_ptr(p) })
    }

    /// For the C calls that take the name.
    pub(crate) fn as_cstr(self) -> &'static CStr {
        self.0
    }

    /// The bytes, without the NUL.
    pub(crate) fn bytes(self) -> &'static [u8] {
        super::compat::cstr_bytes(self.0)
    }

    /// As a `&str` for printing: kernel symbols are ASCII, so `None` means a bad parameter.
    pub(crate) fn as_str(self) -> Option<&'static str> {
        core::str::from_utf8(self.bytes()).ok()
    }
}

/// Prints the value, with `?` for bytes that are not printable ASCII.
impl core::fmt::Display for ParamStr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.bytes().iter().try_for_each(|&c| {
            let c = if c.is_ascii_graphic() { c as char } else { '?' };
            core::fmt::Write::write_char(f, c)
        })
    }
}

/// Parameters of `rust_kprobe.ko`.
pub(crate) struct KprobeParams {
    pub(crate) symbol: ParamStr,
    pub(crate) offset: u32,
    pub(crate) pid: i32,
    pub(crate) comm: ParamStr,
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
        symbol: unsafe { ParamStr::from_ptr(p.symbol) },
        offset: p.offset,
        pid: p.pid,
        // SAFETY: as above.
        comm: unsafe { ParamStr::from_ptr(p.comm) },
        port: p.port,
        ratelimit: p.ratelimit,
        events: p.events,
    }
}

/// Parameters of `rust_kretprobe.ko`.
pub(crate) struct KretprobeParams {
    pub(crate) func: ParamStr,
    pub(crate) maxactive: i32,
    pub(crate) rettype: ParamStr,
    pub(crate) pid: i32,
    pub(crate) comm: ParamStr,
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
        func: unsafe { ParamStr::from_ptr(p.func) },
        maxactive: p.maxactive,
        // SAFETY: as above.
        rettype: unsafe { ParamStr::from_ptr(p.rettype) },
        pid: p.pid,
        // SAFETY: as above.
        comm: unsafe { ParamStr::from_ptr(p.comm) },
        events: p.events,
        hist: p.hist,
    }
}
