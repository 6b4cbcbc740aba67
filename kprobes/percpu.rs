// SPDX-License-Identifier: GPL-2.0

//! Per-CPU counters: `N` `u64`s per CPU, updated without locks or atomic RMW on the hot path.

use super::{arch, bindings};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::prelude::*;

/// `N` counters per possible CPU (`alloc_percpu`, zeroed).
pub(crate) struct PerCpu<const N: usize> {
    ptr: *mut core::ffi::c_void,
}

// SAFETY: the per-CPU area is only accessed through `AtomicU64`s.
unsafe impl<const N: usize> Send for PerCpu<N> {}
// SAFETY: as above.
unsafe impl<const N: usize> Sync for PerCpu<N> {}

impl<const N: usize> PerCpu<N> {
    /// Allocates zeroed counters for every possible CPU (process context).
    pub(crate) fn new() -> Result<Self> {
        let size = core::mem::size_of::<[AtomicU64; N]>();
        // SAFETY: plain allocation; the result is checked for NULL.
        let ptr = unsafe { bindings::rk_alloc_percpu(size, core::mem::align_of::<AtomicU64>()) };
        if ptr.is_null() {
            return Err(ENOMEM);
        }
        Ok(Self { ptr })
    }

    /// This CPU's counters (`this_cpu_ptr()`). Handlers run with preemption disabled, so the
    /// slot is this CPU's for the whole handler; were the task migrated, the slot would still be
    /// valid memory.
    #[inline]
    pub(crate) fn this_cpu(&self) -> Slot<'_, N> {
        let slot = self.ptr.wrapping_byte_add(arch::this_cpu_offset());
        // SAFETY: `ptr` is a live per-CPU allocation of `[AtomicU64; N]` and the offset is a
        // possible CPU's, so `slot` is that CPU's copy; zeroed memory is a valid `AtomicU64`.
        Slot(unsafe { &*slot.cast::<[AtomicU64; N]>() })
    }

    /// Counter `i` of every possible CPU.
    pub(crate) fn each(&self, i: usize) -> impl Iterator<Item = u64> + '_ {
        // SAFETY: reading a kernel variable.
        let n = unsafe { bindings::rk_nr_cpu_ids() };
        (0..n)
            // SAFETY: `cpu < nr_cpu_ids`.
            .filter(|&cpu| unsafe { bindings::rk_cpu_possible(cpu) })
            .map(move |cpu| {
                // SAFETY: as in `this_cpu`, for a possible CPU's slot.
                let slot =
                    unsafe { &*bindings::rk_per_cpu_ptr(self.ptr, cpu).cast::<[AtomicU64; N]>() };
                slot[i].load(Relaxed)
            })
    }

    /// The largest counter `i` over all CPUs.
    pub(crate) fn max_all(&self, i: usize) -> u64 {
        self.each(i).max().unwrap_or(0)
    }

    /// Counter `i` summed over all CPUs.
    pub(crate) fn sum(&self, i: usize) -> u64 {
        self.each(i).fold(0, u64::wrapping_add)
    }
}

/// One CPU's counters. Updates are a plain load and store: handlers of one probe do not nest on
/// a CPU (the kprobe core counts such a hit as missed instead).
pub(crate) struct Slot<'a, const N: usize>(&'a [AtomicU64; N]);

impl<const N: usize> Slot<'_, N> {
    /// Adds `v` to counter `i`.
    #[inline]
    pub(crate) fn add(&self, i: usize, v: u64) {
        let c = &self.0[i];
        c.store(c.load(Relaxed).wrapping_add(v), Relaxed);
    }

    /// Raises counter `i` to `v` if `v` is larger (for maxima; `!v` for minima).
    #[inline]
    pub(crate) fn max(&self, i: usize, v: u64) {
        let c = &self.0[i];
        if v > c.load(Relaxed) {
            c.store(v, Relaxed);
        }
    }

    /// Sets counter `i`.
    #[inline]
    pub(crate) fn set(&self, i: usize, v: u64) {
        self.0[i].store(v, Relaxed);
    }

    /// Reads counter `i` and sets it to 0.
    #[inline]
    pub(crate) fn take(&self, i: usize) -> u64 {
        let v = self.0[i].load(Relaxed);
        if v != 0 {
            self.0[i].store(0, Relaxed);
        }
        v
    }
}

impl<const N: usize> Drop for PerCpu<N> {
    fn drop(&mut self) {
        // SAFETY: allocated by `__alloc_percpu`, freed once; no handler uses it any more (the
        // probe owning it is unregistered before its handler is dropped).
        unsafe { bindings::free_percpu(self.ptr) };
    }
}
