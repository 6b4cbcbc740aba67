// SPDX-License-Identifier: GPL-2.0

//! Read-only debugfs files showing a probe's live state (`/sys/kernel/debug/<dir>/<file>`).
//! They are [`Published`] with the probe, and removed before it is unregistered, so a reader
//! never sees a freed handler.
//!
//! C headers: [`include/linux/debugfs.h`](srctree/include/linux/debugfs.h),
//! [`include/linux/seq_file.h`](srctree/include/linux/seq_file.h)

use super::bindings;
use super::probe::{Probe, RawProbe, Unregistered};
use core::fmt;
use kernel::prelude::*;

/// Writes into the `seq_file` of one read.
///
/// # Invariants
///
/// The pointer is the `seq_file` of a show in progress (only `show_trampoline` creates one, and
/// the writer does not outlive the call).
pub(crate) struct SeqWriter(*mut bindings::seq_file);

impl fmt::Write for SeqWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: `self.0` is the `seq_file` of the show in progress (type invariant); `s` is
        // valid for reads of its length. On overflow seq_file retries the whole show with a bigger buffer.
        unsafe { bindings::seq_write(self.0, s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}

/// A registered probe of any kind, as its files show it: its handler and the core's missed
/// count; and how it is unregistered, which [`Published`] does once its files are gone.
pub(crate) trait Source: Sized + Sync {
    /// The handler whose state the files show.
    type Handler;
    /// The handler.
    fn handler(&self) -> &Self::Handler;
    /// The core's missed count of the probe.
    fn nmissed(&self) -> u64;
    /// Unregisters the probe, waiting until no handler runs, and hands back what is left.
    fn unregister(this: Pin<KBox<Self>>) -> Unregistered<Self::Handler>;
}

impl<R: RawProbe, T: Send + Sync> Source for Probe<R, T> {
    type Handler = T;
    fn handler(&self) -> &T {
        Probe::handler(self)
    }
    fn nmissed(&self) -> u64 {
        Probe::nmissed(self)
    }
    fn unregister(this: Pin<KBox<Self>>) -> Unregistered<T> {
        Probe::unregister(this)
    }
}

/// A registered probe and the debugfs files that show it: the files are removed before the
/// probe is unregistered (on drop, or by [`Published::unregister`]), so a reader never sees a
/// freed handler.
///
/// # Invariants
///
/// `files`, when `Some`, shows `*probe`, which is pinned: it stays at its address until `files`
/// is dropped (first: the fields' order).
pub(crate) struct Published<P: Source> {
    files: Option<Debugfs<P>>,
    probe: Pin<KBox<P>>,
}

impl<P: Source> Published<P> {
    /// `probe`, with no files yet.
    pub(crate) fn new(probe: Pin<KBox<P>>) -> Self {
        Self { files: None, probe }
    }

    /// Shows the handler's state in `/sys/kernel/debug/<dir>/`, one file per `(name, show)`,
    /// until the probe is unregistered. Without debugfs this is an error the caller may ignore.
    pub(crate) fn publish(
        &mut self,
        dir: &CStr,
        files: &[(&'static CStr, ShowFn<P::Handler>)],
    ) -> Result {
        self.files = None;
        let src: *const P = &*self.probe;
        // INVARIANT: the files show `*self.probe`.
        // SAFETY: `*src` is pinned and outlives the files, which are dropped first (type
        // invariant).
        self.files = Some(unsafe { Debugfs::new(dir, files, src) }?);
        Ok(())
    }

    /// Removes the files, then unregisters the probe, and hands back what is left.
    pub(crate) fn unregister(self) -> Unregistered<P::Handler> {
        let Self { files, probe } = self;
        drop(files);
        P::unregister(probe)
    }
}

impl<P: Source> core::ops::Deref for Published<P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.probe
    }
}

/// Prints one file: `(handler, missed, out)`.
pub(crate) type ShowFn<H> = fn(&H, u64, &mut SeqWriter) -> fmt::Result;

/// One file: what helpers.c's `single_open()` shim is given, and what it passes back.
#[repr(C)]
struct Entry<S: Source> {
    /// First field: the C side is given `&show` and passes `show.data` back.
    show: bindings::rk_show,
    f: ShowFn<S::Handler>,
    src: *const S,
}

/// A debugfs directory and its files, removed on drop.
///
/// # Invariants
///
/// `dir` is a directory created by `debugfs_create_dir()`, owned by `self`; each file in it was
/// given an element of `entries`, which is not reallocated or moved until `dir` is removed.
struct Debugfs<S: Source> {
    dir: *mut bindings::dentry,
    entries: KVec<Entry<S>>,
}

// SAFETY: `dir` is only used to remove it, which may be done from any thread; the entries'
// `src` pointers are only dereferenced by debugfs readers, as `&S`, and `Debugfs::new`'s caller
// guarantees they stay valid.
unsafe impl<S: Source> Send for Debugfs<S> {}
// SAFETY: as above.
unsafe impl<S: Source> Sync for Debugfs<S> {}

/// `IS_ERR_OR_NULL()`.
fn is_err(p: *mut bindings::dentry) -> bool {
    p.is_null() || (p as usize) >= (-4095isize) as usize
}

impl<S: Source> Debugfs<S> {
    /// Creates `dir` with `files`, each shown from `*src`.
    ///
    /// # Safety
    ///
    /// `src` must stay valid, at the same address, until the returned value is dropped.
    unsafe fn new(
        dir: &CStr,
        files: &[(&'static CStr, ShowFn<S::Handler>)],
        src: *const S,
    ) -> Result<Self> {
        let mut entries = KVec::with_capacity(files.len(), GFP_KERNEL)?;
        for &(_, f) in files {
            // Capacity reserved above: no reallocation, so entry addresses stay fixed.
            entries.push(
                Entry {
                    show: bindings::rk_show::default(),
                    f,
                    src,
                },
                GFP_KERNEL,
            )?;
        }
        // SAFETY: `dir` is NUL-terminated; NULL parent is the debugfs root.
        let d = unsafe { bindings::debugfs_create_dir(dir.as_char_ptr(), core::ptr::null_mut()) };
        if is_err(d) {
            return Err(ENODEV);
        }
        // INVARIANT: `d` is a directory just created; `entries` is not grown from here on.
        let mut this = Self { dir: d, entries };
        for (e, &(name, _)) in this.entries.iter_mut().zip(files) {
            e.show.show = Some(show_trampoline::<S>);
            e.show.data = core::ptr::from_mut::<Entry<S>>(e).cast();
            // SAFETY: `e` lives in `entries`, at a fixed address until `this` is dropped,
            // which removes the file first. A failed file is left out, debugfs-style.
            unsafe { bindings::rk_debugfs_create_show(name.as_char_ptr(), d, &mut e.show) };
        }
        Ok(this)
    }
}

impl<S: Source> Drop for Debugfs<S> {
    fn drop(&mut self) {
        // SAFETY: `dir` was created by `debugfs_create_dir()` and is removed once, here
        // (type invariant); `debugfs_remove()` waits for the readers in progress, so no show
        // runs on the entries once it returns.
        unsafe { bindings::debugfs_remove(self.dir) };
    }
}

/// # Safety
///
/// Called by helpers.c only, with the `data` of an `Entry<S>` that is still alive.
unsafe extern "C" fn show_trampoline<S: Source>(
    m: *mut bindings::seq_file,
    data: *mut core::ffi::c_void,
) -> kernel::ffi::c_int {
    // SAFETY: `data` is the `Entry<S>` this file was created with, alive until removal.
    let e = unsafe { &*data.cast::<Entry<S>>() };
    // SAFETY: `src` outlives the files, per `Debugfs::new`'s contract.
    let src = unsafe { &*e.src };
    // INVARIANT: `m` is the `seq_file` of this show, and the writer is dropped at its end.
    let _ = (e.f)(src.handler(), src.nmissed(), &mut SeqWriter(m));
    0
}
