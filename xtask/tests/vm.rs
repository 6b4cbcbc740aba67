//! VM tests: each boots the project's kernel under QEMU with one scenario and checks the kernel
//! log against what the load program really did. `make check` builds everything first and runs
//! them for each flavor (`x86_64::`, `arm64::`, `x86_64_debug::`).

use xtask::util::{Arch, Flavor, Kver};
use xtask::vm::{self, hex_after, number_after, KprobeTotals, Op, Opts, Prepared, Run, TraceEvent};
use xtask::{modules, upstream};

/// What a test module's flavor adds to its arch and kernel: `false`/`true` (the debug
/// options) or [`HARDENED`].
#[derive(Clone, Copy)]
struct Variant {
    debug: bool,
    hardened: bool,
}

impl From<bool> for Variant {
    fn from(debug: bool) -> Variant {
        Variant {
            debug,
            hardened: false,
        }
    }
}

const HARDENED: Variant = Variant {
    debug: false,
    hardened: true,
};

fn prep(arch: Arch, v: impl Into<Variant>, kernel: Kver) -> Prepared {
    let v = v.into();
    prep_flavor(Flavor {
        arch,
        debug: v.debug,
        kernel,
        hardened: v.hardened,
    })
}

fn prep_flavor(f: Flavor) -> Prepared {
    vm::prepared(f).unwrap_or_else(|e| panic!("{e}"))
}

/// Boots `script` in the run folder named after the running test and checks the run ended
/// cleanly: exit 0 and no kernel complaint.
fn boot(p: &Prepared, script: &str) -> Run {
    boot_with(p, script, Opts::for_flavor(&p.flavor))
}

fn boot_with(p: &Prepared, script: &str, opts: Opts) -> Run {
    let run = vm::run(p, &vm::test_name(), script, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_clean(p, &run, run.splats());
    run
}

/// The run ended cleanly: exit 0, on a debug kernel a kmemleak scan, and none of `splats`.
fn assert_clean(p: &Prepared, run: &Run, splats: Vec<&str>) {
    if let Some(e) = unclean(p, run, &splats).first() {
        panic!("{e}");
    }
}

/// What [`assert_clean`] checks, each failure as the message it panics with, in order.
fn unclean(p: &Prepared, run: &Run, splats: &[&str]) -> Vec<String> {
    let mut v = vec![];
    if run.exit != 0 {
        let why = format!("scenario failed; serial log: {}", run.log_path.display());
        v.push(not_equal(run.exit, 0, &why));
    }
    if p.flavor.debug && !run.guest.iter().any(|l| l == "RK-KMEMLEAK scanned") {
        v.push("no kmemleak scan ran".into());
    }
    if !splats.is_empty() {
        v.push(format!(
            "kernel complained: {splats:#?}\nserial log: {}",
            run.log_path.display()
        ));
    }
    v
}

/// `assert_eq!(left, right, "{msg}")`'s message, for checks that collect their failures.
fn not_equal(left: impl std::fmt::Debug, right: impl std::fmt::Debug, msg: &str) -> String {
    format!("assertion `left == right` failed: {msg}\n  left: {left:?}\n right: {right:?}")
}

fn count(lines: &[&str], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

/// Exactly one line equal to `line`.
fn assert_once(log: &[&str], line: &str) {
    assert_eq!(
        log.iter().filter(|l| **l == line).count(),
        1,
        "want exactly one `{line}` in {log:#?}"
    );
}

/// The line starting with `prefix` (exactly one).
fn the_line<'a>(log: &[&'a str], prefix: &str) -> &'a str {
    let v: Vec<&str> = log
        .iter()
        .filter(|l| l.starts_with(prefix))
        .copied()
        .collect();
    assert_eq!(v.len(), 1, "want one line starting `{prefix}` in {log:#?}");
    v[0]
}

/// `rust_kprobe`'s one unload line, parsed.
fn kprobe_totals(log: &[&str]) -> KprobeTotals {
    match KprobeTotals::all(log)[..] {
        [t] => t,
        ref v => panic!("want one unload line, got {v:?} in {log:#?}"),
    }
}

/// The `REFUSED <module> INSMOD errno=-N` lines of `refused`, as (module, errno).
fn refusals(run: &Run) -> Vec<(String, i32)> {
    run.guest_with("REFUSED ")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let errno = match f[..] {
                [_, _, "INSMOD", e] => e.strip_prefix("errno=").and_then(|e| e.parse().ok()),
                _ => None,
            };
            let errno = errno.unwrap_or_else(|| panic!("malformed refusal `{l}`"));
            (f[1].to_string(), errno)
        })
        .collect()
}

/// The values `<func> returned <v> and took <ns> ns to execute` lines show, in order; each line
/// must have both numbers, ns > 0.
fn kretprobe_returns(log: &[&str], func: &str) -> Vec<i64> {
    let p = format!("{func} returned ");
    log.iter()
        .filter(|l| l.starts_with(&p) && l.contains(" and took "))
        .map(|l| {
            let ns = number_after(l, " and took ");
            // Above 0 (a stamp was taken) and below a minute (it was this call's, not bits
            // read from elsewhere).
            assert!(
                ns.is_some_and(|ns| ns > 0 && ns < 60_000_000_000) && l.ends_with(" ns to execute"),
                "malformed line `{l}`"
            );
            number_after(l, &p).unwrap_or_else(|| panic!("no return value in `{l}`"))
        })
        .collect()
}

/// One probe of `/sys/kernel/debug/kprobes/list` (`kprobes_list PREFIX` in a scenario):
/// where the kprobe core put it and on which path.
#[derive(Debug)]
struct Listed {
    addr: u64,
    /// `inet_bind+0x4`
    at: String,
    /// `[FTRACE]` (an ftrace-based probe) among its flags.
    ftrace: bool,
}

/// The probes listed under `prefix` whose place is in `sym`.
fn listed(run: &Run, prefix: &str, sym: &str) -> Vec<Listed> {
    run.guest_with(prefix)
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| {
            f.get(3)
                .is_some_and(|at| at.starts_with(&format!("{sym}+")))
        })
        .map(|f| Listed {
            addr: u64::from_str_radix(f[1], 16).unwrap_or_else(|_| panic!("{f:?}")),
            at: f[3].to_string(),
            ftrace: f[4..].contains(&"[FTRACE]"),
        })
        .collect()
}

/// Whether this flavor's kernel puts entry kprobes on ftrace (x86_64 with the function tracer:
/// the kprobes of `/sys/kernel/debug/kprobes/list` say `[FTRACE]`). The tests hold the kernel
/// to it, so that a kernel that changes path fails them.
fn entry_on_ftrace(p: &Prepared) -> bool {
    p.flavor.function_tracer() && p.flavor.arch == Arch::X86_64
}

/// The number a scenario printed after `prefix` (one such line).
fn guest_number(run: &Run, prefix: &str) -> u32 {
    try_guest_number(run, prefix).unwrap_or_else(|e| panic!("{e}"))
}

/// [`guest_number`], its failure as the message it panics with.
fn try_guest_number(run: &Run, prefix: &str) -> Result<u32, String> {
    let v = run.guest_with(prefix);
    if v.len() != 1 {
        let why = format!("want one `{prefix}` line in {:?}", run.guest);
        return Err(not_equal(v.len(), 1, &why));
    }
    v[0].trim_start_matches(prefix)
        .trim()
        .parse()
        .map_err(|_| format!("`{}`", v[0]))
}

// ---- rust_kprobe.ko ----------------------------------------------------------------------

fn kprobe_reports_each_bind(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kprobe
         kallsyms inet_bind
         kprobes_list
         loadgen bind 49152 8080 1234 65535
         loadgen bind inet6 49153
         rmmod rust_kprobe",
    );
    let log = run.module_lines("rust_kprobe");
    let binds = run.ops("bind");
    assert_eq!(binds.len(), 5, "load program output: {:?}", run.guest);
    // The planted line names what the kprobe core holds (kprobes/list): the address, the
    // symbol+offset (past an x86 endbr64 on an IBT kernel) and the path.
    let mut l = listed(&run, "KPROBES ", "inet_bind");
    assert_eq!(l.len(), 1, "want one inet_bind kprobe listed: {l:?}");
    let core = l.remove(0);
    assert_eq!(core.ftrace, entry_on_ftrace(p), "{core:?}");
    let tag = if core.ftrace { " [FTRACE]" } else { "" };
    assert_once(
        &log,
        &format!(
            "Planted kprobe at {:#x} ({}){tag}, decoder bind",
            core.addr, core.at
        ),
    );
    let inet: Vec<_> = binds.iter().filter(|o| o.family == "inet").collect();
    assert_eq!(inet.len(), 4);
    for o in &inet {
        assert_eq!(o.ret, 0, "{o:?}");
        assert_once(&log, &o.kprobe_line("inet_bind"));
    }
    // The AF_INET6 socket goes through inet6_bind: inet_bind never sees it.
    assert_eq!(count(&log, "socket bind port="), inet.len(), "{log:#?}");
    // The post handler says how the probed instruction was passed: the ftrace call site
    // (ip past its 5 bytes), else single-stepped after the breakpoint.
    let post = if core.ftrace {
        format!(
            "inet_bind post_handler: ftrace call site at {:#x} passed (ftrace-based probe: no breakpoint, nothing single-stepped), ip now {:#x}",
            core.addr,
            core.addr + 5
        )
    } else {
        format!(
            "inet_bind post_handler: probed instruction at {:#x} single-stepped, ip now ",
            core.addr
        )
    };
    assert_eq!(
        log.iter().filter(|l| l.starts_with(&post)).count(),
        inet.len(),
        "want {} `{post}` in {log:#?}",
        inet.len()
    );
    assert_eq!(count(&log, "post_handler: "), inet.len(), "{log:#?}");
    let base = run.kallsyms("inet_bind").expect("inet_bind in kallsyms");
    if p.flavor.kernel.built_here() {
        assert_eq!(core.addr, base, "probe address vs /proc/kallsyms: {core:?}");
    }
    let t = kprobe_totals(&log);
    assert_eq!(t.addr, core.addr);
    let n = inet.len() as u64;
    assert_eq!(
        (
            t.hits,
            t.reported,
            t.filtered,
            t.suppressed,
            t.faults,
            t.missed
        ),
        (n, n, 0, 0, 0, 0),
        "{t:?}"
    );
}

fn kprobe_inet6_bind(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kprobe symbol=inet6_bind
         loadgen bind inet6 49160 443
         loadgen bind inet 49162
         rmmod rust_kprobe",
    );
    let log = run.module_lines("rust_kprobe");
    let binds = run.ops("bind");
    assert_eq!(binds.len(), 3, "{:?}", run.guest);
    for o in &binds {
        assert_eq!(o.ret, 0, "{o:?}");
        let want = usize::from(o.family == "inet6");
        let line = o.kprobe_line("inet6_bind");
        assert_eq!(
            log.iter().filter(|l| **l == line).count(),
            want,
            "`{line}` in {log:#?}"
        );
    }
    assert_eq!(count(&log, "socket bind port="), 2);
    assert_eq!(kprobe_totals(&log).hits, 2);
}

fn kprobe_odd_addresses_claim_no_port(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kprobe
         loadgen bind-raw 2 2 4242
         loadgen bind-raw 1 16 4243
         loadgen bind-raw 2 15 4244
         rmmod rust_kprobe",
    );
    let log = run.module_lines("rust_kprobe");
    let ops = run.ops("bind");
    // The kernel refuses them all: EINVAL (short), EAFNOSUPPORT (family), EINVAL (short).
    assert_eq!(
        ops.iter().map(|o| o.ret).collect::<Vec<_>>(),
        [-22, -97, -22]
    );
    assert_eq!(count(&log, "port="), 0, "a port was claimed: {log:#?}");
    let (a, b, c) = (ops[0].tid, ops[1].tid, ops[2].tid);
    for line in [
        format!("inet_bind name:loadgen pid:{a} socket bind: addr_len 2 too short for a port (family 2)"),
        format!("inet_bind name:loadgen pid:{b} socket bind: family 1 has no port"),
        format!("inet_bind name:loadgen pid:{c} socket bind: addr_len 15 too short for a port (family 2)"),
    ] {
        assert_once(&log, &line);
    }
    let t = kprobe_totals(&log);
    assert_eq!((t.hits, t.reported), (3, 3), "{t:?}");
}

fn kprobe_fault_handler_on_unreadable_argument(p: &Prepared) {
    // __sys_bind(fd, struct sockaddr __user *, addrlen): argument 1 is a user pointer, which a
    // kernel nofault read refuses: the fault handler reports it and the hit goes on.
    let run = boot(
        p,
        "load rust_kprobe symbol=__sys_bind decoder=bind
         loadgen bind 4300
         rmmod rust_kprobe",
    );
    let binds = run.ops("bind");
    assert_eq!(binds.len(), 1, "{:?}", run.guest);
    assert_eq!(binds[0].ret, 0, "the bind goes on: {:?}", binds[0]);
    let log = run.module_lines("rust_kprobe");
    let planted = the_line(&log, "Planted kprobe at ");
    let addr = hex_after(planted, "at ").expect("address in the load line");
    let fault = the_line(&log, "fault_handler: ");
    assert!(
        fault.starts_with(&format!(
            "fault_handler: p->addr = {addr:#x}, reading struct sockaddr at "
        )),
        "{fault}"
    );
    assert_eq!(count(&log, "socket bind"), 0);
    let t = kprobe_totals(&log);
    assert_eq!((t.hits, t.faults, t.reported), (1, 1, 0), "{t:?}");
}

/// A decoder's fault line goes through `events=` and `ratelimit=` like every other line: with
/// `events=0` a failed read is counted, not printed (a hot function must not flood the log).
fn kprobe_fault_lines_obey_events(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kprobe symbol=__sys_bind decoder=bind events=0
         loadgen bind 4310 4311 4312
         dstat KSTATS rust_kprobe stats
         rmmod rust_kprobe
         load rust_kprobe symbol=__sys_bind decoder=bind ratelimit=1
         loadgen bind 4313 4314 4315 4316
         rmmod rust_kprobe",
    );
    let binds = run.ops("bind");
    assert_eq!(binds.iter().map(|o| o.ret).collect::<Vec<_>>(), [0; 7]);
    let log = run.module_lines("rust_kprobe");
    let t = KprobeTotals::all(&log);
    assert_eq!(t.len(), 2, "{log:#?}");
    assert_eq!(
        (t[0].hits, t[0].faults, t[0].reported),
        (3, 3, 0),
        "{:?}",
        t[0]
    );
    assert_eq!(run.stat("KSTATS", "faults"), 3);
    // events=0: none printed. ratelimit=1: the four binds of one second, one line (the
    // limiter's window may roll over once: two at most), the rest suppressed.
    let faults = count(&log, "fault_handler: ");
    assert!((1..=2).contains(&faults), "{faults} fault lines: {log:#?}");
    assert_eq!((t[1].hits, t[1].faults), (4, 4), "{:?}", t[1]);
    assert_eq!(t[1].suppressed, 4 - faults as u64, "{:?}", t[1]);
}

/// `symbol=` of a function without a decoder: its name, the task and (`args=N`) its first N
/// argument registers as the kernel's own `$argN` shows them; never another function's
/// meaning, never a fault.
fn kprobe_raw_args_agree_with_tracefs(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kprobe symbol=__sys_bind args=3
         kevent rkraw 'p:rkraw __sys_bind a1=$arg1 a2=$arg2 a3=$arg3'
         loadgen bind 30600 30601
         loadgen bind-raw 2 2 30602
         trace_dump
         kevent_rm rkraw
         rmmod rust_kprobe
         load rust_kprobe symbol=__sys_bind
         loadgen bind 30603
         rmmod rust_kprobe",
    );
    let ops = run.ops("bind");
    assert_eq!(
        ops.iter().map(|o| o.ret).collect::<Vec<_>>(),
        [0, 0, -22, 0],
        "{:?}",
        run.guest
    );
    let log = run.module_lines("rust_kprobe");
    let planted: Vec<&str> = log
        .iter()
        .filter(|l| l.starts_with("Planted kprobe at "))
        .copied()
        .collect();
    assert_eq!(planted.len(), 2, "{log:#?}");
    assert!(
        planted.iter().all(|l| l.ends_with(", decoder raw")),
        "{planted:?}"
    );
    let ev = run.trace_events("rkraw");
    assert_eq!(ev.len(), 3, "{ev:#?}");
    let from_trace: Vec<String> = ev
        .iter()
        .zip(&ops)
        .map(|(e, o)| {
            // __sys_bind(fd, umyaddr, addrlen): the length the load program passed.
            assert_eq!(e.arg("a3"), o.len as i64, "{e:?} vs {o:?}");
            assert_eq!((e.comm.as_str(), e.pid), (o.comm.as_str(), o.tid));
            format!(
                "__sys_bind name:{} pid:{} arg1={:#x} arg2={:#x} arg3={:#x}",
                e.comm,
                e.pid,
                e.arg_u64("a1"),
                e.arg_u64("a2"),
                e.arg_u64("a3")
            )
        })
        .collect();
    let from_module: Vec<&str> = log
        .iter()
        .filter(|l| l.starts_with("__sys_bind name:") && l.contains(" arg1="))
        .copied()
        .collect();
    assert_eq!(from_module, from_trace);
    // args=0 (the default): the name and the task, nothing else.
    let o = &ops[3];
    assert_once(&log, &format!("__sys_bind name:{} pid:{}", o.comm, o.tid));
    for what in ["socket bind", "port=", "fault_handler", "connect"] {
        assert_eq!(count(&log, what), 0, "`{what}` in {log:#?}");
    }
    let t = KprobeTotals::all(&log);
    assert_eq!(t.len(), 2, "{log:#?}");
    assert_eq!(
        (t[0].hits, t[0].reported, t[0].faults),
        (3, 3, 0),
        "{:?}",
        t[0]
    );
    assert_eq!(
        (t[1].hits, t[1].reported, t[1].faults),
        (1, 1, 0),
        "{:?}",
        t[1]
    );
}

/// `tcp_v4_connect` and `tcp_v6_connect` have the connect decoder: the destination address
/// and port, as the kernel's own event reads them from the same `struct sockaddr`, and as the
/// load program connected.
fn kprobe_connect_decoder_agrees_with_tracefs(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kprobe symbol=tcp_v4_connect
         kevent rkc4 'p:rkc4 tcp_v4_connect family=+0($arg2):u16 hi=+2($arg2):u8 lo=+3($arg2):u8 a=+4($arg2):x32 len=$arg3:s32'
         loadgen connect 9 30700
         trace_dump
         kevent_rm rkc4
         rmmod rust_kprobe
         load rust_kprobe symbol=tcp_v6_connect port=30702
         kevent rkc6 'p:rkc6 tcp_v6_connect family=+0($arg2):u16 hi=+2($arg2):u8 lo=+3($arg2):u8 a0=+8($arg2):x32 a1=+12($arg2):x32 a2=+16($arg2):x32 a3=+20($arg2):x32'
         loadgen connect inet6 30701 30702
         trace_dump
         kevent_rm rkc6
         rmmod rust_kprobe",
    );
    let ops = run.ops("connect");
    // Nothing listens: refused, after the protocol's connect ran.
    assert_eq!(
        ops.iter().map(|o| o.ret).collect::<Vec<_>>(),
        [-111; 4],
        "{:?}",
        run.guest
    );
    let log = run.module_lines("rust_kprobe");
    let planted = log
        .iter()
        .filter(|l| l.starts_with("Planted kprobe at ") && l.ends_with(", decoder connect"))
        .count();
    assert_eq!(planted, 2, "{log:#?}");
    let port = |e: &TraceEvent| (e.arg("hi") * 256 + e.arg("lo")) as u16;
    let v4 = run.trace_events("rkc4");
    assert_eq!(v4.len(), 2, "{v4:#?}");
    for (e, o) in v4.iter().zip(&ops[..2]) {
        assert_eq!((e.comm.as_str(), e.pid), (o.comm.as_str(), o.tid));
        assert_eq!((e.arg("family"), port(e)), (2, o.port), "{e:?} vs {o:?}");
        let ip = std::net::Ipv4Addr::from((e.arg("a") as u32).to_le_bytes());
        assert_eq!(ip, std::net::Ipv4Addr::LOCALHOST, "{e:?}");
        assert_once(
            &log,
            &format!(
                "tcp_v4_connect name:{} pid:{} connect to {ip}:{}",
                o.comm, o.tid, o.port
            ),
        );
    }
    let v6 = run.trace_events("rkc6");
    assert_eq!(v6.len(), 2, "{v6:#?}");
    for (e, o) in v6.iter().zip(&ops[2..]) {
        assert_eq!((e.arg("family"), port(e)), (10, o.port), "{e:?} vs {o:?}");
        let mut b = [0u8; 16];
        for (i, k) in ["a0", "a1", "a2", "a3"].iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&(e.arg(k) as u32).to_le_bytes());
        }
        let ip = std::net::Ipv6Addr::from(b);
        assert_eq!(ip, std::net::Ipv6Addr::LOCALHOST, "{e:?}");
        // port=30702: only that connect is reported.
        let line = format!(
            "tcp_v6_connect name:{} pid:{} connect to [{ip}]:{}",
            o.comm, o.tid, o.port
        );
        let want = usize::from(o.port == 30702);
        assert_eq!(
            log.iter().filter(|l| **l == line).count(),
            want,
            "`{line}` in {log:#?}"
        );
    }
    assert_eq!(count(&log, " connect to "), 3, "{log:#?}");
    assert_eq!(count(&log, "socket bind"), 0, "{log:#?}");
    let t = KprobeTotals::all(&log);
    assert_eq!(t.len(), 2, "{log:#?}");
    assert_eq!((t[0].hits, t[0].reported), (2, 2), "{:?}", t[0]);
    assert_eq!(
        (t[1].hits, t[1].reported, t[1].filtered),
        (2, 1, 1),
        "{:?}",
        t[1]
    );
}

/// Bad `decoder=`, `args=` and `port=` combinations: one line each, EINVAL, nothing left.
fn kprobe_bad_decoder_input_is_refused(p: &Prepared) {
    let max = match p.flavor.arch {
        Arch::X86_64 => 6,
        Arch::Arm64 => 8,
    };
    let script = format!(
        "refused rust_kprobe decoder=sockaddr
         refused rust_kprobe symbol=__sys_bind port=80
         refused rust_kprobe args=2
         refused rust_kprobe symbol=__sys_bind args={}
         off=$(past_entry __sys_bind)
         echo \"OFFSET $off\"
         refused rust_kprobe symbol=__sys_bind offset=$off args=1
         not_loaded rust_kprobe
         kprobes_list KPROBES-REFUSED",
        max + 1
    );
    let run = boot(p, &script);
    let off = guest_number(&run, "OFFSET ");
    let kp = "rust_kprobe".to_string();
    assert_eq!(refusals(&run), vec![(kp, -22); 5], "{:#?}", run.guest);
    assert!(
        run.guest_with("KPROBES-REFUSED ").is_empty(),
        "{:?}",
        run.guest
    );
    let log = run.module_lines("rust_kprobe");
    for line in [
        "decoder=sockaddr is not one of auto, bind, connect, raw".to_string(),
        "port=80: __sys_bind has the raw decoder, which reads no port (decoder=bind or connect for a function with their arguments)".to_string(),
        "args=2: the bind decoder prints what it decodes, not raw arguments (decoder=raw)".to_string(),
        format!("args={}: this architecture passes at most {max} arguments in registers", max + 1),
        format!("args= needs the probe on the function's entry: __sys_bind+{off:#x} is past it, where the arguments are unknown"),
    ] {
        assert_once(&log, &line);
    }
    let own = log
        .iter()
        .filter(|l| !l.starts_with("loading out-of-tree"))
        .count();
    // Five refusals, one line each; the past-entry one also planted (then unregistered) its
    // probe, and says so in no other line.
    assert_eq!(own, 5, "{log:#?}");
}

/// Past the entry the argument registers hold whatever the function put there: with
/// `offset=` other than 0 each hit is counted and reported, with no port; `port=` (which needs
/// one) is refused.
fn kprobe_past_entry_decodes_no_arguments(p: &Prepared) {
    // The first instruction past the entry, as the guest kernel's own decoder tells.
    let script = "off=$(past_entry inet_bind)
         echo \"OFFSET $off\"
         refused rust_kprobe offset=$off port=8080
         not_loaded rust_kprobe
         kprobes_list KPROBES-REFUSED
         load rust_kprobe offset=$off
         kallsyms inet_bind
         loadgen bind 30200 30201
         loadgen bind-raw 1 16 30202
         dstat KSTATS rust_kprobe stats
         rmmod rust_kprobe";
    let run = boot(p, script);
    let off = guest_number(&run, "OFFSET ");
    assert_eq!(refusals(&run), [("rust_kprobe".to_string(), -22)]);
    assert!(
        run.guest_with("KPROBES-REFUSED ").is_empty(),
        "{:?}",
        run.guest
    );
    let log = run.module_lines("rust_kprobe");
    assert_once(
        &log,
        &format!("port= needs the probe on the function's entry: inet_bind+{off:#x} is past it, where the arguments are unknown"),
    );
    let planted = the_line(&log, "Planted kprobe at ");
    let base = run.kallsyms("inet_bind").expect("inet_bind in kallsyms");
    assert_eq!(
        planted,
        format!(
            "Planted kprobe at {:#x} (inet_bind+{off:#x}), decoder bind",
            base + off as u64
        ),
    );
    let binds = run.ops("bind");
    assert_eq!(binds.iter().map(|o| o.ret).collect::<Vec<_>>(), [0, 0, -97]);
    // One line per bind, naming the task that made it (one process may make several).
    for o in &binds {
        let line = format!(
            "inet_bind+{off:#x} name:{} pid:{} socket bind: arguments unknown past the function's entry",
            o.comm, o.tid
        );
        let want = binds.iter().filter(|b| b.tid == o.tid).count();
        assert_eq!(
            log.iter().filter(|l| **l == line).count(),
            want,
            "want {want} `{line}` in {log:#?}"
        );
    }
    assert_eq!(count(&log, "socket bind"), binds.len(), "{log:#?}");
    // Nothing decoded from the registers.
    for what in ["socket bind port=", "family", "too short"] {
        assert_eq!(count(&log, what), 0, "`{what}` in {log:#?}");
    }
    assert_eq!(count(&log, "post_handler: "), 3, "{log:#?}");
    assert_eq!(run.stat("KSTATS", "hits"), 3);
    assert_eq!(run.stat("KSTATS", "reported"), 3);
    let t = kprobe_totals(&log);
    assert_eq!((t.hits, t.reported, t.filtered), (3, 3, 0), "{t:?}");
}

/// On an IBT kernel (Debian's x86_64) a function starts with `endbr64`, and the kprobe core
/// puts a probe at offset 0 or 4 on the instruction after it (`arch_adjust_kprobe_addr()`):
/// both are the entry, with the arguments in their registers, so `offset=4` decodes ports (and
/// takes `port=`) and prints what offset 0 prints.
fn kprobe_ibt_offset_4_is_the_entry(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kprobe offset=4 port=30400
         kprobes_list KPROBES-4
         loadgen bind 30400 30401
         rmmod rust_kprobe
         load rust_kprobe
         kprobes_list KPROBES-0
         loadgen bind 30402
         rmmod rust_kprobe",
    );
    let (l4, l0) = (
        listed(&run, "KPROBES-4 ", "inet_bind"),
        listed(&run, "KPROBES-0 ", "inet_bind"),
    );
    assert_eq!((l4.len(), l0.len()), (1, 1), "{:?}", run.guest);
    assert_eq!(
        l0[0].at, "inet_bind+0x4",
        "offset 0 not moved past an endbr64: {l0:?}"
    );
    assert_eq!(
        (l4[0].addr, &l4[0].at),
        (l0[0].addr, &l0[0].at),
        "{l4:?} vs {l0:?}"
    );
    let log = run.module_lines("rust_kprobe");
    let tag = if l0[0].ftrace { " [FTRACE]" } else { "" };
    let planted = format!(
        "Planted kprobe at {:#x} (inet_bind+0x4){tag}, decoder bind",
        l0[0].addr
    );
    assert_eq!(
        count(&log, &planted),
        2,
        "want `{planted}` twice in {log:#?}"
    );
    let binds = run.ops("bind");
    assert_eq!(binds.iter().map(|o| o.ret).collect::<Vec<_>>(), [0, 0, 0]);
    // 30400 passes the port filter, 30401 does not; 30402 with offset 0: the same line.
    assert_once(&log, &binds[0].kprobe_line("inet_bind"));
    assert_eq!(
        count(&log, &format!("port={}", binds[1].port)),
        0,
        "{log:#?}"
    );
    assert_once(&log, &binds[2].kprobe_line("inet_bind"));
    assert_eq!(count(&log, "arguments unknown"), 0, "{log:#?}");
    let t = KprobeTotals::all(&log);
    assert_eq!(t.len(), 2, "{log:#?}");
    assert_eq!(
        (t[0].hits, t[0].reported, t[0].filtered),
        (2, 1, 1),
        "{:?}",
        t[0]
    );
    assert_eq!(
        (t[1].hits, t[1].reported, t[1].filtered),
        (1, 1, 0),
        "{:?}",
        t[1]
    );
}

// ---- a module of one's own (`make new`) ---------------------------------------------------

/// The module `make new NAME=rk_newprobe SYMBOL=inet_bind` made from `template/probe.rs`
/// (the harness builds it like the others): its parameter, its planted line, and per call the
/// task and the first two arguments, as the kernel's own event reads them; `symbol=` moves it.
fn new_probe_from_template(p: &Prepared) {
    let ko = xtask::util::build_dir(&p.flavor).join("newprobe/rk_newprobe.ko");
    let out = std::process::Command::new("modinfo")
        .args(["-p"])
        .arg(&ko)
        .output()
        .expect("modinfo");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "symbol:Function to probe (default inet_bind) (string)"
    );
    let run = boot(
        p,
        "load rk_newprobe
         kallsyms inet_bind
         kevent rknew 'p:rknew inet_bind a1=$arg1 a2=$arg2'
         loadgen bind 30800 30801
         trace_dump
         kevent_rm rknew
         rmmod rk_newprobe
         load rk_newprobe symbol=__sys_bind
         loadgen bind-raw 2 16 30802
         rmmod rk_newprobe",
    );
    let log = run.module_lines("rk_newprobe");
    let planted: Vec<&str> = log
        .iter()
        .filter(|l| l.starts_with("Planted kprobe at "))
        .copied()
        .collect();
    assert_eq!(planted.len(), 2, "{log:#?}");
    assert!(planted[0].ends_with(" on inet_bind"), "{planted:?}");
    assert!(planted[1].ends_with(" on __sys_bind"), "{planted:?}");
    let ops = run.ops("bind");
    assert_eq!(ops.iter().map(|o| o.ret).collect::<Vec<_>>(), [0, 0, 0]);
    let ev = run.trace_events("rknew");
    assert_eq!(ev.len(), 2, "{ev:#?}");
    let from_trace: Vec<String> = ev
        .iter()
        .zip(&ops)
        .map(|(e, o)| {
            assert_eq!((e.comm.as_str(), e.pid), (o.comm.as_str(), o.tid));
            format!(
                "inet_bind name:{} pid:{} arg1={:#x} arg2={:#x}",
                e.comm,
                e.pid,
                e.arg_u64("a1"),
                e.arg_u64("a2")
            )
        })
        .collect();
    let from_module: Vec<&str> = log
        .iter()
        .filter(|l| l.starts_with("inet_bind name:"))
        .copied()
        .collect();
    assert_eq!(from_module, from_trace);
    let o = &ops[2];
    let sys: Vec<&str> = log
        .iter()
        .filter(|l| l.starts_with(&format!("__sys_bind name:{} pid:{} arg1=", o.comm, o.tid)))
        .copied()
        .collect();
    assert_eq!(sys.len(), 1, "{log:#?}");
}

// ---- rust_kretprobe.ko -------------------------------------------------------------------

fn kretprobe_times_each_release(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kretprobe func=inet_release
         kallsyms inet_release
         kprobes_list
         loadgen bind 50001 50002 50003
         rmmod rust_kretprobe",
    );
    let log = run.module_lines("rust_kretprobe");
    let closes = run.ops("close");
    assert_eq!(closes.len(), 3, "{:?}", run.guest);
    assert!(closes.iter().all(|o| o.ret == 0), "{closes:?}");
    assert_eq!(
        kretprobe_returns(&log, "inet_release"),
        [0, 0, 0],
        "{log:#?}"
    );
    // The address and symbol+offset the kprobe core holds (kprobes/list).
    let core = listed(&run, "KPROBES ", "inet_release");
    assert_eq!(core.len(), 1, "{core:?}");
    assert_once(
        &log,
        &format!(
            "Planted return probe at inet_release: {:#x} ({})",
            core[0].addr, core[0].at
        ),
    );
    let base = run
        .kallsyms("inet_release")
        .expect("inet_release in kallsyms");
    if p.flavor.kernel.built_here() {
        assert_eq!(core[0].addr, base, "{core:?}");
    }
    let unload = the_line(&log, "kretprobe at ");
    assert!(unload.ends_with("unregistered"), "{unload}");
    assert_once(&log, "Missed probing 0 instances of inet_release");
}

fn kretprobe_int_return_value(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kretprobe func=inet_bind hist=1
         loadgen inuse 50010
         rmmod rust_kretprobe",
    );
    let log = run.module_lines("rust_kretprobe");
    let rets: Vec<i64> = run.ops("bind").iter().map(|o| o.ret as i64).collect();
    assert_eq!(rets, [0, -98], "the second bind must get EADDRINUSE");
    assert_eq!(kretprobe_returns(&log, "inet_bind"), rets, "{log:#?}");
    // hist=1: the tally of return values at unload.
    assert_once(&log, "inet_bind returned 0: 1 times");
    assert_once(&log, "inet_bind returned -98: 1 times");
    assert!(
        log.iter()
            .any(|l| l.starts_with("inet_bind: count 2, min ")),
        "{log:#?}"
    );
}

fn kretprobe_unknown_func_is_refused(p: &Prepared) {
    let run = boot(
        p,
        "refused rust_kretprobe func=no_such_function_here
         not_loaded rust_kretprobe
         kprobes_list
         load rust_kretprobe func=inet_release
         loadgen bind 50020
         rmmod rust_kretprobe",
    );
    assert_eq!(refusals(&run), [("rust_kretprobe".to_string(), -2)]);
    let log = run.module_lines("rust_kretprobe");
    assert_once(
        &log,
        "cannot probe no_such_function_here: no such symbol (ENOENT) (errno -2)",
    );
    assert!(
        run.guest_with("KPROBES ").is_empty(),
        "left registered: {:?}",
        run.guest_with("KPROBES ")
    );
    assert_eq!(
        kretprobe_returns(&log, "inet_release"),
        [0],
        "the valid load after must work: {log:#?}"
    );
}

fn kretprobe_maxactive_bounds_instances(p: &Prepared) {
    // hrtimer_nanosleep sleeps: 4 threads inside it at once need 4 instances. The kernel's own
    // `r1:` event (maxactive 1 too) on the same calls is the second opinion on the misses.
    let run = boot(
        p,
        "load rust_kretprobe func=hrtimer_nanosleep maxactive=1 events=0 hist=1
         kevent rkslp 'r1:rkslp hrtimer_nanosleep'
         loadgen sleep 4 500
         sed 's/^ */KPROFILE /' $T/kprobe_profile
         kevent_rm rkslp
         rmmod rust_kretprobe
         load rust_kretprobe func=hrtimer_nanosleep events=0 hist=1
         loadgen sleep 4 500
         rmmod rust_kretprobe",
    );
    assert_eq!(run.ops("sleep").len(), 8, "{:?}", run.guest);
    let log = run.module_lines("rust_kretprobe");
    let missed: Vec<i64> = log
        .iter()
        .filter(|l| l.starts_with("Missed probing "))
        .map(|l| number_after(l, "Missed probing ").unwrap_or_else(|| panic!("{l}")))
        .collect();
    let counts: Vec<i64> = log
        .iter()
        .filter(|l| l.starts_with("hrtimer_nanosleep: count "))
        .map(|l| number_after(l, "count ").unwrap_or_else(|| panic!("{l}")))
        .collect();
    assert_eq!((missed.len(), counts.len()), (2, 2), "{log:#?}");
    // maxactive=1: each of the 4 sleeps is either timed or missed, and some are missed.
    assert!(
        missed[0] >= 1 && counts[0] + missed[0] == 4,
        "maxactive=1 with 4 sleepers must miss: {log:#?}"
    );
    // ... exactly as many as the kernel's own return probe with one instance missed: both see
    // the same entries and returns, in the same order.
    let profile = run.guest_with("KPROFILE rkslp ");
    assert_eq!(profile.len(), 1, "{:?}", run.guest_with("KPROFILE"));
    let f: Vec<i64> = profile[0]
        .split_whitespace()
        .skip(2)
        .map(|n| n.parse().unwrap_or_else(|_| panic!("{profile:?}")))
        .collect();
    assert_eq!(
        (f[0], f[1]),
        (counts[0], missed[0]),
        "r1: event (returns, misses) vs the module's (count, missed): {profile:?} {log:#?}"
    );
    assert_eq!(
        (missed[1], counts[1]),
        (0, 4),
        "the default maxactive must time all 4 sleepers: {log:#?}"
    );
}

// ---- the kernel's own tracing as the second opinion ----------------------------------------

/// A `p:` kprobe event of the kernel's (tracefs) on the same function as `rust_kprobe`: the
/// two probes share one address, see the same hits (the module's counter, the event's hits,
/// the binds made), decode the same port and unload in either order.
fn kprobe_agrees_with_tracefs(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kprobe
         kallsyms inet_bind
         kevent rkbind 'p:rkbind inet_bind family=+0($arg2):u16 hi=+2($arg2):u8 lo=+3($arg2):u8 len=$arg3:s32'
         kprobes_list KPROBES-BOTH
         loadgen bind 30000 30001 30002
         loadgen inuse 30003
         loadgen bind-raw 2 2 30004
         loadgen bind-raw 1 16 30005
         loadgen bind inet6 30006
         dstat KSTATS rust_kprobe stats
         rmmod rust_kprobe
         kprobes_list KPROBES-EVENT
         loadgen bind 30007
         trace_dump
         kevent_rm rkbind
         kprobes_list KPROBES-END",
    );
    // Where the core put both entry probes (past an endbr64 on an IBT kernel).
    let both = listed(&run, "KPROBES-BOTH ", "inet_bind");
    assert_eq!(both.len(), 2, "{both:?}");
    let (base, entry) = (both[0].addr, both[0].at.clone());
    let ops = run.ops("bind");
    assert_eq!(
        ops.iter().map(|o| o.ret).collect::<Vec<_>>(),
        [0, 0, 0, 0, -98, -22, -97, 0, 0],
        "{:?}",
        run.guest
    );
    // AF_INET sockets go through inet_bind; the last one after the module left.
    let inet: Vec<&Op> = ops.iter().filter(|o| o.family != "inet6").collect();
    let (with_module, after) = inet.split_at(inet.len() - 1);
    let log = run.module_lines("rust_kprobe");
    let t = kprobe_totals(&log);
    let n = with_module.len() as u64;
    assert_eq!(n, 7);
    assert_eq!((t.hits, t.reported, t.missed), (n, n, 0), "{t:?}");
    assert_eq!(run.stat("KSTATS", "hits"), n);
    // The kernel's event: one per inet_bind call, by the same task, with the same arguments.
    let ev = run.trace_events("rkbind");
    assert_eq!(ev.len(), inet.len(), "{ev:#?}");
    for (e, o) in ev.iter().zip(with_module.iter().chain(after)) {
        assert_eq!(
            (e.comm.as_str(), e.pid),
            (o.comm.as_str(), o.tid),
            "{e:?} vs {o:?}"
        );
        assert!(e.at.starts_with(&format!("{entry}/")), "{e:?}");
        assert_eq!(e.arg("len"), o.len as i64, "{e:?} vs {o:?}");
        let family = if o.family == "raw1" { 1 } else { 2 };
        assert_eq!(e.arg("family"), family, "{e:?} vs {o:?}");
        if o.len >= 4 {
            assert_eq!(
                e.arg("hi") * 256 + e.arg("lo"),
                o.port as i64,
                "{e:?} vs {o:?}"
            );
        }
    }
    // ... and what the module reported, in order, for the ones with a port.
    let from_trace: Vec<String> = ev
        .iter()
        .zip(with_module)
        .filter(|(_, o)| o.family == "inet")
        .map(|(e, _)| {
            let port = e.arg("hi") * 256 + e.arg("lo");
            format!(
                "inet_bind name:{} pid:{} socket bind port={port}",
                e.comm, e.pid
            )
        })
        .collect();
    let from_module: Vec<&str> = log
        .iter()
        .filter(|l| l.contains("socket bind port="))
        .copied()
        .collect();
    assert_eq!(from_module, from_trace);
    assert_eq!(count(&log, "socket bind"), with_module.len(), "{log:#?}");
    let profile: Vec<&str> = run.guest_with("KPROFILE rkbind ");
    assert_eq!(profile.len(), 1, "{:?}", run.guest_with("KPROFILE"));
    let f: Vec<&str> = profile[0].split_whitespace().collect();
    assert_eq!(
        f.get(2..4),
        Some(&[&*inet.len().to_string(), "0"][..]),
        "{profile:?}"
    );
    // One address, two probes; then the event's alone; then none.
    let addrs = |prefix: &str| -> Vec<u64> {
        run.guest_with(prefix)
            .iter()
            .map(|l| {
                let a = l.split_whitespace().nth(1).unwrap_or("");
                u64::from_str_radix(a, 16).unwrap_or_else(|_| panic!("`{l}`"))
            })
            .collect()
    };
    assert_eq!(addrs("KPROBES-BOTH "), [base, base], "{:?}", run.guest);
    assert_eq!(addrs("KPROBES-EVENT "), [base], "{:?}", run.guest);
    assert_eq!(addrs("KPROBES-END "), Vec::<u64>::new(), "{:?}", run.guest);
}

/// The six binds of `kretprobe_agrees_with_tracefs`'s scenario (0, 0, 0, then in use, too
/// short, wrong family): their return values in the module's lines (`log`) and in the return
/// event `event`'s, by the same tasks; no instance missed. The event's records, for more checks.
fn bind_returns_agree(run: &Run, log: &[&str], event: &str) -> Vec<TraceEvent> {
    let ops = run.ops("bind");
    let rets: Vec<i64> = ops.iter().map(|o| o.ret as i64).collect();
    assert_eq!(rets, [0, 0, 0, -98, -22, -97], "{:?}", run.guest);
    assert_eq!(kretprobe_returns(log, "inet_bind"), rets, "{log:#?}");
    let ev = run.trace_events(event);
    let traced: Vec<i64> = ev.iter().map(|e| e.arg("ret")).collect();
    assert_eq!(traced, rets, "{ev:#?}");
    for (e, o) in ev.iter().zip(&ops) {
        assert_eq!(
            (e.comm.as_str(), e.pid),
            (o.comm.as_str(), o.tid),
            "{e:?} vs {o:?}"
        );
    }
    assert_once(log, "Missed probing 0 instances of inet_bind");
    ev
}

/// `rust_kretprobe func=inet_bind` and an `r:` event with `$retval` on the same calls: the
/// return values match, in order, what the load program got (success, EADDRINUSE, EINVAL,
/// EAFNOSUPPORT).
fn kretprobe_agrees_with_tracefs(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kretprobe func=inet_bind
         kallsyms inet_bind
         kevent rkret 'r:rkret inet_bind ret=$retval:s32'
         kprobes_list KPROBES-BOTH
         loadgen bind 30100 30101
         loadgen inuse 30102
         loadgen bind-raw 2 2 30103
         loadgen bind-raw 1 16 30104
         rmmod rust_kretprobe
         trace_dump
         kevent_rm rkret
         kprobes_list KPROBES-END",
    );
    let log = run.module_lines("rust_kretprobe");
    for e in bind_returns_agree(&run, &log, "rkret") {
        assert!(e.at.ends_with(" <- inet_bind"), "{e:?}");
    }
    // Both return probes where the module said it planted its own (the entry, as the core
    // reckons it: the function's address, or past its endbr64 on an IBT kernel).
    let base = run.kallsyms("inet_bind").expect("inet_bind in kallsyms");
    let planted = the_line(&log, "Planted return probe at inet_bind: ");
    let addr = hex_after(planted, ": ").expect("address in the planted line");
    if p.flavor.kernel.built_here() {
        assert_eq!(addr, base, "{planted}");
    }
    let both = run.guest_with("KPROBES-BOTH ");
    assert_eq!(both.len(), 2, "{both:?}");
    for l in &both {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(u64::from_str_radix(f[1], 16).ok(), Some(addr), "{l}");
        assert_eq!(f[2], "r", "{l}");
        assert!(
            planted.ends_with(&format!("({})", f[3])),
            "{planted} vs {l}"
        );
    }
    assert!(run.guest_with("KPROBES-END ").is_empty(), "{:?}", run.guest);
}

/// The probed function lives in a module (`vm/target/rk_target.c`) that is unloaded while both
/// probes are on it: the kprobe core marks them `[GONE]`, and both modules still unload cleanly
/// with the right counts. Then the other order: the probes go first, the target after.
fn probed_module_goes_away(p: &Prepared) {
    let run = boot(
        p,
        "load rk_target
         load rust_kprobe symbol=rk_target_call events=0
         load rust_kretprobe func=rk_target_call
         kprobes_list KPROBES-ON
         for i in 1 2 3; do echo 0 > /sys/kernel/debug/rk_target/call; done
         rmmod rk_target
         kprobes_list KPROBES-GONE
         rmmod rust_kretprobe
         rmmod rust_kprobe
         kprobes_list KPROBES-END1
         load rk_target
         load rust_kprobe symbol=rk_target_call events=0
         load rust_kretprobe func=rk_target_call
         for i in 1 2; do echo 0 > /sys/kernel/debug/rk_target/call; done
         rmmod rust_kretprobe
         rmmod rust_kprobe
         kprobes_list KPROBES-END2
         echo 0 > /sys/kernel/debug/rk_target/call
         rmmod rk_target
         not_loaded rk_target",
    );
    // `<addr>  k|r  rk_target_call+0x0  rk_target` (the module's name after the place).
    let on = run.guest_with("KPROBES-ON ");
    assert_eq!(on.len(), 2, "{:?}", run.guest);
    for l in &on {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert!(
            f.len() >= 5 && f[3].starts_with("rk_target_call+") && f[4] == "rk_target",
            "{on:?}"
        );
    }
    let gone = run.guest_with("KPROBES-GONE ");
    assert_eq!(gone.len(), 2, "{:?}", run.guest);
    assert!(
        gone.iter().all(|l| l.contains("[GONE]")),
        "not marked gone: {gone:?}"
    );
    for end in ["KPROBES-END1 ", "KPROBES-END2 "] {
        assert!(
            run.guest_with(end).is_empty(),
            "left registered: {:?}",
            run.guest
        );
    }
    // Three calls, then two: each counted once, each return timed ("0\n" is 2 bytes: 3).
    let kp = run.module_lines("rust_kprobe");
    let t = KprobeTotals::all(&kp);
    assert_eq!(t.len(), 2, "{kp:#?}");
    assert_eq!(
        (t[0].hits, t[0].missed, t[1].hits, t[1].missed),
        (3, 0, 2, 0),
        "{t:?}"
    );
    let krp = run.module_lines("rust_kretprobe");
    assert_eq!(
        kretprobe_returns(&krp, "rk_target_call"),
        [3, 3, 3, 3, 3],
        "{krp:#?}"
    );
    assert_eq!(
        count(&krp, "Missed probing 0 instances of rk_target_call"),
        2,
        "{krp:#?}"
    );
}

/// Debug kernels, fault injection: each module loaded with the 1st, 2nd, ... failable call of
/// the loading task failed (slab and page allocations; `/proc/thread-self/fail-nth` around
/// `finit_module`, so the module loader's own calls count too), until a load makes fewer calls.
/// A failed load leaves nothing behind (no module, debugfs directory or kprobe; kmemleak and
/// the splat check after the scenario) and prints at most one line of its own, an error naming
/// what; a load that went through despite a failed allocation (debugfs is optional) works: its
/// bind or close is reported.
fn load_fails_cleanly_at_every_allocation(p: &Prepared) {
    let opts = Opts::for_flavor(&p.flavor);
    let run = vm::run(p, &vm::test_name(), SWEEP, &opts).unwrap_or_else(|e| panic!("{e}"));
    if let Some(f) = sweep_failures(p, &run).first() {
        panic!("{}", f.msg());
    }
}

/// The scenario of [`load_fails_cleanly_at_every_allocation`]: `fail_each` (`vm/lib.sh`) over
/// both modules, slab allocations only, then pages too.
const SWEEP: &str = "failinit
         fail_each slab rust_kprobe
         fail_each slab rust_kretprobe
         fail_each all rust_kprobe
         fail_each all rust_kretprobe";

/// One failed check of [`sweep_failures`].
#[derive(Debug)]
enum SweepFailure {
    /// A load of `module` that went through despite its injected failure reported no event:
    /// its probe never fired. What an unpatched 7.3 kernel does to a module that does not check
    /// the core holds the probe (`RK_TEST_NO_CHECK_KEPT=1`) when arming it failed.
    NoEvent { module: &'static str, msg: String },
    /// Any other.
    Other(String),
}

impl SweepFailure {
    /// What the test fails with.
    fn msg(&self) -> &str {
        match self {
            SweepFailure::NoEvent { msg, .. } | SweepFailure::Other(msg) => msg,
        }
    }
}

/// The checks of [`SWEEP`]'s run (see [`load_fails_cleanly_at_every_allocation`]): every
/// failure, in the order the checks ran (the first is what that test fails with); where the run
/// lacks what the later checks read (a pass's `FAILPOINTS` line), the list ends there.
fn sweep_failures(p: &Prepared, run: &Run) -> Vec<SweepFailure> {
    use SweepFailure::{NoEvent, Other};
    let mut fails: Vec<SweepFailure> = unclean(p, run, &run.splats_beyond_allocation_failures())
        .into_iter()
        .map(Other)
        .collect();
    let mut check = |ok: bool, f: &dyn Fn() -> SweepFailure| {
        if !ok {
            fails.push(f());
        }
    };
    for bad in ["LEFT", "LEFT-DEBUGFS", "STILL-LOADED", "UNEXPECTED"] {
        check(run.guest_with(&format!("{bad} ")).is_empty(), &|| {
            Other(format!("{:?}", run.guest))
        });
    }
    let passes = [
        ("slab", "rust_kprobe"),
        ("slab", "rust_kretprobe"),
        ("all", "rust_kprobe"),
        ("all", "rust_kretprobe"),
    ];
    let mut init_refusals = std::collections::BTreeMap::new();
    for (k, (mode, m)) in passes.iter().enumerate() {
        let event = if *m == "rust_kprobe" {
            "inet_bind name:loadgen pid:"
        } else {
            "inet_release returned 0 and took "
        };
        let points = match try_guest_number(run, &format!("FAILPOINTS {mode} {m} ")) {
            Ok(n) => n,
            Err(e) => {
                fails.push(Other(e));
                return fails;
            }
        };
        let mut check = |ok: bool, f: &dyn Fn() -> SweepFailure| {
            if !ok {
                fails.push(f());
            }
        };
        // This pass's outcomes: the guest lines after the previous pass's `FAILPOINTS`.
        let previous = k
            .checked_sub(1)
            .map(|i| format!("FAILPOINTS {} {} ", passes[i].0, passes[i].1));
        let outcomes: Vec<&str> = run
            .guest
            .iter()
            .map(String::as_str)
            .skip_while(|l| {
                previous
                    .as_ref()
                    .is_some_and(|p| !l.starts_with(p.as_str()))
            })
            .take_while(|l| !l.starts_with(&format!("FAILPOINTS {mode} {m} ")))
            .filter(|l| l.starts_with("INSMOD-FAIL "))
            .collect();
        check(outcomes.len() as u32 == points + 1, &|| {
            Other(not_equal(
                outcomes.len() as u32,
                points + 1,
                &format!("{mode} {m}: outcomes"),
            ))
        });
        // The kernel log of each attempt: from its marker to the next.
        let marker = format!("RKFAIL {mode} {m} n=");
        let prefix = format!("{m}: ");
        let mut attempts: Vec<Vec<&str>> = vec![];
        for l in &run.dmesg {
            if l.starts_with("RKFAIL ") {
                if l.starts_with(&marker) {
                    attempts.push(vec![]);
                } else if !attempts.is_empty() {
                    break;
                }
            } else if let (Some(a), Some(own)) = (attempts.last_mut(), l.strip_prefix(&prefix)) {
                if !own.starts_with("loading out-of-tree")
                    && !own.starts_with("module verification")
                {
                    a.push(own);
                }
            }
        }
        check(attempts.len() as u32 == points + 1, &|| {
            Other(not_equal(
                attempts.len() as u32,
                points + 1,
                &format!("{mode} {m}: attempts in the log"),
            ))
        });
        let (mut failed, mut through, mut init_errors) = (0, 0, 0);
        for (i, (lines, outcome)) in attempts
            .iter()
            .zip(&outcomes)
            .enumerate()
            .take(points as usize)
        {
            let n = i + 1;
            check(outcome.starts_with(&format!("INSMOD-FAIL n={n} ")), &|| {
                Other(format!("{mode} {m}: {outcome}"))
            });
            check(outcome.contains("injected=yes"), &|| {
                Other(format!("{mode} {m}: {outcome}"))
            });
            if outcome.ends_with(" ok") {
                through += 1;
                check(lines.iter().any(|l| l.starts_with("Planted ")), &|| {
                    Other(format!("{mode} {m} n={n}: {lines:#?}"))
                });
                check(lines.iter().any(|l| l.starts_with(event)), &|| NoEvent {
                    module: m,
                    msg: format!("{mode} {m} n={n}: no event: {lines:#?}"),
                });
            } else {
                failed += 1;
                check(lines.len() <= 1, &|| {
                    Other(format!(
                        "{mode} {m} n={n} ({outcome}): more than one line: {lines:#?}"
                    ))
                });
                if let Some(l) = lines.first() {
                    init_errors += 1;
                    check(l.starts_with("cannot "), &|| {
                        Other(format!("{mode} {m} n={n}: not an error line: {l}"))
                    });
                    // ENOMEM, or the kprobe core's arming of an ftrace-based probe failed for
                    // lack of memory and 7.x's register_kprobe() still said 0: the layer sees
                    // the core does not hold the probe (`check_kept`), EAGAIN.
                    check(
                        l.contains("ENOMEM")
                            || l.contains("errno -12")
                            || (entry_on_ftrace(p)
                                && l.ends_with("the kprobe core does not hold the probe: arming it failed, and its register_kprobe() said 0 (EAGAIN) (errno -11)")),
                        &|| Other(format!("{mode} {m} n={n}: {l}")),
                    );
                }
            }
        }
        eprintln!(
            "{}: {mode} {m}: {points} failure points: {failed} loads refused ({init_errors} by the module's init, with its line), {through} went through",
            p.flavor.name()
        );
        check(points > 0 && failed > 0, &|| {
            Other(format!("{mode} {m}: nothing was failed"))
        });
        *init_refusals.entry(*m).or_insert(0) += init_errors;
    }
    // The points drift from one attempt to the next (some allocations depend on the state a
    // previous load left), so a pass can step over the module's own init allocations; over
    // both passes each module's init was failed, with its line (kprobe 0 + 2 and kretprobe
    // 4 + 1 on 6.12, 1 + 1 and 4 + 6 on 7.3 here).
    for (m, n) in init_refusals {
        if n == 0 {
            fails.push(Other(format!(
                "{m}: no injected failure reached the module's init"
            )));
        }
    }
    fails
}

/// The kprobes fix (patch 1 of `make patches`, `upstream/0001.edit`) on the 7.3 debug kernel,
/// where x86_64's entry kprobes ride ftrace and arming one allocates: the modules built without
/// the layer's check that the core holds a probe its `register_kprobe()` said 0 for
/// (`RK_TEST_NO_CHECK_KEPT=1`: plain `register_kprobe()` callers, as C modules are) pass
/// [`SWEEP`] on the patched kernel, and on the unpatched one fail it as the bug makes them and
/// only so: loads that went through with a probe that never fired, each such `rust_kprobe`
/// unloaded at address 0 (`kprobe on inet_bind unregistered`: unregistering found nothing and
/// cleared its address). Two boots of the sweep with the same two modules, built once against
/// the unpatched tree (the patch changes no layout and no symbol they use; the patched tree's
/// paths only resolve in its build's mount namespace, see upstream::kernel): the kernel is the
/// only difference.
fn kprobes_fix_makes_the_sweep_pass_without_the_check(p: &Prepared) {
    let patched = upstream::prepared(p.flavor)
        .unwrap_or_else(|e| panic!("{e}"))
        .kernel;
    let unpatched = modules::no_check_kept(p.kernel.clone(), p.flavor, "unpatched")
        .unwrap_or_else(|e| panic!("{e}"));
    let patched = Prepared {
        kernel: patched,
        flavor: p.flavor,
        initramfs: unpatched.initramfs.clone(),
    };
    // Some 1,500 loads on a debug kernel: longer than a debug boot's usual limit.
    let name = vm::test_name();
    let sweep = |q: &Prepared, tag: &str, cmdline: &str| {
        let opts = Opts {
            cmdline: cmdline.into(),
            timeout: std::time::Duration::from_secs(2700),
            ..Opts::for_flavor(&q.flavor)
        };
        let run = vm::run(q, &format!("{name}_{tag}"), SWEEP, &opts)?;
        let f = sweep_failures(q, &run);
        Ok::<_, String>((run, f))
    };
    // Both boots at once. The patched kernel has the abstraction's doctests as KUnit tests:
    // not this boot's.
    let (patched, unpatched) = std::thread::scope(|t| {
        let a = t.spawn(|| sweep(&patched, "patched", "kunit.enable=0"));
        let b = t.spawn(|| sweep(&unpatched, "unpatched", ""));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut errors = vec![];
    match patched {
        Err(e) => errors.push(format!("patched kernel: {e}")),
        Ok((run, f)) => {
            if let Some(first) = f.first() {
                errors.push(format!(
                    "patched kernel: the sweep failed without the check, {} failure(s) (serial log: {}), the first: {}",
                    f.len(),
                    run.log_path.display(),
                    first.msg()
                ));
            }
        }
    }
    match unpatched {
        Err(e) => errors.push(format!("unpatched kernel: {e}")),
        Ok((run, f)) => match the_bug(&run, &f) {
            Ok(why) => eprintln!("{}: unpatched kernel: {why}", p.flavor.name()),
            Err(e) => errors.push(format!(
                "unpatched kernel: the sweep did not fail as the bug makes it: {e} (serial log: {})",
                run.log_path.display()
            )),
        },
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Whether the sweep's failures `f` are the unpatched 7.3 bug's and only its (see
/// [`kprobes_fix_makes_the_sweep_pass_without_the_check`]): what was seen, or what was not.
fn the_bug(run: &Run, f: &[SweepFailure]) -> Result<String, String> {
    if let Some(other) = f.iter().find(|x| matches!(x, SweepFailure::Other(_))) {
        return Err(format!(
            "a failure the bug does not explain: {}",
            other.msg()
        ));
    }
    if f.is_empty() {
        return Err("it passed: no load went through with a probe that never fired".into());
    }
    let lost = |m: &str| {
        f.iter()
            .filter(|x| matches!(x, SweepFailure::NoEvent { module, .. } if *module == m))
            .count()
    };
    let (kprobe, kretprobe) = (lost("rust_kprobe"), lost("rust_kretprobe"));
    let at_0 = count(
        &run.module_lines("rust_kprobe"),
        "kprobe on inet_bind unregistered: ",
    );
    if at_0 != kprobe {
        return Err(format!(
            "{kprobe} rust_kprobe load(s) went through with no event, but {at_0} unloaded at address 0 (`kprobe on inet_bind unregistered`)"
        ));
    }
    Ok(format!(
        "{} loads went through with a probe that never fired ({kprobe} rust_kprobe, each unloaded at address 0; {kretprobe} rust_kretprobe), and nothing else failed",
        f.len()
    ))
}

// ---- bad input (issue: abuse) -------------------------------------------------------------

const EINVAL_WHY: &str =
    "not a probe point: blacklisted, in a non-kernel text section, or bad offset (EINVAL) (errno -22)";

fn bad_parameters_are_refused_cleanly(p: &Prepared) {
    // The offset inside an instruction is found by the guest kernel's own decoder.
    let (blacklisted, misaligned_errno, misaligned_why) = match p.flavor.arch {
        Arch::X86_64 => (
            "kprobe_int3_handler",
            -84,
            "offset is not at an instruction boundary (EILSEQ) (errno -84)",
        ),
        // arm64 instructions are 4 bytes, aligned: the core refuses with EINVAL.
        Arch::Arm64 => ("get_kprobe", -22, EINVAL_WHY),
    };
    let long = "x".repeat(600);
    let script = format!(
        "refused rust_kprobe symbol=no_such_symbol_here
         refused rust_kprobe symbol=
         refused rust_kprobe symbol={long}
         refused rust_kprobe symbol={blacklisted}
         mis=$(inside_insn inet_bind)
         echo \"INSIDE $mis\"
         refused rust_kprobe symbol=inet_bind offset=$mis
         refused rust_kretprobe maxactive=4097
         refused rust_kretprobe maxactive=-1
         refused rust_kretprobe func=no_such_function_here
         refused rust_kretprobe rettype=char
         not_loaded rust_kprobe
         not_loaded rust_kretprobe
         kprobes_list
         load rust_kprobe
         load rust_kretprobe
         loadgen bind 7000
         rmmod rust_kretprobe
         rmmod rust_kprobe"
    );
    let run = boot(p, &script);
    let misaligned = guest_number(&run, "INSIDE ");
    let (kp, krp) = ("rust_kprobe".to_string(), "rust_kretprobe".to_string());
    assert_eq!(
        refusals(&run),
        [
            (kp.clone(), -2),
            (kp.clone(), -22),
            (kp.clone(), -28),
            (kp.clone(), -22),
            (kp.clone(), misaligned_errno),
            (krp.clone(), -22),
            (krp.clone(), -22),
            (krp.clone(), -2),
            (krp.clone(), -22),
        ],
        "{:#?}",
        run.guest
    );
    assert!(
        run.guest_with("KPROBES ").is_empty(),
        "left registered: {:?}",
        run.guest_with("KPROBES ")
    );
    let kp = run.module_lines("rust_kprobe");
    let krp = run.module_lines("rust_kretprobe");
    let expect = [
        (
            &kp,
            "cannot probe no_such_symbol_here+0x0: no such symbol (ENOENT) (errno -2)".to_string(),
        ),
        (
            &kp,
            "symbol= is empty: name the function to probe".to_string(),
        ),
        (&kp, format!("cannot probe {blacklisted}+0x0: {EINVAL_WHY}")),
        (
            &kp,
            format!("cannot probe inet_bind+{misaligned:#x}: {misaligned_why}"),
        ),
        (&krp, "maxactive=4097 is out of range 0..=4096".to_string()),
        (&krp, "maxactive=-1 is out of range 0..=4096".to_string()),
        (
            &krp,
            "cannot probe no_such_function_here: no such symbol (ENOENT) (errno -2)".to_string(),
        ),
        (
            &krp,
            "rettype=char is not one of int, long, ulong, ptr".to_string(),
        ),
    ];
    for (log, line) in expect {
        assert_once(log, &line);
    }
    // Too long for the parameter buffer: the kernel's own parameter parser says so.
    assert_eq!(
        run.dmesg_with("' too large for parameter `symbol'").len(),
        1,
        "{:#?}",
        run.dmesg
    );
    // Every refusal printed one error line and nothing else, and the valid loads after worked.
    let own = |log: &[&str]| {
        log.iter()
            .filter(|l| !l.starts_with("loading out-of-tree"))
            .count()
    };
    // rust_kprobe: 4 refusals of its own and the parameter parser's (prefixed with the
    // module's name), then the valid load's 4 lines.
    assert_eq!(own(&kp), 5 + 4, "{kp:#?}");
    assert_eq!(own(&krp), 4 + 4, "{krp:#?}");
    let bind = &run.ops("bind")[..];
    assert_eq!(bind.len(), 1, "{:?}", run.guest);
    assert_once(&kp, &bind[0].kprobe_line("inet_bind"));
    assert_eq!(kretprobe_returns(&krp, "inet_release"), [0], "{krp:#?}");
}

fn load_unload_under_fire(p: &Prepared) {
    under_fire(p, 2)
}

/// The same with 4 vCPUs (and 4 binding loops), on two host cores.
fn load_unload_under_fire_4_vcpus(p: &Prepared) {
    under_fire(p, 4)
}

fn under_fire(p: &Prepared, cpus: u32) {
    // 50 cycles: under TCG each one takes ~0.1 s of guest time on 6.12 and 1-4 s on 7.3, where
    // the whole guest runs several times slower under emulation (not the modules: an rmmod
    // without load takes 1-2 s there too).
    // One binding loop per vCPU.
    let cycles = 50;
    let start: String = (0..cpus)
        .map(|k| format!("loadgen loop 900 > /tmp/l{k} & p{k}=$!\n"))
        .collect();
    let pids: String = (0..cpus).map(|k| format!("$p{k} ")).collect();
    let wait: String = (0..cpus).map(|k| format!("wait $p{k}\n")).collect();
    let script = format!(
        "{start}
         i=0
         while [ $i -lt {cycles} ]; do
           load rust_kprobe ratelimit=50
           load rust_kretprobe events=0 hist=1
           rmmod rust_kretprobe
           rmmod rust_kprobe
           i=$((i+1))
         done
         echo CYCLES $i
         kill {pids}
         {wait}
         cat /tmp/l*
         load rust_kprobe
         loadgen bind $(seq 7300 7349)
         rmmod rust_kprobe"
    );
    // Each vCPU on its own host thread (QEMU >= 8.1; see `vm::mttcg_safe`).
    let base = Opts::for_flavor(&p.flavor);
    let opts = Opts {
        cpus,
        timeout: base.timeout * 3 * cpus / 2,
        ..base
    };
    let run = boot_with(p, &script, opts);
    assert_eq!(
        run.guest_with("CYCLES "),
        [format!("CYCLES {cycles}").as_str()]
    );
    // The background load really ran, on every loop, while the modules came and went.
    let loops = run.loop_binds();
    assert_eq!(
        loops.len(),
        cpus as usize,
        "{:?}",
        run.guest_with("LOADGEN op=loop")
    );
    assert!(loops.iter().all(|&n| n > 0), "{loops:?}");
    let made: u64 = loops.iter().sum();
    let kp = run.module_lines("rust_kprobe");
    assert_eq!(count(&kp, "Planted kprobe at "), cycles + 1);
    let totals = KprobeTotals::all(&kp);
    assert_eq!(totals.len(), cycles + 1, "{kp:#?}");
    let (fire, clean) = totals.split_at(cycles);
    for t in fire {
        assert_eq!(t.hits, t.reported + t.suppressed, "{t:?}");
        assert_eq!((t.filtered, t.faults, t.missed), (0, 0, 0), "{t:?}");
    }
    let hit: u64 = fire.iter().map(|t| t.hits).sum();
    let reported: u64 = fire.iter().map(|t| t.reported).sum();
    assert!(
        hit > 0 && hit <= made,
        "{hit} kprobe hits under fire, {made} binds made"
    );
    // Every reported hit is one line, of one of the two loops (port 0: any free port).
    let lines: Vec<&&str> = kp
        .iter()
        .filter(|l| l.starts_with("inet_bind name:loadgen pid:"))
        .collect();
    assert_eq!(lines.len() as u64, reported + 50, "{reported} reported");
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(" port=0")).count() as u64,
        reported
    );
    let krp = run.module_lines("rust_kretprobe");
    // One `Missed probing` line per cycle. The core may count a rare miss under fire (1 in 50
    // cycles once, on 7.3 with single-threaded TCG; the cause was not pinned down: another
    // probe's handler running on that CPU, or no free instance), so the misses are summed
    // with the timed calls, which together cannot exceed the binds made.
    let missed: Vec<i64> = krp
        .iter()
        .filter(|l| l.starts_with("Missed probing ") && l.ends_with(" instances of inet_release"))
        .map(|l| number_after(l, "Missed probing ").unwrap_or_else(|| panic!("{l}")))
        .collect();
    assert_eq!(missed.len(), cycles, "{krp:#?}");
    let missed: i64 = missed.iter().sum();
    let timed: Vec<i64> = krp
        .iter()
        .filter(|l| l.starts_with("inet_release: count "))
        .map(|l| number_after(l, "count ").unwrap_or_else(|| panic!("{l}")))
        .collect();
    assert_eq!(timed.len(), cycles, "{krp:#?}");
    let timed: i64 = timed.iter().sum();
    assert!(
        timed > 0 && (timed + missed) as u64 <= made,
        "{timed} inet_release timed and {missed} missed under fire, {made} binds made"
    );
    // The clean bracket: the hits the module reports are exactly the binds made there.
    let binds = run.ops("bind");
    assert_eq!(binds.len(), 50, "{:?}", run.guest);
    assert!(binds.iter().all(|o| o.ret == 0), "{binds:?}");
    let t = clean[0];
    assert_eq!(
        (t.hits, t.reported, t.missed),
        (binds.len() as u64, binds.len() as u64, 0),
        "{t:?}"
    );
    for o in &binds {
        assert_once(&kp, &o.kprobe_line("inet_bind"));
    }
}

// ---- rust_kretprobe kind=fprobe (kernels with CONFIG_FPROBE: Debian's, the 7.3 debug one) ---

/// The tracefs helpers for fprobe events (`f:` in `dynamic_events`), as `kevent` is for kprobe
/// events; `enabled` lists the functions ftrace hooks whose name has `$1` (what an fprobe
/// leaves behind, if anything).
const FPROBE_SH: &str =
    "fevent() { echo \"$2\" >> $T/dynamic_events; echo 1 > $T/events/$1/enable; }
fevent_rm() { echo 0 > $T/events/$1/enable; echo \"-:$1\" >> $T/dynamic_events; }
enabled() { grep -c \"^$1 \" $T/enabled_functions | sed \"s/^/$2 /\" || true; }
";

/// `kind=fprobe` reads the register the function really returned in, at its exit: inet_bind's
/// 0s and errnos (address in use, too short, wrong family) in the module's lines, against the
/// load program's and the kernel's own `f:...%return` event's. (inet_release only returns 0: a
/// value read from the wrong register, or from the entry's registers, could pass
/// `fprobe_agrees_with_tracefs`.)
fn fprobe_return_values_agree_with_tracefs(p: &Prepared) {
    let script = format!(
        "{FPROBE_SH}
         fevent rkf/bret 'f:rkf/bret inet_bind%return ret=$retval:s32'
         load rust_kretprobe kind=fprobe func=inet_bind
         loadgen bind 30100 30101
         loadgen inuse 30102
         loadgen bind-raw 2 2 30103
         loadgen bind-raw 1 16 30104
         rmmod rust_kretprobe
         echo 0 > $T/events/rkf/enable
         trace_dump
         fevent_rm rkf/bret"
    );
    let run = boot(p, &script);
    let log = run.module_lines("rust_kretprobe");
    bind_returns_agree(&run, &log, "bret");
}

/// `kind=fprobe`, against the load program and the kernel's own fprobe events on the same
/// calls: an `f:` entry event says where fprobe hooks `inet_release` (the planted line must
/// say the same), an `f:...%return` event with `$retval` sees every return. The module's
/// `pid=` keeps the load program's closes (one line each, `returned 0`, debugfs `count`) and
/// filters the other process's, which the kernel's events see too (`hits`, `filtered`).
fn fprobe_agrees_with_tracefs(p: &Prepared) {
    let script = format!(
        "{FPROBE_SH}
         cp /bin/loadgen /tmp/binder
         fevent rkf/enter 'f:rkf/enter inet_release'
         fevent rkf/release 'f:rkf/release inet_release%return ret=$retval:s32'
         (until [ -e /tmp/go ]; do sleep 1; done; exec loadgen bind 50101 50102 50103 50104) & pid=$!
         echo \"FILTERED-PID $pid\"
         load rust_kretprobe kind=fprobe pid=$pid
         kallsyms inet_release
         enabled inet_release ENABLED
         /tmp/binder bind 50200
         touch /tmp/go
         wait
         dstat STATS rust_kretprobe stats
         rmmod rust_kretprobe
         echo 0 > $T/events/rkf/enable
         trace_dump
         fevent_rm rkf/enter
         fevent_rm rkf/release
         enabled inet_release AFTER
         kprobes_list"
    );
    let run = boot(p, &script);
    let pid = guest_number(&run, "FILTERED-PID ");
    let closes = run.ops("close");
    let (mine, other): (Vec<&Op>, Vec<&Op>) = closes.iter().partition(|o| o.tid == pid);
    assert_eq!((mine.len(), other.len()), (4, 1), "{:?}", run.guest);
    assert!(closes.iter().all(|o| o.ret == 0), "{closes:?}");
    assert_eq!(other[0].comm, "binder", "{other:?}");
    let log = run.module_lines("rust_kretprobe");
    // One line per close of the filtered pid, with its return value.
    assert_eq!(kretprobe_returns(&log, "inet_release"), [0; 4], "{log:#?}");
    assert_eq!(run.stat("STATS", "count"), 4);
    assert_eq!(run.stat("STATS", "filtered"), 1);
    assert_eq!(run.stat("STATS", "hits"), 5);
    assert_eq!(run.stat("STATS", "missed"), 0);
    // The kernel's own events: every return, the same tasks, the same values.
    let ret = run.trace_events("release");
    assert_eq!(ret.len(), 5, "{ret:#?}");
    for (e, o) in ret.iter().zip(&closes) {
        assert_eq!(
            (e.comm.as_str(), e.pid, e.arg("ret")),
            (o.comm.as_str(), o.tid, o.ret as i64),
            "{e:?} vs {o:?}"
        );
        assert!(e.at.ends_with(" <- inet_release"), "{e:?}");
    }
    // Where fprobe hooks the function: the entry event's location is the planted line's.
    let enter = run.trace_events("enter");
    assert_eq!(enter.len(), 5, "{enter:#?}");
    let at = enter[0]
        .at
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        enter.iter().all(|e| e.at.starts_with(&format!("{at}/"))),
        "{enter:#?}"
    );
    let planted = the_line(&log, "Planted fprobe at inet_release: ");
    assert!(planted.ends_with(&format!(" ({at})")), "{planted} vs {at}");
    let addr = hex_after(planted, ": ").expect("address in the planted line");
    let base = run
        .kallsyms("inet_release")
        .expect("inet_release in kallsyms");
    let off = u64::from_str_radix(at.rsplit("+0x").next().unwrap_or("x"), 16)
        .unwrap_or_else(|_| panic!("{at}"));
    assert_eq!(addr, base + off, "{planted} vs {at}");
    assert_eq!(
        the_line(&log, "fprobe at "),
        format!("fprobe at {addr:#x} unregistered")
    );
    assert_once(&log, "Missed probing 0 instances of inet_release");
    // While loaded, ftrace hooked inet_release (for the module and the events); after, nothing
    // is left: no hooked function, no kprobe.
    assert_eq!(run.guest_with("ENABLED "), ["ENABLED 1"], "{:?}", run.guest);
    assert_eq!(run.guest_with("AFTER "), ["AFTER 0"], "{:?}", run.guest);
    assert!(run.guest_with("KPROBES ").is_empty(), "{:?}", run.guest);
}

/// `load` (a module and its parameters) loaded and removed `cycles` times on 2 vCPUs while two
/// load programs bind and close in a loop, then loaded once more around 50 binds and closes
/// (ports 7300-7349) and its debugfs `STATS`, then removed, then `after`. Checks that every
/// cycle ran and that both loops really bound meanwhile; gives the run and how many binds the
/// loops made.
fn cycles_under_fire(p: &Prepared, load: &str, cycles: usize, after: &str) -> (Run, u64) {
    let m = load.split_whitespace().next().unwrap_or_default();
    let script = format!(
        "{FPROBE_SH}
         loadgen loop 900 > /tmp/l0 & p0=$!
         loadgen loop 900 > /tmp/l1 & p1=$!
         i=0
         while [ $i -lt {cycles} ]; do
           load {load}
           rmmod {m}
           i=$((i+1))
         done
         echo CYCLES $i
         kill $p0 $p1
         wait $p0
         wait $p1
         cat /tmp/l0 /tmp/l1
         load {load}
         loadgen bind $(seq 7300 7349)
         dstat STATS {m} stats
         rmmod {m}
         {after}"
    );
    let base = Opts::for_flavor(&p.flavor);
    let opts = Opts {
        cpus: 2,
        timeout: base.timeout * 3,
        ..base
    };
    let run = boot_with(p, &script, opts);
    assert_eq!(
        run.guest_with("CYCLES "),
        [format!("CYCLES {cycles}").as_str()]
    );
    let loops = run.loop_binds();
    assert_eq!(loops.len(), 2, "{:?}", run.guest_with("LOADGEN op=loop"));
    assert!(loops.iter().all(|&n| n > 0), "{loops:?}");
    let made = loops.iter().sum();
    (run, made)
}

/// `kind=fprobe` loaded and removed 30 times while two loops bind and close, then once more
/// around a known number of closes: the kernel stays healthy (no splat, `boot` checks), each
/// cycle unregisters and reports its misses, the timed calls never exceed the closes made,
/// and in the clean bracket every close is timed.
fn fprobe_load_unload_under_fire(p: &Prepared) {
    let cycles = 30;
    let (run, made) = cycles_under_fire(
        p,
        "rust_kretprobe kind=fprobe events=0 hist=1",
        cycles,
        "enabled inet_release AFTER",
    );
    let log = run.module_lines("rust_kretprobe");
    assert_eq!(count(&log, "Planted fprobe at inet_release: "), cycles + 1);
    assert_eq!(count(&log, "Planted return probe"), 0);
    let unregistered = log
        .iter()
        .filter(|l| l.starts_with("fprobe at ") && l.ends_with(" unregistered"))
        .count();
    assert_eq!(unregistered, cycles + 1, "{log:#?}");
    let numbers = |prefix: &str, after: &str| -> Vec<u64> {
        log.iter()
            .filter(|l| l.starts_with(prefix))
            .map(|l| number_after(l, after).unwrap_or_else(|| panic!("{l}")) as u64)
            .collect()
    };
    let missed = numbers("Missed probing ", "Missed probing ");
    let timed = numbers("inet_release: count ", "count ");
    assert_eq!(
        (missed.len(), timed.len()),
        (cycles + 1, cycles + 1),
        "{log:#?}"
    );
    let (fire_timed, fire_missed): (u64, u64) =
        (timed[..cycles].iter().sum(), missed[..cycles].iter().sum());
    assert!(
        fire_timed > 0 && fire_timed + fire_missed <= made,
        "{fire_timed} timed and {fire_missed} missed under fire, {made} binds made"
    );
    // The clean bracket: 50 closes, 50 timed, none missed (no instance pool to run out of).
    let closes = run.ops("close");
    assert_eq!(closes.len(), 50, "{:?}", run.guest);
    assert!(closes.iter().all(|o| o.ret == 0), "{closes:?}");
    assert_eq!((timed[cycles], missed[cycles]), (50, 0), "{log:#?}");
    assert_eq!(run.stat("STATS", "count"), 50);
    // The bracket's tally, in the lines of its load (a cycle under fire can tally 50 too).
    let last = log
        .iter()
        .rposition(|l| l.starts_with("Planted fprobe at "))
        .expect("a planted line");
    assert_once(&log[last..], "inet_release returned 0: 50 times");
    assert_eq!(run.guest_with("AFTER "), ["AFTER 0"], "{:?}", run.guest);
}

/// The scenario lines an entry probe's `kind` shares with its tests: an `f:` event on
/// inet_bind (its `port`), `rust_kprobe kind=<kind> pid=` of a load program that binds 50101-3
/// once `/tmp/go` exists, `while_loaded` lines, another program (`binder`) binding 50200, the
/// debugfs STATS, the unload, the event's records (`trace_dump`), and whether ftrace still
/// hooks inet_bind after (`AFTER`). `FILTERED-PID` is the filtered program's pid.
fn filtered_binds(kind: &str, while_loaded: &str) -> String {
    format!(
        "cp /bin/loadgen /tmp/binder
         fevent rkf/bind 'f:rkf/bind inet_bind port=+2($arg2):u16'
         (until [ -e /tmp/go ]; do sleep 1; done; exec loadgen bind 50101 50102 50103) & pid=$!
         echo \"FILTERED-PID $pid\"
         load rust_kprobe kind={kind} pid=$pid
         {while_loaded}
         kprobes_list
         /tmp/binder bind 50200
         touch /tmp/go
         wait
         dstat STATS rust_kprobe stats
         rmmod rust_kprobe
         echo 0 > $T/events/rkf/enable
         trace_dump
         fevent_rm rkf/bind
         enabled inet_bind AFTER"
    )
}

/// The entry events `name` (fetching inet_bind's `port`) against `binds`, in order: the same
/// tasks, the same ports (the two bytes read as a host-order u16: byte-swapped on both
/// arches); and the debugfs `STATS` of an entry-only probe with `pid=` set on 3 of 4 binds.
/// Gives the events.
fn port_events_agree(run: &Run, name: &str, binds: &[Op]) -> Vec<TraceEvent> {
    for (key, want) in [
        ("hits", 4),
        ("filtered", 1),
        ("reported", 3),
        ("faults", 0),
        ("missed", 0),
    ] {
        assert_eq!(run.stat("STATS", key), want, "{key}");
    }
    let ev = run.trace_events(name);
    assert_eq!(ev.len(), binds.len(), "{ev:#?}");
    for (e, o) in ev.iter().zip(binds) {
        assert_eq!(
            (e.comm.as_str(), e.pid, (e.arg("port") as u16).swap_bytes()),
            (o.comm.as_str(), o.tid, o.port),
            "{e:?} vs {o:?}"
        );
    }
    ev
}

/// `rust_kprobe kind=fprobe`: the same policy on an entry-only fprobe, against the load
/// program and the kernel's own `f:` event on `inet_bind` (an entry-only fprobe too: both ride
/// fprobe's `ftrace_ops`). The module's `pid=` keeps the load program's binds (one line each,
/// with its port; debugfs and unload counters) and filters another process's, which the event
/// sees too; the event's location is the planted line's; no post handler runs, no kprobe is
/// registered, and nothing stays hooked after. Then on `__sys_bind`, whose address argument is
/// a user pointer: the fault line, and the bind goes on.
fn kprobe_fprobe_agrees_with_tracefs(p: &Prepared) {
    let script = format!(
        "{FPROBE_SH}
         {}
         load rust_kprobe kind=fprobe symbol=__sys_bind decoder=bind
         loadgen bind 4300
         rmmod rust_kprobe
         enabled __sys_bind AFTER-SYS",
        filtered_binds(
            "fprobe",
            "kallsyms inet_bind
             enabled inet_bind ENABLED
             grep \"^inet_bind \" $T/enabled_functions | sed \"s/^/HOOKED /\"",
        )
    );
    let run = boot(p, &script);
    let pid = guest_number(&run, "FILTERED-PID ");
    let binds = run.ops("bind");
    assert!(binds.iter().all(|o| o.ret == 0), "{binds:?}");
    let (fault_bind, binds) = binds.split_last().expect("binds");
    assert_eq!(fault_bind.port, 4300, "{fault_bind:?}");
    let (mine, other): (Vec<&Op>, Vec<&Op>) = binds.iter().partition(|o| o.tid == pid);
    assert_eq!((mine.len(), other.len()), (3, 1), "{:?}", run.guest);
    assert_eq!(other[0].comm, "binder", "{other:?}");
    let log = run.module_lines("rust_kprobe");
    // One line per bind of the filtered pid, with its port; none for the other process.
    for o in &mine {
        assert_once(&log, &o.kprobe_line("inet_bind"));
    }
    assert_eq!(count(&log, "socket bind"), mine.len(), "{log:#?}");
    // No post handler on an fprobe, and no kprobe: fprobe is ftrace's hook, not the core's.
    assert_eq!(count(&log, "post_handler"), 0, "{log:#?}");
    assert!(run.guest_with("KPROBES ").is_empty(), "{:?}", run.guest);
    // The kernel's own event: every inet_bind call, the same tasks, the same ports.
    let ev = port_events_agree(&run, "bind", binds);
    // Where fprobe hooks the function: the event's location is the planted line's.
    let at = ev[0].at.split('/').next().unwrap_or_default().to_string();
    assert!(
        ev.iter().all(|e| e.at.starts_with(&format!("{at}/"))),
        "{ev:#?}"
    );
    let planted = the_line(&log, "Planted fprobe at inet_bind: ");
    assert!(
        planted.ends_with(&format!(
            " ({at}): entry only, no post handler, decoder bind"
        )),
        "{planted} vs {at}"
    );
    let addr = hex_after(planted, ": ").expect("address in the planted line");
    let base = run.kallsyms("inet_bind").expect("inet_bind in kallsyms");
    let off = u64::from_str_radix(at.rsplit("+0x").next().unwrap_or("x"), 16)
        .unwrap_or_else(|_| panic!("{at}"));
    assert_eq!(addr, base + off, "{planted} vs {at}");
    // The unload lines: this one's counters, then the __sys_bind load's, with its fault.
    let unloads: Vec<KprobeTotals> = log
        .iter()
        .filter_map(|l| l.strip_prefix("fprobe at "))
        .map(|l| KprobeTotals::parse(&format!("kprobe at {l}")).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(unloads.len(), 2, "{log:#?}");
    let t = unloads[0];
    assert_eq!(
        (
            t.addr,
            t.hits,
            t.reported,
            t.filtered,
            t.suppressed,
            t.faults,
            t.missed
        ),
        (addr, 4, 3, 1, 0, 0, 0),
        "{t:?}"
    );
    let sys = the_line(&log, "Planted fprobe at __sys_bind: ");
    let sys_addr = hex_after(sys, ": ").expect("address in the planted line");
    let fault = the_line(&log, "fault_handler: ");
    assert!(
        fault.starts_with(&format!(
            "fault_handler: p->addr = {sys_addr:#x}, reading struct sockaddr at "
        )),
        "{fault}"
    );
    let t = unloads[1];
    assert_eq!(
        (t.addr, t.hits, t.faults, t.reported),
        (sys_addr, 1, 1, 0),
        "{t:?}"
    );
    // While loaded, ftrace hooked inet_bind (for the module and the event); after, nothing.
    assert_eq!(run.guest_with("ENABLED "), ["ENABLED 1"], "{:?}", run.guest);
    // ... with one ftrace_ops, fprobe's own for entry-only fprobes (`fprobe_ftrace_entry()`),
    // which both ride: not the function graph tracer's, which an exit handler would add.
    let hooked = the_line(&run.guest_with("HOOKED "), "HOOKED inet_bind (1) ");
    // arm64 names a site's ops only with DYNAMIC_FTRACE_WITH_CALL_OPS, which CFI turns off
    // (the hardened kernel): there the count says one ops, not whose.
    let config =
        std::fs::read_to_string(p.kernel.dir.join(".config")).expect("the kernel's .config");
    if p.flavor.arch != Arch::Arm64
        || config
            .lines()
            .any(|l| l == "CONFIG_DYNAMIC_FTRACE_WITH_CALL_OPS=y")
    {
        assert!(hooked.contains("(fprobe_ftrace_entry+"), "{hooked}");
    }
    assert_eq!(run.guest_with("AFTER "), ["AFTER 0"], "{:?}", run.guest);
    assert_eq!(
        run.guest_with("AFTER-SYS "),
        ["AFTER-SYS 0"],
        "{:?}",
        run.guest
    );
}

/// `rust_kprobe kind=fprobe offset=4`: an fprobe hooks the function's entry only, so any
/// offset is refused with one line and EINVAL, before anything is registered: no module, no
/// hooked function, no debugfs directory; a load without it then works.
fn kprobe_fprobe_offset_is_refused(p: &Prepared) {
    let script = format!(
        "{FPROBE_SH}
         refused rust_kprobe kind=fprobe offset=4
         not_loaded rust_kprobe
         kprobes_list
         enabled inet_bind AFTER
         [ -e /sys/kernel/debug/rust_kprobe ] && echo LEFT-DEBUGFS
         load rust_kprobe kind=fprobe
         loadgen bind 7001
         rmmod rust_kprobe"
    );
    let run = boot(p, &script);
    assert_eq!(
        refusals(&run),
        [("rust_kprobe".to_string(), -22)],
        "{:#?}",
        run.guest
    );
    assert!(run.guest_with("KPROBES ").is_empty(), "{:?}", run.guest);
    assert_eq!(run.guest_with("AFTER "), ["AFTER 0"], "{:?}", run.guest);
    assert!(run.guest_with("LEFT-DEBUGFS").is_empty(), "{:?}", run.guest);
    let log = run.module_lines("rust_kprobe");
    assert_once(
        &log,
        "offset=0x4: kind=fprobe hooks the function's entry only (offset=0)",
    );
    // The refusal's one line, then the valid load's 3 (planted, the bind, unregistered).
    assert_eq!(log.len(), 1 + 3, "{log:#?}");
    let binds = run.ops("bind");
    assert_eq!(binds.len(), 1, "{:?}", run.guest);
    assert_once(&log, &binds[0].kprobe_line("inet_bind"));
    the_line(&log, "Planted fprobe at inet_bind: ");
    the_line(&log, "fprobe at ");
}

// ---- rust_kprobe kind=direct (kernels with ftrace direct calls: Debian's, the 7.3 debug one) -

/// The unload lines of `rust_kprobe kind=direct` on `sym` (`direct call on <sym> unregistered:
/// ...`), parsed (their `addr` 0: a direct call's line names the function).
fn direct_totals(log: &[&str], sym: &str) -> Vec<KprobeTotals> {
    let prefix = format!("direct call on {sym} unregistered: ");
    log.iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|l| {
            KprobeTotals::parse(&format!("kprobe at 0x0 unregistered: {l}"))
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// The `enabled_functions` entry of `sym` under `prefix` (its line and the direct call's), as
/// one string.
const HOOKED_SH: &str = "hooked() { grep -A1 \"^$1 \" $T/enabled_functions | tr '\\n\\t' '  ' | sed \"s/^/$2 /\"; echo; }";

/// `rust_kprobe kind=direct`: the same policy from an ftrace direct call to the module's own
/// trampoline, against the load program and the kernel's own `f:` event on inet_bind, first
/// sharing the call site with the event (ftrace's caller runs the event, then goes on to the
/// trampoline), then alone (the call site calls the trampoline itself); then on __sys_bind,
/// whose address argument is a user pointer: the fault line. Nothing hooked after each.
fn direct_agrees_with_tracefs(p: &Prepared) {
    let script = format!(
        "{FPROBE_SH}
         {HOOKED_SH}
         {}
         load rust_kprobe kind=direct
         hooked inet_bind ALONE
         loadgen bind 50300 50301
         rmmod rust_kprobe
         enabled inet_bind AFTER-ALONE
         kallsyms __sys_bind
         load rust_kprobe kind=direct symbol=__sys_bind decoder=bind
         loadgen bind 4300
         rmmod rust_kprobe
         enabled __sys_bind AFTER-SYS",
        filtered_binds("direct", "hooked inet_bind SHARED")
    );
    let run = boot(p, &script);
    let pid = guest_number(&run, "FILTERED-PID ");
    let binds = run.ops("bind");
    assert!(binds.iter().all(|o| o.ret == 0), "{binds:?}");
    assert_eq!(binds.len(), 4 + 2 + 1, "{:?}", run.guest);
    let (shared, rest) = binds.split_at(4);
    let (alone, fault_bind) = rest.split_at(2);
    assert_eq!(fault_bind[0].port, 4300, "{fault_bind:?}");
    let (mine, other): (Vec<&Op>, Vec<&Op>) = shared.iter().partition(|o| o.tid == pid);
    assert_eq!((mine.len(), other.len()), (3, 1), "{:?}", run.guest);
    assert_eq!(other[0].comm, "binder", "{other:?}");
    let log = run.module_lines("rust_kprobe");
    // One line per bind of the filtered pid, then per bind of the unfiltered load.
    for o in mine.iter().copied().chain(alone) {
        assert_once(&log, &o.kprobe_line("inet_bind"));
    }
    assert_eq!(
        count(&log, "socket bind"),
        mine.len() + alone.len(),
        "{log:#?}"
    );
    assert_eq!(count(&log, "post_handler"), 0, "{log:#?}");
    assert!(run.guest_with("KPROBES ").is_empty(), "{:?}", run.guest);
    assert_eq!(
        count(
            &log,
            "Planted direct call on inet_bind: its ftrace call site calls rk_direct_tramp: entry only, no post handler, decoder bind"
        ),
        2,
        "{log:#?}"
    );
    // The kernel's own event: every inet_bind call while it was on, the same tasks and ports.
    let ev = port_events_agree(&run, "bind", shared);
    let t = direct_totals(&log, "inet_bind");
    let got: Vec<_> = t
        .iter()
        .map(|t| {
            (
                t.hits,
                t.reported,
                t.filtered,
                t.suppressed,
                t.faults,
                t.missed,
            )
        })
        .collect();
    assert_eq!(got, [(4, 3, 1, 0, 0, 0), (2, 2, 0, 0, 0, 0)], "{log:#?}");
    // ftrace's account: the direct call to this module's trampoline, shared with the event's
    // ftrace_ops (two users), then alone (one).
    for (tag, users) in [("SHARED", 2), ("ALONE", 1)] {
        let h = the_line(&run.guest_with(tag), &format!("{tag} inet_bind ({users}) "));
        assert!(
            h.contains(" D ")
                && h.contains("direct-->rk_direct_tramp+0x0/")
                && h.contains("[rust_kprobe]"),
            "{h}"
        );
    }
    // The fault: __sys_bind's second argument is a user address, which the handler's nofault
    // kernel read refuses; the line names the call site, which every function of a kernel
    // has at one offset: the event's on inet_bind (past an x86 `endbr64` on an IBT kernel).
    let at = ev[0].at.split('/').next().unwrap_or_default();
    let off = u64::from_str_radix(at.rsplit("+0x").next().unwrap_or("x"), 16)
        .unwrap_or_else(|_| panic!("{at}"));
    let sys = run.kallsyms("__sys_bind").expect("__sys_bind in kallsyms");
    let fault = the_line(&log, "fault_handler: p->addr = ");
    assert!(
        fault.starts_with(&format!(
            "fault_handler: p->addr = {:#x}, reading struct sockaddr at ",
            sys + off
        )),
        "{fault} vs __sys_bind at {sys:#x}, call site at +{off:#x} ({at})"
    );
    let t = direct_totals(&log, "__sys_bind");
    assert_eq!(
        t.iter()
            .map(|t| (t.hits, t.faults, t.reported))
            .collect::<Vec<_>>(),
        [(1, 1, 0)],
        "{log:#?}"
    );
    for tag in ["AFTER", "AFTER-ALONE", "AFTER-SYS"] {
        assert_eq!(
            run.guest_with(&format!("{tag} ")),
            [format!("{tag} 0").as_str()]
        );
    }
}

/// `rust_kprobe kind=direct symbol=vprintk_emit`: the handler's own lines call the function it
/// is on. Every hit prints one line (its arguments are no bind's: a fault line on x86_64, where
/// `level` is taken for an address, a "too short" event line on arm64), and that line's printk
/// reaches `vprintk_emit` again on that CPU while the handler runs: that call is skipped and
/// counted as missed, once per line, and nothing nests (without the guard, the handler
/// recurses until the guest hangs).
fn direct_does_not_nest(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kprobe kind=direct symbol=vprintk_emit
         echo RK-MARK-1 > /dev/kmsg
         echo RK-MARK-2 > /dev/kmsg
         rmmod rust_kprobe",
    );
    let log = run.module_lines("rust_kprobe");
    let t = direct_totals(&log, "vprintk_emit");
    assert_eq!(t.len(), 1, "{log:#?}");
    let t = t[0];
    let lines =
        (count(&log, "fault_handler: p->addr = ") + count(&log, "vprintk_emit name:")) as u64;
    // The two marks at least (and whatever else printed meanwhile); each hit printed one line
    // (an event or a fault), and each line's own printk was the one skipped call.
    assert!(t.hits >= 2 && t.reported + t.faults == t.hits, "{t:?}");
    assert_eq!((t.missed, lines), (t.hits, t.hits), "{t:?} {log:#?}");
}

/// `rust_kprobe kind=direct`, bad input: an offset (the call site is the entry), a glob (ftrace
/// would hook every match), an unknown function: one line each and EINVAL, EINVAL, ENOENT,
/// before or instead of a registration: no module, nothing hooked, no debugfs directory; a valid
/// load after works.
fn direct_bad_input_is_refused(p: &Prepared) {
    let script = format!(
        "{FPROBE_SH}
         refused rust_kprobe kind=direct offset=4
         refused rust_kprobe kind=direct 'symbol=inet_*'
         refused rust_kprobe kind=direct symbol=rk_no_such_function
         not_loaded rust_kprobe
         kprobes_list
         grep -c ' D ' $T/enabled_functions | sed 's/^/DIRECT /' || true
         enabled inet_bind AFTER
         [ -e /sys/kernel/debug/rust_kprobe ] && echo LEFT-DEBUGFS
         load rust_kprobe kind=direct
         loadgen bind 7001
         rmmod rust_kprobe"
    );
    let run = boot(p, &script);
    let m = "rust_kprobe".to_string();
    assert_eq!(
        refusals(&run),
        [(m.clone(), -22), (m.clone(), -22), (m, -2)],
        "{:#?}",
        run.guest
    );
    assert!(run.guest_with("KPROBES ").is_empty(), "{:?}", run.guest);
    assert!(run.guest_with("LEFT-DEBUGFS").is_empty(), "{:?}", run.guest);
    assert_eq!(run.guest_with("DIRECT "), ["DIRECT 0"], "{:?}", run.guest);
    assert_eq!(run.guest_with("AFTER "), ["AFTER 0"], "{:?}", run.guest);
    let log = run.module_lines("rust_kprobe");
    let refused = [
        "offset=0x4: kind=direct hooks the function's entry only (offset=0)",
        "cannot probe inet_*: not a plain function name (no globs, no `:`) (EINVAL) (errno -22)",
        "cannot probe rk_no_such_function: no such function, or not traceable (notrace, inline) (ENOENT) (errno -2)",
    ];
    for l in refused {
        assert_once(&log, l);
    }
    // The refusals' one line each, then the valid load's 3 (planted, the bind, unregistered).
    assert_eq!(log.len(), refused.len() + 3, "{log:#?}");
    let binds = run.ops("bind");
    assert_eq!(binds.len(), 1, "{:?}", run.guest);
    assert_once(&log, &binds[0].kprobe_line("inet_bind"));
    assert_eq!(direct_totals(&log, "inet_bind").len(), 1, "{log:#?}");
}

/// `rust_kprobe kind=direct events=0` loaded and removed 30 times while two loops bind, on 2
/// vCPUs (unregistering waits for every CPU to leave the trampoline before the module's text
/// goes), then once more around 50 binds: exactly 50 hits, nothing missed, nothing left hooked.
fn direct_load_unload_under_fire(p: &Prepared) {
    let cycles = 30;
    let (run, made) = cycles_under_fire(
        p,
        "rust_kprobe kind=direct events=0",
        cycles,
        "enabled inet_bind AFTER",
    );
    let log = run.module_lines("rust_kprobe");
    let t = direct_totals(&log, "inet_bind");
    assert_eq!(t.len(), cycles + 1, "{log:#?}");
    let fire: u64 = t[..cycles].iter().map(|t| t.hits).sum();
    assert!(
        fire > 0 && fire <= made,
        "{fire} hits under fire, {made} binds made"
    );
    assert!(t.iter().all(|t| t.missed == 0 && t.faults == 0), "{t:?}");
    assert_eq!(t[cycles].hits, 50, "{:?}", t[cycles]);
    assert_eq!(run.stat("STATS", "hits"), 50);
    assert_eq!(run.guest_with("AFTER "), ["AFTER 0"], "{:?}", run.guest);
}

/// `kind=` of both modules: anything but `kretprobe`/`kprobe`, `fprobe` (and `direct`, for
/// rust_kprobe) is refused with one line and EINVAL; on a kernel without the function tracer
/// (the project's own but the 7.3 debug one), `kind=fprobe` and `kind=direct` are refused with
/// one line too (EOPNOTSUPP). Nothing is left behind, and a
/// valid load after works.
fn kind_is_checked(p: &Prepared) {
    let no_fprobe = !p.flavor.function_tracer();
    let mut script = String::new();
    for m in ["rust_kretprobe", "rust_kprobe"] {
        script.push_str(&format!("refused {m} kind=bogus\n"));
        if no_fprobe {
            script.push_str(&format!("refused {m} kind=fprobe\n"));
            if m == "rust_kprobe" {
                script.push_str(&format!("refused {m} kind=direct\n"));
            }
        }
        script.push_str(&format!(
            "not_loaded {m}\n[ -e /sys/kernel/debug/{m} ] && echo LEFT-DEBUGFS {m}\n"
        ));
    }
    script.push_str(
        "kprobes_list
         load rust_kretprobe kind=kretprobe
         load rust_kprobe kind=kprobe
         loadgen bind 7000
         rmmod rust_kprobe
         rmmod rust_kretprobe",
    );
    let run = boot(p, &script);
    let mut want = vec![];
    for m in ["rust_kretprobe", "rust_kprobe"] {
        want.push((m.to_string(), -22));
        if no_fprobe {
            want.push((m.to_string(), -95));
            if m == "rust_kprobe" {
                want.push((m.to_string(), -95));
            }
        }
    }
    assert_eq!(refusals(&run), want, "{:#?}", run.guest);
    assert!(run.guest_with("KPROBES ").is_empty(), "{:?}", run.guest);
    assert!(run.guest_with("LEFT-DEBUGFS").is_empty(), "{:?}", run.guest);
    let own = |log: &[&str]| {
        log.iter()
            .filter(|l| {
                !l.starts_with("loading out-of-tree") && !l.starts_with("module verification")
            })
            .count()
    };
    let refused = if no_fprobe { 2 } else { 1 };
    let log = run.module_lines("rust_kretprobe");
    assert_once(&log, "kind=bogus is not one of kretprobe, fprobe");
    if no_fprobe {
        assert_once(
            &log,
            "kind=fprobe: this kernel has no fprobe (CONFIG_FPROBE)",
        );
    }
    // One line per refusal, then the valid load's 4 (planted, the call, unregistered, missed).
    assert_eq!(own(&log), refused + 4, "{log:#?}");
    assert_eq!(kretprobe_returns(&log, "inet_release"), [0], "{log:#?}");
    let log = run.module_lines("rust_kprobe");
    assert_once(&log, "kind=bogus is not one of kprobe, fprobe, direct");
    if no_fprobe {
        assert_once(
            &log,
            "kind=fprobe: this kernel has no fprobe (CONFIG_FPROBE)",
        );
        assert_once(
            &log,
            "kind=direct: this kernel has no ftrace direct calls (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS) with 7.3's ftrace_regs",
        );
    }
    // One line per refusal, then the valid load's 4 (planted, the bind, its post handler,
    // unregistered).
    let refused = if no_fprobe { 3 } else { 1 };
    assert_eq!(own(&log), refused + 4, "{log:#?}");
    let binds = run.ops("bind");
    assert_eq!(binds.len(), 1, "{:?}", run.guest);
    assert_once(&log, &binds[0].kprobe_line("inet_bind"));
    assert_eq!(kprobe_totals(&log).hits, 1);
}

// ---- filters, rate limit, histogram, live counters ----------------------------------------

fn kprobe_port_and_comm_filters(p: &Prepared) {
    let run = boot(
        p,
        "cp /bin/loadgen /tmp/binder
         load rust_kprobe port=8080
         loadgen bind 8080 8081 8080 9000
         /tmp/binder bind 8080
         rmmod rust_kprobe
         load rust_kprobe comm=loadgen
         /tmp/binder bind 7001
         loadgen bind 7002
         rmmod rust_kprobe
         (until [ -e /tmp/go ]; do sleep 1; done; exec loadgen bind 7101) & pid=$!
         load rust_kprobe pid=$pid
         loadgen bind 7100
         touch /tmp/go
         wait
         rmmod rust_kprobe",
    );
    let log = run.module_lines("rust_kprobe");
    let reported: Vec<&str> = log
        .iter()
        .filter(|l| l.contains("socket bind port="))
        .copied()
        .collect();
    let binds = run.ops("bind");
    assert_eq!(binds.len(), 9, "{:?}", run.guest);
    assert!(binds.iter().all(|o| o.ret == 0), "{binds:?}");
    // port=8080: both 8080 binds of loadgen and binder's; comm=loadgen: 7002; pid=: 7101.
    let want: Vec<String> = binds
        .iter()
        .filter(|o| o.port == 8080 || o.port == 7002 || o.port == 7101)
        .map(|o| o.kprobe_line("inet_bind"))
        .collect();
    assert_eq!(want.len(), 5);
    assert_eq!(
        reported,
        want.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(binds.iter().any(|o| o.comm == "binder" && o.port == 7001));
    let t: Vec<(u64, u64, u64)> = KprobeTotals::all(&log)
        .iter()
        .map(|t| (t.hits, t.reported, t.filtered))
        .collect();
    assert_eq!(t, [(5, 3, 2), (2, 1, 1), (2, 1, 1)], "{log:#?}");
}

fn kprobe_ratelimit(p: &Prepared) {
    // 300 binds at 5 lines a second; then, a window later, one more, whose line is preceded by
    // the note of what was dropped.
    let run = boot(
        p,
        "load rust_kprobe ratelimit=5
         echo UPTIME $(cut -d' ' -f1 /proc/uptime)
         loadgen bind $(seq 20000 20299)
         echo UPTIME $(cut -d' ' -f1 /proc/uptime)
         sleep 1.2
         loadgen bind 20300
         dstat STATS rust_kprobe stats
         rmmod rust_kprobe",
    );
    let binds = run.ops("bind");
    assert_eq!(binds.len(), 301, "{:?}", run.guest);
    let log = run.module_lines("rust_kprobe");
    let lines: Vec<&str> = log
        .iter()
        .filter(|l| l.contains("socket bind port="))
        .copied()
        .collect();
    let t = kprobe_totals(&log);
    assert_eq!(t.hits, 301, "{t:?}");
    assert_eq!(lines.len() as u64 + t.suppressed, 301, "{t:?}");
    assert_eq!(t.reported, lines.len() as u64, "{t:?}");
    // Each line is one real bind, and the last bind (a window later) always gets through.
    for l in &lines {
        assert!(
            binds.iter().any(|o| o.kprobe_line("inet_bind") == *l),
            "`{l}` is no bind the load program made"
        );
    }
    assert_eq!(
        lines.last().copied(),
        Some(binds[300].kprobe_line("inet_bind").as_str())
    );
    // At most 5 lines per one-second window the 300 binds spanned (however slow the guest).
    let t_up: Vec<f64> = run
        .guest_with("UPTIME ")
        .iter()
        .map(|l| l[7..].trim().parse().unwrap_or_else(|_| panic!("`{l}`")))
        .collect();
    assert_eq!(t_up.len(), 2);
    let windows = (t_up[1] - t_up[0]).ceil() as usize + 1;
    let burst = lines.len() - 1;
    assert!(
        burst >= 5 && burst <= 5 * windows,
        "{burst} lines over {windows} windows"
    );
    assert!(t.suppressed > 0, "300 binds at 5/s: some must be dropped");
    // Every drop is announced: the notes add up to the suppressed count (the last bind's note
    // comes after all drops).
    let notes: Vec<u64> = log
        .iter()
        .filter(|l| l.ends_with(" events suppressed by ratelimit"))
        .map(|l| number_after(l, "").unwrap_or_else(|| panic!("`{l}`")) as u64)
        .collect();
    assert!(!notes.is_empty(), "no suppression note: {log:#?}");
    assert_eq!(notes.iter().sum::<u64>(), t.suppressed, "{notes:?}");
    assert_eq!(run.stat("STATS", "hits"), 301);
    assert_eq!(run.stat("STATS", "suppressed"), t.suppressed);
    assert_eq!(run.stat("STATS", "reported"), t.reported);
}

fn kretprobe_histogram_counts_every_call(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kretprobe func=inet_release events=0 hist=1
         loadgen bind $(seq 21000 21039)
         dstat STATS rust_kretprobe stats
         dstat HIST rust_kretprobe histogram
         rmmod rust_kretprobe",
    );
    let log = run.module_lines("rust_kretprobe");
    assert_eq!(run.ops("close").len(), 40);
    assert_eq!(
        count(&log, " returned 0 and took "),
        0,
        "events=0 prints no per-call line"
    );
    let rows = |lines: &[&str]| -> Vec<(u64, u64, u64)> {
        lines
            .iter()
            .filter(|l| l.contains(" -> ") && l.contains(" : "))
            .map(|r| {
                let n: Vec<u64> = r
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|s| !s.is_empty())
                    .take(3)
                    .map(|s| s.parse().unwrap_or_else(|_| panic!("`{r}`")))
                    .collect();
                match n[..] {
                    [lo, hi, c] => (lo, hi, c),
                    _ => panic!("malformed histogram row `{r}`"),
                }
            })
            .collect()
    };
    let at_unload = rows(&log);
    assert_eq!(at_unload.iter().map(|r| r.2).sum::<u64>(), 40, "{log:#?}");
    let summary = the_line(&log, "inet_release: count 40, min ");
    let min = number_after(summary, "min ").expect("min") as u64;
    let max = number_after(summary, "max ").expect("max") as u64;
    assert!(min > 0 && min <= max, "{summary}");
    // The rows holding calls span min..=max: the first row's bucket holds min, the last max.
    let used: Vec<_> = at_unload.iter().filter(|r| r.2 > 0).collect();
    let (first, last) = (used[0], used[used.len() - 1]);
    assert!(first.0 <= min && min <= first.1, "{summary} vs {first:?}");
    assert!(last.0 <= max && max <= last.1, "{summary} vs {last:?}");
    assert_once(&log, "inet_release returned 0: 40 times");
    assert_eq!(run.stat("STATS", "count"), 40);
    assert_eq!(run.stat("STATS", "hits"), 40);
    assert_eq!(run.stat("STATS", "min_ns"), min);
    assert_eq!(run.stat("STATS", "max_ns"), max);
    let live = rows(&run.guest_with("HIST "));
    assert_eq!(live, at_unload, "live histogram vs the one at unload");
}

// ---- debugfs and rmmod --------------------------------------------------------------------

/// A debugfs file held open across rmmod: either rmmod refuses while it is open, or the read
/// fails cleanly; after the close the module unloads, its directory is gone and nothing is
/// left registered (the debug kernel: no KASAN, lockdep or kmemleak report).
fn debugfs_held_open_across_rmmod(p: &Prepared) {
    let run = boot(
        p,
        r#"load rust_kprobe
         load rust_kretprobe
         loadgen bind 31000
         for m in rust_kprobe rust_kretprobe; do
           exec 3< /sys/kernel/debug/$m/stats
           if rmmod $m 2>/tmp/err; then echo "HELD $m rmmod ok"
           else echo "HELD $m rmmod refused: $(cat /tmp/err)"; fi
           if cat <&3 >/tmp/st 2>/tmp/err; then echo "HELD $m read ok"; sed "s/^/HELDSTAT-$m /" /tmp/st
           else echo "HELD $m read failed: $(cat /tmp/err)"; fi
           exec 3<&-
           if loaded $m; then rmmod $m; fi
           not_loaded $m
           [ ! -e /sys/kernel/debug/$m ]
           echo "GONE $m"
         done
         kprobes_list"#,
    );
    assert_eq!(run.ops("bind").len(), 1, "{:?}", run.guest);
    for m in ["rust_kprobe", "rust_kretprobe"] {
        let held = run.guest_with(&format!("HELD {m} "));
        assert_eq!(held.len(), 2, "{held:?}");
        if held[0].contains(" rmmod refused: ") {
            // The open file holds the module: the read sees the live counters.
            assert!(
                held[0].ends_with("Resource temporarily unavailable"),
                "{held:?}"
            );
            assert_eq!(held[1], format!("HELD {m} read ok"), "{held:?}");
            assert_eq!(run.stat(&format!("HELDSTAT-{m}"), "hits"), 1);
        } else {
            assert_eq!(held[0], format!("HELD {m} rmmod ok"), "{held:?}");
            assert!(
                held[1].starts_with(&format!("HELD {m} read failed: ")),
                "{held:?}"
            );
        }
        assert_eq!(
            run.guest_with(&format!("GONE {m}")).len(),
            1,
            "{:?}",
            run.guest
        );
    }
    assert!(run.guest_with("KPROBES ").is_empty(), "{:?}", run.guest);
    // Each module said goodbye once.
    assert_eq!(KprobeTotals::all(&run.module_lines("rust_kprobe")).len(), 1);
    assert_eq!(
        count(
            &run.module_lines("rust_kretprobe"),
            "Missed probing 0 instances"
        ),
        1
    );
}

// ---- both ---------------------------------------------------------------------------------

fn modinfo_lists_own_parameters(p: &Prepared) {
    let dir = xtask::util::build_dir(&p.flavor);
    for (m, want) in [
        (
            "rust_kprobe",
            &[
                "symbol",
                "offset",
                "decoder",
                "args",
                "pid",
                "comm",
                "port",
                "ratelimit",
                "events",
                "kind",
            ][..],
        ),
        (
            "rust_kretprobe",
            &[
                "func",
                "maxactive",
                "rettype",
                "pid",
                "comm",
                "events",
                "hist",
                "kind",
            ][..],
        ),
    ] {
        let out = std::process::Command::new("modinfo")
            .args(["-F", "parm"])
            .arg(dir.join(format!("{m}.ko")))
            .output()
            .expect("modinfo");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut names: Vec<&str> = text.lines().filter_map(|l| l.split(':').next()).collect();
        for l in text.lines() {
            let desc = l.split_once(':').map(|(_, d)| d.trim()).unwrap_or("");
            assert!(desc.len() > 10, "{m}: parameter without description: {l}");
        }
        names.sort();
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(names, want, "{m}");
    }
}

/// Every handler trampoline is on the kprobe blacklist while its module is loaded (in
/// `.kprobes.text`, where `NOKPROBE_SYMBOL()` puts C handlers): each trampoline's address is
/// inside a range the core lists for its module (what `within_kprobe_blacklist()` checks), a
/// probe on one is refused, and the ranges go with the module. The listing names each range by
/// its start; where the module's `.kprobes.text` does not start at a symbol (arm64 kCFI: the
/// first function's type word comes first) 7.3's area walk names and sizes ranges from the
/// symbol before (upstream/0002), so there the names are not checked, the coverage is.
fn trampolines_are_blacklisted(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kretprobe
         t=$(grep entry_trampoline /proc/kallsyms | head -n 1 | cut -f1 | cut -d' ' -f3)
         echo \"TRAMPOLINE $t\"
         refused rust_kprobe symbol=$t
         load rust_kprobe
         grep -E '_trampoline.*\\[rust_k(ret)?probe\\]' /proc/kallsyms | sed 's/^/SYM /'
         for m in rust_kprobe rust_kretprobe; do
           a=$(cat /sys/module/$m/sections/.kprobes.text)
           n=$(grep -E \"^${a#0x} \" /proc/kallsyms | grep -cv ' [$]' || true)
           echo \"TEXT $m $a $n\"
         done
         grep -E '\\[rust_k(ret)?probe\\]' /sys/kernel/debug/kprobes/blacklist | sed 's/^/BLACKLIST /'
         rmmod rust_kretprobe
         rmmod rust_kprobe
         grep -cE '\\[rust_k(ret)?probe\\]' /sys/kernel/debug/kprobes/blacklist | sed 's/^/AFTER /'",
    );
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    // `BLACKLIST 0x<start>-0x<end>\t<name> [<module>]`
    let listed: Vec<(u64, u64, &str)> = run
        .guest_with("BLACKLIST ")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (s, e) = f[1]
                .split_once('-')
                .unwrap_or_else(|| panic!("range in `{l}`"));
            (hex(s).expect(l), hex(e).expect(l), *l)
        })
        .collect();
    // `SYM <addr> t <name>\t[<module>]`
    let syms: Vec<(u64, &str)> = run
        .guest_with("SYM ")
        .iter()
        .map(|l| (hex(l.split_whitespace().nth(1).expect(l)).expect(l), *l))
        .collect();
    for (module, trampolines) in [
        ("rust_kprobe", &["pre_trampoline", "post_trampoline"]),
        ("rust_kretprobe", &["entry_trampoline", "ret_trampoline"]),
    ] {
        let tag = format!("[{module}]");
        let text = run.guest_with(&format!("TEXT {module} "));
        let starts_at_symbol = match text[..] {
            [l] => l.split_whitespace().nth(3) != Some("0"),
            _ => panic!("want one TEXT line for {module}: {:#?}", run.guest),
        };
        for t in trampolines {
            let at: Vec<u64> = syms
                .iter()
                .filter(|(_, l)| l.contains(t) && l.contains(&tag))
                .map(|(a, _)| *a)
                .collect();
            assert!(!at.is_empty(), "no {t} of {module} in kallsyms: {syms:#?}");
            for a in at {
                assert!(
                    listed
                        .iter()
                        .any(|(s, e, l)| l.contains(&tag) && (*s..*e).contains(&a)),
                    "{t} of {module} at {a:#x} in no blacklisted range: {listed:#?}"
                );
            }
            if starts_at_symbol {
                assert!(
                    listed
                        .iter()
                        .any(|(_, _, l)| l.contains(t) && l.contains(&tag)),
                    "{t} of {module} not named on the blacklist: {listed:#?}"
                );
            }
        }
    }
    let t = run.guest_with("TRAMPOLINE ");
    assert!(
        t.len() == 1 && t[0].contains("entry_trampoline"),
        "{:?}",
        run.guest
    );
    assert_eq!(refusals(&run), [("rust_kprobe".to_string(), -22)]);
    let log = run.module_lines("rust_kprobe");
    let tramp = t[0].trim_start_matches("TRAMPOLINE ");
    assert_once(&log, &format!("cannot probe {tramp}+0x0: {EINVAL_WHY}"));
    assert_eq!(run.guest_with("AFTER "), ["AFTER 0"], "{:?}", run.guest);
}

// ---- arm64 only -----------------------------------------------------------------------------

/// The scenario's one bind got its rust_kprobe line and, if `kretprobe`, its close one timed
/// `inet_release` line.
fn one_bind_reported(run: &Run, kretprobe: bool) {
    let binds = run.ops("bind");
    assert_eq!(binds.len(), 1, "{:?}", run.guest);
    assert_once(
        &run.module_lines("rust_kprobe"),
        &binds[0].kprobe_line("inet_bind"),
    );
    if kretprobe {
        let r = run.module_lines("rust_kretprobe");
        assert_eq!(count(&r, "inet_release returned 0 and took "), 1, "{r:#?}");
    }
}

/// The arm64 guest CPU has what production arm64 kernels use (vm.rs: `-cpu max,pauth-impdef=on`
/// on `-M virt,mte=on`), and the kernels built with them detect it: pointer authentication,
/// BTI and MTE (Debian's kernel and the hardened one), and the probes work there.
fn arm64_pac_bti_mte_are_on(p: &Prepared) {
    let run = boot(
        p,
        "load rust_kprobe
         load rust_kretprobe func=inet_release
         loadgen bind 41010
         rmmod rust_kretprobe
         rmmod rust_kprobe",
    );
    for f in [
        "CPU features: detected: Address authentication",
        "CPU features: detected: Branch Target Identification",
        "CPU features: detected: Memory Tagging Extension",
    ] {
        assert!(
            run.serial.contains(f),
            "no `{f}` in {}",
            run.log_path.display()
        );
    }
    one_bind_reported(&run, true);
}

/// A kCFI kernel checks the type of the core's call of each handler. `rk_cfi` (vm/cfi/, a
/// test-only module) plants a Rust pre handler of the C type, which must run with no CFI
/// complaint, then one called through a pointer of another type, which the kernel must stop
/// as a CFI failure naming it (a kernel that lets the mistyped call through fails the test).
fn cfi_catches_a_mistyped_handler(p: &Prepared) {
    let run = boot(
        p,
        "load rk_cfi
         loadgen bind 41011
         rmmod rk_cfi",
    );
    let log = run.module_lines("rk_cfi");
    assert_once(&log, "Planted kprobe on inet_bind, right-typed pre handler");
    assert_once(&log, "right-typed pre handler ran");
    assert!(
        !run.serial.contains("CFI failure"),
        "{}",
        run.log_path.display()
    );

    // The mistyped call: the guest may not survive it (the failure is a BUG in the breakpoint
    // handler), so what counts is the serial log, however the boot ended.
    let name = format!("{}-mistyped", vm::test_name());
    let opts = Opts {
        timeout: std::time::Duration::from_secs(120),
        ..Opts::for_flavor(&p.flavor)
    };
    let serial = match vm::run(
        p,
        &name,
        "load rk_cfi mistyped=1
         loadgen bind 41012
         rmmod rk_cfi",
        &opts,
    ) {
        Ok(r) => r.serial,
        Err(_) => {
            let f = xtask::util::build_dir(&p.flavor)
                .join("runs")
                .join(&name)
                .join("serial.log");
            String::from_utf8_lossy(&std::fs::read(&f).unwrap_or_default()).into_owned()
        }
    };
    assert!(
        serial.contains("rk_cfi: Planted kprobe on inet_bind, mistyped pre handler"),
        "the mistyped probe was not planted:\n{serial}"
    );
    let cfi: Vec<&str> = serial
        .lines()
        .filter(|l| l.contains("CFI failure at "))
        .collect();
    assert!(
        !cfi.is_empty(),
        "the mistyped call was not caught by kCFI:\n{serial}"
    );
    assert!(
        cfi[0].contains("rk_cfi") && cfi[0].contains("wrong"),
        "the CFI failure does not name rk_cfi's handler: {cfi:?}"
    );
    assert!(
        !serial.contains("mistyped pre handler ran"),
        "the mistyped handler ran:\n{serial}"
    );
}

/// The hardened kernels load only signed modules (`MODULE_SIG_FORCE`): every module of the suite
/// is signed by docs/install.md's steps (xtask/src/signing.rs); rust_kprobe unsigned is refused
/// with the kernel's line and EKEYREJECTED ("Key was rejected by service"), leaving nothing.
fn unsigned_module_is_refused(p: &Prepared) {
    let run = boot(
        p,
        "if loadgen insmod /lib/modules/unsigned/rust_kprobe.ko; then exit 1; fi
         not_loaded rust_kprobe
         load rust_kprobe
         loadgen bind 41013
         rmmod rust_kprobe",
    );
    assert_eq!(
        run.guest_with("INSMOD errno=-129"),
        ["INSMOD errno=-129"],
        "{:?}",
        run.guest
    );
    assert_eq!(
        count(
            &run.dmesg.iter().map(String::as_str).collect::<Vec<_>>(),
            "Loading of unsigned module is rejected"
        ),
        1,
        "{:#?}",
        run.dmesg
    );
    one_bind_reported(&run, false);
}

/// `lockdown=integrity`, as Secure Boot machines run: the lockdown LSM says so, signed modules
/// load and report, the unsigned one is refused, the modules' debugfs files (read-only) stay
/// readable, and a writable debugfs file (the kprobe core's `enabled`) is refused with the
/// kernel's lockdown line: what lockdown removes, the modules do not need.
fn lockdown_integrity(p: &Prepared) {
    let opts = Opts {
        cmdline: "lockdown=integrity".into(),
        ..Opts::for_flavor(&p.flavor)
    };
    let run = boot_with(
        p,
        "mount -t securityfs securityfs /sys/kernel/security
         echo \"LOCKDOWN $(cat /sys/kernel/security/lockdown)\"
         if loadgen insmod /lib/modules/unsigned/rust_kprobe.ko; then exit 1; fi
         load rust_kprobe
         load rust_kretprobe func=inet_release
         loadgen bind 41014
         dstat KSTATS rust_kprobe stats
         if echo 0 > /sys/kernel/debug/kprobes/enabled; then echo DEBUGFS-WRITE allowed; else echo DEBUGFS-WRITE refused; fi
         rmmod rust_kretprobe
         rmmod rust_kprobe",
        opts,
    );
    assert_eq!(
        run.guest_with("LOCKDOWN "),
        ["LOCKDOWN none [integrity] confidentiality"],
        "{:?}",
        run.guest
    );
    assert_eq!(
        run.guest_with("INSMOD errno=-129"),
        ["INSMOD errno=-129"],
        "{:?}",
        run.guest
    );
    one_bind_reported(&run, true);
    assert_eq!(run.stat("KSTATS", "hits"), 1);
    assert_eq!(
        run.guest_with("DEBUGFS-WRITE "),
        ["DEBUGFS-WRITE refused"],
        "{:?}",
        run.guest
    );
    let dmesg: Vec<&str> = run.dmesg.iter().map(String::as_str).collect();
    assert!(
        count(&dmesg, "Lockdown: ") >= 1 && count(&dmesg, "debugfs access is restricted") >= 1,
        "{dmesg:#?}"
    );
}

/// The kernel at EL2 with VHE keeps its per-CPU offset in `tpidr_el2`, not `tpidr_el1`:
/// `kprobes/cpu.rs` picks the register by `CurrentEL`. Two vCPUs, two binding processes, a
/// comm filter (reads `current->comm`): every line names the right task and port, and the
/// per-CPU counters add up to what was done.
fn arm64_vhe_kernel_at_el2(p: &Prepared) {
    let opts = Opts {
        cpus: 2,
        el2: true,
        ..Opts::for_flavor(&p.flavor)
    };
    let run = boot_with(
        p,
        "load rust_kprobe comm=loadgen
         load rust_kretprobe events=0 hist=1 comm=loadgen
         loadgen bind $(seq 41000 41019) > /tmp/a & a=$!
         loadgen bind $(seq 42000 42019) > /tmp/b & b=$!
         wait $a
         wait $b
         cat /tmp/a /tmp/b
         dstat KSTATS rust_kprobe stats
         dstat RSTATS rust_kretprobe stats
         rmmod rust_kretprobe
         rmmod rust_kprobe",
        opts,
    );
    assert!(
        run.serial
            .contains("CPU features: detected: Virtualization Host Extensions"),
        "the guest kernel did not run at EL2 with VHE"
    );
    let binds = run.ops("bind");
    assert_eq!(binds.len(), 40, "{:?}", run.guest);
    assert_ne!(binds[0].tid, binds[39].tid, "two processes");
    let log = run.module_lines("rust_kprobe");
    for o in &binds {
        assert_eq!(o.ret, 0, "{o:?}");
        assert_once(&log, &o.kprobe_line("inet_bind"));
    }
    assert_eq!(run.stat("KSTATS", "hits"), 40);
    assert_eq!(run.stat("KSTATS", "reported"), 40);
    assert_eq!(run.stat("RSTATS", "count"), 40);
    let klog = run.module_lines("rust_kretprobe");
    the_line(&klog, "inet_release: count 40, min ");
}

macro_rules! vm_tests {
    ($arch:expr, $debug:expr, $kernel:expr; $($t:ident),* $(,)?) => {
        $(
            #[test]
            fn $t() {
                super::$t(&super::prep($arch, $debug, $kernel))
            }
        )*
    };
}

macro_rules! all_tests {
    ($arch:expr, $debug:expr, $kernel:expr) => {
        vm_tests!($arch, $debug, $kernel;
            kprobe_reports_each_bind,
            kprobe_inet6_bind,
            kprobe_odd_addresses_claim_no_port,
            kprobe_fault_handler_on_unreadable_argument,
            kprobe_fault_lines_obey_events,
            kprobe_raw_args_agree_with_tracefs,
            kprobe_connect_decoder_agrees_with_tracefs,
            kprobe_bad_decoder_input_is_refused,
            new_probe_from_template,
            kprobe_past_entry_decodes_no_arguments,
            kprobe_agrees_with_tracefs,
            kretprobe_agrees_with_tracefs,
            debugfs_held_open_across_rmmod,
            kretprobe_times_each_release,
            kretprobe_int_return_value,
            kretprobe_unknown_func_is_refused,
            kretprobe_maxactive_bounds_instances,
            modinfo_lists_own_parameters,
            trampolines_are_blacklisted,
            bad_parameters_are_refused_cleanly,
            load_unload_under_fire,
            kprobe_port_and_comm_filters,
            kprobe_ratelimit,
            kretprobe_histogram_counts_every_call,
            probed_module_goes_away,
            kind_is_checked,
        );
    };
}

/// The fprobe and direct kinds' tests, on the kernels with the function tracer and 7.3's fprobe
/// (Flavor::function_tracer).
macro_rules! ftrace_kind_tests {
    ($arch:expr, $v:expr, $kernel:expr) => {
        vm_tests!($arch, $v, $kernel;
        fprobe_agrees_with_tracefs,
        fprobe_return_values_agree_with_tracefs,
        fprobe_load_unload_under_fire,
        kprobe_fprobe_agrees_with_tracefs,
        kprobe_fprobe_offset_is_refused,
        direct_agrees_with_tracefs,
        direct_bad_input_is_refused,
        direct_does_not_nest,
        direct_load_unload_under_fire,
        );
    };
}

mod x86_64 {
    use super::{Arch, Kver};
    all_tests!(Arch::X86_64, false, Kver::V6_12);
}

mod arm64 {
    use super::{Arch, Kver};
    all_tests!(Arch::Arm64, false, Kver::V6_12);
    vm_tests!(Arch::Arm64, false, Kver::V6_12; arm64_vhe_kernel_at_el2);
}

mod x86_64_debug {
    use super::{Arch, Kver};
    all_tests!(Arch::X86_64, true, Kver::V6_12);
    // 4 vCPUs on the 7.3 kernels (both arches) and the debug kernels: 1.5 to 3.5 minutes a run.
    vm_tests!(Arch::X86_64, true, Kver::V6_12; load_unload_under_fire_4_vcpus);
    vm_tests!(Arch::X86_64, true, Kver::V6_12; load_fails_cleanly_at_every_allocation);
}

mod x86_64_7_3 {
    use super::{Arch, Kver};
    all_tests!(Arch::X86_64, false, Kver::V7_3);
    // 4 vCPUs on the 7.3 kernels (both arches) and the debug kernels: 1.5 to 3.5 minutes a run.
    vm_tests!(Arch::X86_64, false, Kver::V7_3; load_unload_under_fire_4_vcpus);
}

mod arm64_7_3 {
    use super::{Arch, Kver};
    all_tests!(Arch::Arm64, false, Kver::V7_3);
    // 4 vCPUs on the 7.3 kernels (both arches) and the debug kernels: 1.5 to 3.5 minutes a run.
    vm_tests!(Arch::Arm64, false, Kver::V7_3; load_unload_under_fire_4_vcpus);
    vm_tests!(Arch::Arm64, false, Kver::V7_3; arm64_vhe_kernel_at_el2);
}

mod x86_64_debug_7_3 {
    use super::{Arch, Kver};
    all_tests!(Arch::X86_64, true, Kver::V7_3);
    // 4 vCPUs on the 7.3 kernels (both arches) and the debug kernels: 1.5 to 3.5 minutes a run.
    vm_tests!(Arch::X86_64, true, Kver::V7_3; load_unload_under_fire_4_vcpus);
    vm_tests!(Arch::X86_64, true, Kver::V7_3; load_fails_cleanly_at_every_allocation);
    // The kprobes fix of `make patches`: needs the patched 7.3 debug kernel (`make check DEBUG=1`).
    vm_tests!(Arch::X86_64, true, Kver::V7_3; kprobes_fix_makes_the_sweep_pass_without_the_check);
    // The fprobe and direct kinds under KASAN, lockdep and kmemleak (kernel/fprobe-7.3.fragment).
    ftrace_kind_tests!(Arch::X86_64, true, Kver::V7_3);
}

/// The hardened 7.3 kernels (HARDENED=1): the whole suite, every kind, and what hardening adds;
/// then the arch's own tests.
macro_rules! hardened_tests {
    ($arch:expr; $($t:ident),* $(,)?) => {
        all_tests!($arch, HARDENED, Kver::V7_3);
        ftrace_kind_tests!($arch, HARDENED, Kver::V7_3);
        vm_tests!($arch, HARDENED, Kver::V7_3;
            load_unload_under_fire_4_vcpus,
            cfi_catches_a_mistyped_handler,
            unsigned_module_is_refused,
            lockdown_integrity,
            $($t),*
        );
    };
}

mod x86_64_hardened_7_3 {
    use super::{Arch, Kver, HARDENED};
    hardened_tests!(Arch::X86_64;);
}

mod arm64_hardened_7_3 {
    use super::{Arch, Kver, HARDENED};
    hardened_tests!(Arch::Arm64; arm64_vhe_kernel_at_el2, arm64_pac_bti_mte_are_on);
}

mod x86_64_debian {
    use super::{Arch, Kver};
    all_tests!(Arch::X86_64, false, Kver::Debian);
    vm_tests!(Arch::X86_64, false, Kver::Debian; kprobe_ibt_offset_4_is_the_entry);
    ftrace_kind_tests!(Arch::X86_64, false, Kver::Debian);
}

mod arm64_debian {
    use super::{Arch, Kver};
    all_tests!(Arch::Arm64, false, Kver::Debian);
    vm_tests!(Arch::Arm64, false, Kver::Debian; arm64_vhe_kernel_at_el2, arm64_pac_bti_mte_are_on);
    ftrace_kind_tests!(Arch::Arm64, false, Kver::Debian);
}
