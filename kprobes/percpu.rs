// SPDX-License-Identifier: GPL-2.0

//! Per-CPU data for handlers: a typed struct per possible CPU, updated without locks or atomic
//! read-modify-writes on the hot path.
//!
//! C header: [`include/linux/percpu.h`](srctree/include/linux/percpu.h)

use super::{bindings, compat::Zeroable, cpu};
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use kernel::prelude::*;

/// One `T` per possible CPU (`alloc_percpu()`, zeroed), freed on drop.
///
/// `T` is typically a struct of [`Counter`]s, one per event a handler counts, written by the
/// handlers of one CPU and summed over all CPUs by readers.
///
/// # Invariants
///
/// `ptr` is a per-CPU allocation (`__alloc_percpu()`) of a zeroed `T` for every possible CPU,
/// owned by `self`.
///
/// # Examples
///
/// Counting binds to port 80 per CPU, and summing them (`kprobes/example_kprobe.rs`, compiled by
/// the modules):
///
#[doc = concat!("```ignore\n", include_str!("example_kprobe.rs"), "```")]
pub(crate) struct PerCpu<T: Zeroable + Sync> {
    ptr: *mut core::ffi::c_void,
    _t: PhantomData<T>,
}

// SAFETY: `PerCpu<T>` owns its `T`s; `T: Sync`, and every access to them is through `&T`.
unsafe impl<T: Zeroable + Sync> Send for PerCpu<T> {}
// SAFETY: as above.
unsafe impl<T: Zeroable + Sync> Sync for PerCpu<T> {}

impl<T: Zeroable + Sync> PerCpu<T> {
    /// Allocates a zeroed `T` for every possible CPU (process context; may sleep).
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: a plain allocation; the result is checked for NULL.
        let ptr = unsafe {
            bindings::rk_alloc_percpu(core::mem::size_of::<T>(), core::mem::align_of::<T>())
        };
        if ptr.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: `__alloc_percpu()` zeroes the memory it returns.
        Ok(Self {
            ptr,
            _t: PhantomData,
        })
    }

    /// This CPU's `T` (`this_cpu_ptr()`). For handlers, which run with preemption disabled, so
    /// that the `T` is this CPU's for the whole handler; were the caller migrated, it would
    /// still be valid memory, another CPU's.
    #[inline(always)]
    pub(crate) fn this_cpu(&self) -> &T {
        let p = self.ptr.wrapping_byte_add(cpu::this_cpu_offset());
        // SAFETY: `self.ptr` is a live per-CPU allocation of `T` (type invariant), and adding
        // this CPU's per-CPU offset gives its copy, which lives as long as `self`; a zeroed `T`
        // is a valid `T` (`T: Zeroable`), and it is only shared (`T: Sync`).
        unsafe { &*p.cast::<T>() }
    }

    /// The `T` of every possible CPU.
    pub(crate) fn each(&self) -> impl Iterator<Item = &T> + '_ {
        // SAFETY: reads `nr_cpu_ids`, which is set during boot, before modules are loaded, and
        // not written after.
        let n = unsafe { bindings::rk_nr_cpu_ids() };
        (0..n)
            // SAFETY: `cpu < nr_cpu_ids`, as `cpu_possible()` requires.
            .filter(|&cpu| unsafe { bindings::rk_cpu_possible(cpu) })
            .map(move |cpu| {
                // SAFETY: `cpu` is a possible CPU, so `per_cpu_ptr()` gives its copy of the
                // allocation (type invariant), valid as in `this_cpu`.
                unsafe { &*bindings::rk_per_cpu_ptr(self.ptr, cpu).cast::<T>() }
            })
    }

    /// The counter `field` picks, summed over all CPUs (wrapping, as the counters do).
    pub(crate) fn sum(&self, field: impl Fn(&T) -> &Counter) -> u64 {
        self.each()
            .map(|t| field(t).get())
            .fold(0, u64::wrapping_add)
    }

    /// The largest value of the counter `field` picks over all CPUs.
    pub(crate) fn max(&self, field: impl Fn(&T) -> &Counter) -> u64 {
        self.each().map(|t| field(t).get()).max().unwrap_or(0)
    }
}

impl<T: Zeroable + Sync> Drop for PerCpu<T> {
    fn drop(&mut self) {
        // SAFETY: `self.ptr` was allocated by `__alloc_percpu()` (type invariant) and is freed
        // once, here; no reference to it is left: the handlers that use it belong to a probe that
        // is unregistered before its handler, which owns `self`, is dropped.
        unsafe { bindings::free_percpu(self.ptr) };
    }
}

/// A per-CPU event counter.
///
/// Updates are a plain load and store, not an atomic read-modify-write: only the handlers of
/// one CPU update its counter, and a kprobe's or kretprobe's handlers do not nest on a CPU (the
/// kprobe core counts such a hit as missed instead). An fprobe's can, once per context level
/// (task, softirq, irq, NMI: fgraph's recursion guard is per level): an update interrupted
/// between its load and its store by the same probe's handler in a higher level loses that
/// handler's update. So a count can come out short for a function called in several contexts;
/// nothing worse (the counter is an atomic, only its update is not). Readers on other CPUs may
/// see a value one update old.
#[repr(transparent)]
pub(crate) struct Counter(AtomicU64);

// SAFETY: an all-zero `AtomicU64` is 0.
unsafe impl Zeroable for Counter {}

impl Counter {
    /// Adds `v` (wrapping).
    #[inline(always)]
    pub(crate) fn add(&self, v: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(v), Relaxed);
    }

    /// Raises the counter to `v` if `v` is larger (a maximum; `!v` keeps a minimum in a counter
    /// that starts at 0).
    #[inline(always)]
    pub(crate) fn raise_to(&self, v: u64) {
        if v > self.0.load(Relaxed) {
            self.0.store(v, Relaxed);
        }
    }

    /// The current value.
    #[inline(always)]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A per-CPU flag, for state one handler leaves for the next on the same CPU (a pre handler for
/// its post handler); updated as [`Counter`]s are.
#[repr(transparent)]
pub(crate) struct Flag(AtomicBool);

// SAFETY: an all-zero `AtomicBool` is `false`.
unsafe impl Zeroable for Flag {}

impl Flag {
    /// Sets the flag.
    #[inline(always)]
    pub(crate) fn set(&self) {
        self.0.store(true, Relaxed);
    }

    /// Whether the flag was set; clears it.
    #[inline(always)]
    pub(crate) fn take(&self) -> bool {
        let v = self.0.load(Relaxed);
        if v {
            self.0.store(false, Relaxed);
        }
        v
    }
}
