// SPDX-License-Identifier: GPL-2.0

//! The task a handler runs in (`current`), read without locks.

use super::bindings;

/// What a handler needs of `current` on every hit: one call into helpers.c. The name is read
/// only when asked for ([`Current::comm`]): a comm filter or a line to print.
pub(crate) struct Current {
    /// `task_pid_nr(current)`.
    pub(crate) pid: i32,
    /// A kernel thread (no `mm`).
    pub(crate) kthread: bool,
}

/// Reads `current`.
#[inline]
pub(crate) fn current() -> Current {
    let mut kthread = false;
    // SAFETY: `kthread` is a valid bool; `current` is always valid in a handler.
    let pid = unsafe { bindings::rk_current_task(&mut kthread) };
    Current { pid, kthread }
}

impl Current {
    /// `current->comm`.
    pub(crate) fn comm(&self) -> Comm {
        let mut comm = [0u8; 16];
        // SAFETY: `comm` is the 16-byte buffer the shim fills.
        unsafe { bindings::rk_current_comm(comm.as_mut_ptr()) };
        Comm(comm)
    }
}

/// A task name (`TASK_COMM_LEN` bytes, NUL-terminated).
#[derive(Clone, Copy)]
pub(crate) struct Comm([u8; 16]);

impl Comm {
    /// The name's bytes, up to its NUL.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        let n = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        &self.0[..n]
    }
}

impl core::fmt::Display for Comm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = self.as_bytes();
        match core::str::from_utf8(b) {
            Ok(s) if b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') => f.write_str(s),
            _ => b.iter().try_for_each(|&c| {
                let c = if c.is_ascii_graphic() { c as char } else { '?' };
                core::fmt::Write::write_char(f, c)
            }),
        }
    }
}
