// SPDX-License-Identifier: GPL-2.0

//! What a kprobe and a kretprobe registration share: a pinned `{ kernel struct, handler }`,
//! registered by its pin-initializer and unregistered exactly once, when it is dropped or
//! [`Probe::unregister`]ed.
//!
//! C header: [`include/linux/kprobes.h`](srctree/include/linux/kprobes.h)

use super::bindings;
// rk-out-of-tree-begin
use super::compat;
use super::debugfs::{Debugfs, Source};
// rk-out-of-tree-end
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

// rk-out-of-tree-begin
/// After `register_k(ret)probe()` returned 0: whether the core holds the probe. Linux 7.x's
/// `__register_kprobe()` (since its conversion to `guard()`) drops `arm_kprobe()`'s error: when
/// arming fails (an ftrace-based probe's ftrace hash or ops allocation) it takes the probe out
/// of its table again but returns 0, for a probe that never fires and that unregistering then
/// does not find. `enable_kprobe()` on a registered, enabled probe does nothing and returns 0;
/// on one the core does not hold, `EINVAL`. Then this unregisters what the registration left
/// (a kretprobe's rethook; the core finds no kprobe and says nothing) and fails with `EAGAIN`,
/// [`super::why`]'s word for it: nothing stays registered, as on any failed registration.
///
/// # Safety
///
/// `p` must be initialised and registered by [`RawProbe::register`], and not unregistered.
unsafe fn check_kept<R: RawProbe>(p: *mut R) -> Result {
    // SAFETY: `p` is valid (the caller guarantees it); `enable_kprobe()` takes the core's mutex
    // and only reads the probe unless it is disabled, which it is not (never registered
    // disabled).
    if unsafe { bindings::enable_kprobe(R::kprobe(p)) } == 0 {
        return Ok(());
    }
    // SAFETY: registered as far as the core said (the caller guarantees it), and not
    // unregistered since; the core finds no kprobe in its table and frees what else the
    // registration allocated.
    unsafe { R::unregister(p) };
    Err(EAGAIN)
}
// rk-out-of-tree-end

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
/// - `raw` is the first field of this `#[repr(C)]` struct and `Opaque<R>` is
///   `#[repr(transparent)]`: the pointer the core passes to a handler, to `raw`, is a pointer to
///   `Self`.
/// - `handler` is initialised before `raw` is registered, so a handler may run at once.
// rk-out-of-tree-begin
/// - `debugfs`, when `Some`, shows `self` and is removed before `raw` is unregistered.
// rk-out-of-tree-end
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct Probe<R: RawProbe, T: Send + Sync> {
    #[pin]
    raw: Opaque<R>,
    handler: T,
    // rk-out-of-tree-begin
    debugfs: Option<Debugfs<Probe<R, T>>>,
    // rk-out-of-tree-end
}

// SAFETY: Rust reads `raw` only through raw pointers, and only `addr` (written by the
// registration before it returns, unchanged while registered) and `nmissed` (with an atomic
// load); the pointers Rust put in it are to `'static` data (`with_raw`'s contract). The
// handler is `Send + Sync`.
// rk-out-of-tree-begin
// `Debugfs` may be dropped on any thread.
// rk-out-of-tree-end
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

// rk-out-of-tree-begin
// SAFETY: `debugfs` is not structurally pinned, and is dropped before `raw` is unregistered
// (type invariant: `unregister` and `PinnedDrop`).
unsafe impl<R: RawProbe, T: Send + Sync> Source for Probe<R, T> {
    type Handler = T;
    fn handler(&self) -> &T {
        &self.handler
    }
    fn nmissed(&self) -> u64 {
        Probe::nmissed(self)
    }
    fn debugfs(&mut self) -> &mut Option<Debugfs<Self>> {
        &mut self.debugfs
    }
}
// rk-out-of-tree-end

impl<R: RawProbe, T: Send + Sync> Probe<R, T> {
    // rk-out-of-tree-begin
    /// A pin-initializer that checks the bindings' layouts (see `layout`), stores `handler`,
    /// then registers `raw`. On error nothing stays registered, and the handler is dropped.
    // rk-out-of-tree-end
    // rk-in-tree: /// A pin-initializer that stores `handler`, then registers `raw`. On error nothing stays
    // rk-in-tree: /// registered, and the handler is dropped.
    ///
    /// # Safety
    ///
    /// The handlers set in `raw` must be functions that take the pointer the core gives them
    /// for a `Probe<R, T>` (see [`Probe::from_raw`]) and may run in any context; the pointers in
    /// `raw` (the symbol name) must be valid for as long as the probe is registered (`'static`).
    pub(super) unsafe fn with_raw(raw: R, handler: T) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            handler,
            // rk-out-of-tree-begin
            debugfs: None,
            // rk-out-of-tree-end
            // Last: once `raw` is registered, a handler may run, and every other field is
            // initialised by then.
            // rk-out-of-tree-begin
            raw <- compat::opaque_try_ffi_init(move |slot: *mut R| {
                super::layout::check()?;
                // rk-out-of-tree-end
            // rk-in-tree: raw <- Opaque::try_ffi_init(move |slot: *mut R| {
                // SAFETY: `slot` is valid for writes: the uninitialised `raw` of `Self`.
                unsafe { slot.write(raw) };
                // INVARIANT: on success `raw` is registered; it stays at `slot` (`Self` is
                // pinned) until `PinnedDrop::drop` or `unregister` unregisters it, which they do
                // before the memory is freed.
                // SAFETY: `*slot` was initialised above and is not registered; it is pinned, and
                // `Self`'s memory is only released after it is unregistered (type invariant).
                // rk-out-of-tree-begin
                to_result(unsafe { R::register(slot) })?;
                // SAFETY: `*slot` is initialised, and registered as far as the core said.
                unsafe { check_kept(slot) }
                // rk-out-of-tree-end
                // rk-in-tree: to_result(unsafe { R::register(slot) })
            }),
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
        // and `Opaque<R>` has `R`'s layout (type invariant); `Self` is alive for `'a` (function
        // contract). A shared reference is sound: `raw` is an `Opaque`, which the core may write.
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
        // rk-out-of-tree-begin
        // SAFETY: `p` is valid and owned here (from `KBox::into_raw`); `debugfs` is removed
        // before `raw` is unregistered (type invariant), and not used again.
        unsafe { core::ptr::drop_in_place(addr_of_mut!((*p).debugfs)) };
        // rk-out-of-tree-end
        // SAFETY: as above; `Opaque::get` only computes the address.
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
        // rk-out-of-tree-begin
        // SAFETY: `debugfs` is not structurally pinned, and nothing is moved out.
        let this = unsafe { self.get_unchecked_mut() };
        // Readers first, then the probe (type invariant).
        this.debugfs = None;
        // rk-out-of-tree-end
        // rk-in-tree: let this = self;
        // SAFETY: `raw` is registered (type invariant), and this is its only unregistration:
        // `unregister` does not run `drop`.
        unsafe { R::unregister(this.raw.get()) };
    }
}
