//! bpfload: `make bench`'s eBPF loader (a static binary in the guest).
//!
//! ```text
//! bpfload OBJ bind -- CMD...             bench/rk_bench.bpf.c's `bind` on inet_bind
//! bpfload OBJ release -- CMD...          its `release_entry` / `release_ret` on inet_release
//! bpfload OBJ bind-fentry -- CMD...      its `bind_fentry` (fentry) on inet_bind
//! bpfload OBJ release-fentry -- CMD...   its `release_fentry` / `release_fexit` (fentry, fexit)
//! bpfload OBJ release-session -- CMD...  its `release_session` (kprobe.session) on inet_release
//!                                        (OBJ: the object built with -DRK_SESSION)
//! ```
//!
//! Opens the object with libbpf (libbpf-rs), loads only the mode's programs, attaches each as
//! its section says (libbpf's auto-attach: kprobes as PMU perf events, as bpftrace and BCC do;
//! fentry/fexit programs as BPF trampolines, loaded against the running kernel's BTF; the
//! kprobe.session program as a kprobe_multi link), checks they are JIT-compiled, waits 250 ms
//! (the kprobe optimizer's delay, as the bench waits after an insmod), runs CMD, then prints
//! the programs' per-CPU counters summed (an fentry or session mode prints its kprobe mode's
//! line: the same maps):
//!
//! ```text
//! RKBPF bind hits=2000 reported=2000 faults=0 port=0 jited=412
//! RKBPF release hits=2000 count=2000 missed=0 ret0=2000 hist=2000 jited=152+640
//! ```
//!
//! and exits with CMD's status. The programs are detached when it exits (the links drop).

use libbpf_rs::query::{ProgInfoIter, ProgInfoQueryOptions};
use libbpf_rs::{Link, MapCore, MapFlags, Object, ObjectBuilder, PrintLevel, Program, ProgramMut};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

/// bench/rk_bench.bpf.c's counters (by index).
const BIND_N: usize = 6;
const RELEASE_N: usize = 8 + 65 + 135;
const HIST: usize = 8;
const TALLY: usize = HIST + 65;

fn die(msg: &str) -> ! {
    eprintln!("bpfload: {msg}");
    std::process::exit(1)
}

fn usage() -> ! {
    die("usage: bpfload OBJ bind|release|bind-fentry|release-fentry|release-session -- CMD...")
}

/// Program `name` of the loaded object.
fn program<'a>(obj: &'a Object, name: &str) -> ProgramMut<'a> {
    obj.progs_mut()
        .find(|p| p.name() == name)
        .unwrap_or_else(|| die(&format!("no program {name} in the object")))
}

/// Attaches program `name` as its section says; returns its link and JIT-compiled size.
fn attach(obj: &Object, name: &str) -> (Link, usize) {
    let prog = program(obj, name);
    let link = prog
        .attach()
        .unwrap_or_else(|e| die(&format!("attaching {name}: {e:#}")));
    let id = Program::id_from_fd(prog.as_fd()).unwrap_or_else(|e| die(&format!("{name}: {e:#}")));
    let opts = ProgInfoQueryOptions::default().include_jited_prog_insns(true);
    let jited = ProgInfoIter::with_query_opts(opts)
        .find(|info| info.id == id)
        .map_or(0, |info| info.jited_prog_insns.len());
    if jited == 0 {
        die(&format!(
            "{name} is not JIT-compiled (CONFIG_BPF_JIT_ALWAYS_ON?)"
        ));
    }
    (link, jited)
}

/// The one entry of per-CPU array `name`, as N u64 per CPU.
fn per_cpu<const N: usize>(obj: &Object, name: &str) -> Vec<[u64; N]> {
    let map = obj
        .maps()
        .find(|m| m.name() == name)
        .unwrap_or_else(|| die(&format!("no map {name} in the object")));
    let values = map
        .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
        .unwrap_or_else(|e| die(&format!("reading {name}: {e:#}")))
        .unwrap_or_else(|| die(&format!("{name} has no entry 0")));
    values
        .iter()
        .map(|v| {
            let mut c = [0u64; N];
            for (c, b) in c.iter_mut().zip(v.chunks_exact(8)) {
                *c = u64::from_ne_bytes(b.try_into().unwrap());
            }
            c
        })
        .collect()
}

fn sum<const N: usize>(v: &[[u64; N]], i: usize) -> u64 {
    v.iter().map(|c| c[i]).sum()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 || args[2] != "--" {
        usage();
    }
    let (obj, which, cmd) = (&args[0], args[1].as_str(), &args[3..]);
    // The programs of each mode.
    let progs: &[&str] = match which {
        "bind" => &["bind"],
        "release" => &["release_entry", "release_ret"],
        "bind-fentry" => &["bind_fentry"],
        "release-fentry" => &["release_fentry", "release_fexit"],
        "release-session" => &["release_session"],
        _ => usage(),
    };
    // libbpf's warnings only (its info lines name every section it opens).
    libbpf_rs::set_print(Some((PrintLevel::Warn, |_, msg| eprint!("bpfload: {msg}"))));
    let mut open = ObjectBuilder::default()
        .open_file(obj)
        .unwrap_or_else(|e| die(&format!("{obj}: {e:#}")));
    // Only the mode's programs: an fentry program needs the kernel's BTF, which only Debian's
    // kernel has.
    for mut p in open.progs_mut() {
        let wanted = progs.iter().any(|n| p.name() == *n);
        p.set_autoload(wanted);
    }
    let loaded = open
        .load()
        .unwrap_or_else(|e| die(&format!("loading {obj}: {e:#}")));
    // Kept attached until exit.
    let (_links, jited): (Vec<Link>, Vec<String>) = progs
        .iter()
        .map(|name| {
            let (link, size) = attach(&loaded, name);
            (link, size.to_string())
        })
        .unzip();
    let jited = jited.join("+");
    // As long as the bench's other configurations settle (SETTLE in xtask/src/bench.rs).
    std::thread::sleep(Duration::from_millis(250));
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .status()
        .unwrap_or_else(|e| die(&format!("{}: {e:#}", cmd[0])));
    match which {
        "bind" | "bind-fentry" => {
            let c = per_cpu::<BIND_N>(&loaded, "bind_stats");
            // The decoded port of the busiest CPU's last hit (-1: none).
            let port = c.iter().max_by_key(|c| c[0]).map_or(0, |c| c[5] as i64);
            println!(
                "RKBPF bind hits={} reported={} faults={} port={port} jited={jited}",
                sum(&c, 0),
                sum(&c, 2),
                sum(&c, 4)
            );
        }
        _ => {
            let c = per_cpu::<RELEASE_N>(&loaded, "release_stats");
            let hist: u64 = (HIST..TALLY).map(|i| sum(&c, i)).sum();
            println!(
                "RKBPF release hits={} count={} missed={} ret0={} hist={hist} jited={jited}",
                sum(&c, 0),
                sum(&c, 3),
                sum(&c, 7),
                sum(&c, TALLY)
            );
        }
    }
    std::process::exit(status.code().unwrap_or(1));
}
