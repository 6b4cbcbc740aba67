//! VM tests: each boots the project's kernel under QEMU with one scenario and checks the kernel
//! log against what the load program really did. `make check` builds everything first and runs
//! them for each flavor (`x86_64::`, `arm64::`, `x86_64_debug::`).

use xtask::util::{Arch, Flavor, Kver};
use xtask::vm::{self, Opts, Prepared, Run};

fn prep(arch: Arch, debug: bool, kernel: Kver) -> Prepared {
    vm::prepared(Flavor {
        arch,
        debug,
        kernel,
    })
}

/// Boots `script` and checks the run ended cleanly: exit 0 and no kernel complaint.
fn boot(p: &Prepared, name: &str, script: &str) -> Run {
    boot_with(p, name, script, Opts::for_flavor(&p.flavor))
}

fn boot_with(p: &Prepared, name: &str, script: &str, opts: Opts) -> Run {
    let run = vm::run(p, name, script, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        run.exit,
        0,
        "scenario failed; serial log: {}",
        run.log_path.display()
    );
    if p.flavor.debug {
        assert!(
            run.guest.iter().any(|l| l == "RK-KMEMLEAK scanned"),
            "no kmemleak scan ran"
        );
    }
    let splats = run.splats();
    assert!(
        splats.is_empty(),
        "kernel complained: {splats:#?}\nserial log: {}",
        run.log_path.display()
    );
    run
}

fn count(lines: &[&str], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

/// `<prefix><number>` in a line: the number.
fn number_after(line: &str, prefix: &str) -> Option<i64> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    let end = rest
        .find(|c: char| !(c == '-' || c.is_ascii_digit()))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn hex_after(line: &str, prefix: &str) -> Option<u64> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    let rest = rest.strip_prefix("0x")?;
    let end = rest
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(rest.len());
    u64::from_str_radix(&rest[..end], 16).ok()
}

// ---- rust_kprobe.ko ----------------------------------------------------------------------

fn kprobe_reports_each_bind(p: &Prepared) {
    let run = boot(
        p,
        "kprobe_reports_each_bind",
        "load rust_kprobe
         kallsyms inet_bind
         loadgen bind 49152 8080 1234 65535
         loadgen bind inet6 49153
         rmmod rust_kprobe",
    );
    let log = run.module_lines("rust_kprobe");
    let binds: Vec<_> = run.ops("bind");
    assert_eq!(binds.len(), 5, "load program output: {:?}", run.guest);
    let inet: Vec<_> = binds.iter().filter(|o| o.family == "inet").collect();
    for o in &inet {
        assert_eq!(o.ret, 0);
        let line = format!(
            "inet_bind name:{} pid:{} socket bind port={}",
            o.comm, o.tid, o.port
        );
        assert_eq!(
            log.iter().filter(|l| **l == line).count(),
            1,
            "want exactly one `{line}` in {log:#?}"
        );
    }
    // The AF_INET6 socket goes through inet6_bind: inet_bind never sees it.
    assert_eq!(count(&log, "socket bind port="), inet.len(), "{log:#?}");
    assert_eq!(
        count(&log, "post_handler: probed instruction at"),
        inet.len(),
        "{log:#?}"
    );
    let planted = log
        .iter()
        .find(|l| l.starts_with("Planted kprobe at "))
        .expect("load line");
    assert_eq!(
        hex_after(planted, "at "),
        run.kallsyms("inet_bind"),
        "probe address vs /proc/kallsyms"
    );
    let unload = log
        .iter()
        .find(|l| l.starts_with("kprobe at "))
        .expect("unload line");
    assert!(unload.contains("unregistered"), "{unload}");
    assert_eq!(
        number_after(unload, "unregistered: "),
        Some(inet.len() as i64),
        "{unload}"
    );
}

fn kprobe_inet6_bind(p: &Prepared) {
    let run = boot(
        p,
        "kprobe_inet6_bind",
        "load rust_kprobe symbol=inet6_bind
         loadgen bind inet6 49160 443
         loadgen bind inet 49162
         rmmod rust_kprobe",
    );
    let log = run.module_lines("rust_kprobe");
    for o in run.ops("bind").iter() {
        let line = format!(
            "inet6_bind name:{} pid:{} socket bind port={}",
            o.comm, o.tid, o.port
        );
        let want = usize::from(o.family == "inet6");
        assert_eq!(
            log.iter().filter(|l| **l == line).count(),
            want,
            "`{line}` in {log:#?}"
        );
    }
    assert_eq!(count(&log, "socket bind port="), 2);
}

fn kprobe_odd_addresses_claim_no_port(p: &Prepared) {
    let run = boot(
        p,
        "kprobe_odd_addresses",
        "load rust_kprobe
         loadgen bind-raw 2 2 4242
         loadgen bind-raw 1 16 4243
         loadgen bind-raw 2 15 4244
         rmmod rust_kprobe",
    );
    let log = run.module_lines("rust_kprobe");
    let ops: Vec<_> = run.ops("bind");
    // The kernel refuses them all: EINVAL (short), EAFNOSUPPORT (family), EINVAL (short).
    assert_eq!(
        ops.iter().map(|o| o.ret).collect::<Vec<_>>(),
        [-22, -97, -22]
    );
    assert_eq!(count(&log, "port=424"), 0, "a port was claimed: {log:#?}");
    let (a, b, c) = (ops[0].tid, ops[1].tid, ops[2].tid);
    for line in [
        format!("pid:{a} socket bind: addr_len 2 too short for a port (family 2)"),
        format!("pid:{b} socket bind: family 1 has no port"),
        format!("pid:{c} socket bind: addr_len 15 too short for a port (family 2)"),
    ] {
        assert_eq!(count(&log, &line), 1, "want `{line}` in {log:#?}");
    }
}

fn kprobe_fault_handler_on_unreadable_argument(p: &Prepared) {
    // __sys_bind(fd, struct sockaddr __user *, addrlen): argument 1 is a user pointer, which a
    // kernel nofault read refuses: the fault handler reports it and the hit goes on.
    let run = boot(
        p,
        "kprobe_fault",
        "load rust_kprobe symbol=__sys_bind
         loadgen bind 4300
         rmmod rust_kprobe",
    );
    let log = run.module_lines("rust_kprobe");
    let planted = log
        .iter()
        .find(|l| l.starts_with("Planted kprobe at "))
        .expect("load line");
    let addr = hex_after(planted, "at ").unwrap();
    let faults: Vec<_> = log
        .iter()
        .filter(|l| l.starts_with("fault_handler: "))
        .collect();
    assert_eq!(faults.len(), 1, "{log:#?}");
    assert!(
        faults[0].starts_with(&format!(
            "fault_handler: p->addr = {addr:#x}, reading struct sockaddr at "
        )),
        "{}",
        faults[0]
    );
    assert_eq!(count(&log, "socket bind port="), 0);
    assert!(
        log.iter()
            .any(|l| l.contains("1 hits") && l.contains("1 faults")),
        "{log:#?}"
    );
}

// ---- rust_kretprobe.ko -------------------------------------------------------------------

fn kretprobe_times_each_release(p: &Prepared) {
    let run = boot(
        p,
        "kretprobe_times_each_release",
        "load rust_kretprobe func=inet_release
         kallsyms inet_release
         loadgen bind 50001 50002 50003
         rmmod rust_kretprobe",
    );
    let log = run.module_lines("rust_kretprobe");
    let closes = run
        .loadgen()
        .iter()
        .filter(|o| o.op == "close" && o.ret == 0)
        .count();
    assert_eq!(closes, 3);
    let lines: Vec<_> = log
        .iter()
        .filter(|l| l.starts_with("inet_release returned 0 and took "))
        .collect();
    assert_eq!(lines.len(), closes, "{log:#?}");
    for l in &lines {
        let ns = number_after(l, "took ").unwrap();
        assert!(ns > 0 && l.ends_with(" ns to execute"), "{l}");
    }
    let planted = log
        .iter()
        .find(|l| l.starts_with("Planted return probe at inet_release: "))
        .expect("load line");
    assert_eq!(hex_after(planted, ": "), run.kallsyms("inet_release"));
    assert!(
        log.iter()
            .any(|l| l.starts_with("kretprobe at ") && l.ends_with("unregistered")),
        "{log:#?}"
    );
    assert!(
        log.contains(&"Missed probing 0 instances of inet_release"),
        "{log:#?}"
    );
}

fn kretprobe_int_return_value(p: &Prepared) {
    let run = boot(
        p,
        "kretprobe_int_return_value",
        "load rust_kretprobe func=inet_bind hist=1
         loadgen inuse 50010
         rmmod rust_kretprobe",
    );
    let log = run.module_lines("rust_kretprobe");
    let rets: Vec<i32> = run.ops("bind").iter().map(|o| o.ret).collect();
    assert_eq!(rets, [0, -98], "the second bind must get EADDRINUSE");
    let got: Vec<i64> = log
        .iter()
        .filter(|l| l.starts_with("inet_bind returned ") && l.contains(" and took "))
        .filter_map(|l| number_after(l, "returned "))
        .collect();
    assert_eq!(got, [0, -98], "{log:#?}");
    // hist=1: the tally of return values at unload.
    assert!(log.contains(&"inet_bind returned 0: 1 times"), "{log:#?}");
    assert!(log.contains(&"inet_bind returned -98: 1 times"), "{log:#?}");
}

fn kretprobe_unknown_func_is_refused(p: &Prepared) {
    let run = boot(
        p,
        "kretprobe_unknown_func",
        "refused rust_kretprobe func=no_such_function_here
         ! loaded rust_kretprobe
         kprobes_list
         load rust_kretprobe func=inet_release
         loadgen bind 50020
         rmmod rust_kretprobe",
    );
    let refused = run.guest_with("REFUSED rust_kretprobe");
    assert_eq!(refused.len(), 1, "{:?}", run.guest);
    assert!(
        refused[0].contains("No such file or directory")
            || refused[0].contains("ENOENT")
            || refused[0].contains("-2"),
        "{}",
        refused[0]
    );
    let log = run.module_lines("rust_kretprobe");
    assert_eq!(
        count(
            &log,
            "cannot probe no_such_function_here: no such symbol (ENOENT) (errno -2)"
        ),
        1,
        "{log:#?}"
    );
    assert!(
        run.guest_with("KPROBES ").is_empty(),
        "left registered: {:?}",
        run.guest_with("KPROBES ")
    );
    assert_eq!(
        count(&log, "inet_release returned 0 and took "),
        1,
        "the valid load after must work: {log:#?}"
    );
}

fn kretprobe_maxactive_bounds_instances(p: &Prepared) {
    // hrtimer_nanosleep sleeps: 4 threads inside it at once need 4 instances.
    let run = boot(
        p,
        "kretprobe_maxactive",
        "load rust_kretprobe func=hrtimer_nanosleep maxactive=1 events=0
         loadgen sleep 4 500
         rmmod rust_kretprobe
         load rust_kretprobe func=hrtimer_nanosleep events=0
         loadgen sleep 4 500
         rmmod rust_kretprobe",
    );
    let log = run.module_lines("rust_kretprobe");
    let missed: Vec<i64> = log
        .iter()
        .filter(|l| l.starts_with("Missed probing "))
        .filter_map(|l| number_after(l, "Missed probing "))
        .collect();
    assert_eq!(missed.len(), 2, "{log:#?}");
    assert!(
        missed[0] > 0,
        "maxactive=1 with 4 sleepers must miss: {log:#?}"
    );
    assert_eq!(
        missed[1], 0,
        "the default maxactive=20 must miss none: {log:#?}"
    );
}

// ---- bad input (issue: abuse) -------------------------------------------------------------

fn bad_parameters_are_refused_cleanly(p: &Prepared) {
    let (blacklisted, misaligned, misaligned_why) = match p.flavor.arch {
        Arch::X86_64 => (
            "kprobe_int3_handler",
            x86_offset_inside_an_instruction(p, "inet_bind"),
            "offset is not at an instruction boundary (EILSEQ) (errno -84)",
        ),
        // arm64 instructions are 4 bytes, aligned: the core refuses with EINVAL.
        Arch::Arm64 => ("get_kprobe", 2, "not a probe point"),
    };
    let long = "x".repeat(600);
    let script = format!(
        "refused rust_kprobe symbol=no_such_symbol_here
         refused rust_kprobe symbol=
         refused rust_kprobe symbol={long}
         refused rust_kprobe symbol={blacklisted}
         refused rust_kprobe symbol=inet_bind offset={misaligned}
         refused rust_kretprobe maxactive=4097
         refused rust_kretprobe maxactive=-1
         refused rust_kretprobe func=no_such_function_here
         refused rust_kretprobe rettype=char
         ! loaded rust_kprobe
         ! loaded rust_kretprobe
         kprobes_list
         load rust_kprobe
         load rust_kretprobe
         loadgen bind 7000
         rmmod rust_kretprobe
         rmmod rust_kprobe"
    );
    let run = boot(p, "bad_parameters", &script);
    assert_eq!(run.guest_with("REFUSED ").len(), 9, "{:#?}", run.guest);
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
        (
            &kp,
            format!("cannot probe {blacklisted}+0x0: not a probe point"),
        ),
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
        assert_eq!(count(log, &line), 1, "want one `{line}` in {log:#?}");
    }
    // Too long for the parameter buffer: the kernel's own parameter parser says so.
    assert_eq!(
        run.dmesg_with("' too large for parameter `symbol'").len(),
        1,
        "{:#?}",
        run.dmesg
    );
    // Every refusal printed one error line, and the valid loads after them worked.
    assert_eq!(count(&kp, "inet_bind name:loadgen"), 1, "{kp:#?}");
    assert_eq!(count(&krp, "inet_release returned 0"), 1, "{krp:#?}");
}

/// An offset into `func` that falls inside an x86 instruction (the first one longer than a
/// byte), found by disassembling the guest kernel's vmlinux on the host.
fn x86_offset_inside_an_instruction(p: &Prepared, func: &str) -> u32 {
    let vmlinux = p.kernel.dir.join("vmlinux");
    let out = std::process::Command::new("objdump")
        .args(["-d", "--no-show-raw-insn", &format!("--disassemble={func}")])
        .arg(&vmlinux)
        .output()
        .expect("objdump");
    let text = String::from_utf8_lossy(&out.stdout);
    let addrs: Vec<u64> = text
        .lines()
        .filter_map(|l| l.trim_start().split(':').next())
        .filter_map(|a| u64::from_str_radix(a.trim(), 16).ok())
        .collect();
    assert!(addrs.len() >= 2, "cannot disassemble {func}: {text}");
    let start = addrs[0];
    let (a, _) = addrs
        .windows(2)
        .map(|w| (w[0], w[1]))
        .find(|(a, b)| b - a > 1)
        .expect("a multi-byte instruction");
    (a - start + 1) as u32
}

fn load_unload_under_fire(p: &Prepared) {
    let cycles = if p.flavor.debug { 10 } else { 100 };
    let script = format!(
        "loadgen loop 900 > /tmp/a & a=$!
         loadgen loop 900 > /tmp/b & b=$!
         i=0
         while [ $i -lt {cycles} ]; do
           load rust_kprobe ratelimit=50
           load rust_kretprobe events=0 hist=1
           rmmod rust_kretprobe
           rmmod rust_kprobe
           i=$((i+1))
         done
         echo CYCLES $i
         kill $a $b
         load rust_kprobe
         loadgen bind $(seq 7300 7349)
         rmmod rust_kprobe"
    );
    // Two vCPUs, each on its own host thread (QEMU >= 8.1; see `vm::mttcg_safe`).
    let opts = Opts {
        cpus: 2,
        ..Opts::for_flavor(&p.flavor)
    };
    let run = boot_with(p, "load_unload_under_fire", &script, opts);
    assert_eq!(
        run.guest_with("CYCLES "),
        [format!("CYCLES {cycles}").as_str()]
    );
    let kp = run.module_lines("rust_kprobe");
    assert_eq!(count(&kp, "Planted kprobe at "), cycles + 1);
    assert_eq!(
        count(&run.module_lines("rust_kretprobe"), "Missed probing "),
        cycles
    );
    // The clean bracket: the hits the module reports are exactly the binds made.
    let last = kp
        .iter()
        .rev()
        .find(|l| l.starts_with("kprobe at "))
        .unwrap();
    assert_eq!(number_after(last, "unregistered: "), Some(50), "{last}");
}

// ---- filters, rate limit, histogram, live counters ----------------------------------------

fn kprobe_port_and_comm_filters(p: &Prepared) {
    let run = boot(
        p,
        "kprobe_filters",
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
    let ops = run.loadgen();
    let reported: Vec<&str> = log
        .iter()
        .filter(|l| l.contains("socket bind port="))
        .copied()
        .collect();
    let line = |o: &xtask::vm::Op| {
        format!(
            "inet_bind name:{} pid:{} socket bind port={}",
            o.comm, o.tid, o.port
        )
    };
    let binds: Vec<_> = ops.iter().filter(|o| o.op == "bind").collect();
    // port=8080: both 8080 binds of loadgen and binder's; comm=loadgen: 7002; pid=: 7101.
    let want: Vec<String> = binds
        .iter()
        .filter(|o| o.port == 8080 || o.port == 7002 || o.port == 7101)
        .map(|o| line(o))
        .collect();
    assert_eq!(want.len(), 5);
    assert_eq!(
        reported,
        want.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(binds.iter().any(|o| o.comm == "binder" && o.port == 7001));
}

fn kprobe_ratelimit(p: &Prepared) {
    let run = boot(
        p,
        "kprobe_ratelimit",
        "load rust_kprobe ratelimit=5
         echo UPTIME $(cut -d' ' -f1 /proc/uptime)
         loadgen bind $(seq 20000 20299)
         echo UPTIME $(cut -d' ' -f1 /proc/uptime)
         cat /sys/kernel/debug/rust_kprobe/stats | sed 's/^/STATS /'
         rmmod rust_kprobe",
    );
    let log = run.module_lines("rust_kprobe");
    let lines = count(&log, "socket bind port=");
    let unload = log.iter().find(|l| l.starts_with("kprobe at ")).unwrap();
    let suppressed = number_after(unload, "filtered, ").unwrap();
    assert_eq!(
        number_after(unload, "unregistered: "),
        Some(300),
        "{unload}"
    );
    assert_eq!(lines as i64 + suppressed, 300, "{unload}");
    // At most 5 lines per one-second window the binds spanned (however slow the guest is).
    let t: Vec<f64> = run
        .guest_with("UPTIME ")
        .iter()
        .map(|l| l[7..].trim().parse().unwrap())
        .collect();
    let windows = (t[1] - t[0]).ceil() as usize + 1;
    assert!(
        lines >= 5 && lines <= 5 * windows,
        "{lines} lines over {windows} windows"
    );
    let notes: i64 = log
        .iter()
        .filter(|l| l.ends_with("events suppressed by ratelimit"))
        .filter_map(|l| number_after(l, ""))
        .sum();
    assert!(
        notes <= suppressed,
        "suppression notes {notes} > {suppressed}"
    );
    let stats = run.guest_with("STATS ");
    assert!(stats.contains(&"STATS hits 300"), "{stats:?}");
    assert!(
        stats.contains(&format!("STATS suppressed {suppressed}").as_str()),
        "{stats:?}"
    );
}

fn kretprobe_histogram_counts_every_call(p: &Prepared) {
    let run = boot(
        p,
        "kretprobe_histogram",
        "load rust_kretprobe func=inet_release events=0 hist=1
         loadgen bind $(seq 21000 21039)
         cat /sys/kernel/debug/rust_kretprobe/stats | sed 's/^/STATS /'
         cat /sys/kernel/debug/rust_kretprobe/histogram | sed 's/^/HIST /'
         rmmod rust_kretprobe",
    );
    let log = run.module_lines("rust_kretprobe");
    let closes = run.ops("close").iter().count();
    assert_eq!(closes, 40);
    assert_eq!(
        count(&log, " returned 0 and took "),
        0,
        "events=0 prints no per-call line"
    );
    let rows: Vec<&str> = log
        .iter()
        .filter(|l| l.contains(" -> ") && l.contains(" : "))
        .copied()
        .collect();
    let total: i64 = rows
        .iter()
        .filter_map(|r| number_after(r.split(" : ").nth(1).unwrap_or(""), ""))
        .sum();
    assert_eq!(total, 40, "{rows:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("inet_release: count 40, min ")),
        "{log:#?}"
    );
    assert!(
        log.contains(&"inet_release returned 0: 40 times"),
        "{log:#?}"
    );
    let stats = run.guest_with("STATS ");
    assert!(
        stats.contains(&"STATS count 40") && stats.contains(&"STATS hits 40"),
        "{stats:?}"
    );
    let live: i64 = run
        .guest_with("HIST ")
        .iter()
        .filter_map(|r| number_after(r.split(" : ").nth(1).unwrap_or(""), ""))
        .sum();
    assert_eq!(live, 40);
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
                "pid",
                "comm",
                "port",
                "ratelimit",
                "events",
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
/// `.kprobes.text`, where `NOKPROBE_SYMBOL()` puts C handlers): the core lists them, refuses a
/// probe on one, and drops them with the module.
fn trampolines_are_blacklisted(p: &Prepared) {
    let run = boot(
        p,
        "trampolines_are_blacklisted",
        "load rust_kretprobe
         t=$(grep entry_trampoline /proc/kallsyms | head -n 1 | cut -f1 | cut -d' ' -f3)
         echo \"TRAMPOLINE $t\"
         refused rust_kprobe symbol=$t
         load rust_kprobe
         grep -E '\\[rust_k(ret)?probe\\]' /sys/kernel/debug/kprobes/blacklist | sed 's/^/BLACKLIST /'
         rmmod rust_kretprobe
         rmmod rust_kprobe
         grep -cE '\\[rust_k(ret)?probe\\]' /sys/kernel/debug/kprobes/blacklist | sed 's/^/AFTER /'",
    );
    let listed = run.guest_with("BLACKLIST ");
    for (module, trampolines) in [
        ("rust_kprobe", &["pre_trampoline", "post_trampoline"]),
        ("rust_kretprobe", &["entry_trampoline", "ret_trampoline"]),
    ] {
        for t in trampolines {
            assert!(
                listed
                    .iter()
                    .any(|l| l.contains(t) && l.contains(&format!("[{module}]"))),
                "{t} of {module} not on the blacklist: {listed:#?}"
            );
        }
    }
    let t = run.guest_with("TRAMPOLINE ");
    assert!(
        t.len() == 1 && t[0].contains("entry_trampoline"),
        "{:?}",
        run.guest
    );
    let refused = run.guest_with("REFUSED rust_kprobe");
    assert_eq!(refused.len(), 1, "{:?}", run.guest);
    assert!(refused[0].contains("-22"), "{}", refused[0]);
    let log = run.module_lines("rust_kprobe");
    assert_eq!(count(&log, "not a probe point: blacklisted"), 1, "{log:#?}");
    assert_eq!(run.guest_with("AFTER "), ["AFTER 0"], "{:?}", run.guest);
}

// ---- arm64 only -----------------------------------------------------------------------------

/// The kernel at EL2 with VHE keeps its per-CPU offset in `tpidr_el2`, not `tpidr_el1`:
/// `kprobes/arch.rs` picks the register by `CurrentEL`. Two vCPUs, two binding processes, a
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
        "arm64_vhe_kernel_at_el2",
        "load rust_kprobe comm=loadgen
         load rust_kretprobe events=0 hist=1 comm=loadgen
         loadgen bind $(seq 41000 41019) > /tmp/a & a=$!
         loadgen bind $(seq 42000 42019) > /tmp/b & b=$!
         wait $a $b
         cat /tmp/a /tmp/b
         cat /sys/kernel/debug/rust_kprobe/stats | sed 's/^/KSTATS /'
         cat /sys/kernel/debug/rust_kretprobe/stats | sed 's/^/RSTATS /'
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
        let line = format!(
            "inet_bind name:{} pid:{} socket bind port={}",
            o.comm, o.tid, o.port
        );
        assert_eq!(count(&log, &line), 1, "want `{line}` once in {log:#?}");
    }
    let kstats = run.guest_with("KSTATS ");
    assert!(
        kstats.contains(&"KSTATS hits 40") && kstats.contains(&"KSTATS reported 40"),
        "{kstats:?}"
    );
    let rstats = run.guest_with("RSTATS ");
    assert!(rstats.contains(&"RSTATS count 40"), "{rstats:?}");
    let klog = run.module_lines("rust_kretprobe");
    assert!(
        klog.iter()
            .any(|l| l.starts_with("inet_release: count 40, min ")),
        "{klog:#?}"
    );
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
}

mod x86_64_7_3 {
    use super::{Arch, Kver};
    all_tests!(Arch::X86_64, false, Kver::V7_3);
}

mod arm64_7_3 {
    use super::{Arch, Kver};
    all_tests!(Arch::Arm64, false, Kver::V7_3);
    vm_tests!(Arch::Arm64, false, Kver::V7_3; arm64_vhe_kernel_at_el2);
}

mod x86_64_debug_7_3 {
    use super::{Arch, Kver};
    all_tests!(Arch::X86_64, true, Kver::V7_3);
}
