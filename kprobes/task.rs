// SPDX-License-Identifier: GPL-2.0

//! The task a handler runs in (`current`), read without locks.
//!
//! C header: [`include/linux/sched.h`](srctree/include/linux/sched.h)

use super::{cpu, layout};

/// What a handler needs of `current` on every hit: two loads. The name is read only when asked
/// for ([`Current::comm`]): a comm filter or a line to print.
pub(crate) struct Current {
    /// `task_pid_nr(current)`.
    pub(crate) pid: i32,
    /// A kernel thread (no `mm`).
    pub(crate) kthread: bool,
}

/// Reads `current` (handlers only: the task cannot exit under them).
#[inline]
pub(crate) fn current() -> Current {
    let task = cpu::current_task().cast::<u8>();
    // SAFETY: `current` is a live task for the whole handler; the offsets are C's own (see
    // `layout`), of an `int` and a pointer. Neither changes under the running task: `pid` is
    // set at fork, `mm` only by the task itself (exec, `kthread_use_mm()`).
    let (pid, mm) = unsafe {
        (
            task.add(layout::TASK_PID).cast::<i32>().read(),
            task.add(layout::TASK_MM).cast::<*const u8>().read(),
        )
    };
    Current {
        pid,
        kthread: mm.is_null(),
    }
}

impl Current {
    /// `current->comm`.
    #[inline]
    pub(crate) fn comm(&self) -> Comm {
        current_comm()
    }

    /// Whether `current->comm` is `name`. Out of line, so that a handler that only filters by
    /// name keeps its common path free of the copy and compare.
    #[inline(never)]
    pub(crate) fn comm_is(&self, name: &[u8]) -> bool {
        current_comm().as_bytes() == name
    }
}

/// Out of line: only a comm filter or a printed line needs the name, and its 16-byte copy
/// inlined would cost every hit register spills.
#[inline(never)]
fn current_comm() -> Comm {
    let task = cpu::current_task().cast::<u8>();
    // SAFETY: `current` is live for the whole handler and `task_comm` is C's offset of its
    // `char comm[TASK_COMM_LEN]` (16 bytes, no alignment). The name may be rewritten concurrently
    // (`prctl(PR_SET_NAME)`), hence a volatile read, as tracing copies it without `task_lock()`
    // in atomic context: a torn name is possible, an unterminated one is not.
    let mut comm =
        unsafe { core::ptr::read_volatile(task.add(layout::TASK_COMM).cast::<[u8; 16]>()) };
    comm[15] = 0;
    Comm(comm)
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
