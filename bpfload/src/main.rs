//! bpfload: `make bench`'s eBPF loader (a static musl binary in the guest).
//!
//! ```text
//! bpfload OBJ bind -- CMD...      bench/rk_bench.bpf.c's `bind` on inet_bind
//! bpfload OBJ release -- CMD...   its `release_entry` / `release_ret` on inet_release
//! ```
//!
//! Loads the object with aya, attaches the programs (kprobe PMU perf events, as bpftrace and
//! BCC do), checks they are JIT-compiled, waits a second (the kprobe optimizer's delay, as the
//! bench waits after an insmod), runs CMD, then prints the programs' per-CPU counters summed:
//!
//! ```text
//! RKBPF bind hits=2000 reported=2000 faults=0 port=0 jited=412
//! RKBPF release hits=2000 count=2000 missed=0 ret0=2000 hist=2000 jited=152+640
//! ```
//!
//! and exits with CMD's status. The programs are detached when it exits (aya drops the links).

use aya::maps::PerCpuArray;
use aya::programs::KProbe;
use aya::Ebpf;
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
    die("usage: bpfload OBJ bind|release -- CMD...")
}

/// Loads and attaches program `name` to `func`; returns its JIT-compiled size.
fn attach(bpf: &mut Ebpf, name: &str, func: &str) -> u32 {
    let prog: &mut KProbe = bpf
        .program_mut(name)
        .unwrap_or_else(|| die(&format!("no program {name} in the object")))
        .try_into()
        .unwrap_or_else(|e| die(&format!("{name}: {e}")));
    prog.load()
        .unwrap_or_else(|e| die(&format!("loading {name}: {e}")));
    prog.attach(func, 0)
        .unwrap_or_else(|e| die(&format!("attaching {name} to {func}: {e}")));
    let jited = prog
        .info()
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
    let jited = match which {
        "bind" => attach(&mut bpf, "bind", "inet_bind").to_string(),
        "release" => {
            let entry = attach(&mut bpf, "release_entry", "inet_release");
            let ret = attach(&mut bpf, "release_ret", "inet_release");
            format!("{entry}+{ret}")
        }
        _ => usage(),
    };
    std::thread::sleep(Duration::from_secs(1));
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .status()
        .unwrap_or_else(|e| die(&format!("{}: {e}", cmd[0])));
    match which {
        "bind" => {
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
