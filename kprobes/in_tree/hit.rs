// SPDX-License-Identifier: GPL-2.0

//! What every probe kind gives its handlers: the [`Hit`] being handled, and the [`Fault`] a
//! handler reports when a read of probed memory fails.

use super::arch::Regs;

/// What a handler is given at one hit.
pub(crate) struct Hit<'a> {
    /// Address of the probe (the probed instruction).
    pub(crate) addr: u64,
    /// Registers at the hit.
    pub(crate) regs: Regs<'a>,
    /// Whether the probe is on the function's entry, as the kprobe core decided it
    /// (`KPROBE_FLAG_ON_FUNC_ENTRY`): offset 0, or whatever the architecture takes as the entry
    /// (x86 with IBT: offset 0 and 4 are both the instruction after `endbr64`). Only there are
    /// the arguments in their registers ([`Regs::arg`]).
    pub(crate) entry: bool,
}

/// A read of probed memory that faulted (the modern meaning of the pre-5.14 `fault_handler`).
pub(crate) struct Fault {
    /// What was being read, for the log line.
    pub(crate) what: &'static str,
    /// The address that could not be read.
    pub(crate) addr: usize,
    /// The errno of the nofault copy.
    pub(crate) errno: i32,
}

impl Hit<'_> {
    /// Copies `buf.len()` bytes at kernel address `src` with `copy_from_kernel_nofault()`; a
    /// fault becomes a [`Fault`] naming `what`, which the layer hands to the handler's `fault`
    /// (e.g. [`KprobeHandler::fault`](super::kprobe::KprobeHandler::fault)) when its entry
    /// handler returns it.
    pub(crate) fn read(
        &self,
        what: &'static str,
        src: *const u8,
        buf: &mut [u8],
    ) -> Result<(), Fault> {
        super::read_kernel(src, buf).map_err(|errno| Fault {
            what,
            addr: src as usize,
            errno,
        })
    }
}
