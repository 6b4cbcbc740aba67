// SPDX-License-Identifier: GPL-2.0

//! The module parameters, which live in `helpers.c` (the 6.12 `module!` macro has none).
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h)

use super::bindings;
use kernel::prelude::*;

/// A string parameter: a NUL-terminated buffer of helpers.c, fixed once the module is loaded.
#[derive(Clone, Copy)]
pub(crate) struct ParamStr(&'static CStr);

impl ParamStr {
    /// # Safety
    ///
    /// `p` must point to a NUL-terminated module parameter buffer that is not written while the
    /// module is loaded (alive as long as the module, which outlives every user of the value).
    unsafe fn from_ptr(p: *const kernel::ffi::c_char) -> Self {
        // SAFETY: `p` is NUL-terminated, valid and unchanged for the module's life (this
        // function's contract).
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
    pub(crate) kind: ParamStr,
}

/// Reads the parameters of `rust_kprobe.ko` (set at load, read-only after).
pub(crate) fn kprobe() -> KprobeParams {
    let mut p = bindings::rk_kprobe_params::default();
    // SAFETY: `rk_kprobe_params()` only writes `*out`, a valid, exclusively borrowed struct.
    unsafe { bindings::rk_kprobe_params(&mut p) };
    KprobeParams {
        // SAFETY: `p.symbol` is helpers.c's `symbol[]`, a static buffer that
        // `module_param_string()` keeps NUL-terminated, read-only (0444) once loaded.
        symbol: unsafe { ParamStr::from_ptr(p.symbol) },
        offset: p.offset,
        pid: p.pid,
        // SAFETY: as above, helpers.c's `comm[]`.
        comm: unsafe { ParamStr::from_ptr(p.comm) },
        port: p.port,
        ratelimit: p.ratelimit,
        events: p.events,
        // SAFETY: as above, helpers.c's `kind[]`.
        kind: unsafe { ParamStr::from_ptr(p.kind) },
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
    pub(crate) kind: ParamStr,
}

/// Reads the parameters of `rust_kretprobe.ko` (set at load, read-only after).
pub(crate) fn kretprobe() -> KretprobeParams {
    let mut p = bindings::rk_kretprobe_params::default();
    // SAFETY: `rk_kretprobe_params()` only writes `*out`, a valid, exclusively borrowed struct.
    unsafe { bindings::rk_kretprobe_params(&mut p) };
    KretprobeParams {
        // SAFETY: `p.func` is helpers.c's `func[]`, a static buffer that `module_param_string()`
        // keeps NUL-terminated, read-only (0444) once loaded.
        func: unsafe { ParamStr::from_ptr(p.func) },
        maxactive: p.maxactive,
        // SAFETY: as above, helpers.c's `rettype[]`.
        rettype: unsafe { ParamStr::from_ptr(p.rettype) },
        pid: p.pid,
        // SAFETY: as above, helpers.c's `comm[]`.
        comm: unsafe { ParamStr::from_ptr(p.comm) },
        events: p.events,
        hist: p.hist,
        // SAFETY: as above, helpers.c's `kind[]`.
        kind: unsafe { ParamStr::from_ptr(p.kind) },
    }
}
