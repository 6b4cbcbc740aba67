// SPDX-License-Identifier: GPL-2.0

//! rust_kprobe: a kprobe on `inet_bind` (or any function, `symbol=`) that logs who calls it
//! and what its arguments mean, where the module has a decoder for them.
//!
//! `insmod rust_kprobe.ko [symbol=inet_bind] [offset=0] [kind=kprobe] [decoder=auto] [args=0]
//! [pid=] [comm=] [port=] [ratelimit=] [events=Y]`
//!
//! Decoders (`kprobes/logic.rs`, `Decoder::TABLE`): `inet_bind`/`inet6_bind` give the port a
//! socket binds, `tcp_v4_connect`/`tcp_v6_connect` the address and port it connects to; any
//! other function its name, the task and its first `args=` argument registers, raw, as
//! `kprobe_events`' `$argN` shows them. `decoder=` names one for a function of the same
//! arguments.
//!
//! `kind=fprobe` (kernels with `CONFIG_FPROBE`, e.g. Debian's) runs the same pre-handler policy
//! from an entry-only fprobe instead: ftrace's hook on the function's call site, the arguments
//! as ftrace saves them, no kprobe core. An fprobe has no post handler (no probed instruction
//! is stepped or emulated), so that kind logs no post line; and it hooks the function's entry
//! only, so it takes no `offset=`.
//!
//! `kind=direct` (kernels with ftrace direct calls, e.g. Debian's) runs it from an ftrace direct
//! call instead: the call site calls this module's own trampoline (helpers.c), with nothing of
//! ftrace's or fprobe's dispatch between; what eBPF's fentry rides on. Entry only, like fprobe.
//!
//! Policy only: what to decode and what to print. The probe plumbing is in `kprobes/`.

#[allow(dead_code)]
#[path = "kprobes/mod.rs"]
mod kprobes;

use core::fmt::{self, Write};
use kernel::c_str;
use kernel::prelude::*;
use kprobes::arch::Regs;
use kprobes::debugfs::{Published, SeqWriter, ShowFn};
#[cfg(rk_direct)]
use kprobes::direct::Direct;
#[cfg(rk_fprobe)]
use kprobes::fprobe::{Fprobe, FprobeHandler};
use kprobes::hit::{Fault, Hit};
use kprobes::kprobe::{Kprobe, KprobeHandler, Step};
use kprobes::list::PathTag;
use kprobes::logic::{Decoder, Filter, RateLimiter, Sockaddr, Verdict, SOCKADDR_MAX};
use kprobes::percpu::{Counter, Flag, PerCpu};
use kprobes::probe::Unregistered;
use kprobes::task::{self, Comm};

kprobes::compat::rk_module! {
    type: RustKprobe,
    name: "rust_kprobe",
    description: "kprobe on inet_bind or any function: who calls it, and its decoded or raw arguments (Rust)",
}

kprobes::params::module_params! {
    symbol: str[512] = "inet_bind", "Function to probe (default inet_bind)";
    offset: u32 = 0, "Offset into the function, in bytes (default 0)";
    kind: str[16] = "kprobe", "kprobe (default), fprobe: an entry-only fprobe on the function's ftrace call site (kernels with CONFIG_FPROBE), or direct: an ftrace direct call to this module's own trampoline (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS); fprobe and direct: no post handler, no offset=";
    decoder: str[16] = "auto", "How to read the arguments: auto (default: bind for inet_bind/inet6_bind, connect for tcp_v4_connect/tcp_v6_connect, raw for any other function), bind, connect or raw";
    args: u32 = 0, "raw decoder: print the first N argument registers, as kprobe_events $argN (default 0; at most 6 on x86_64, 8 on arm64)";
    pid: i32 = 0, "Only report this pid (0: all)";
    comm: str[16] = "", "Only report tasks with this name (empty: all)";
    port: u32 = 0, "bind and connect decoders: only report this port (0: all)";
    ratelimit: u32 = 0, "At most this many event and fault lines per second (0: unlimited)";
    events: bool = true, "Log one line per hit (default Y; N: count only, see debugfs stats)";
}

/// What the handlers count, per CPU.
#[derive(Zeroable)]
struct Stats {
    hits: Counter,
    filtered: Counter,
    reported: Counter,
    faults: Counter,
}

struct BindProbe {
    /// For printing (`&str` formats in one piece, `CStr` byte by byte).
    symbol: &'static str,
    /// For printing. Arguments are in their registers at the function's entry only (as the
    /// kprobe core tells, [`Hit::entry`]): past it a hit is reported without them.
    offset: u32,
    /// What the arguments mean, if the module knows (`decoder=`, else the table).
    decoder: Decoder,
    /// The raw decoder's `args=`: how many argument registers its lines show.
    args: usize,
    pid: i32,
    comm: kprobes::params::ParamStr,
    /// `pid=` or `comm=` is set: one test on the common path, which has neither.
    task_filter: bool,
    port: u32,
    limiter: RateLimiter,
    events: bool,
    stats: PerCpu<Stats>,
    /// Set by `pre` when it logged this CPU's hit, so that `post` logs only for reported hits
    /// (pre and post of one hit run on one CPU, and hits do not nest).
    post_pending: PerCpu<Flag>,
}

impl KprobeHandler for BindProbe {
    fn has_post(&self) -> bool {
        self.events
    }

    /// Inlined into the layer's trampoline, which then knows `hit.regs` is a `pt_regs` and
    /// reads the arguments with plain loads (out of line: two calls through `Regs`' vtable).
    #[inline(always)]
    fn pre(&self, hit: &Hit<'_>) -> Result<(), Fault> {
        self.on_entry(hit, true)
    }

    fn post(&self, hit: &Hit<'_>, step: Step) {
        if !self.post_pending.this_cpu().take() {
            return;
        }
        let (sym, addr, ip) = (self.symbol, hit.addr, hit.regs.ip());
        match step {
            Step::SingleStepped => pr_info!(
                "{sym} post_handler: probed instruction at {addr:#x} single-stepped, ip now {ip:#x}\n"
            ),
            Step::Emulated => pr_info!(
                "{sym} post_handler: probed instruction at {addr:#x} emulated by the kprobe core (not single-stepped), ip now {ip:#x}\n"
            ),
            Step::Ftrace => pr_info!(
                "{sym} post_handler: ftrace call site at {addr:#x} passed (ftrace-based probe: no breakpoint, nothing single-stepped), ip now {ip:#x}\n"
            ),
        }
    }

    /// A decoder's read failed: counted, and logged as an event line is (`events=`,
    /// `ratelimit=`).
    fn fault(&self, hit: &Hit<'_>, f: &Fault) {
        self.stats.this_cpu().faults.add(1);
        if !self.events || !self.rate_passes() {
            return;
        }
        pr_info!(
            "fault_handler: p->addr = {:#x}, reading {} at {:#x} failed ({})\n",
            hit.addr,
            f.what,
            f.addr,
            f.errno
        );
    }
}

/// `kind=fprobe`: the same pre-handler policy from an entry-only fprobe (no exit, no entry
/// data). There is no post handler: a logged hit marks nothing for one.
#[cfg(rk_fprobe)]
impl FprobeHandler for BindProbe {
    type Data = ();
    const EXIT: bool = false;

    #[inline(always)]
    fn entry(&self, hit: &Hit<'_>) -> Result<Option<()>, Fault> {
        self.on_entry(hit, false).map(|()| None)
    }

    fn fault(&self, hit: &Hit<'_>, f: &Fault) {
        KprobeHandler::fault(self, hit, f)
    }
}

// `kind=direct`: the fprobe kind's handler, called from the module's ftrace direct call.
#[cfg(rk_direct)]
kprobes::direct::direct_entry!(BindProbe);

/// What a hit's line says of the arguments.
enum Args<'a> {
    /// Bind or connect: the address the caller passed.
    Sockaddr(Sockaddr),
    /// Raw: the first `n` argument registers.
    Raw(&'a Regs<'a>, usize),
    /// Past the function's entry: nothing (the registers hold whatever the function put there).
    Unknown,
}

/// ` arg1=0x… arg2=0x…`: the first `.1` argument registers, as `kprobe_events` prints
/// `$arg1`… (hexadecimal, from 1).
struct RawArgs<'a>(&'a Regs<'a>, usize);

impl fmt::Display for RawArgs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (0..self.1).try_for_each(|i| {
            let v = self.0.arg::<u64>(i).unwrap_or(0);
            write!(f, " arg{}={v:#x}", i + 1)
        })
    }
}
kprobes::compat::printable!(RawArgs<'_>);

impl BindProbe {
    /// The pre-handler policy, for either kind: count, filter, decode, rate-limit, log. `post`:
    /// a post handler will run for this hit (a kprobe's), so a logged hit is marked for it.
    #[inline(always)]
    fn on_entry(&self, hit: &Hit<'_>, post: bool) -> Result<(), Fault> {
        let stats = self.stats.this_cpu();
        stats.hits.add(1);
        if self.task_filter && !self.task_passes() {
            stats.filtered.add(1);
            return Ok(());
        }
        let filter = Filter {
            pid: 0,
            comm: &[],
            port: self.port,
        };
        let args = if !hit.entry {
            if self.port != 0 {
                // No port to match (init refuses this probe; until it has unregistered it).
                stats.filtered.add(1);
                return Ok(());
            }
            Args::Unknown
        } else if self.decoder == Decoder::Raw {
            Args::Raw(&hit.regs, self.args)
        } else {
            // int inet_bind(struct socket *sock, struct sockaddr *uaddr, int addr_len), and
            // inet6_bind, tcp_v4_connect, tcp_v6_connect alike: the address is a kernel copy,
            // at most addr_len bytes of it valid.
            let (Some(uaddr), Some(addr_len)) =
                (hit.regs.arg::<*const u8>(1), hit.regs.arg::<i32>(2))
            else {
                return Ok(());
            };
            let mut buf = [0u8; SOCKADDR_MAX];
            let len = addr_len.clamp(0, SOCKADDR_MAX as i32) as usize;
            hit.read("struct sockaddr", uaddr, &mut buf[..len])?;
            let addr = Sockaddr::decode(&buf[..len]);
            if !filter.port(addr.port()) {
                stats.filtered.add(1);
                return Ok(());
            }
            Args::Sockaddr(addr)
        };
        if !self.rate_passes() {
            return Ok(());
        }
        stats.reported.add(1);
        if self.events {
            let task = task::current();
            self.log(task.pid, &task.comm(), args);
            if post {
                self.post_pending.this_cpu().set();
            }
        }
        Ok(())
    }

    /// `ratelimit=`: whether this line may be printed (and the count of those it held back,
    /// once it passes one again).
    #[inline(always)]
    fn rate_passes(&self) -> bool {
        match self.limiter.check(kprobes::now_ns) {
            Verdict::Suppress => false,
            Verdict::Pass { suppressed: 0 } => true,
            Verdict::Pass { suppressed } => {
                pr_info!("{} events suppressed by ratelimit\n", suppressed);
                true
            }
        }
    }

    /// Whether `current` passes `pid=` and `comm=`. Out of line: with neither set, `pre` keeps
    /// its registers (inlined, the filters' loads were set up on every hit).
    #[inline(never)]
    fn task_passes(&self) -> bool {
        let task = task::current();
        let filter = Filter {
            pid: self.pid,
            comm: self.comm.bytes(),
            port: 0,
        };
        filter.task(task.pid, |want| task.comm_is(want))
    }

    /// The event line: what the decoder read, or why there is nothing to read. Cold and out of
    /// line, as `rust_kretprobe`'s: inlined, its formatting made `pre` too big to inline into
    /// the trampoline, and every hit paid for the call (`events=0` included).
    #[cold]
    #[inline(never)]
    fn log(&self, pid: i32, comm: &Comm, args: Args<'_>) {
        let sym = self.symbol;
        let what = match self.decoder {
            Decoder::Connect => "connect",
            _ => "socket bind",
        };
        let addr = match args {
            Args::Raw(regs, n) => {
                let raw = RawArgs(regs, n);
                pr_info!("{sym} name:{comm} pid:{pid}{raw}\n");
                return;
            }
            Args::Unknown => {
                let off = self.offset;
                match self.decoder {
                    Decoder::Raw => pr_info!("{sym}+{off:#x} name:{comm} pid:{pid}\n"),
                    _ => pr_info!("{sym}+{off:#x} name:{comm} pid:{pid} {what}: arguments unknown past the function's entry\n"),
                }
                return;
            }
            Args::Sockaddr(addr) => addr,
        };
        if let (Decoder::Connect, Some(peer)) = (self.decoder, addr.peer()) {
            pr_info!("{sym} name:{comm} pid:{pid} connect to {peer}\n");
            return;
        }
        match addr {
            Sockaddr::Inet { port, .. } | Sockaddr::Inet6 { port, .. } => {
                pr_info!("{sym} name:{comm} pid:{pid} socket bind port={port}\n");
            }
            Sockaddr::TooShort { family: None, len } => {
                pr_info!(
                    "{sym} name:{comm} pid:{pid} {what}: addr_len {len} too short for a family\n"
                );
            }
            Sockaddr::TooShort {
                family: Some(family),
                len,
            } => {
                pr_info!("{sym} name:{comm} pid:{pid} {what}: addr_len {len} too short for a port (family {family})\n");
            }
            Sockaddr::Other { family } => {
                pr_info!("{sym} name:{comm} pid:{pid} {what}: family {family} has no port\n");
            }
        }
    }

    /// `/sys/kernel/debug/rust_kprobe/stats`.
    fn show_stats(&self, missed: u64, w: &mut SeqWriter) -> fmt::Result {
        let s = &self.stats;
        writeln!(
            w,
            "hits {}\nmissed {missed}\nfiltered {}",
            s.sum(|c| &c.hits),
            s.sum(|c| &c.filtered)
        )?;
        writeln!(
            w,
            "suppressed {}\nreported {}\nfaults {}",
            self.limiter.suppressed(),
            s.sum(|c| &c.reported),
            s.sum(|c| &c.faults)
        )
    }
}

/// `kind=`: what the handler is planted on.
#[derive(Clone, Copy)]
enum Kind {
    Kprobe,
    #[cfg(rk_fprobe)]
    Fprobe,
    #[cfg(rk_direct)]
    Direct,
}

/// The probe the handler runs on.
enum Planted {
    Kprobe(Published<Kprobe<BindProbe>>),
    #[cfg(rk_fprobe)]
    Fprobe(Published<Fprobe<BindProbe>>),
    #[cfg(rk_direct)]
    Direct(Published<Direct<BindProbe>>),
}

/// The live files in `/sys/kernel/debug/rust_kprobe/`, for either kind.
const FILES: [(&CStr, ShowFn<BindProbe>); 1] = [(c_str!("stats"), BindProbe::show_stats)];

struct RustKprobe {
    /// `None` only while the module is being removed.
    probe: Option<Planted>,
}

/// The one line of a load that ran out of memory for `what`.
fn no_memory(what: &str) {
    pr_err!("cannot allocate the {what}: out of memory (errno -12)\n");
}

/// The one line of a failed debugfs directory: live counters are a convenience, and without
/// debugfs the probe works all the same.
fn no_debugfs(e: Error) {
    pr_info!(
        "no /sys/kernel/debug/rust_kprobe (errno {}): counters at unload only\n",
        e.to_errno()
    );
}

impl kernel::Module for RustKprobe {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let p = Params::get();
        // First, before anything is allocated or registered.
        let kind = match p.kind.bytes() {
            b"kprobe" => Kind::Kprobe,
            #[cfg(rk_fprobe)]
            b"fprobe" => Kind::Fprobe,
            #[cfg(not(rk_fprobe))]
            b"fprobe" => return Err(kprobes::no_fprobe()),
            #[cfg(rk_direct)]
            b"direct" => Kind::Direct,
            #[cfg(not(rk_direct))]
            b"direct" => return Err(kprobes::no_direct()),
            _ => {
                pr_err!("kind={} is not one of kprobe, fprobe, direct\n", p.kind);
                return Err(EINVAL);
            }
        };
        #[cfg(rk_fprobe)]
        if !matches!(kind, Kind::Kprobe) && p.offset != 0 {
            pr_err!(
                "offset={:#x}: kind={} hooks the function's entry only (offset=0)\n",
                p.offset,
                p.kind
            );
            return Err(EINVAL);
        }
        if p.symbol.bytes().is_empty() {
            pr_err!("symbol= is empty: name the function to probe\n");
            return Err(EINVAL);
        }
        let Some(symbol) = p.symbol.as_str() else {
            pr_err!("symbol= is not a kernel symbol name\n");
            return Err(EINVAL);
        };
        let Some(decoder) = Decoder::select(p.decoder.bytes(), p.symbol.bytes()) else {
            pr_err!("decoder={} is not one of {}\n", p.decoder, Decoder::CHOICES);
            return Err(EINVAL);
        };
        if p.port != 0 && !decoder.has_port() {
            pr_err!(
                "port={}: {symbol} has the raw decoder, which reads no port (decoder=bind or connect for a function with their arguments)\n",
                p.port
            );
            return Err(EINVAL);
        }
        if p.args != 0 && decoder != Decoder::Raw {
            pr_err!(
                "args={}: the {} decoder prints what it decodes, not raw arguments (decoder=raw)\n",
                p.args,
                decoder.name()
            );
            return Err(EINVAL);
        }
        let args = p.args as usize;
        if args > kprobes::arch::ARG_REGS {
            pr_err!(
                "args={}: this architecture passes at most {} arguments in registers\n",
                p.args,
                kprobes::arch::ARG_REGS
            );
            return Err(EINVAL);
        }
        let handler = BindProbe {
            symbol,
            offset: p.offset,
            decoder,
            args,
            pid: p.pid,
            comm: p.comm,
            task_filter: p.pid != 0 || !p.comm.bytes().is_empty(),
            port: p.port,
            limiter: RateLimiter::new(p.ratelimit),
            events: p.events,
            stats: PerCpu::new().inspect_err(|_| no_memory("per-CPU counters"))?,
            post_pending: PerCpu::new().inspect_err(|_| no_memory("per-CPU post flags"))?,
        };
        let dir = MODULE_NAME;
        let planted = match kind {
            Kind::Kprobe => {
                let probe = KBox::pin_init(
                    Kprobe::new(p.symbol.as_cstr(), p.offset, handler),
                    GFP_KERNEL,
                )
                .inspect_err(|e| {
                    pr_err!(
                        "cannot probe {}+{:#x}: {} (errno {})\n",
                        p.symbol,
                        p.offset,
                        kprobes::why(*e),
                        e.to_errno()
                    );
                })?;
                if (p.port != 0 || args != 0) && !probe.on_func_entry() {
                    // Dropping `probe` unregisters it: nothing stays behind.
                    let which = if p.port != 0 { "port" } else { "args" };
                    pr_err!(
                        "{which}= needs the probe on the function's entry: {}+{:#x} is past it, where the arguments are unknown\n",
                        p.symbol,
                        p.offset
                    );
                    return Err(EINVAL);
                }
                // The address and symbol+offset the kprobe core holds (it may have moved the
                // probe: past an x86 `endbr64`, for one), and its path, as in
                // /sys/kernel/debug/kprobes/list.
                pr_info!(
                    "Planted kprobe at {:#x} ({}){}, decoder {}\n",
                    probe.addr(),
                    kprobes::SymbolOffset::of(probe.addr()).as_str(),
                    probe.path_tag(),
                    decoder.name()
                );
                let mut probe = Published::new(probe);
                if let Err(e) = probe.publish(dir, &FILES) {
                    no_debugfs(e);
                }
                Planted::Kprobe(probe)
            }
            #[cfg(rk_fprobe)]
            Kind::Fprobe => {
                let probe = KBox::pin_init(Fprobe::new(p.symbol.as_cstr(), handler), GFP_KERNEL)
                    .inspect_err(|e| {
                        pr_err!(
                            "cannot probe {}: {} (errno {})\n",
                            p.symbol,
                            kprobes::fprobe::why(*e),
                            e.to_errno()
                        );
                    })?;
                // The function's ftrace call site fprobe hooks (past an x86 `endbr64` on an IBT
                // kernel), as in /sys/kernel/tracing/enabled_functions. Always the entry: the
                // arguments are there, and `port=` applies.
                pr_info!(
                    "Planted fprobe at {}: {:#x} ({}): entry only, no post handler, decoder {}\n",
                    symbol,
                    probe.addr(),
                    kprobes::SymbolOffset::of(probe.addr()).as_str(),
                    decoder.name()
                );
                let mut probe = Published::new(probe);
                if let Err(e) = probe.publish(dir, &FILES) {
                    no_debugfs(e);
                }
                Planted::Fprobe(probe)
            }
            #[cfg(rk_direct)]
            Kind::Direct => {
                let probe = Direct::new(p.symbol.as_cstr(), handler).inspect_err(|e| {
                    pr_err!(
                        "cannot probe {}: {} (errno {})\n",
                        p.symbol,
                        kprobes::direct::why(*e),
                        e.to_errno()
                    );
                })?;
                // ftrace patched the function's call site (past an x86 `endbr64` on an IBT
                // kernel) to call the trampoline, as /sys/kernel/tracing/enabled_functions
                // shows (`direct-->rk_direct_tramp`).
                pr_info!(
                    "Planted direct call on {}: its ftrace call site calls rk_direct_tramp: entry only, no post handler, decoder {}\n",
                    symbol,
                    decoder.name()
                );
                let mut probe = Published::new(probe);
                if let Err(e) = probe.publish(dir, &FILES) {
                    no_debugfs(e);
                }
                Planted::Direct(probe)
            }
        };
        Ok(RustKprobe {
            probe: Some(planted),
        })
    }
}

/// Where a probe was, for its unload line: a kprobe's or fprobe's address, or a direct call's
/// function (ftrace keeps the call site's address to itself: `addr` 0).
struct Site {
    kind: &'static str,
    addr: u64,
    symbol: &'static str,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            0 => write!(f, "{} on {}", self.kind, self.symbol),
            addr => write!(f, "{} at {addr:#x}", self.kind),
        }
    }
}
kprobes::compat::printable!(Site);

impl Drop for RustKprobe {
    fn drop(&mut self) {
        let Some(planted) = self.probe.take() else {
            return;
        };
        let (kind, gone) = match planted {
            Planted::Kprobe(probe) => ("kprobe", probe.unregister()),
            #[cfg(rk_fprobe)]
            Planted::Fprobe(probe) => ("fprobe", probe.unregister()),
            #[cfg(rk_direct)]
            Planted::Direct(probe) => ("direct call", probe.unregister()),
        };
        let Unregistered {
            addr,
            nmissed,
            handler,
        } = gone;
        let s = &handler.stats;
        let site = Site {
            kind,
            addr,
            symbol: handler.symbol,
        };
        pr_info!(
            "{} unregistered: {} hits, {} reported, {} filtered, {} suppressed, {} faults, {} missed\n",
            site,
            s.sum(|c| &c.hits),
            s.sum(|c| &c.reported),
            s.sum(|c| &c.filtered),
            handler.limiter.suppressed(),
            s.sum(|c| &c.faults),
            nmissed
        );
    }
}
