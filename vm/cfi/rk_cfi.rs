// SPDX-License-Identifier: GPL-2.0

//! rk_cfi: a test-only module, for the VM test `cfi_catches_a_mistyped_handler` on the hardened
//! kernels. A kprobe on `inet_bind` whose pre handler is a Rust function of the C type the core
//! calls it as (`kprobe_pre_handler_t`), or, with `mistyped=1`, one declared with a third
//! argument and cast to that type: the mistake kCFI exists to catch. On a kCFI kernel the core's
//! first call through the mistyped pointer is a "CFI failure"; on any other it runs.
//!
//! The layer makes this mistake impossible (its trampolines are typed by the bindings), so the
//! module plants the probe itself, on the layer's checked `register_kprobe()`.

#[allow(dead_code)]
#[path = "kprobes/mod.rs"]
mod kprobes;

use kernel::ffi::c_int;
use kernel::prelude::*;
use kprobes::bindings::{self, kprobe, kprobe_pre_handler_t, pt_regs};

kprobes::compat::rk_module! {
    type: CfiModule,
    name: "rk_cfi",
    description: "test only: a kprobe pre handler of the right or a wrong type, for kCFI",
}

kprobes::params::module_params! {
    mistyped: bool = false, "Plant the pre handler through a pointer of another type";
}

/// Of the type the core calls (`int (*)(struct kprobe *, struct pt_regs *)`).
extern "C" fn right(_p: *mut kprobe, _regs: *mut pt_regs) -> c_int {
    pr_info!("right-typed pre handler ran\n");
    0
}

/// Of another type: one argument more.
extern "C" fn wrong(_p: *mut kprobe, _regs: *mut pt_regs, _extra: u64) -> c_int {
    pr_info!("mistyped pre handler ran\n");
    0
}

struct CfiModule {
    /// Registered with the core until drop; never moved (a `KBox`'s heap allocation).
    probe: KBox<kprobe>,
}

// SAFETY: after `init` the module touches `probe` only in `drop` (to unregister it); what the
// struct's raw pointers point to (a static string, the core's own fields) is the core's to
// synchronise, from any CPU.
unsafe impl Send for CfiModule {}
// SAFETY: no method of the module reads or writes `probe` through a shared reference.
unsafe impl Sync for CfiModule {}

impl kernel::Module for CfiModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let handler: kprobe_pre_handler_t = if Params::get().mistyped {
            // SAFETY: the two are function pointers of the same size; calling `wrong` through
            // the other type is the bug this module exists to commit (its third argument is
            // never read), and what kCFI must stop.
            Some(unsafe {
                core::mem::transmute::<
                    extern "C" fn(*mut kprobe, *mut pt_regs, u64) -> c_int,
                    unsafe extern "C" fn(*mut kprobe, *mut pt_regs) -> c_int,
                >(wrong)
            })
        } else {
            Some(right)
        };
        let mut probe = KBox::new(
            kprobe {
                symbol_name: kernel::c_str!("inet_bind").as_char_ptr(),
                pre_handler: handler,
                ..Default::default()
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `probe` is an initialised `struct kprobe`, not registered, in a heap
        // allocation that stays where it is until `drop` has unregistered it.
        let ret = unsafe { bindings::register_kprobe(&raw mut *probe) };
        if ret != 0 {
            pr_err!("cannot probe inet_bind: errno {ret}\n");
            return Err(Error::from_errno(ret));
        }
        let how = if Params::get().mistyped {
            "mistyped"
        } else {
            "right-typed"
        };
        pr_info!("Planted kprobe on inet_bind, {how} pre handler\n");
        Ok(CfiModule { probe })
    }
}

impl Drop for CfiModule {
    fn drop(&mut self) {
        // SAFETY: `self.probe` was registered in `init` and is unregistered only here.
        unsafe { bindings::unregister_kprobe(&raw mut *self.probe) };
    }
}
