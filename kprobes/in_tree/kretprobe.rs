// SPDX-License-Identifier: GPL-2.0

//! Kretprobes: a `struct kretprobe` owned by a Rust value, with entry/return handlers as a
//! trait and typed per-instance data.
//!
//! C header: [`include/linux/kprobes.h`](srctree/include/linux/kprobes.h)
//!
//! Reference: [`Documentation/trace/kprobes.rst`](srctree/Documentation/trace/kprobes.rst)

use super::arch::Regs;
use super::bindings;
use super::hit::Hit;
use super::probe::{Probe, RawProbe};
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicI32, Ordering};
use kernel::prelude::*;

/// The handlers of a kretprobe; atomic context, as for [`super::kprobe::KprobeHandler`].
///
/// # Examples
///
/// A return probe on `usleep_range_state()` that times a sleep:
///
// doctest: upstream/doctest_kretprobe.rs
pub(crate) trait KretprobeHandler: Sync + Send + Sized + 'static {
    /// Per-instance data, stored by the kernel between entry and return (`data_size` is its
    /// size).
    type Data: Copy;

    /// At function entry. `None` skips this call: no return handler will run for it.
    fn entry(&self, hit: &Hit<'_>) -> Option<Self::Data>;

    /// When the function returns, with what [`KretprobeHandler::entry`] stored.
    fn ret(&self, hit: &Hit<'_>, data: &Self::Data);
}

/// A registered kretprobe; unregistered on drop or by [`Probe::unregister`], exactly once.
pub(crate) type Kretprobe<T> = Probe<bindings::kretprobe, T>;

// SAFETY: `register_kretprobe()` / `unregister_kretprobe()` are the kernel's pair for a
// `struct kretprobe`; the core calls its handlers with instances whose kretprobe is the one
// registered; `kp` is the `struct kprobe` it embeds.
unsafe impl RawProbe for bindings::kretprobe {
    unsafe fn register(p: *mut Self) -> kernel::ffi::c_int {
        // SAFETY: the caller guarantees that `p` is initialised, unregistered, and stays valid
        // and in place until it is unregistered.
        unsafe { bindings::register_kretprobe(p) }
    }

    unsafe fn unregister(p: *mut Self) {
        // SAFETY: the caller guarantees that `p` is registered.
        unsafe { bindings::unregister_kretprobe(p) }
    }

    unsafe fn kprobe(p: *mut Self) -> *mut bindings::kprobe {
        // SAFETY: `p` is valid (the caller guarantees it); only the field's address is taken.
        unsafe { addr_of_mut!((*p).kp) }
    }

    /// Calls not probed because all `maxactive` instances were in use.
    unsafe fn nmissed(p: *mut Self) -> u64 {
        // SAFETY: `p` is valid (the caller guarantees it), so its `int nmissed` is aligned and
        // live; the core increments it concurrently without a lock (`rp->nmissed++` in
        // `pre_handler_kretprobe()`), hence an atomic load, and no reference to the field.
        let n = unsafe { AtomicI32::from_ptr(addr_of_mut!((*p).nmissed)) };
        // A count: the core only increments it from 0 (an `int` only for historical reasons).
        u64::try_from(n.load(Ordering::Relaxed)).unwrap_or(0)
    }
}

impl<T: KretprobeHandler> Kretprobe<T> {
    /// A pin-initializer of a return probe on `symbol` running `handler`, tracking at most
    /// `maxactive` concurrent calls (0: the kernel's default). On error nothing stays
    /// registered, and `handler` is dropped.
    pub(crate) fn new(
        symbol: &'static CStr,
        maxactive: i32,
        handler: T,
    ) -> impl PinInit<Self, Error> {
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
        // SAFETY: the handlers are this module's trampolines for `T`, which take the instances
        // they are given for instances of a `Kretprobe<T>`; `symbol` is `'static`.
        unsafe { Probe::with_raw(rp, handler) }
    }
}

/// `get_kretprobe(ri)`, which returns NULL once the kretprobe is being unregistered.
///
/// # Safety
///
/// `ri` must be a live instance of a registered kretprobe.
#[inline(always)]
unsafe fn kretprobe_of(ri: *mut bindings::kretprobe_instance) -> Option<*mut bindings::kretprobe> {
    // SAFETY: `ri` is live, per this function's contract.
    Some(unsafe { bindings::get_kretprobe(ri) }).filter(|rp| !rp.is_null())
}

/// Instance data is aligned for `D`: the core allocates instances from an `objpool`, whose
/// objects are `unsigned long`-aligned (`objpool_init()` rounds their size up to it, and the
/// pool's memory is page- or `kmalloc`-aligned), and `data[]` follows pointer-sized fields.
/// A `T::Data` with a larger alignment is a build error, not a misaligned access.
struct DataFits<D>(core::marker::PhantomData<D>);

impl<D> DataFits<D> {
    const ALIGNED: () = assert!(
        core::mem::align_of::<D>() <= core::mem::align_of::<core::ffi::c_ulong>()
            && core::mem::offset_of!(bindings::kretprobe_instance, data)
                % core::mem::align_of::<D>()
                == 0,
        "KretprobeHandler::Data must not need more than `unsigned long` alignment"
    );
}

/// The probe, the hit and the instance's data a trampoline was called for; `None` if the
/// instance's kretprobe is being unregistered.
///
/// # Safety
///
/// `ri` must be a live instance of the registered `struct kretprobe` of a `Kretprobe<T>`, and
/// `regs` the valid `pt_regs` of this entry or return, both for `'a`: as the kretprobe core
/// guarantees while it runs a handler.
#[inline(always)]
unsafe fn instance<'a, T: KretprobeHandler>(
    ri: *mut bindings::kretprobe_instance,
    regs: *mut bindings::pt_regs,
    entry: bool,
) -> Option<(&'a Kretprobe<T>, Hit<'a>, *mut T::Data)> {
    // SAFETY: `ri` is a live instance of a registered kretprobe (this function's contract).
    let rp = unsafe { kretprobe_of(ri) }?;
    // SAFETY: `rp` is the `raw` field of a live `Kretprobe<T>` (this function's contract).
    let probe = unsafe { Kretprobe::<T>::from_raw(rp) };
    let () = DataFits::<T::Data>::ALIGNED;
    // SAFETY: `ri` is live; its `data` flexible array has `data_size == size_of::<T::Data>()`
    // bytes (set by `Kretprobe::new`), aligned for `T::Data` (`DataFits`). Only the address is
    // computed.
    let data = unsafe { addr_of_mut!((*ri).data) }.cast::<T::Data>();
    // SAFETY: `regs` is valid for `'a` (this function's contract).
    let regs = unsafe { Regs::from_raw(regs) };
    // A kretprobe is always on the function's entry (the core refuses it elsewhere); `entry`
    // says whether these are the entry's registers (arguments) or the return's.
    let hit = Hit {
        addr: probe.addr(),
        regs,
        entry,
    };
    Some((probe, hit, data))
}

/// The `entry_handler` of a `Kretprobe<T>`. In `.kprobes.text` (as C's `__kprobes` places a
/// function), so that the kprobe core refuses to probe it while it is loaded: a probe on a
/// handler would recurse into it.
///
/// # Safety
///
/// Only the kretprobe core may call this, for a probe created by `Kretprobe::<T>::new`.
#[link_section = ".kprobes.text"]
unsafe extern "C" fn entry_trampoline<T: KretprobeHandler>(
    ri: *mut bindings::kretprobe_instance,
    regs: *mut bindings::pt_regs,
) -> kernel::ffi::c_int {
    // SAFETY: the core calls this with a live instance of the registered kretprobe of a
    // `Kretprobe<T>`, which outlives the call (unregistration waits for running handlers), and
    // this entry's `pt_regs`.
    let Some((probe, hit, data)) = (unsafe { instance::<T>(ri, regs, true) }) else {
        return 1;
    };
    match probe.handler().entry(&hit) {
        Some(d) => {
            // SAFETY: `data` points to `size_of::<T::Data>()` bytes owned by this instance,
            // aligned for `T::Data` (`DataFits`; an unaligned write is eight byte stores under
            // arm64's `+strict-align`).
            unsafe { data.write(d) };
            0
        }
        // Non-zero: the core recycles the instance and no return handler runs.
        None => 1,
    }
}

/// The `handler` (return handler) of a `Kretprobe<T>`; in `.kprobes.text`, as
/// [`entry_trampoline`].
///
/// # Safety
///
/// Only the kretprobe core may call this, for a probe created by `Kretprobe::<T>::new`.
#[link_section = ".kprobes.text"]
unsafe extern "C" fn ret_trampoline<T: KretprobeHandler>(
    ri: *mut bindings::kretprobe_instance,
    regs: *mut bindings::pt_regs,
) -> kernel::ffi::c_int {
    // SAFETY: as in `entry_trampoline`, for this return.
    if let Some((probe, hit, data)) = unsafe { instance::<T>(ri, regs, false) } {
        // SAFETY: the return handler only runs for instances whose entry handler returned 0,
        // i.e. after `entry_trampoline` wrote a `T::Data` there (aligned: `DataFits`).
        let d = unsafe { data.read() };
        probe.handler().ret(&hit, &d);
    }
    0
}
