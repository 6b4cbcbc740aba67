// SPDX-License-Identifier: GPL-2.0

//! Fprobes: a `struct fprobe` owned by a Rust value, with entry/exit handlers as a trait and
//! typed per-call data, on one function.
//!
//! An fprobe is ftrace's entry and exit hook (the function graph tracer's shadow stack for the
//! exit), not the kprobe core's: no breakpoint, no `kretprobe_instance` pool and so no
//! `maxactive` misses; fprobe keeps the entry handler's data on the task's shadow stack, for the
//! exit handler. What eBPF's fentry/fexit and `kprobe.session` ride on. It needs
//! `CONFIG_FPROBE` (the function tracer: distribution kernels, not the project's own), and is
//! written for the fgraph-based fprobe of Linux 7.3 (`rk_fprobe_fgraph`, from Kbuild).
//!
//! An fprobe without an exit ([`FprobeHandler::EXIT`] false) is an entry hook only: fprobe then
//! puts it on a plain `ftrace_ops` of its own (`fprobe_ftrace_entry()`: arguments saved, not
//! the full `pt_regs`), not on the function graph tracer, and keeps no data for it. What a
//! kprobe on the function's entry runs from, minus the kprobe core (`rust_kprobe kind=fprobe`).
//!
//! Differences from a kretprobe a handler sees:
//! - [`Hit::addr`] is the function's ftrace call site (`ftrace_location()`: past an x86
//!   `endbr64`, as a kretprobe there is);
//! - the registers are `ftrace_regs`, which hold only some of them ([`Regs`]: arguments at
//!   entry, the return value at exit);
//! - handlers may nest on one CPU, once per context level (task, softirq, irq, NMI): fgraph's
//!   recursion guard is per level, where the kprobe core lets no handler nest. A per-CPU
//!   [`super::percpu::Counter`] updated in both levels can then lose a count; a function called
//!   in one context only (`inet_release`) cannot.
//!
//! C header: [`include/linux/fprobe.h`](srctree/include/linux/fprobe.h)
//!
//! Reference: [`Documentation/trace/fprobe.rst`](srctree/Documentation/trace/fprobe.rst)

use super::arch::Regs;
use super::bindings;
use super::compat;
use super::debugfs::Source;
use super::ftrace_regs::{FtraceEntry, FtraceExit};
use super::hit::{Fault, Hit};
use super::probe::Unregistered;
use core::ffi::c_void;
use core::mem::{align_of, size_of, MaybeUninit};
use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::error::to_result;
use kernel::ffi::{c_int, c_ulong};
use kernel::prelude::*;
use kernel::transmute::FromBytes;
use kernel::types::Opaque;

/// The handlers of an fprobe: atomic context (preemption off, any context up to NMI), as for
/// [`super::kprobe::KprobeHandler`].
///
/// Every [`super::kretprobe::KretprobeHandler`] is one (an entry that stores data and a return
/// that gets it mean the same on both), so one handler runs on either kind.
pub(crate) trait FprobeHandler: Sync + Send + Sized + 'static {
    /// Per-call data, stored by fprobe between entry and exit. At most 14 `unsigned long`s,
    /// `unsigned long`-aligned (a build error otherwise), and valid for any bits (`FromBytes`:
    /// see [`Slot`] for why).
    type Data: Copy + FromBytes;

    /// Whether there is an exit handler. `false`: an entry-only fprobe (no `exit_handler`, no
    /// entry data), which fprobe runs from an `ftrace_ops` of its own rather than through the
    /// function graph tracer; the data [`FprobeHandler::entry`] returns is then dropped (a
    /// [`Fault`] still goes to [`FprobeHandler::fault`]), and [`FprobeHandler::exit`] never
    /// runs.
    const EXIT: bool;

    /// At function entry. `Ok(None)` skips this call: no exit handler will run for it; nor
    /// after an `Err`, which the layer hands to [`FprobeHandler::fault`].
    fn entry(&self, hit: &Hit<'_>) -> Result<Option<Self::Data>, Fault>;

    /// When the function returns, with what [`FprobeHandler::entry`] stored. Only with
    /// [`FprobeHandler::EXIT`]: an entry-only handler leaves this empty.
    fn exit(&self, _hit: &Hit<'_>, _data: &Self::Data) {}

    /// Runs when [`FprobeHandler::entry`] returned a [`Fault`], as
    /// [`KprobeHandler::fault`](super::kprobe::KprobeHandler::fault) does for a kprobe.
    fn fault(&self, hit: &Hit<'_>, fault: &Fault);
}

#[cfg(CONFIG_KRETPROBES)]
impl<T: super::kretprobe::KretprobeHandler> FprobeHandler for T
where
    T::Data: FromBytes,
{
    type Data = T::Data;
    const EXIT: bool = true;

    #[inline(always)]
    fn entry(&self, hit: &Hit<'_>) -> Result<Option<T::Data>, Fault> {
        Ok(super::kretprobe::KretprobeHandler::entry(self, hit))
    }

    #[inline(always)]
    fn exit(&self, hit: &Hit<'_>, data: &T::Data) {
        super::kretprobe::KretprobeHandler::ret(self, hit, data)
    }

    /// A kretprobe handler's entry does not fault.
    fn fault(&self, _hit: &Hit<'_>, _fault: &Fault) {}
}

/// What the entry handler leaves on the shadow stack: the handler's data, and the registration
/// it belongs to.
///
/// fprobe knows a probe only by its address: an exit whose entry ran under an earlier
/// registration (since unregistered and freed) runs the handler of whatever fprobe is
/// registered at that address now (`fprobe_return()` checks `fprobe_registered(fp)`, a pointer
/// comparison), with that entry's data, which another module's or a BPF program's fprobe may
/// have written (a `kprobe.session` cookie, say). `generation`, random for each registration,
/// tells such data from this registration's. The test is probabilistic: another word equals it
/// with a chance of 2^-64 (not 0), so `D` is `FromBytes`: a match by chance gives the handler a
/// wrong value, never an invalid one. (No test reaches this: it needs a call that sleeps across
/// an unload and a reload at the same address.)
#[repr(C)]
#[derive(Clone, Copy)]
struct Slot<D> {
    generation: u64,
    data: D,
}

/// Entry data is aligned for `Slot<D>` and fits: fprobe stores it on the fgraph shadow stack, an
/// array of `unsigned long` (`current->ret_stack`), right after a one-`long` header
/// (`fprobe_fgraph_entry()`: `fgraph_data + used + FPROBE_HEADER_SIZE_IN_LONG`, all in longs),
/// and refuses more than `MAX_FPROBE_DATA_SIZE` (15 longs) with `E2BIG`. A `D` with a larger
/// alignment, or too big, is a build error, not a misaligned access or a refusal at load.
struct DataFits<D>(core::marker::PhantomData<D>);

impl<D> DataFits<D> {
    /// `MAX_FPROBE_DATA_SIZE`.
    const MAX: usize = bindings::rk_max_fprobe_data_size as usize;
    const OK: () = assert!(
        align_of::<Slot<D>>() <= align_of::<c_ulong>() && size_of::<Slot<D>>() <= Self::MAX,
        "FprobeHandler::Data must need at most `unsigned long` alignment and 14 longs"
    );
}

/// A registered fprobe on one function, running the handler `T`; unregistered on drop or by
/// [`Fprobe::unregister`], exactly once. Created pinned by [`Fprobe::new`], e.g. with
/// `KBox::pin_init`; registering and unregistering sleep (fprobe's mutex, an RCU grace
/// period): process context only.
///
/// # Invariants
///
/// - `raw` is registered with fprobe from the moment the initializer returns `Ok` until `self`
///   is dropped or unregistered, and only then unregistered, once.
/// - `raw` is the first field of this `#[repr(C)]` struct and `Opaque<fprobe>` is
///   `#[repr(transparent)]`: the `struct fprobe *` fprobe passes to a handler is a pointer to
///   `Self`.
/// - `handler` and `generation` are initialised before `raw` is registered, and never change.
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct Fprobe<T: FprobeHandler> {
    #[pin]
    raw: Opaque<bindings::fprobe>,
    handler: T,
    /// This registration's mark on its entry data ([`Slot`]): the time it was created, which no
    /// earlier registration at this address can have (that one was unregistered, an RCU grace
    /// period and a free before this one was allocated). Unused without an exit
    /// ([`FprobeHandler::EXIT`]): no entry data.
    generation: u64,
}

// SAFETY: Rust reads `raw` only through raw pointers: `nmissed` (an atomic load) and the
// address fprobe resolved (written by the registration before it returns, freed only by the
// unregistration); the symbol pointer is only used during the registration. `handler` is
// `Send + Sync`, and `generation` a plain integer.
unsafe impl<T: FprobeHandler> Send for Fprobe<T> {}
// SAFETY: as above; `&Fprobe` gives access to nothing in `raw` but those reads.
unsafe impl<T: FprobeHandler> Sync for Fprobe<T> {}

impl<T: FprobeHandler> Source for Fprobe<T> {
    type Handler = T;
    fn handler(&self) -> &T {
        &self.handler
    }
    fn nmissed(&self) -> u64 {
        Fprobe::nmissed(self)
    }
    fn unregister(this: Pin<KBox<Self>>) -> Unregistered<T> {
        Fprobe::unregister(this)
    }
}

/// Why `register_fprobe_syms()` refused, in words, for the one error line a module prints.
pub(crate) fn why(e: kernel::error::Error) -> &'static str {
    match e.to_errno().unsigned_abs() {
        bindings::ENOENT => "no such function, or not traceable (notrace, inline) (ENOENT)",
        bindings::EINVAL => "refused by fprobe (EINVAL)",
        bindings::EBUSY => "ftrace is busy or the function is taken (EBUSY)",
        bindings::E2BIG => "entry data too big (E2BIG)",
        bindings::ENOMEM => "out of memory (ENOMEM)",
        _ => "refused by fprobe or ftrace",
    }
}

impl<T: FprobeHandler> Fprobe<T> {
    /// A pin-initializer of an fprobe on the function `symbol` (exactly that name, no glob: one
    /// address) running `handler`. Checks the bindings' layouts first (see `layout`). On error
    /// nothing stays registered, and `handler` is dropped.
    pub(crate) fn new(symbol: &'static CStr, handler: T) -> impl PinInit<Self, Error> {
        let () = DataFits::<T::Data>::OK;
        try_pin_init!(Self {
            handler,
            // SAFETY: takes no argument; callable in any context.
            generation: unsafe { bindings::get_random_u64() },
            // Last: once `raw` is registered, a handler may run, and every other field is
            // initialised by then.
            raw <- compat::opaque_try_ffi_init(move |slot: *mut bindings::fprobe| {
                super::layout::check()?;
                check_layout()?;
                // SAFETY: `slot` is valid for writes: the uninitialised `raw` of `Self`.
                unsafe {
                    slot.write(bindings::fprobe {
                        entry_handler: Some(entry_trampoline::<T>),
                        // No exit handler: fprobe hooks the entry with an `ftrace_ops` of its
                        // own, not the function graph tracer (`fprobe_is_ftrace()`).
                        exit_handler: if T::EXIT {
                            Some(exit_trampoline::<T>)
                        } else {
                            None
                        },
                        entry_data_size: if T::EXIT {
                            size_of::<Slot<T::Data>>()
                        } else {
                            0
                        },
                        ..Default::default()
                    })
                };
                // `register_fprobe_syms()` sorts this array in place, and keeps no pointer to
                // it or to the name once it returns.
                let mut syms = [symbol.as_char_ptr()];
                // INVARIANT: on success `raw` is registered; it stays at `slot` (`Self` is
                // pinned) until `PinnedDrop::drop` or `unregister` unregisters it, which they do
                // before the memory is freed.
                // SAFETY: `*slot` is an initialised, unregistered `struct fprobe` whose handlers
                // are this module's trampolines for `T`, which take the `struct fprobe *` they
                // are given as the `raw` of an `Fprobe<T>`; it is pinned, and `Self`'s memory is
                // only released after it is unregistered (type invariant). `syms` holds one
                // NUL-terminated name, valid during the call.
                to_result(unsafe { bindings::register_fprobe_syms(slot, syms.as_mut_ptr(), 1) })
            }),
        })
    }

    /// The `Fprobe` whose `raw` field is `*fp`.
    ///
    /// # Safety
    ///
    /// `fp` must point to the `raw` field of an `Fprobe<T>` that stays alive for `'a`: as it
    /// does during a call of one of its handlers by fprobe.
    #[inline(always)]
    unsafe fn from_raw<'a>(fp: *mut bindings::fprobe) -> &'a Self {
        // SAFETY: `raw` is the first field of `Self`, at offset 0 of the `#[repr(C)]` struct,
        // and `Opaque<fprobe>` has `fprobe`'s layout (type invariant); `Self` is alive for `'a`
        // (function contract). A shared reference is sound: `raw` is an `Opaque`, which fprobe
        // may write.
        unsafe { &*fp.cast::<Self>() }
    }

    /// The address fprobe hooks: the function's ftrace call site, which fprobe resolved from
    /// the name at registration (`ftrace_location()`) and passes its handlers as `entry_ip`.
    pub(crate) fn addr(&self) -> u64 {
        // SAFETY: `self.raw` is registered (type invariant).
        unsafe { addr_of_registered(self.raw.get()) }
    }

    /// Calls fprobe ran no handler for: no room left on the task's shadow stack for the entry
    /// data (`fgraph_reserve_data()` failed). Read with an atomic load: fprobe increments it
    /// without a lock (`fp->nmissed++`). An entry-only fprobe ([`FprobeHandler::EXIT`] false)
    /// has no shadow stack to run out of: 7.3's `fprobe_ftrace_entry()` counts no miss (a call
    /// that recursed into ftrace is skipped uncounted), so this stays 0.
    pub(crate) fn nmissed(&self) -> u64 {
        // SAFETY: `self.raw` is a valid `fprobe`.
        unsafe { nmissed(self.raw.get()) }
    }

    /// The handler, for reading its state from process context.
    pub(crate) fn handler(&self) -> &T {
        &self.handler
    }

    /// Unregisters the probe, waiting until no handler runs (an RCU grace period: fprobe runs
    /// handlers under `rcu_read_lock_sched`), and hands back what is left.
    pub(crate) fn unregister(this: Pin<KBox<Self>>) -> Unregistered<T> {
        // SAFETY: nothing is moved out of the allocation before `raw` is unregistered, and the
        // allocation is then freed in place: the pinning guarantee is kept.
        let p = KBox::into_raw(unsafe { Pin::into_inner_unchecked(this) });
        // SAFETY: `p` is valid (from `KBox::into_raw`); `Opaque::get` only computes the address.
        let raw = unsafe { (*p).raw.get() };
        // SAFETY: `raw` is registered (type invariant): the address is still there.
        let addr = unsafe { addr_of_registered(raw) };
        // SAFETY: `raw` is registered (type invariant); `Self`'s `PinnedDrop` does not run for
        // `p`, so this is the only unregistration.
        unsafe { unregister(raw) };
        // SAFETY: `raw` is valid, no longer registered.
        let nmissed = unsafe { nmissed(raw) };
        // SAFETY: `handler` is initialised, and is moved out once: the memory is freed below
        // without dropping anything.
        let handler = unsafe { addr_of!((*p).handler).read() };
        // SAFETY: `p` came from `KBox::into_raw`, and `MaybeUninit<Self>` has `Self`'s layout;
        // dropping it frees the memory without dropping a field: the others were dropped or
        // moved out above, and `raw` and `generation` need no drop.
        drop(unsafe { KBox::from_raw(p.cast::<MaybeUninit<Self>>()) });
        Unregistered {
            addr,
            nmissed,
            handler,
        }
    }
}

#[pinned_drop]
impl<T: FprobeHandler> PinnedDrop for Fprobe<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `raw` is registered (type invariant), and this is its only unregistration:
        // `unregister` does not run `drop`.
        unsafe { unregister(self.raw.get()) };
    }
}

/// `struct fprobe` and the arch's `ftrace_regs` as C sizes them (`rk_layout`), against the
/// bindings: one error line and `ENOEXEC` if they disagree.
fn check_layout() -> Result {
    let c = super::layout::c();
    for (name, rust, c) in [
        ("struct fprobe", size_of::<bindings::fprobe>(), c.fprobe),
        (
            "struct __arch_ftrace_regs",
            size_of::<bindings::__arch_ftrace_regs>(),
            c.ftrace_regs,
        ),
    ] {
        if rust != c {
            pr_err!("bindings disagree with C: {name} is {rust} bytes in Rust, {c} in C\n");
            return Err(ENOEXEC);
        }
    }
    Ok(())
}

/// `unregister_fprobe()`: when it returns, no handler of `*fp` runs, and none will.
///
/// # Safety
///
/// `fp` must be registered.
unsafe fn unregister(fp: *mut bindings::fprobe) {
    // SAFETY: `fp` is registered (the caller guarantees it). The result is ignored: the only
    // error is `EINVAL` for an fprobe that is not registered, which `fp` is.
    let _ = unsafe { bindings::unregister_fprobe(fp) };
}

/// The one address of a registered fprobe: `hlist_array->array[0].addr`, set by the
/// registration (`fprobe_init()`: `ftrace_location()` of the name's address) and kept until the
/// unregistration frees the array.
///
/// # Safety
///
/// `fp` must be registered by [`Fprobe::new`] (one address), from process context.
unsafe fn addr_of_registered(fp: *mut bindings::fprobe) -> u64 {
    // SAFETY: a registered fprobe's `hlist_array` points to its array of `size` nodes (1 here:
    // one symbol), which fprobe writes only when registering and unregistering, and frees only
    // when unregistering; the caller holds `fp` registered. No reference to a field is made.
    unsafe {
        let ha = addr_of!((*fp).hlist_array).read();
        let node = addr_of!((*ha).array).cast::<bindings::fprobe_hlist_node>();
        addr_of!((*node).addr).read() as u64
    }
}

/// The missed count of `*fp`.
///
/// # Safety
///
/// `fp` must point to a valid `struct fprobe`.
unsafe fn nmissed(fp: *mut bindings::fprobe) -> u64 {
    // SAFETY: `fp` is valid (the caller guarantees it), so its `unsigned long nmissed` is an
    // aligned, live word; fprobe increments it concurrently without a lock, hence an atomic
    // load, and no reference to the field.
    let n = unsafe { AtomicUsize::from_ptr(addr_of_mut!((*fp).nmissed)) };
    n.load(Ordering::Relaxed) as u64
}

/// The `entry_handler` of an `Fprobe<T>`. In `.kprobes.text` (as C's `__kprobes` places a
/// function), as the kretprobe's trampolines are: the kprobe core refuses to probe it while it
/// is loaded. (Rust functions get no ftrace call site, so no fprobe can hook it either.)
///
/// # Safety
///
/// Only fprobe may call this, for a probe created by `Fprobe::<T>::new`.
#[link_section = ".kprobes.text"]
unsafe extern "C" fn entry_trampoline<T: FprobeHandler>(
    fp: *mut bindings::fprobe,
    entry_ip: c_ulong,
    _ret_ip: c_ulong,
    fregs: *mut bindings::ftrace_regs,
    entry_data: *mut c_void,
) -> c_int {
    // SAFETY: fprobe calls this with the registered `struct fprobe` of an `Fprobe<T>`, which
    // outlives the call (unregistration waits for running handlers: an RCU grace period).
    let probe = unsafe { Fprobe::<T>::from_raw(fp) };
    let hit = Hit {
        addr: entry_ip as u64,
        // SAFETY: `fregs` is this entry's `ftrace_regs`, valid during the call.
        regs: Regs::new(unsafe { FtraceEntry::from_raw(fregs) }),
        entry: true,
    };
    if !T::EXIT {
        // Entry only: no data reserved (`entry_data` is NULL), nothing to keep, and fprobe's
        // `ftrace_ops` path ignores the return value.
        if let Err(fault) = probe.handler.entry(&hit) {
            probe.handler.fault(&hit, &fault);
        }
        return 0;
    }
    match probe.handler.entry(&hit) {
        Ok(Some(data)) => {
            let () = DataFits::<T::Data>::OK;
            // SAFETY: with an exit handler and `entry_data_size` > 0 (both set by `new`),
            // fprobe passes `entry_data` pointing to `entry_data_size` bytes (rounded up to
            // longs) of shadow stack reserved for this call, `unsigned long`-aligned
            // (`DataFits`), and nothing else writes them before the exit.
            unsafe {
                entry_data.cast::<Slot<T::Data>>().write(Slot {
                    generation: probe.generation,
                    data,
                })
            };
            0
        }
        // Non-zero: fprobe keeps nothing for this call and runs no exit handler.
        Ok(None) => 1,
        Err(fault) => {
            probe.handler.fault(&hit, &fault);
            1
        }
    }
}

/// The `exit_handler` of an `Fprobe<T>`; in `.kprobes.text`, as [`entry_trampoline`].
///
/// # Safety
///
/// Only fprobe may call this, for a probe created by `Fprobe::<T>::new`.
#[link_section = ".kprobes.text"]
unsafe extern "C" fn exit_trampoline<T: FprobeHandler>(
    fp: *mut bindings::fprobe,
    entry_ip: c_ulong,
    _ret_ip: c_ulong,
    fregs: *mut bindings::ftrace_regs,
    entry_data: *mut c_void,
) {
    // SAFETY: as in `entry_trampoline`, for this exit.
    let probe = unsafe { Fprobe::<T>::from_raw(fp) };
    let slot = entry_data.cast::<Slot<T::Data>>();
    // fprobe passes the data its entry reserved (NULL if that entry's probe asked for none:
    // not one of ours). It runs the exit of whatever fprobe is registered at `fp` now, so the
    // data may be an earlier registration's: this one's generation is what tells (`Slot`).
    // SAFETY: a non-NULL `entry_data` points to the entry's reservation, at least one
    // `unsigned long`, aligned (`DataFits`), written by that entry and unchanged since; the
    // generation is read alone, as a `u64`, valid for any bits.
    if slot.is_null() || unsafe { addr_of!((*slot).generation).read() } != probe.generation {
        return;
    }
    // SAFETY: this registration's generation: `entry_trampoline` of this `Fprobe<T>` wrote a
    // whole `Slot<T::Data>` there, aligned (`DataFits`). The one exception, with a chance of
    // 2^-64 (see `Slot`), is another fprobe's data at a reused address holding the same word;
    // then this reads words of the task's shadow stack past that reservation, an array fgraph
    // allocates whole, and any bits are a `T::Data` (`FromBytes`). C's fprobe users read their
    // entry data after the same pointer test alone.
    let data = unsafe { addr_of!((*slot).data).read() };
    let hit = Hit {
        addr: entry_ip as u64,
        // SAFETY: `fregs` is this exit's `ftrace_regs`, valid during the call.
        regs: Regs::new(unsafe { FtraceExit::from_raw(fregs) }),
        entry: false,
    };
    probe.handler.exit(&hit, &data);
}
