// SPDX-License-Identifier: GPL-2.0

//! What a kprobe and a kretprobe registration share: a pinned `{ kernel struct, handler }`,
//! registered by its pin-initializer and unregistered exactly once, when it is dropped or
//! [`Probe::unregister`]ed.
//!
//! C header: [`include/linux/kprobes.h`](srctree/include/linux/kprobes.h)

use super::bindings;
use core::mem::MaybeUninit;
use core::ptr::{addr_of, addr_of_mut};
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::types::Opaque;

/// A probe kind's C struct (`struct kprobe`, `struct kretprobe`) and its calls.
///
/// # Safety
///
/// Implementers must ensure that `register` and `unregister` are the kernel's pair for `Self`,
/// that `register` makes the kprobe core call the handlers set in `*p` with a pointer to `*p`
/// (for a kretprobe: to an instance whose kretprobe is `*p`), and that `kprobe` returns the
/// `struct kprobe` embedded in `*p`.
pub(crate) unsafe trait RawProbe: Sized {
    /// Registers `*p` with the kprobe core (`register_kprobe()`, `register_kretprobe()`).
    ///
    /// # Safety
    ///
    /// `p` must point to an initialised `Self` that is not registered, and that stays valid at
    /// the same address until [`RawProbe::unregister`] is called on it, if this returns 0.
    unsafe fn register(p: *mut Self) -> kernel::ffi::c_int;

    /// Unregisters `*p`; when this returns, no handler of `*p` runs any more.
    ///
    /// # Safety
    ///
    /// `p` must have been registered by [`RawProbe::register`] and not unregistered since.
    unsafe fn unregister(p: *mut Self);

    /// The `struct kprobe` of `*p` (only its address is computed).
    ///
    /// # Safety
    ///
    /// `p` must point to a valid `Self`.
    unsafe fn kprobe(p: *mut Self) -> *mut bindings::kprobe;

    /// The core's count of hits it ran no handler for (see each kind). The core increments it
    /// without a lock while the probe is registered, so it is read with an atomic load.
    ///
    /// # Safety
    ///
    /// `p` must point to a valid `Self`.
    unsafe fn nmissed(p: *mut Self) -> u64;
}

/// The C struct of a probe of kind `R`, registered by its pin-initializer ([`Registered::new`]).
///
/// # Invariants
///
/// Once initialised, `raw` holds an initialised `R` that is registered with the kprobe core,
/// until the [`Probe`] holding it unregisters it.
#[repr(transparent)]
#[pin_data]
struct Registered<R> {
    #[pin]
    raw: Opaque<R>,
}

impl<R: RawProbe> Registered<R> {
    /// A pin-initializer that moves `raw` in place, then registers it: the registration is the
    /// initializer's last step, so on error nothing is registered, and what is left needs no
    /// drop (an `Opaque`).
    ///
    /// # Safety
    ///
    /// As for [`Probe::with_raw`]: the handlers set in `raw` must take the pointer the core gives
    /// them for the [`Probe`] that holds the result, and the pointers in `raw` must be valid for
    /// as long as it is registered.
    unsafe fn new(raw: R) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            raw <- Opaque::ffi_init(move |slot: *mut R| {
                // SAFETY: `slot` is valid for writes: the uninitialised `R` of the `Opaque`.
                unsafe { slot.write(raw) }
            }),
        }? Error)
        .pin_chain(|this| {
            // INVARIANT: on success `raw` is registered; it stays in place (`this` is pinned)
            // until the `Probe` holding it unregisters it, which it does before the memory is
            // freed.
            // SAFETY: `this.raw` holds the `R` written above, not registered; it is pinned, and
            // the `Probe` holding it releases its memory only after unregistering it (its type
            // invariant). The handlers and pointers in it are as this function's contract says.
            to_result(unsafe { R::register(this.raw.get()) })
        })
    }

    /// The `R`: only its address is computed.
    #[inline(always)]
    fn get(&self) -> *mut R {
        self.raw.get()
    }
}

/// A probe of kind `R`, registered with the kprobe core, that runs the handler `T`.
///
/// Created pinned, by the pin-initializer of its kind (`Kprobe::new`, `Kretprobe::new`), e.g.
/// with `KBox::pin_init`; see the examples there. Registering and unregistering sleep (the kprobe
/// core's mutex, an RCU grace period): create and drop probes in process context only.
///
/// # Invariants
///
/// - `raw` is registered with the kprobe core from the moment the initializer returns `Ok`
///   until `self` is dropped or [`Probe::unregister`]ed, and only then unregistered, once.
/// - `raw` is the first field of this `#[repr(C)]` struct, and `Registered<R>` and the
///   `Opaque<R>` in it are `#[repr(transparent)]`: the pointer the core passes to a handler, to
///   `raw`, is a pointer to `Self`.
/// - `handler` is initialised before `raw` is registered, so a handler may run at once.
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct Probe<R: RawProbe, T: Send + Sync> {
    #[pin]
    raw: Registered<R>,
    handler: T,
}

// SAFETY: Rust reads `raw` only through raw pointers, and only `addr` (written by the
// registration before it returns, unchanged while registered) and `nmissed` (with an atomic
// load); the pointers Rust put in it are to `'static` data (`with_raw`'s contract). The
// handler is `Send + Sync`.
unsafe impl<R: RawProbe, T: Send + Sync> Send for Probe<R, T> {}
// SAFETY: as above; `&Probe` gives access to nothing in `raw` but those two reads.
unsafe impl<R: RawProbe, T: Send + Sync> Sync for Probe<R, T> {}

/// What is left of a probe once it is unregistered: no handler runs any more, so the
/// handler's state is final.
pub(crate) struct Unregistered<T> {
    /// The address the probe was planted at.
    pub(crate) addr: u64,
    /// The core's final missed count.
    pub(crate) nmissed: u64,
    /// The handler, which no longer runs.
    pub(crate) handler: T,
}

impl<R: RawProbe, T: Send + Sync> Probe<R, T> {
    /// A pin-initializer that stores `handler`, then registers `raw`. On error nothing stays
    /// registered, and the handler is dropped.
    ///
    /// # Safety
    ///
    /// The handlers set in `raw` must be functions that take the pointer the core gives them
    /// for a `Probe<R, T>` (see [`Probe::from_raw`]) and may run in any context; the pointers in
    /// `raw` (the symbol name) must be valid for as long as the probe is registered (`'static`).
    pub(super) unsafe fn with_raw(raw: R, handler: T) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            handler,
            // Last: once `raw` is registered, a handler may run, and every other field is
            // initialised by then.
            // SAFETY: the handlers and pointers in `raw` are as `Registered::new` requires
            // (this function's contract).
            raw <- unsafe { Registered::new(raw) },
        })
    }

    /// The `Probe` whose `raw` field is `*raw`.
    ///
    /// # Safety
    ///
    /// `raw` must point to the `raw` field of a `Probe<R, T>` that stays alive for `'a`: as it
    /// does during a call of one of its handlers by the kprobe core.
    #[inline(always)]
    pub(super) unsafe fn from_raw<'a>(raw: *mut R) -> &'a Self {
        // SAFETY: `raw` is the first field of `Self`, at offset 0 of the `#[repr(C)]` struct,
        // and `Registered<R>` has `R`'s layout (type invariant); `Self` is alive for `'a` (function
        // contract). A shared reference is sound: `raw` holds an `Opaque`, which the core may
        // write.
        unsafe { &*raw.cast::<Self>() }
    }

    /// The address the probe was planted at.
    pub(crate) fn addr(&self) -> u64 {
        // SAFETY: `self.raw` is a valid `R` (registered, type invariant).
        let kp = unsafe { R::kprobe(self.raw.get()) };
        // SAFETY: `kp` is valid; the core sets `addr` during the registration, before `self`
        // existed, and does not change it while the probe is registered. No reference to the
        // field is created.
        unsafe { (*kp).addr as u64 }
    }

    /// The core's `KPROBE_FLAG_*` of the probe. Read atomically: the core sets `OPTIMIZED`
    /// and `GONE` while the probe is registered.
    #[inline(always)]
    pub(in crate::kprobes) fn flags(&self) -> u32 {
        // SAFETY: `self.raw` is a valid `R` (registered, type invariant).
        let kp = unsafe { R::kprobe(self.raw.get()) };
        // SAFETY: `kp` is valid, so its `u32 flags` is an aligned, live word that the core
        // writes concurrently: hence an atomic load, and no reference to the field.
        let f = unsafe { core::sync::atomic::AtomicU32::from_ptr(addr_of_mut!((*kp).flags)) };
        f.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// How many hits the core ran no handler for (see each kind).
    pub(crate) fn nmissed(&self) -> u64 {
        // SAFETY: `self.raw` is a valid `R`.
        unsafe { R::nmissed(self.raw.get()) }
    }

    /// The handler, for reading its state from process context.
    pub(crate) fn handler(&self) -> &T {
        &self.handler
    }

    /// Unregisters the probe, waiting until no handler runs, and hands back what is left.
    pub(crate) fn unregister(this: Pin<KBox<Self>>) -> Unregistered<T> {
        // SAFETY: nothing is moved out of the allocation before `raw` is unregistered, and the
        // allocation is then freed in place: the pinning guarantee is kept.
        let p = KBox::into_raw(unsafe { Pin::into_inner_unchecked(this) });
        // SAFETY: `p` is valid (from `KBox::into_raw`); `Registered::get` only computes the
        // address.
        let raw = unsafe { (*p).raw.get() };
        // SAFETY: `raw` is registered (type invariant); `Self`'s `PinnedDrop` does not run for
        // `p`, so this is the only unregistration.
        unsafe { R::unregister(raw) };
        // SAFETY: `raw` is valid, no longer registered.
        let (kp, nmissed) = unsafe { (R::kprobe(raw), R::nmissed(raw)) };
        // SAFETY: `kp` is valid; no reference to the field is created.
        let addr = unsafe { (*kp).addr as u64 };
        // SAFETY: `handler` is initialised, and is moved out once: the memory is freed below
        // without dropping anything.
        let handler = unsafe { addr_of!((*p).handler).read() };
        // SAFETY: `p` came from `KBox::into_raw`, and `MaybeUninit<Self>` has `Self`'s layout;
        // dropping it frees the memory without dropping a field: the others were dropped or
        // moved out above, and `raw` needs no drop.
        drop(unsafe { KBox::from_raw(p.cast::<MaybeUninit<Self>>()) });
        Unregistered {
            addr,
            nmissed,
            handler,
        }
    }
}

#[pinned_drop]
impl<R: RawProbe, T: Send + Sync> PinnedDrop for Probe<R, T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `raw` is registered (type invariant), and this is its only unregistration:
        // `unregister` does not run `drop`.
        unsafe { R::unregister(self.raw.get()) };
    }
}
