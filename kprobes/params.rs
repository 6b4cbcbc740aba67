// SPDX-License-Identifier: GPL-2.0

//! Module parameters declared once, in Rust: [`module_params!`] emits what C's
//! `module_param()` / `module_param_string()` and `MODULE_PARM_DESC()` emit (a
//! `struct kernel_param` in `__param`, `parmtype=` and `parm=` in `.modinfo`), with the kernel's
//! own `param_ops_*`, so the kernel parses them at load, `modinfo -p` lists them, and 6.12 (whose
//! `module!` has no parameters) and 7.3 take the same code.
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h)
//!
//! Every parameter is read-only (`0444`): the kernel writes it while loading the module, before
//! `init`, and nothing writes it after, so reading it needs no lock.

use super::bindings;
use core::cell::UnsafeCell;
use kernel::prelude::*;

/// The storage of one parameter, written by the kernel's `param_ops_*` at load.
///
/// # Invariants
///
/// Written only by the kernel's parameter parser, before the module's `init` runs (the
/// parameter is `0444`, so not through sysfs after); read only from `init` on.
#[repr(transparent)]
pub(crate) struct ParamCell<T>(UnsafeCell<T>);

// SAFETY: by the type invariant, all writes happen before the module's `init`, which the
// module loader runs after parsing; from then on the value is only read, from any CPU.
unsafe impl<T: Sync> Sync for ParamCell<T> {}

impl<T: Copy> ParamCell<T> {
    /// A parameter whose value is `v` unless given at load.
    pub(crate) const fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }

    /// The address the kernel's `param_ops_*` write through.
    pub(crate) const fn as_ptr(&'static self) -> *mut T {
        self.0.get()
    }

    /// The value, as set at load.
    pub(crate) fn get(&'static self) -> T {
        // SAFETY: no write happens once `init` runs (the type invariant), and the value is
        // only read from `init` on: nothing races with this read.
        unsafe { *self.0.get() }
    }
}

impl<const N: usize> ParamCell<[u8; N]> {
    /// A string parameter's value: the bytes up to its NUL (`param_set_copystring()` keeps one
    /// within the buffer).
    pub(crate) fn str(&'static self) -> ParamStr {
        // SAFETY: read-only from `init` on (the type invariant), so a shared reference for the
        // module's life is sound.
        let buf: &'static [u8; N] = unsafe { &*self.0.get() };
        let len = buf.iter().position(|&b| b == 0).unwrap_or(N);
        ParamStr(&buf[..len], buf)
    }
}

/// A `struct kernel_param` made `Sync` for a `static` (its pointers are to other statics).
#[repr(transparent)]
pub(crate) struct KernelParam(bindings::kernel_param);

// SAFETY: the kernel reads the entry (in `__param`) at load; nothing writes it.
unsafe impl Sync for KernelParam {}

/// A `struct kparam_string` made `Sync`, likewise.
#[repr(transparent)]
pub(crate) struct KparamString(bindings::kparam_string);

// SAFETY: as for `KernelParam`: read by `param_ops_string`, never written.
unsafe impl Sync for KparamString {}

// Only its address is taken (an `Opaque`, as the kernel crate's `module!` declares it, whose
// `struct module` holds an empty `lock_class_key`: the lint's "not FFI-safe").
#[allow(improper_ctypes)]
extern "C" {
    /// This module (`modpost`'s `.mod.c` defines it).
    static __this_module: kernel::types::Opaque<kernel::bindings::module>;
}

impl KernelParam {
    /// `__module_param_call(MODULE_PARAM_PREFIX, name, ops, arg, 0444, -1, 0)` of a loadable
    /// module (whose parameter names have no prefix); `name` with its NUL.
    pub(crate) const fn new(
        name: &'static [u8],
        ops: *const bindings::kernel_param_ops,
        arg: *mut kernel::ffi::c_void,
    ) -> Self {
        assert!(!name.is_empty() && name[name.len() - 1] == 0, "a C string");
        Self(bindings::kernel_param {
            name: name.as_ptr().cast(),
            // Only its address: the module loader fills it in, and it lives while the module
            // is loaded.
            mod_: (&raw const __this_module).cast_mut().cast(),
            ops,
            perm: 0o444,
            level: -1,
            flags: 0,
            __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 { arg },
        })
    }

    /// A string parameter: `param_ops_string` on a `struct kparam_string`.
    pub(crate) const fn string(name: &'static [u8], s: &'static KparamString) -> Self {
        let ops = &raw const bindings::param_ops_string;
        let arg = core::ptr::from_ref(s).cast_mut().cast();
        Self::new(name, ops, arg)
    }
}

impl KparamString {
    /// `{ maxlen, string }` of a `module_param_string()` buffer.
    pub(crate) const fn new<const N: usize>(buf: &'static ParamCell<[u8; N]>) -> Self {
        Self(bindings::kparam_string {
            maxlen: N as kernel::ffi::c_uint,
            string: buf.as_ptr().cast(),
        })
    }
}

/// `s` as a NUL-padded buffer of `N` bytes, for a string parameter's default (and the
/// `.modinfo` strings). Fails the build if it does not fit with its NUL.
pub(crate) const fn bytes<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    assert!(b.len() < N || (b.len() == N && N > 0 && b[N - 1] == 0));
    let mut out = [0u8; N];
    let mut i = 0;
    while i < b.len() {
        out[i] = b[i];
        i += 1;
    }
    out
}

/// A string parameter's value: its bytes (without the NUL) and its whole buffer (for the C
/// calls that take a NUL-terminated name).
#[derive(Clone, Copy)]
pub(crate) struct ParamStr(&'static [u8], &'static [u8]);

impl ParamStr {
    /// For the C calls that take the name: the buffer holds a NUL within it
    /// (`param_set_copystring()` refuses a longer value), or it is the default, which
    /// [`bytes`] NUL-pads.
    pub(crate) fn as_cstr(self) -> &'static CStr {
        // SAFETY: `self.1` is a parameter buffer with a NUL at `self.0.len()` (see above),
        // alive and unchanged for the module's life.
        unsafe { CStr::from_bytes_with_nul_unchecked(&self.1[..=self.0.len()]) }
    }

    /// The bytes, without the NUL.
    pub(crate) fn bytes(self) -> &'static [u8] {
        self.0
    }

    /// As a `&str` for printing: kernel symbols are ASCII, so `None` means a bad parameter.
    pub(crate) fn as_str(self) -> Option<&'static str> {
        core::str::from_utf8(self.0).ok()
    }
}

/// Prints the value, with `?` for bytes that are not printable ASCII.
impl core::fmt::Display for ParamStr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|&c| {
            let c = if c.is_ascii_graphic() { c as char } else { '?' };
            core::fmt::Write::write_char(f, c)
        })
    }
}

/// Declares the module's parameters and a `Params` struct that reads them all:
///
/// ```ignore
/// kprobes::params::module_params! {
///     symbol: str[128] = "inet_bind", "Function to probe";
///     offset: u32 = 0, "Offset into the function, in bytes";
///     pid: i32 = 0, "Only report this pid (0: all)";
///     events: bool = true, "Log one line per hit";
/// }
/// // in init:
/// let p = Params::get();
/// ```
///
/// Types: `u32` (`uint`), `i32` (`int`), `bool` (`bool`), `str[N]` (`string`, at most `N - 1`
/// bytes). Each parameter is read-only once loaded (`0444`); `modinfo -p` lists it with its
/// description.
macro_rules! module_params {
    ($($name:ident : $t:ident $([$len:expr])? = $default:expr, $desc:literal;)*) => {
        /// The module's parameters, as given at load (read-only after).
        #[allow(dead_code)]
        pub(crate) struct Params {
            $(pub(crate) $name: $crate::kprobes::params::module_params!(@ty $t),)*
        }

        impl Params {
            /// Reads every parameter (from `init` on: the kernel has parsed them).
            pub(crate) fn get() -> Self {
                Self { $($name: $crate::kprobes::params::module_params!(
                    @get __rk_params::$name::VALUE, $t),)* }
            }
        }

        mod __rk_params {
            $($crate::kprobes::params::module_params!(
                @param $name, $t $([$len])?, $default, $desc);)*
        }
    };
    (@ty u32) => { u32 };
    (@ty i32) => { i32 };
    (@ty bool) => { bool };
    (@ty str) => { $crate::kprobes::params::ParamStr };
    (@get $v:path, str) => { $v.str() };
    (@get $v:path, $t:ident) => { $v.get() };
    (@param $name:ident, u32, $default:expr, $desc:literal) => {
        $crate::kprobes::params::module_params!(@num $name, u32, "uint", param_ops_uint,
            $default, $desc);
    };
    (@param $name:ident, i32, $default:expr, $desc:literal) => {
        $crate::kprobes::params::module_params!(@num $name, i32, "int", param_ops_int,
            $default, $desc);
    };
    (@param $name:ident, bool, $default:expr, $desc:literal) => {
        $crate::kprobes::params::module_params!(@num $name, bool, "bool", param_ops_bool,
            $default, $desc);
    };
    (@param $name:ident, str[$len:expr], $default:expr, $desc:literal) => {
        pub(crate) mod $name {
            use $crate::kprobes::params::{bytes, KernelParam, KparamString, ParamCell};
            pub(crate) static VALUE: ParamCell<[u8; $len]> = ParamCell::new(bytes($default));
            static STRING: KparamString = KparamString::new(&VALUE);
            #[link_section = "__param"]
            #[used]
            static PARAM: KernelParam =
                KernelParam::string($crate::kprobes::params::module_params!(@name $name), &STRING);
            $crate::kprobes::params::module_params!(@modinfo $name, "string", $desc);
        }
    };
    (@num $name:ident, $t:ty, $tname:literal, $ops:ident, $default:expr, $desc:literal) => {
        pub(crate) mod $name {
            use $crate::kprobes::params::{KernelParam, ParamCell};
            pub(crate) static VALUE: ParamCell<$t> = ParamCell::new($default);
            #[link_section = "__param"]
            #[used]
            static PARAM: KernelParam = KernelParam::new(
                $crate::kprobes::params::module_params!(@name $name),
                &raw const $crate::kprobes::bindings::$ops,
                VALUE.as_ptr().cast(),
            );
            $crate::kprobes::params::module_params!(@modinfo $name, $tname, $desc);
        }
    };
    (@name $name:ident) => {
        concat!(stringify!($name), "\0").as_bytes()
    };
    (@modinfo $name:ident, $tname:literal, $desc:literal) => {
        const PARMTYPE: &str = concat!("parmtype=", stringify!($name), ":", $tname, "\0");
        #[link_section = ".modinfo"]
        #[used]
        static MODINFO_PARMTYPE: [u8; PARMTYPE.len()] = $crate::kprobes::params::bytes(PARMTYPE);
        const PARM: &str = concat!("parm=", stringify!($name), ":", $desc, "\0");
        #[link_section = ".modinfo"]
        #[used]
        static MODINFO_PARM: [u8; PARM.len()] = $crate::kprobes::params::bytes(PARM);
    };
}
pub(crate) use module_params;
