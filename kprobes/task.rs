// SPDX-License-Identifier: GPL-2.0

//! The task a handler runs in (`current`), read without locks.

use super::bindings;

/// `current`'s pid, as `task_pid_nr(current)`.
pub(crate) fn pid() -> i32 {
    // SAFETY: reads `current`, always valid in a handler.
    unsafe { bindings::rk_current_pid() }
}

/// Whether `current` is a kernel thread (no `mm`).
pub(crate) fn is_kthread() -> bool {
    // SAFETY: reads `current`, always valid in a handler.
    unsafe { bindings::rk_current_is_kthread() }
}

/// A task name (`TASK_COMM_LEN` bytes, NUL-terminated).
#[derive(Clone, Copy)]
pub(crate) struct Comm([u8; 16]);

impl Comm {
    /// `current->comm`.
    pub(crate) fn current() -> Self {
        let mut c = [0u8; 16];
        // SAFETY: `c` is the 16-byte buffer the shim fills.
        unsafe { bindings::rk_current_comm(c.as_mut_ptr()) };
        Comm(c)
    }

    /// The name's bytes, up to its NUL.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        let n = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        &self.0[..n]
    }
}

impl core::fmt::Display for Comm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.as_bytes() {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            };
            core::fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}
