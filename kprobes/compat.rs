// SPDX-License-Identifier: GPL-2.0

//! What differs between the kernels this layer builds on (6.12 LTS and 7.3), in one place.
//!
//! Each difference is a cfg that Kbuild derives from the kernel tree itself (see `Kbuild`), not
//! from a version number; `cpu.rs` holds the one per-architecture difference
//! (`rk_x86_pcpu_hot`). Code outside this file and `cpu.rs` is the same on both kernels.
//!
//! | cfg | set when the kernel tree has | 6.12 | 7.3 |
//! |-----|------------------------------|------|-----|
//! | `rk_cstr_is_core` | `kernel::str::CStr` = `core::ffi::CStr` | no | yes |
//! | `rk_kernel_fmt` | `pr_*!` formatting through `kernel::fmt::Display` | no | yes |
//! | `rk_module_authors` | `module!` takes `authors: [..]` (not `author:`) | no | yes |
//! | `rk_pin_init_crate` | pin-init is the separate `pin_init` crate (not `kernel::init`) | no | yes |
//! | `rk_opaque_try_ffi_init` | `Opaque::try_ffi_init` exists | no | yes |

use kernel::prelude::*;
use kernel::types::Opaque;

#[cfg(not(rk_pin_init_crate))]
pub(crate) use kernel::init::Zeroable;
/// The trait of types whose all-zero bit pattern is a valid value (what `#[derive(Zeroable)]`
/// implements): `kernel::init::Zeroable` on 6.12, `pin_init::Zeroable` on 7.x.
#[cfg(rk_pin_init_crate)]
pub(crate) use pin_init::Zeroable;

/// `Opaque::try_ffi_init`: a fallible pin-initializer of an `Opaque<T>` that hands `init` a
/// pointer to the uninitialised `T`. 6.12's `Opaque` has only the infallible `ffi_init`; this
/// is 7.x's implementation, on 6.12's `pin_init_from_closure`.
pub(crate) fn opaque_try_ffi_init<T, E>(
    init: impl FnOnce(*mut T) -> Result<(), E>,
) -> impl PinInit<Opaque<T>, E> {
    #[cfg(rk_opaque_try_ffi_init)]
    return Opaque::try_ffi_init(init);
    #[cfg(not(rk_opaque_try_ffi_init))]
    // SAFETY: `Opaque<T>` may hold an uninitialised or partially initialised `T`, so whatever
    // `init` leaves behind, `Ok` or `Err`, is a valid `Opaque<T>` that needs no drop; the slot is
    // not moved, and `Opaque` has no pinning invariant of its own to uphold.
    return unsafe {
        kernel::init::pin_init_from_closure(move |slot: *mut Opaque<T>| init(Opaque::raw_get(slot)))
    };
}

/// The bytes of a C string, without its NUL (`as_bytes()` on 6.12's own `CStr`, `to_bytes()`
/// on `core::ffi::CStr`).
pub(crate) fn cstr_bytes(s: &CStr) -> &[u8] {
    #[cfg(rk_cstr_is_core)]
    return s.to_bytes();
    #[cfg(not(rk_cstr_is_core))]
    return s.as_bytes();
}

/// Makes types that implement `core::fmt::Display` printable by `pr_*!` on kernels that format
/// through `kernel::fmt::Display` (7.x); nothing to do on 6.12.
macro_rules! printable {
    ($($t:ty),* $(,)?) => {
        $(
            #[cfg(rk_kernel_fmt)]
            impl kernel::fmt::Display for $t {
                fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    core::fmt::Display::fmt(self, f)
                }
            }
        )*
    };
}

#[allow(unused_imports)]
pub(crate) use printable;

printable!(
    super::task::Comm,
    super::logic::HistRow,
    super::logic::Peer,
    super::logic::RetVal,
    super::params::ParamStr,
);

/// `module!` with this project's author and licence, in the syntax of the kernel at hand, and
/// `MODULE_NAME`, the module's name as a C string (its debugfs directory, for one).
macro_rules! rk_module {
    (type: $t:ident, name: $name:tt, description: $desc:tt $(,)?) => {
        /// The module's name (`name:` of `module!`).
        #[allow(dead_code)]
        const MODULE_NAME: &'static ::kernel::str::CStr = ::kernel::c_str!($name);
        #[cfg(rk_module_authors)]
        ::kernel::prelude::module! {
            type: $t,
            name: $name,
            authors: ["rust-kprobes"],
            description: $desc,
            license: "GPL",
        }
        #[cfg(not(rk_module_authors))]
        ::kernel::prelude::module! {
            type: $t,
            name: $name,
            author: "rust-kprobes",
            description: $desc,
            license: "GPL",
        }
    };
}
pub(crate) use rk_module;
