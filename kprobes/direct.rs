// SPDX-License-Identifier: GPL-2.0

//! Ftrace direct calls: the function's ftrace call site calls this module's own trampoline.
//!
//! The cheapest entry hook a module can plant: no breakpoint, no `ftrace_ops` callback list,
//! no fprobe lookup by address. The call site calls `rk_direct_tramp` (helpers.c: assembly
//! that saves the argument registers as an `ftrace_regs`, as ftrace's own caller does), which
//! calls `rk_direct_call()` (preemption off, and a per-CPU flag so that handlers never nest on
//! a CPU: a call that arrives while one runs is skipped and counted), which calls the
//! handler, an entry-only [`FprobeHandler`] ([`FprobeHandler::EXIT`] false). It is what BPF's
//! fentry programs ride on, and a function takes one direct call only: with a BPF trampoline
//! (fentry, fexit) on it, registering says `EBUSY`.
//!
//! One per module: the trampoline, its `ftrace_ops` and the `rk_direct_entry` that
//! [`direct_entry!`] defines are the module's own symbols, so a module has one handler type for
//! it and one [`Direct`] registered at a time.
//!
//! Needs `CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS` and 7.3's `ftrace_regs` (`rk_direct`, from
//! Kbuild).
//!
//! C header: [`include/linux/ftrace.h`](srctree/include/linux/ftrace.h)

use super::arch::Regs;
use super::bindings;
use super::debugfs::Source;
use super::fprobe::FprobeHandler;
use super::ftrace_regs::FtraceEntry;
use super::hit::Hit;
use super::probe::Unregistered;
use core::ffi::c_void;
use core::marker::PhantomPinned;
use core::ptr::{addr_of, null_mut};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::error::to_result;
use kernel::ffi::c_ulong;
use kernel::prelude::*;

/// The handler type of the module's direct call: implemented by [`direct_entry!`], which also
/// defines the `rk_direct_entry` the trampoline calls for that type.
///
/// # Safety
///
/// Implemented only by [`direct_entry!`]: the module's `rk_direct_entry` must run
/// [`entry`]`::<Self>`, so that the [`Direct`] it finds registered is a `Direct<Self>`.
pub(crate) unsafe trait DirectHandler: FprobeHandler {}

/// The registered [`Direct`] of this module (the trampoline is the module's one), or NULL.
static INSTANCE: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// A registered ftrace direct call on one function, running the handler `T`; unregistered on
/// drop or by [`Direct::unregister`], exactly once. Created pinned by [`Direct::new`];
/// registering and unregistering sleep (ftrace's mutexes, RCU-tasks): process context only.
///
/// # Invariants
///
/// - While `registered`, `INSTANCE` points to `self` and the module's direct call is
///   registered on `symbol`; `registered` changes only in [`Direct::new`] (before `self` is
///   shared) and when the call is unregistered, once.
#[pin_data(PinnedDrop)]
pub(crate) struct Direct<T: DirectHandler> {
    handler: T,
    registered: bool,
    #[pin]
    _pin: PhantomPinned,
}

impl<T: DirectHandler> Source for Direct<T> {
    type Handler = T;
    fn handler(&self) -> &T {
        &self.handler
    }
    fn nmissed(&self) -> u64 {
        Direct::nmissed(self)
    }
    fn unregister(this: Pin<KBox<Self>>) -> Unregistered<T> {
        Direct::unregister(this)
    }
}

/// Why the direct call was refused, in words, for the one error line a module prints.
pub(crate) fn why(e: kernel::error::Error) -> &'static str {
    match e.to_errno().unsigned_abs() {
        bindings::ENOENT => "no such function, or not traceable (notrace, inline) (ENOENT)",
        bindings::EINVAL => "not a plain function name (no globs, no `:`) (EINVAL)",
        bindings::EBUSY => {
            "another direct call is on the function (a BPF fentry/fexit trampoline?) (EBUSY)"
        }
        bindings::ENODEV => "not an ftrace call site (ENODEV)",
        bindings::ENOMEM => "out of memory (ENOMEM)",
        _ => "refused by ftrace",
    }
}

impl<T: DirectHandler> Direct<T> {
    /// Registers the module's direct call on the function named exactly `symbol` (the first
    /// ftrace `set_ftrace_filter` would match; a name that is not plain is `EINVAL`), running
    /// `handler`. On error nothing stays registered and `handler` is dropped.
    pub(crate) fn new(symbol: &'static CStr, handler: T) -> Result<Pin<KBox<Self>>> {
        const { assert!(!T::EXIT, "a direct call has no exit handler") };
        let plain = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.';
        if symbol.to_bytes().is_empty() || !symbol.to_bytes().iter().all(plain) {
            return Err(EINVAL);
        }
        let mut this = KBox::pin(
            Self {
                handler,
                registered: false,
                _pin: PhantomPinned,
            },
            GFP_KERNEL,
        )?;
        let p: *const Self = &*this;
        INSTANCE
            .compare_exchange(
                null_mut(),
                p.cast_mut().cast(),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .map_err(|_| EBUSY)?;
        // SAFETY: `symbol` is NUL-terminated and valid during the call. `INSTANCE` points to
        // `*this`, pinned, whose handler is initialised: the trampoline may run it from here on.
        if let Err(e) = to_result(unsafe { bindings::rk_direct_register(symbol.as_char_ptr()) }) {
            INSTANCE.store(null_mut(), Ordering::Relaxed);
            return Err(e);
        }
        // SAFETY: `registered` is not structurally pinned; nothing is moved.
        // INVARIANT: registered, and `INSTANCE` points to `self`.
        unsafe { this.as_mut().get_unchecked_mut() }.registered = true;
        Ok(this)
    }

    /// Calls the trampoline skipped: they came while this CPU ran the handler (an interrupt's or
    /// NMI's call of the function, or one from the handler itself). Counted since this
    /// registration.
    pub(crate) fn nmissed(&self) -> u64 {
        // SAFETY: reads an atomic counter; any context.
        unsafe { bindings::rk_direct_nmissed() as u64 }
    }

    /// The handler, for reading its state from process context.
    pub(crate) fn handler(&self) -> &T {
        &self.handler
    }

    /// Unregisters the call, waiting until no CPU runs the trampoline or the handler, and
    /// hands back what is left (`addr` 0: ftrace keeps the call site's address to itself).
    pub(crate) fn unregister(this: Pin<KBox<Self>>) -> Unregistered<T> {
        // SAFETY: nothing is moved out before the call is unregistered (in `stop`).
        let mut this = unsafe { Pin::into_inner_unchecked(this) };
        this.stop();
        let nmissed = this.nmissed();
        let p = KBox::into_raw(this);
        // SAFETY: `p` is from `KBox::into_raw`; `handler` is read once, and the memory is
        // freed below without dropping a field: the rest need no drop.
        let handler = unsafe { addr_of!((*p).handler).read() };
        // SAFETY: as above; `MaybeUninit<Self>` has `Self`'s layout.
        drop(unsafe { KBox::from_raw(p.cast::<core::mem::MaybeUninit<Self>>()) });
        Unregistered {
            addr: 0,
            nmissed,
            handler,
        }
    }

    /// Unregisters the call (type invariant), once.
    fn stop(&mut self) {
        if core::mem::replace(&mut self.registered, false) {
            // SAFETY: the module's direct call is registered (type invariant), by this `Direct`.
            unsafe { bindings::rk_direct_unregister() };
            INSTANCE.store(null_mut(), Ordering::Relaxed);
        }
    }
}

#[pinned_drop]
impl<T: DirectHandler> PinnedDrop for Direct<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `stop` moves nothing out of the pinned value.
        unsafe { self.get_unchecked_mut() }.stop();
    }
}

/// The body of the module's `rk_direct_entry` ([`direct_entry!`]): the registered
/// `Direct<T>`'s handler, for the call site `ip`.
///
/// # Safety
///
/// Only `rk_direct_call()` may call this (from the trampoline, preemption off), with `fregs`
/// the trampoline's frame, valid during the call; `T` must be the module's [`DirectHandler`].
#[inline(always)]
pub(crate) unsafe fn entry<T: DirectHandler>(fregs: *mut bindings::ftrace_regs, ip: c_ulong) {
    let p = INSTANCE.load(Ordering::Acquire).cast::<Direct<T>>();
    if p.is_null() {
        return;
    }
    // SAFETY: `INSTANCE` points to a registered `Direct<T>` (type invariant; `T` is the
    // module's one `DirectHandler`, per the contract), which stays alive until its call is
    // unregistered, and unregistering waits for every running trampoline.
    let probe = unsafe { &*p };
    let hit = Hit {
        addr: ip as u64,
        // SAFETY: `fregs` is the trampoline's `ftrace_regs`: the arguments, ip and sp, as
        // ftrace's own caller saves them at an entry.
        regs: Regs::new(unsafe { FtraceEntry::from_raw(fregs) }),
        entry: true,
    };
    if let Err(fault) = probe.handler.entry(&hit) {
        probe.handler.fault(&hit, &fault);
    }
}

/// Defines the module's `rk_direct_entry` (what helpers.c's trampoline calls) for the handler
/// type `$t`, and makes `$t` the module's [`DirectHandler`]. Once per module (rust_kretprobe,
/// which has no direct kind, includes this layer too, hence the `allow`s).
#[allow(unused_macros)]
macro_rules! direct_entry {
    ($t:ty) => {
        /// The module's ftrace direct call handler: called by `rk_direct_call()` (helpers.c).
        ///
        /// # Safety
        ///
        /// Only `rk_direct_call()` may call this.
        #[no_mangle]
        #[link_section = ".kprobes.text"]
        unsafe extern "C" fn rk_direct_entry(
            fregs: *mut $crate::kprobes::bindings::ftrace_regs,
            ip: ::kernel::ffi::c_ulong,
        ) {
            // SAFETY: called by `rk_direct_call()` only (this function's contract), and `$t`
            // is the module's one `DirectHandler` (this impl, below).
            unsafe { $crate::kprobes::direct::entry::<$t>(fregs, ip) }
        }

        // SAFETY: `rk_direct_entry` above runs `entry::<$t>`, and the symbol can be defined
        // once per module.
        unsafe impl $crate::kprobes::direct::DirectHandler for $t {}
    };
}
#[allow(unused_imports)]
pub(crate) use direct_entry;
