//! bpfload: `make bench`'s eBPF loader (a static musl binary in the guest).
//!
//! ```text
//! bpfload OBJ bind -- CMD...             bench/rk_bench.bpf.c's `bind` on inet_bind
//! bpfload OBJ release -- CMD...          its `release_entry` / `release_ret` on inet_release
//! bpfload OBJ bind-fentry -- CMD...      its `bind_fentry` (fentry) on inet_bind
//! bpfload OBJ release-fentry -- CMD...   its `release_fentry` / `release_fexit` (fentry, fexit)
//! bpfload OBJ release-session -- CMD...  its `release_session` (kprobe.session) on inet_release
//! ```
//!
//! Loads the object with aya, attaches the programs (kprobes as PMU perf events, as bpftrace
//! and BCC do; fentry/fexit programs as BPF trampolines, loaded against the running kernel's
//! BTF, /sys/kernel/btf/vmlinux; the kprobe.session program, which aya cannot load, by
//! [`session`]: a kprobe_multi link), checks they are JIT-compiled, waits 250 ms (the kprobe
//! optimizer's delay, as the bench waits after an insmod), runs CMD, then prints the programs'
//! per-CPU counters summed (an fentry or session mode prints its kprobe mode's line: the same
//! maps):
//!
//! ```text
//! RKBPF bind hits=2000 reported=2000 faults=0 port=0 jited=412
//! RKBPF release hits=2000 count=2000 missed=0 ret0=2000 hist=2000 jited=152+640
//! ```
//!
//! and exits with CMD's status. The programs are detached when it exits (aya drops the links).

use aya::maps::PerCpuArray;
use aya::programs::{FEntry, FExit, KProbe, ProgramError};
use aya::{Btf, Ebpf};
use std::process::Command;
use std::time::Duration;

mod session;

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

/// How a program is attached.
#[derive(Clone, Copy)]
enum Hook {
    /// A kprobe or kretprobe (as its section says) on a function.
    KProbe,
    /// An fentry or fexit program on a function of the kernel's BTF.
    FEntry,
    FExit,
}

/// Program `name` of the object as a `T`.
fn program<'a, T>(bpf: &'a mut Ebpf, name: &str) -> &'a mut T
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    bpf.program_mut(name)
        .unwrap_or_else(|| die(&format!("no program {name} in the object")))
        .try_into()
        .unwrap_or_else(|e| die(&format!("{name}: {e}")))
}

/// Loads and attaches program `name` to `func` (`btf`: the kernel's, for fentry/fexit);
/// returns its JIT-compiled size.
fn attach(bpf: &mut Ebpf, name: &str, func: &str, hook: Hook, btf: Option<&Btf>) -> u32 {
    let btf = || btf.unwrap_or_else(|| die("no kernel BTF"));
    let loading = |e: ProgramError| format!("loading {name}: {e}");
    let attaching = |e: ProgramError| format!("attaching {name} to {func}: {e}");
    let (done, info) = match hook {
        Hook::KProbe => {
            let prog: &mut KProbe = program(bpf, name);
            let r = prog.load().map_err(loading);
            let r = r.and_then(|()| prog.attach(func, 0).map(drop).map_err(attaching));
            (r, prog.info())
        }
        Hook::FEntry => {
            let prog: &mut FEntry = program(bpf, name);
            let r = prog.load(func, btf()).map_err(loading);
            let r = r.and_then(|()| prog.attach().map(drop).map_err(attaching));
            (r, prog.info())
        }
        Hook::FExit => {
            let prog: &mut FExit = program(bpf, name);
            let r = prog.load(func, btf()).map_err(loading);
            let r = r.and_then(|()| prog.attach().map(drop).map_err(attaching));
            (r, prog.info())
        }
    };
    done.unwrap_or_else(|e| die(&e));
    let jited = info
        .unwrap_or_else(|e| die(&format!("{name}: {e}")))
        .size_jitted();
    if jited == 0 {
        die(&format!(
            "{name} is not JIT-compiled (CONFIG_BPF_JIT_ALWAYS_ON?)"
        ));
    }
    jited
}

/// Per-CPU values of the one entry of map `name`, per CPU.
fn per_cpu<const N: usize>(bpf: &Ebpf, name: &str) -> Vec<[u64; N]> {
    let map = bpf
        .map(name)
        .unwrap_or_else(|| die(&format!("no map {name} in the object")));
    let arr: PerCpuArray<_, [u64; N]> =
        PerCpuArray::try_from(map).unwrap_or_else(|e| die(&format!("{name}: {e}")));
    arr.get(&0, 0)
        .unwrap_or_else(|e| die(&format!("reading {name}: {e}")))
        .to_vec()
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
    let mut bpf = Ebpf::load_file(obj).unwrap_or_else(|e| die(&format!("{obj}: {e}")));
    let btf = which.ends_with("-fentry").then(|| {
        Btf::from_sys_fs().unwrap_or_else(|e| die(&format!("/sys/kernel/btf/vmlinux: {e}")))
    });
    let btf = btf.as_ref();
    // (program, function, how) of each mode.
    let progs: &[(&str, &str, Hook)] = match which {
        "bind" => &[("bind", "inet_bind", Hook::KProbe)],
        "release" => &[
            ("release_entry", "inet_release", Hook::KProbe),
            ("release_ret", "inet_release", Hook::KProbe),
        ],
        "bind-fentry" => &[("bind_fentry", "inet_bind", Hook::FEntry)],
        "release-fentry" => &[
            ("release_fentry", "inet_release", Hook::FEntry),
            ("release_fexit", "inet_release", Hook::FExit),
        ],
        "release-session" => &[],
        _ => usage(),
    };
    let mut jited: Vec<String> = progs
        .iter()
        .map(|&(name, func, hook)| attach(&mut bpf, name, func, hook, btf).to_string())
        .collect();
    // Kept attached until exit.
    let _session = (which == "release-session").then(|| {
        let name = "release_session";
        let (s, size) = session::attach(&bpf, obj, name, "inet_release");
        if size == 0 {
            die(&format!(
                "{name} is not JIT-compiled (CONFIG_BPF_JIT_ALWAYS_ON?)"
            ));
        }
        jited.push(size.to_string());
        s
    });
    let jited = jited.join("+");
    // As long as the bench's other configurations settle (SETTLE in xtask/src/bench.rs).
    std::thread::sleep(Duration::from_millis(250));
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .status()
        .unwrap_or_else(|e| die(&format!("{}: {e}", cmd[0])));
    match which {
        "bind" | "bind-fentry" => {
            let c = per_cpu::<BIND_N>(&bpf, "bind_stats");
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
            let c = per_cpu::<RELEASE_N>(&bpf, "release_stats");
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
