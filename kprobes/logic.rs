// SPDX-License-Identifier: GPL-2.0

//! The modules' plain Rust logic: no kernel calls, only `core`, so the same file is compiled
//! into the modules and unit-tested on the host (`logic/`, `cargo test`).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// `AF_UNSPEC`, `AF_INET`, `AF_INET6` (`include/linux/socket.h`).
pub(crate) const AF_UNSPEC: u16 = 0;
pub(crate) const AF_INET: u16 = 2;
pub(crate) const AF_INET6: u16 = 10;
/// `sizeof(struct sockaddr_in)`, and the shortest `sockaddr_in6` `inet6_bind` accepts.
pub(crate) const SOCKADDR_IN_LEN: usize = 16;
pub(crate) const SIN6_LEN_RFC2133: usize = 24;
/// The most a handler copies of a bind address: a full `sockaddr_in6`.
pub(crate) const SOCKADDR_MAX: usize = 28;

/// What a socket address holds, decoded from the bytes the caller passed (`addr_len` of them).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Sockaddr {
    /// AF_INET (or AF_UNSPEC with INADDR_ANY, which `inet_bind` takes as AF_INET).
    Inet { addr: [u8; 4], port: u16 },
    /// AF_INET6.
    Inet6 { addr: [u8; 16], port: u16 },
    /// `addr_len` too short for the family's port (the kernel refuses such an address).
    TooShort { family: Option<u16>, len: usize },
    /// A family with no port.
    Other { family: u16 },
}

impl Sockaddr {
    /// Decodes the first `min(addr_len, SOCKADDR_MAX)` bytes of a socket address.
    #[inline]
    pub(crate) fn decode(bytes: &[u8]) -> Sockaddr {
        let len = bytes.len();
        if len < 2 {
            return Sockaddr::TooShort { family: None, len };
        }
        let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
        let port = || u16::from_be_bytes([bytes[2], bytes[3]]);
        let v4 = || [bytes[4], bytes[5], bytes[6], bytes[7]];
        match family {
            AF_INET | AF_UNSPEC if len < SOCKADDR_IN_LEN => Sockaddr::TooShort {
                family: Some(family),
                len,
            },
            AF_INET => Sockaddr::Inet {
                addr: v4(),
                port: port(),
            },
            AF_UNSPEC if v4() == [0; 4] => Sockaddr::Inet {
                addr: [0; 4],
                port: port(),
            },
            AF_INET6 if len < SIN6_LEN_RFC2133 => Sockaddr::TooShort {
                family: Some(family),
                len,
            },
            AF_INET6 => {
                // sin6_family, sin6_port, sin6_flowinfo (4 bytes), then sin6_addr.
                let mut addr = [0; 16];
                addr.copy_from_slice(&bytes[8..24]);
                Sockaddr::Inet6 { addr, port: port() }
            }
            _ => Sockaddr::Other { family },
        }
    }

    /// The address and port, for printing: `127.0.0.1:9`, `[::1]:9` (RFC 5952, as
    /// `core::net` writes them).
    pub(crate) fn peer(&self) -> Option<Peer> {
        match *self {
            Sockaddr::Inet { addr, port } => Some(Peer(core::net::SocketAddr::from((addr, port)))),
            Sockaddr::Inet6 { addr, port } => Some(Peer(core::net::SocketAddr::from((addr, port)))),
            _ => None,
        }
    }

    /// The port, for the families that have one.
    #[inline]
    pub(crate) fn port(&self) -> Option<u16> {
        match *self {
            Sockaddr::Inet { port, .. } | Sockaddr::Inet6 { port, .. } => Some(port),
            _ => None,
        }
    }
}

/// An address and port, printed as `127.0.0.1:9` or `[::1]:9`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) struct Peer(pub(crate) core::net::SocketAddr);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What `rust_kprobe` knows of a function's arguments: the decoders, and which function has
/// which (the one table). A function without one gets [`Decoder::Raw`]: its raw argument
/// registers, never another function's meaning.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Decoder {
    /// `int inet_bind(struct socket *, struct sockaddr *uaddr, int addr_len)`, `inet6_bind`
    /// alike: the local port a socket binds.
    Bind,
    /// `int tcp_v4_connect(struct sock *, struct sockaddr *uaddr, int addr_len)`,
    /// `tcp_v6_connect` alike: the address and port a TCP socket connects to.
    Connect,
    /// No meaning: the first `args=` argument registers, as `kprobe_events`' `$argN` shows them.
    Raw,
}

impl Decoder {
    /// The table: the functions whose arguments the module decodes.
    pub(crate) const TABLE: [(&'static [u8], Decoder); 4] = [
        (b"inet_bind", Decoder::Bind),
        (b"inet6_bind", Decoder::Bind),
        (b"tcp_v4_connect", Decoder::Connect),
        (b"tcp_v6_connect", Decoder::Connect),
    ];

    /// What `decoder=` accepts, for its error line.
    pub(crate) const CHOICES: &'static str = "auto, bind, connect, raw";

    /// The decoder `decoder=` names; `auto` (or empty): `symbol`'s in the table, else `Raw`.
    /// `None`: not a decoder's name.
    pub(crate) fn select(param: &[u8], symbol: &[u8]) -> Option<Decoder> {
        Some(match param {
            b"auto" | b"" => Self::TABLE
                .iter()
                .find(|(s, _)| *s == symbol)
                .map_or(Decoder::Raw, |&(_, d)| d),
            b"bind" => Decoder::Bind,
            b"connect" => Decoder::Connect,
            b"raw" => Decoder::Raw,
            _ => return None,
        })
    }

    /// Its name, as `decoder=` takes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Decoder::Bind => "bind",
            Decoder::Connect => "connect",
            Decoder::Raw => "raw",
        }
    }

    /// Whether its lines have a port (`port=` filters on it).
    pub(crate) fn has_port(self) -> bool {
        self != Decoder::Raw
    }
}

/// The `pid=`, `comm=` and `port=` filters (0 or empty: everything passes).
pub(crate) struct Filter<'a> {
    pub(crate) pid: i32,
    pub(crate) comm: &'a [u8],
    pub(crate) port: u32,
}

impl Filter<'_> {
    /// Whether a task passes the `pid=` and `comm=` filters. `comm_is(want)` tells whether the
    /// task's name is `want`; it is only asked with `comm=` set (reading the name costs).
    #[inline]
    pub(crate) fn task(&self, pid: i32, comm_is: impl FnOnce(&[u8]) -> bool) -> bool {
        (self.pid == 0 || self.pid == pid) && (self.comm.is_empty() || comm_is(self.comm))
    }

    /// Whether a bind passes the `port=` filter; with `port=` set, a bind without a port fails.
    #[inline]
    pub(crate) fn port(&self, port: Option<u16>) -> bool {
        self.port == 0 || port.map(u32::from) == Some(self.port)
    }
}

/// At most `per_sec` events per one-second window, lock-free; what is over is counted.
pub(crate) struct RateLimiter {
    per_sec: u64,
    window_start: AtomicU64,
    in_window: AtomicU64,
    pending: AtomicU64,
    total: AtomicU64,
}

/// What [`RateLimiter::check`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Report the event; `suppressed` events were dropped since the last report of a drop.
    Pass { suppressed: u64 },
    /// Drop the event.
    Suppress,
}

impl RateLimiter {
    /// `per_sec == 0`: unlimited.
    pub(crate) const fn new(per_sec: u32) -> Self {
        Self {
            per_sec: per_sec as u64,
            window_start: AtomicU64::new(0),
            in_window: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    /// Decides for one event; `now_ns()` (monotonic time) is only read when limiting. The
    /// unlimited case is inlined into the handler: a test, not a call.
    #[inline(always)]
    pub(crate) fn check(&self, now_ns: impl FnOnce() -> u64) -> Verdict {
        if self.per_sec == 0 {
            return Verdict::Pass { suppressed: 0 };
        }
        self.check_limited(now_ns())
    }

    /// `check` with a limit set.
    #[inline(never)]
    fn check_limited(&self, now_ns: u64) -> Verdict {
        let start = self.window_start.load(Relaxed);
        if now_ns.wrapping_sub(start) >= 1_000_000_000
            && self
                .window_start
                .compare_exchange(start, now_ns, Relaxed, Relaxed)
                .is_ok()
        {
            self.in_window.store(0, Relaxed);
        }
        if self.in_window.fetch_add(1, Relaxed) < self.per_sec {
            Verdict::Pass {
                suppressed: self.pending.swap(0, Relaxed),
            }
        } else {
            self.pending.fetch_add(1, Relaxed);
            self.total.fetch_add(1, Relaxed);
            Verdict::Suppress
        }
    }

    /// All events suppressed so far.
    pub(crate) fn suppressed(&self) -> u64 {
        self.total.load(Relaxed)
    }
}

/// Log2 latency buckets as BCC's funclatency: bucket 0 holds 0, bucket `i` holds
/// `2^(i-1) ..= 2^i - 1`.
pub(crate) const BUCKETS: usize = 65;

/// The bucket of a value.
#[inline]
pub(crate) fn bucket(v: u64) -> usize {
    (u64::BITS - v.leading_zeros()) as usize
}

/// The values bucket `i` holds.
pub(crate) fn bucket_range(i: usize) -> (u64, u64) {
    match i {
        0 => (0, 0),
        64 => (1 << 63, u64::MAX),
        _ => (1 << (i - 1), (1 << i) - 1),
    }
}

/// One histogram row: `<lo> -> <hi> : <count> |<bar>|` (a 40-wide bar scaled to `max`).
pub(crate) struct HistRow {
    pub(crate) bucket: usize,
    pub(crate) count: u64,
    pub(crate) max: u64,
}

impl fmt::Display for HistRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, hi) = bucket_range(self.bucket);
        let stars = (self.count.saturating_mul(40))
            .checked_div(self.max)
            .unwrap_or(0) as usize;
        write!(f, "{lo:>12} -> {hi:<12} : {:<8} |", self.count)?;
        for i in 0..40 {
            f.write_str(if i < stars { "*" } else { " " })?;
        }
        f.write_str("|")
    }
}

/// The rows worth printing: from the first to the last non-empty bucket.
pub(crate) fn hist_rows(counts: &[u64]) -> impl Iterator<Item = HistRow> + '_ {
    let first = counts.iter().position(|&c| c != 0).unwrap_or(counts.len());
    let last = counts.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
    let max = counts.iter().copied().max().unwrap_or(0);
    (first..last.max(first)).map(move |bucket| HistRow {
        bucket,
        count: counts[bucket],
        max,
    })
}

/// Return-value tally slots: 0, each errno 1..=`MAX_ERRNO_TALLIED` (as `-errno`), and one for
/// everything else (positive values, larger errnos).
pub(crate) const MAX_ERRNO_TALLIED: usize = 133;
pub(crate) const TALLY_SLOTS: usize = MAX_ERRNO_TALLIED + 2;

/// The tally slot of a return value.
#[inline]
pub(crate) fn tally_slot(ret: i64) -> usize {
    match ret {
        0 => 0,
        r if r < 0 && r >= -(MAX_ERRNO_TALLIED as i64) => (-r) as usize,
        _ => TALLY_SLOTS - 1,
    }
}

/// [`RetType::tally`] of a value that is not 0, out of line and cold.
#[cold]
#[inline(never)]
fn tally_nonzero(ret: i64, count: impl FnOnce(usize)) {
    count(tally_slot(ret))
}

/// The C types `rettype=` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetKind {
    /// C `int`: only the low 32 bits of the register are defined.
    Int,
    Long,
    ULong,
    Ptr,
}

/// A probed function's return type (`rettype=`): how to read the return register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetType {
    kind: RetKind,
    /// The register's bits the type defines, kept so that the return handler's common path
    /// (0) is one `test` (computed there from `kind`, it was eight instructions).
    defined: u64,
}

impl RetType {
    pub(crate) const INT: RetType = RetType::of(RetKind::Int);
    pub(crate) const LONG: RetType = RetType::of(RetKind::Long);
    pub(crate) const ULONG: RetType = RetType::of(RetKind::ULong);
    pub(crate) const PTR: RetType = RetType::of(RetKind::Ptr);

    const fn of(kind: RetKind) -> RetType {
        let defined = match kind {
            RetKind::Int => u32::MAX as u64,
            _ => u64::MAX,
        };
        RetType { kind, defined }
    }

    /// Parses `int`, `long`, `ulong`, `ptr`.
    pub(crate) fn parse(s: &[u8]) -> Option<RetType> {
        match s {
            b"int" => Some(RetType::INT),
            b"long" => Some(RetType::LONG),
            b"ulong" => Some(RetType::ULONG),
            b"ptr" => Some(RetType::PTR),
            _ => None,
        }
    }

    /// The register as a signed value, for the tally (errnos are negative): `int` from its low
    /// 32 bits, the others as they are. No [`RetVal`] on the path that prints nothing.
    #[inline]
    pub(crate) fn signed(self, raw: u64) -> i64 {
        if self.kind == RetKind::Int {
            i64::from(raw as u32 as i32)
        } else {
            raw as i64
        }
    }

    /// Calls `count` with the register's [`tally_slot`]: on the common path (0) after one test
    /// of the bits this type defines, with a constant, so that the counter's address is one
    /// (computed, it cost arm64 two instructions a call); any other value out of line (inlined,
    /// the clamp cost every call seven instructions and three `cmov`s).
    #[inline(always)]
    pub(crate) fn tally(self, raw: u64, count: impl FnOnce(usize)) {
        if raw & self.defined == 0 {
            count(0)
        } else {
            tally_nonzero(self.signed(raw), count)
        }
    }

    /// The register's value as this type.
    #[inline]
    pub(crate) fn value(self, raw: u64) -> RetVal {
        match self.kind {
            RetKind::Int => RetVal::Signed(i64::from(raw as u32 as i32)),
            RetKind::Long => RetVal::Signed(raw as i64),
            RetKind::ULong => RetVal::Unsigned(raw),
            RetKind::Ptr => RetVal::Ptr(raw),
        }
    }
}

/// A return value, printed as its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetVal {
    Signed(i64),
    Unsigned(u64),
    Ptr(u64),
}

impl fmt::Display for RetVal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RetVal::Signed(v) => write!(f, "{v}"),
            RetVal::Unsigned(v) => write!(f, "{v}"),
            RetVal::Ptr(v) => write!(f, "{v:#x}"),
        }
    }
}
