// SPDX-License-Identifier: GPL-2.0

//! Read-only debugfs files showing a probe's live state (`/sys/kernel/debug/<dir>/<file>`).
//! They belong to the probe and are removed before it is unregistered, so a reader never sees
//! a freed handler.
//!
//! C headers: [`include/linux/debugfs.h`](srctree/include/linux/debugfs.h),
//! [`include/linux/seq_file.h`](srctree/include/linux/seq_file.h)

use super::bindings;
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

/// What a probe shows (its handler and the core's missed count), and where it keeps its files.
///
/// # Safety
///
/// The slot [`Source::debugfs`] returns is not structurally pinned, and the implementer drops
/// what is in it before the handler stops being valid to show: before the probe is
/// unregistered, and before its memory is freed.
pub(crate) unsafe trait Source: Sized {
    /// The handler whose state the files show.
    type Handler;
    /// The handler.
    fn handler(&self) -> &Self::Handler;
    /// The core's missed count of the probe.
    fn nmissed(&self) -> u64;
    /// Where the probe keeps its files.
    fn debugfs(&mut self) -> &mut Option<Debugfs<Self>>;

    /// Shows the handler's state in `/sys/kernel/debug/<dir>/`, one file per `(name, show)`,
    /// until the probe is unregistered. Without debugfs this is an error the caller may ignore.
    fn publish(
        self: Pin<&mut Self>,
        dir: &CStr,
        files: &[(&'static CStr, ShowFn<Self::Handler>)],
    ) -> Result {
        let src: *const Self = &*self;
        // SAFETY: the files' slot is not structurally pinned (trait contract): it is only
        // assigned here, nothing is moved out of the pinned value.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `*src` is pinned and outlives what is put in the slot, which the implementer
        // drops before the handler stops being valid (trait contract).
        *this.debugfs() = Some(unsafe { Debugfs::new(dir, files, src) }?);
        Ok(())
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
pub(crate) struct Debugfs<S: Source> {
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
    pub(crate) unsafe fn new(
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
