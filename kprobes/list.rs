// SPDX-License-Identifier: GPL-2.0

//! A probe as `/sys/kernel/debug/kprobes/list` names it, for the modules' planted lines: its
//! address as `symbol+offset` ([`SymbolOffset`]) and the path the kprobe core put it on
//! ([`PathTag`]).

use super::bindings;
use super::kprobe::{Kprobe, KprobeHandler};
use kernel::ffi::c_ulong;

/// `symbol+offset` of a kernel text address, as `/sys/kernel/debug/kprobes/list` names it:
/// what `sprint_symbol()` writes, without its `/size` and ` [module]`. For init-time lines:
/// it is `KSYM_SYMBOL_LEN` bytes on the stack.
pub(crate) struct SymbolOffset {
    buf: [u8; bindings::rk_ksym_symbol_len as usize],
    len: usize,
}

impl SymbolOffset {
    /// Looks `addr` up in kallsyms (a search of the symbol tables: for init and exit, not for
    /// handlers).
    pub(crate) fn of(addr: u64) -> Self {
        let mut s = Self {
            buf: [0; bindings::rk_ksym_symbol_len as usize],
            len: 0,
        };
        // SAFETY: `buf` is `KSYM_SYMBOL_LEN` bytes, the most `sprint_symbol()` writes (its
        // contract), and `addr` is only looked up, never dereferenced.
        let n = unsafe { bindings::sprint_symbol(s.buf.as_mut_ptr().cast(), addr as c_ulong) };
        let n = usize::try_from(n).unwrap_or(0).min(s.buf.len());
        s.len = s.buf[..n]
            .iter()
            .position(|&b| b == b'/' || b == b' ')
            .unwrap_or(n);
        s
    }

    /// The name, e.g. `inet_bind+0x4` (the address in hex when kallsyms has no symbol there).
    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

/// What `/sys/kernel/debug/kprobes/list` appends for a probe's path.
pub(crate) trait PathTag {
    /// `[FTRACE]` for an ftrace-based probe, `[OPTIMIZED]` once the optimizer turned it into a
    /// jump, else nothing (a breakpoint); with its leading space.
    fn path_tag(&self) -> &'static str;
}

impl<T: KprobeHandler> PathTag for Kprobe<T> {
    fn path_tag(&self) -> &'static str {
        let f = self.flags();
        if f & bindings::KPROBE_FLAG_FTRACE != 0 {
            " [FTRACE]"
        } else if f & bindings::KPROBE_FLAG_OPTIMIZED != 0 {
            " [OPTIMIZED]"
        } else {
            ""
        }
    }
}
