//! `make bench`: what a probe hit costs the caller of the probed function.
//!
//! One VM boot per vCPU count, under `-icount shift=0,sleep=off` (guest time counts executed
//! instructions, so runs repeat to ~0.1%). The load program does N bind+close per run; runs of
//! every configuration are interleaved, round after round: no probe, the C reference modules,
//! the Rust modules, the kernel's own dynamic event (`kprobe_events`) and an eBPF program doing
//! the aggregate mode's work. On Debian's kernel (BTF, the function tracer) also the same eBPF
//! work from fentry/fexit programs (the BPF trampoline: eBPF at its best) and the kernel's
//! fprobe events (`f:` in `dynamic_events`). Every probe that can say what it saw (the Rust
//! modules' debugfs counters, the dynamic event's hits and ring buffer, the eBPF program's
//! per-CPU counters) is checked against the N operations made. The medians go to
//! `build/bench/<flavor>/results.json`.

use crate::counts;
use crate::kernel::Kernel;
use crate::modules::sync;
use crate::util::{fail, repo_root, run_logged, Arch, Flavor, Kver};
use crate::vm::{self, Opts, Prepared};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

const NAMES: &[&str] = &[
    "c_kprobe",
    "c_kretprobe",
    "c_kprobe_empty",
    "c_kretprobe_empty",
];

/// The eBPF objects' names in the guest (`/lib/bpf/`): `bench/rk_bench.bpf.c`, and the same
/// built with `-DRK_SESSION` (its kprobe.session program's kfuncs need the kernel's BTF).
const BPF_OBJ: &str = "rk_bench.bpf.o";
const BPF_SESSION_OBJ: &str = "rk_session.bpf.o";

/// What `make bench` ships besides the project's modules: the C reference modules of `bench/`,
/// the eBPF twin of the aggregate mode (`bench/rk_bench.bpf.c`, compiled with clang for BPF)
/// and its loader (`bpfload`, a static binary on libbpf-rs). None for the debug kernels (no
/// bench there, and no eBPF in their config).
pub fn modules(k: &Kernel, flavor: &Flavor) -> Vec<PathBuf> {
    if flavor.debug {
        return vec![];
    }
    let dir = crate::util::build_dir(flavor).join("bench");
    sync(&repo_root().join("bench"), &dir);
    let mut args = vec![format!("M={}", dir.display())];
    args.extend(flavor.make_vars());
    args.push("modules".into());
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    let (cmd, args) = k.make(&args);
    run_logged(&cmd, &args, &log, "bench module build");
    let mut out: Vec<PathBuf> = NAMES.iter().map(|n| dir.join(format!("{n}.ko"))).collect();
    out.push(bpf_object(flavor, &dir, BPF_OBJ, &[]));
    out.push(bpf_object(flavor, &dir, BPF_SESSION_OBJ, &["-DRK_SESSION"]));
    out.push(crate::initramfs::bpfload(flavor).unwrap_or_else(|e| fail(&e)));
    out
}

/// `bench/rk_bench.bpf.c` compiled for BPF (clang-19, BPF ISA v3: ALU32 and 32-bit jumps,
/// which 6.12's verifier and both JITs take), with the guest arch's register offsets, into
/// `name`, with `defines`; with BTF (`-g`): libbpf takes BTF-defined maps only.
fn bpf_object(flavor: &Flavor, dir: &std::path::Path, name: &str, defines: &[&str]) -> PathBuf {
    let target_arch = match flavor.arch {
        Arch::X86_64 => "x86",
        Arch::Arm64 => "arm64",
    };
    let out = dir.join(name);
    let mut args: Vec<String> = [
        "-O2",
        "-g",
        "-target",
        "bpfel",
        "-mcpu=v3",
        "-Wall",
        "-Werror",
        &format!("-D__TARGET_ARCH_{target_arch}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(defines.iter().map(|s| s.to_string()));
    for a in [
        "-c",
        &dir.join("rk_bench.bpf.c").display().to_string(),
        "-o",
        &out.display().to_string(),
    ] {
        args.push(a.to_string());
    }
    let log = dir.join(format!("{name}.log"));
    let _ = std::fs::remove_file(&log);
    run_logged("clang-19", &args, &log, "eBPF program build");
    out
}

/// How a configuration probes the function.
#[derive(Clone, Copy, PartialEq)]
enum Probe {
    None,
    /// `insmod` of a module with these parameters.
    Module(&'static str),
    /// The kernel's own dynamic event, recording to the ring buffer: a kprobe event
    /// (`kprobe_events`) or, with `fprobe`, an fprobe event (`f:` in `dynamic_events`).
    Ftrace {
        fprobe: bool,
    },
    /// `bench/rk_bench.bpf.c` attached by `bpfload` in one of its modes (`bind`, `release`,
    /// `bind-fentry`, `release-fentry`, `release-session`).
    Ebpf(&'static str),
}

/// Whether the kernel of `flavor` has what fentry/fexit programs and fprobe events need: its
/// BTF (`/sys/kernel/btf/vmlinux`, CONFIG_DEBUG_INFO_BTF) and the function tracer (ftrace's
/// call sites, CONFIG_FPROBE_EVENTS, the BPF trampoline). Debian's does; the project's own
/// kernels have neither.
fn has_fentry(flavor: &Flavor) -> bool {
    flavor.kernel == Kver::Debian
}

/// (configuration, how) per probe kind, in the order of a round.
fn configs(flavor: &Flavor, kind: &str) -> Vec<(&'static str, Probe)> {
    use Probe::*;
    let mut v = match kind {
        "kprobe" => vec![
            ("none", None),
            ("c_empty", Module("c_kprobe_empty")),
            ("c_events", Module("c_kprobe")),
            ("c_aggregate", Module("c_kprobe events=0")),
            ("rust_events", Module("rust_kprobe")),
            ("rust_aggregate", Module("rust_kprobe events=0")),
            ("ftrace_event", Ftrace { fprobe: false }),
            ("ebpf_aggregate", Ebpf("bind")),
        ],
        _ => vec![
            ("none", None),
            ("c_empty", Module("c_kretprobe_empty")),
            ("c_events", Module("c_kretprobe")),
            ("c_aggregate", Module("c_kretprobe events=0 hist=1")),
            ("rust_events", Module("rust_kretprobe")),
            ("rust_aggregate", Module("rust_kretprobe events=0 hist=1")),
            ("ftrace_event", Ftrace { fprobe: false }),
            ("ebpf_aggregate", Ebpf("release")),
        ],
    };
    if has_fentry(flavor) {
        let at = |v: &Vec<(&str, Probe)>, cfg| v.iter().position(|c| c.0 == cfg).unwrap() + 1;
        let i = at(&v, "ftrace_event");
        v.insert(i, ("fprobe_event", Ftrace { fprobe: true }));
        let i = at(&v, "rust_aggregate");
        if kind == "kprobe" {
            // The same pre-handler on an entry-only fprobe (fprobe's own `ftrace_ops`, the
            // arguments saved, no kprobe core): what the module has that rides what fentry rides.
            v.insert(
                i,
                ("rust_fprobe", Module("rust_kprobe kind=fprobe events=0")),
            );
            // The same handler from an ftrace direct call to the module's own trampoline: what
            // fentry rides, minus BPF's enter/exit.
            v.insert(
                i + 1,
                ("rust_direct", Module("rust_kprobe kind=direct events=0")),
            );
        } else {
            // The same handler on an fprobe (ftrace's entry and exit hook, the entry time on
            // the task's shadow stack): what the module has that rides what fentry/fexit and
            // kprobe.session ride.
            v.insert(
                i,
                (
                    "rust_fprobe",
                    Module("rust_kretprobe kind=fprobe events=0 hist=1"),
                ),
            );
        }
        let i = at(&v, "ebpf_aggregate");
        if kind == "kprobe" {
            v.insert(i, ("ebpf_fentry", Ebpf("bind-fentry")));
        } else {
            // The entry time in the session cookie (`bpf_session_cookie()`, fprobe), no map.
            v.insert(i, ("ebpf_fentry", Ebpf("release-fentry")));
            v.insert(i + 1, ("ebpf_session", Ebpf("release-session")));
        }
    }
    v
}

const KINDS: [&str; 2] = ["kprobe", "kretprobe"];

/// Seconds a run waits after its probe is attached (bpfload waits as long): the kprobe
/// optimizer replaces an int3 by a jump 5 jiffies after registration, and the previous run's
/// teardown leaves deferred work (RCU callbacks). A boot's floor must hold to its end, which
/// `FLOOR-END` checks: it did not before the guest's RNG was seeded at boot (`loadgen seed`),
/// and a second here made Debian x86_64's boots long enough for their last runs to see the RNG
/// become ready (bind(0) then 9,500 instruction-ns cheaper).
const SETTLE: &str = "0.25";

/// The table's order: the floor, per event, aggregate (the configurations a flavor has).
const DISPLAY: [&str; 13] = [
    "none",
    "c_empty",
    "c_events",
    "rust_events",
    "ftrace_event",
    "fprobe_event",
    "c_aggregate",
    "rust_aggregate",
    "rust_fprobe",
    "rust_direct",
    "ebpf_aggregate",
    "ebpf_fentry",
    "ebpf_session",
];

/// The dynamic event of `kind`: (name, definition). The same fields as the modules: the port
/// (a big-endian u16 at offset 2 of inet_bind's 2nd argument, read here as a little-endian u16,
/// hence byte-swapped) and inet_release's return value as an int. `$argN` needs no BTF. With
/// `fprobe`, the same fields from an fprobe event (Documentation/trace/fprobetrace.rst): on
/// ftrace's call site of the function, its exit through the function graph tracer's return
/// hook.
fn event(kind: &str, fprobe: bool) -> (&'static str, &'static str) {
    match (kind, fprobe) {
        ("kprobe", false) => ("bind", "p:rkbench/bind inet_bind port=+2($arg2):u16"),
        (_, false) => ("release", "r:rkbench/release inet_release ret=$retval:s32"),
        ("kprobe", true) => ("fbind", "f:rkbench/fbind inet_bind port=+2($arg2):u16"),
        (_, true) => (
            "frelease",
            "f:rkbench/frelease inet_release%return ret=$retval:s32",
        ),
    }
}

/// The bench script's shell helpers for the event (`ft_*` for a kprobe event, `fp_*` for an
/// fprobe event).
fn helpers(fprobe: bool) -> &'static str {
    if fprobe {
        "fp"
    } else {
        "ft"
    }
}

/// Shell helpers of the bench script. `ft_on DEF NAME` defines and enables an event on an empty
/// ring buffer; `ft_check NAME` prints its hits and misses (kprobe_profile) and what the ring
/// buffer holds (entries, overruns); `ft_off NAME` disables and removes it.
const PREAMBLE: &str = r#"T=/sys/kernel/tracing
[ -w $T/kprobe_events ] || { echo "no $T/kprobe_events (CONFIG_KPROBE_EVENTS, tracefs)"; exit 1; }
echo 1 > $T/tracing_on
ft_on() { echo "$1" >> $T/kprobe_events; echo > $T/trace; echo 1 > $T/events/rkbench/$2/enable; }
# What the ring buffer holds, over all CPUs.
rb() { cat $T/per_cpu/cpu*/stats | awk '$1=="entries:"{e+=$2} $1=="overrun:"{o+=$2} END{print "recorded=" e " overrun=" o}'; }
ft_check() {
  echo "CHECK $(awk -v e=$1 '$1==e {print "hits=" $2 " missed=" $3}' $T/kprobe_profile) $(rb)"
}
ft_off() { echo 0 > $T/events/rkbench/$1/enable; echo "-:rkbench/$1" >> $T/kprobe_events; }
# A module's debugfs counters as key=value.
stats() { echo "CHECK $(awk '{printf "%s=%s ", $1, $2}' /sys/kernel/debug/$1/stats)"; }
"#;

/// The same for fprobe events (`dynamic_events`), where the kernel has them. kprobe_profile has
/// no line for an fprobe event: `fp_check` prints what the ring buffer holds only.
const FPROBE_PREAMBLE: &str = r#"[ -w $T/dynamic_events ] || { echo "no $T/dynamic_events (CONFIG_DYNAMIC_EVENTS)"; exit 1; }
fp_on() { echo "$1" >> $T/dynamic_events; echo > $T/trace; echo 1 > $T/events/rkbench/$2/enable; }
fp_check() { echo "CHECK $(rb)"; }
fp_off() { echo 0 > $T/events/rkbench/$1/enable; echo "-:rkbench/$1" >> $T/dynamic_events; }
"#;

/// `RK_BENCH_ONLY`: configurations to run (besides `none`), each `<cfg>` or `<kind>:<cfg>`;
/// unset, all. For a quick comparison: docs/benchmark.md and `results.json` are then left alone.
#[derive(Default)]
pub struct Only(Option<Vec<(Option<String>, String)>>);

impl Only {
    fn parse(s: &str) -> Only {
        Only(Some(
            s.split(',')
                .filter(|c| !c.is_empty())
                .map(|c| match c.split_once(':') {
                    Some((k, c)) => (Some(k.to_string()), c.to_string()),
                    None => (None, c.to_string()),
                })
                .collect(),
        ))
    }

    fn wants(&self, kind: &str, cfg: &str) -> bool {
        cfg == "none"
            || self.0.as_ref().is_none_or(|v| {
                v.iter()
                    .any(|(k, c)| c == cfg && k.as_deref().is_none_or(|k| k == kind))
            })
    }
}

/// The configurations of `kind` that run.
fn selected(flavor: &Flavor, kind: &str, only: &Only) -> Vec<(&'static str, Probe)> {
    configs(flavor, kind)
        .into_iter()
        .filter(|(c, _)| only.wants(kind, c))
        .collect()
}

/// What the exact counts need of the guest (crate::counts): its text symbols once (`K` lines,
/// vmlinux only) and, in each run, what is loaded (`M` lines: `/proc/modules`, the kprobe slots,
/// ftrace and BPF trampolines and programs, and the direct kind's trampolines).
const DUMP_KSYMS: &str = "grep -E ' [tT] ' /proc/kallsyms | grep -v '\\[' | sed 's/^/K /'";
const DUMP_LOADED: &str = "sed 's/^/M /' /proc/modules; \
     grep -E ' [tT] .*(\\[(__builtin__[a-z]*|bpf)\\]$| rk_direct_)' /proc/kallsyms | sed 's/^/M /'";

fn script(flavor: &Flavor, rounds: usize, n: u64, only: &Only, count: bool) -> String {
    // The object a bpfload mode loads.
    let bpf = |mode: &str| {
        let obj = if mode.ends_with("-session") {
            BPF_SESSION_OBJ
        } else {
            BPF_OBJ
        };
        format!("/lib/bpf/{obj}")
    };
    let mut s = String::from(PREAMBLE);
    if has_fentry(flavor) {
        s.push_str(FPROBE_PREAMBLE);
    }
    let dump = if count { DUMP_LOADED } else { ":" };
    if count {
        let _ = writeln!(s, "{DUMP_KSYMS}");
    }
    let _ = writeln!(s, "loadgen bench {n} > /dev/null");
    // Does each new configuration fetch the right fields? One bind of port 8080 (and its close).
    for kind in KINDS {
        for (cfg, probe) in selected(flavor, kind, only) {
            match probe {
                Probe::Ftrace { fprobe } => {
                    let (ev, def) = event(kind, fprobe);
                    let f = helpers(fprobe);
                    let _ = writeln!(
                        s,
                        "{f}_on '{def}' {ev}; loadgen bind 8080 > /dev/null\n\
                         echo \"SAMPLE {kind} {cfg} $(grep -m1 ' {ev}: ' $T/trace)\"; {f}_off {ev}"
                    );
                }
                Probe::Ebpf(mode) => {
                    let _ = writeln!(
                        s,
                        "echo SAMPLE {kind} {cfg}; bpfload {} {mode} -- loadgen bind 8080",
                        bpf(mode)
                    );
                }
                _ => {}
            }
        }
    }
    for r in 0..rounds {
        for kind in KINDS {
            // Each round starts one configuration later: a run can cost more after some
            // configuration than after another (Debian x86_64's aggregate kretprobes were 20
            // apart in a fixed order, and not alone), so each configuration follows a
            // different one in each round, and its least run is not the order's.
            let mut round = selected(flavor, kind, only);
            if !round.is_empty() {
                let k = r % round.len();
                round.rotate_left(k);
            }
            for (cfg, probe) in round {
                let bench = format!("echo BENCH {kind} {cfg} {r}; {dump}; loadgen bench {n}");
                match probe {
                    Probe::Module(load) => {
                        let m = load.split_whitespace().next().unwrap();
                        // The kprobe optimizer replaces int3 by a jump ~20 ms after
                        // registration (when it can): wait for it, or part of a run would
                        // measure the int3.
                        let _ = writeln!(s, "load {load}; sleep {SETTLE}");
                        let _ = writeln!(s, "{bench}");
                        if m.starts_with("rust_") {
                            let _ = writeln!(s, "stats {m}");
                        }
                        let _ = writeln!(s, "rmmod {m}");
                    }
                    Probe::None => {
                        // The previous run's teardown leaves deferred work (RCU callbacks,
                        // freeing its instances); with 2 vCPUs, icount time counts the other
                        // vCPU's instructions too: let it settle, as the loads above do.
                        let _ = writeln!(s, "sleep {SETTLE}; {bench}");
                    }
                    Probe::Ftrace { fprobe } => {
                        let (ev, def) = event(kind, fprobe);
                        let f = helpers(fprobe);
                        let _ = writeln!(s, "{f}_on '{def}' {ev}; sleep {SETTLE}");
                        let _ = writeln!(s, "{bench}");
                        let _ = writeln!(s, "{f}_check {ev}; {f}_off {ev}");
                    }
                    Probe::Ebpf(mode) => {
                        // bpfload attaches, waits as long as SETTLE, runs the load, prints its
                        // counters.
                        let _ = writeln!(
                            s,
                            "echo BENCH {kind} {cfg} {r}; bpfload {} {mode} -- sh -c \"{}; loadgen bench {n}\"",
                            bpf(mode),
                            dump.replace('"', "\\\"")
                        );
                    }
                }
            }
        }
    }
    // The floor again, last: it must not have dropped since the boot's `none` runs (see
    // SETTLE).
    let _ = writeln!(
        s,
        "sleep {SETTLE}; echo FLOOR-END $(cut -d' ' -f1 /proc/uptime); loadgen bench {n}"
    );
    s
}

type Medians = BTreeMap<String, BTreeMap<String, f64>>;

/// `key=value` fields of a guest line.
fn fields(l: &str) -> BTreeMap<String, String> {
    l.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the probe itself says it saw in one run (or sample), checked against what the load
/// program did: a configuration that never fired would look cheap.
fn check(kind: &str, cfg: &str, f: &BTreeMap<String, String>, n: u64) -> Result<(), String> {
    let want: Vec<(&str, u64)> = match (kind, cfg) {
        (_, "ftrace_event") => vec![("hits", n), ("missed", 0), ("recorded", n), ("overrun", 0)],
        // No hit counter of the kernel's for an fprobe event: every op must be in the ring buffer.
        (_, "fprobe_event") => vec![("recorded", n), ("overrun", 0)],
        ("kprobe", "ebpf_aggregate" | "ebpf_fentry") => {
            vec![("hits", n), ("reported", n), ("faults", 0)]
        }
        (_, "ebpf_aggregate" | "ebpf_fentry" | "ebpf_session") => vec![
            ("hits", n),
            ("count", n),
            ("missed", 0),
            ("ret0", n),
            ("hist", n),
        ],
        ("kprobe", _) => vec![("hits", n), ("missed", 0)],
        (_, _) => vec![("hits", n), ("missed", 0), ("count", n)],
    };
    for (k, v) in want {
        match f.get(k).map(|s| s.parse::<u64>()) {
            Some(Ok(got)) if got == v => {}
            Some(Ok(got)) => return Err(format!("{k}={got}, want {v}")),
            _ => return Err(format!("no {k} reported")),
        }
    }
    Ok(())
}

/// The one-bind samples: the fields fetched are the right ones (port 8080, return value 0).
fn check_sample(kind: &str, cfg: &str, f: &BTreeMap<String, String>) -> Result<(), String> {
    let get = |k: &str| {
        f.get(k)
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| format!("no {k} in the sample"))
    };
    match (kind, cfg) {
        // The event reads the port's two bytes as a host-order u16: swapped on both arches.
        ("kprobe", "ftrace_event" | "fprobe_event") => {
            let raw = get("port")? as u16;
            (raw.swap_bytes() == 8080).then_some(()).ok_or(format!(
                "port={raw} is {} byte-swapped, want 8080",
                raw.swap_bytes()
            ))
        }
        ("kretprobe", "ftrace_event" | "fprobe_event") => (get("ret")? == 0)
            .then_some(())
            .ok_or("ret is not 0".to_string()),
        ("kprobe", _) => (get("hits")? == 1 && get("port")? == 8080)
            .then_some(())
            .ok_or("want hits=1 port=8080".to_string()),
        _ => (get("count")? == 1 && get("ret0")? == 1)
            .then_some(())
            .ok_or("want count=1 ret0=1".to_string()),
    }
}

/// Per probe kind and configuration, the run of each round (instruction-ns per op).
type Rounds = BTreeMap<String, BTreeMap<String, Vec<f64>>>;

/// Per (kind, configuration), each run's instructions by symbol (crate::counts); `none` runs
/// under both kinds.
pub type Exact = BTreeMap<(String, String), Vec<counts::Counted>>;

/// One boot's measures: the runs' times, and their exact counts.
struct Boot {
    rounds: Rounds,
    exact: Exact,
}

/// One boot of `rounds` rounds of `n` operations per configuration; with `count`, under the
/// counting plugin (crate::counts), whose callbacks make a boot several times slower: the
/// count boots run fewer and shorter rounds than the timed ones.
fn measure(
    p: &Prepared,
    cpus: u32,
    boot: usize,
    rounds: usize,
    n: u64,
    only: &Only,
    count: bool,
) -> Boot {
    eprintln!(
        "bench: {} {cpus} vCPU(s), {} boot {}, {rounds} rounds x {} configurations x {n} bind+close",
        p.flavor.name(),
        if count { "counting" } else { "timed" },
        boot + 1,
        KINDS
            .iter()
            .map(|k| selected(&p.flavor, k, only).len())
            .sum::<usize>()
    );
    let dir = repo_root().join("build/bench").join(p.flavor.name());
    std::fs::create_dir_all(&dir).unwrap();
    let insns = dir.join(format!("insns-{cpus}cpu-{}.txt", boot + 1));
    let plugin = count.then(|| {
        let so = counts::plugin().unwrap_or_else(|e| fail(&e));
        format!("{},out={}", so.display(), insns.display())
    });
    let opts = Opts {
        cpus,
        mem_mb: 256,
        timeout: Duration::from_secs(3600),
        icount: true,
        el2: false,
        cmdline: String::new(),
        plugin,
    };
    let t = std::time::Instant::now();
    let run = vm::run(
        p,
        &format!(
            "{}-{cpus}cpu-{}",
            if count { "count" } else { "bench" },
            boot + 1
        ),
        &script(&p.flavor, rounds, n, only, count),
        &opts,
    )
    .unwrap_or_else(|e| fail(&e));
    if run.exit != 0 || !run.splats().is_empty() {
        for l in run.guest.iter().rev().take(8).rev() {
            eprintln!("  | {l}");
        }
        fail(&format!(
            "benchmark boot failed; see {}",
            run.log_path.display()
        ));
    }
    let mut samples: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    // What each run's (kind, cfg, round) or sample's (kind, cfg, "sample") probe reported.
    let mut reports: BTreeMap<(String, String, String), BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<(String, String, String)> = None;
    // The runs in the order they ran (one plugin window each), with what each had loaded.
    let mut order: Vec<((String, String), Vec<&str>)> = vec![];
    let vmlinux =
        counts::Symbols::from_kallsyms(run.guest.iter().filter_map(|l| l.strip_prefix("K ")));
    for l in &run.guest {
        if let Some(m) = l.strip_prefix("M ") {
            if let Some(last) = order.last_mut() {
                last.1.push(m);
            }
        } else if let Some(rest) = l.strip_prefix("BENCH ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            current = Some((f[0].to_string(), f[1].to_string(), f[2].to_string()));
            order.push(((f[0].to_string(), f[1].to_string()), vec![]));
        } else if l.starts_with("FLOOR-END ") {
            current = Some(("end".into(), "none".into(), "end".into()));
        } else if let Some(rest) = l.strip_prefix("SAMPLE ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let key = (f[0].to_string(), f[1].to_string(), "sample".to_string());
            reports.entry(key.clone()).or_default().extend(fields(rest));
            current = Some(key);
        } else if l.starts_with("CHECK ") || l.starts_with("RKBPF ") {
            if let Some(key) = &current {
                reports.entry(key.clone()).or_default().extend(fields(l));
            }
        } else if let (Some(key), Some(ns)) = (
            &current,
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("ns_per_op=")),
        ) {
            samples
                .entry((key.0.clone(), key.1.clone()))
                .or_default()
                .push(ns.parse().unwrap());
        }
    }
    let mut errors = vec![];
    for kind in KINDS {
        for (cfg, probe) in selected(&p.flavor, kind, only) {
            let traced = matches!(probe, Probe::Ftrace { .. } | Probe::Ebpf(_));
            let checked = traced || matches!(probe, Probe::Module(m) if m.starts_with("rust_"));
            if traced {
                let key = (kind.to_string(), cfg.to_string(), "sample".to_string());
                let f = reports.get(&key).cloned().unwrap_or_default();
                if let Err(e) = check_sample(kind, cfg, &f) {
                    errors.push(format!("{kind}/{cfg} one bind of port 8080: {e}"));
                }
            }
            for r in 0..rounds {
                let key = (kind.to_string(), cfg.to_string(), r.to_string());
                if checked {
                    let f = reports.get(&key).cloned().unwrap_or_default();
                    if let Err(e) = check(kind, cfg, &f, n) {
                        errors.push(format!("{kind}/{cfg} round {r}: {e} ({n} bind+close)"));
                    }
                }
            }
        }
    }
    // The floor at the end of the boot against the boot's `none` runs: a check of the timed
    // figures, which a count boot does not make (its runs dump the guest's symbols just before
    // their loops, whose deferred work lands in a window's time, not in its least counts).
    let end = samples.remove(&("end".to_string(), "none".to_string()));
    let floor = KINDS
        .iter()
        .filter_map(|k| samples.get(&(k.to_string(), "none".to_string())))
        .flatten()
        .fold(f64::INFINITY, |a, &b| a.min(b));
    match end.as_deref() {
        _ if count => {}
        Some(&[e]) if e >= floor * 0.99 => {}
        Some(&[e]) => errors.push(format!(
            "the floor dropped during the boot: no probe cost {floor:.0} in its rounds, {e:.0} \
             at its end (the guest changed regime: see SETTLE in xtask/src/bench.rs)"
        )),
        _ => errors.push("no end-of-boot floor run".into()),
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("  {e}");
        }
        fail(&format!(
            "bench: {} run(s) where the probe did not see what the load program did; see {}",
            errors.len(),
            run.log_path.display()
        ));
    }
    let mut out = Rounds::new();
    for kind in KINDS {
        for (cfg, _) in selected(&p.flavor, kind, only) {
            let v = samples
                .remove(&(kind.to_string(), cfg.to_string()))
                .unwrap_or_default();
            if v.len() != rounds {
                fail(&format!(
                    "bench: {kind}/{cfg} has {} samples, want {rounds}; see {}",
                    v.len(),
                    run.log_path.display()
                ));
            }
            out.entry(kind.to_string())
                .or_default()
                .insert(cfg.to_string(), v);
        }
    }
    if !count {
        eprintln!(
            "bench: {cpus} vCPU(s) done in {:.0}s, every probe's own count checked",
            t.elapsed().as_secs_f64()
        );
        return Boot {
            rounds: out,
            exact: Exact::new(),
        };
    }
    // The plugin's windows: the warm-up run, each BENCH run, the end-of-boot floor.
    let windows = counts::windows(&insns).unwrap_or_else(|e| fail(&e));
    if windows.len() != order.len() + 2 {
        fail(&format!(
            "bench: {} has {} windows, want {} (a warm-up, {} runs, the end floor)",
            insns.display(),
            windows.len(),
            order.len() + 2,
            order.len()
        ));
    }
    // The boot's first run is left out: each window also holds the previous run's deferred
    // frees (RCU callbacks of the sockets its loop closed, ~380 instructions a bind+close on
    // x86_64 6.12 with one vCPU), and the first has no previous run.
    let mut exact = Exact::new();
    for ((key, loaded), w) in order.iter().zip(&windows[1..]).skip(1) {
        let loaded = counts::Loaded::parse(loaded);
        exact.entry(key.clone()).or_default().push(counts::count(
            p.flavor.arch,
            w,
            &vmlinux,
            &loaded,
        ));
    }
    eprintln!(
        "bench: {cpus} vCPU(s) done in {:.0}s, every probe's own count checked",
        t.elapsed().as_secs_f64()
    );
    Boot { rounds: out, exact }
}

/// The figures of one boot's rounds: for each configuration, its second least run: the least
/// that another run of the boot confirms. Background work in the guest (timers, RCU callbacks,
/// the other vCPU's) only ever adds instructions to a run, and it comes in steps, so runs fall
/// in groups and the lowest group is the probe's cost without it:
/// - on arm64 7.3 a kretprobe's runs fall in two groups 170 instruction-ns apart, about half
///   and half, C's and Rust's alike: a median moves by the step with how many runs of each
///   group a configuration happened to get;
/// - on x86_64 7.3 the lower group can be rare (Rust's aggregate kprobe: 3 runs of 20 at
///   10,264-10,296, 17 at 10,453-10,467), and a lower quartile picks different groups for
///   different configurations.
/// But a single run can fall below its group alone: x86_64 6.12's Rust aggregate kretprobe
/// once ran 9,528 where its 19 other runs ran 9,895-9,929 (its handler timing the same calls
/// to the nanosecond), and on x86_64 7.3 C's aggregate kretprobe ran 10,197 and 10,199 in the
/// third round of each boot, its other 18 runs 10,328-10,358: one slot of the boot's timeline,
/// whichever configuration the rotation put there. So a run alone in its boot is no figure.
fn estimate(r: &Rounds) -> Medians {
    r.iter()
        .map(|(kind, cfgs)| {
            let m = cfgs
                .iter()
                .map(|(cfg, v)| (cfg.clone(), second_least(v)))
                .collect();
            (kind.clone(), m)
        })
        .collect()
}

/// The second least of `v` (the least, if `v` has one element).
fn second_least(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(1).or(s.first()).copied().unwrap_or(f64::NAN)
}

/// The figures of several boots: each boot's ([`estimate`]), the least of them.
fn combine(boots: &[Rounds]) -> Medians {
    let mut out = Medians::new();
    for m in boots.iter().map(estimate) {
        for (kind, cfgs) in m {
            for (cfg, x) in cfgs {
                let e = out
                    .entry(kind.clone())
                    .or_default()
                    .entry(cfg)
                    .or_insert(f64::INFINITY);
                *e = e.min(x);
            }
        }
    }
    out
}

/// (results.json key, table label, value) of the ratios of one probe kind's medians, in the
/// table's order; those of a configuration only where the flavor has it.
fn ratios(m: &BTreeMap<String, f64>) -> Vec<(&'static str, &'static str, f64)> {
    let over = |k: &str| m[k] - m["none"];
    let mut v = vec![
        (
            "ratio_rust_vs_c",
            "rust / c, events",
            over("rust_events") / over("c_events"),
        ),
        (
            "ratio_aggregate_vs_c",
            "rust / c, aggregate",
            over("rust_aggregate") / over("c_aggregate"),
        ),
        (
            "ratio_aggregate_vs_ebpf",
            "rust / ebpf, aggregate",
            over("rust_aggregate") / over("ebpf_aggregate"),
        ),
    ];
    for (cfg, key, label) in [
        (
            "ebpf_fentry",
            "ratio_aggregate_vs_ebpf_fentry",
            "rust / ebpf fentry, aggregate",
        ),
        (
            "ebpf_session",
            "ratio_aggregate_vs_ebpf_session",
            "rust / ebpf session, aggregate",
        ),
    ] {
        if m.contains_key(cfg) {
            v.push((key, label, over("rust_aggregate") / over(cfg)));
        }
    }
    v.push((
        "ratio_aggregate_vs_floor",
        "rust aggregate / floor",
        over("rust_aggregate") / over("c_empty"),
    ));
    v
}

/// One probe kind's figures: the medians per configuration and the ratios, and each
/// configuration's exact instructions and traps per hit.
fn kind_json(m: &BTreeMap<String, f64>, kind: &str, hits: &Hits) -> Value {
    let mut v = Map::new();
    let ns: Map<String, Value> = m
        .iter()
        .map(|(k, x)| (k.clone(), json!((x * 10.0).round() / 10.0)))
        .collect();
    v.insert("ns_per_op".into(), Value::Object(ns));
    let mine = || hits.iter().filter(|((k, _), _)| k == kind);
    v.insert(
        "insns_per_hit_by_symbol".into(),
        Value::Object(
            mine()
                .map(|((_, c), h)| {
                    let top: Map<String, Value> = h
                        .top(40)
                        .into_iter()
                        .map(|(s, d)| (s, json!((d * 1000.0).round() / 1000.0)))
                        .collect();
                    (c.clone(), Value::Object(top))
                })
                .collect(),
        ),
    );
    v.insert(
        "insns_per_hit".into(),
        Value::Object(mine().map(|((_, c), h)| (c.clone(), h.json())).collect()),
    );
    v.insert(
        "traps_per_hit".into(),
        Value::Object(
            mine()
                .map(|((_, c), h)| (c.clone(), json!((h.traps * 1000.0).round() / 1000.0 + 0.0)))
                .collect(),
        ),
    );
    for (k, _, r) in ratios(m) {
        v.insert(k.into(), json!((r * 10000.0).round() / 10000.0));
    }
    Value::Object(v)
}

/// The benchmark page's table of a flavor: configurations down, probe kind x vCPUs across.
fn table(
    flavor: &Flavor,
    one: &Medians,
    two: &Medians,
    boots: usize,
    rounds: usize,
    n: u64,
) -> String {
    let (mut cols, mut heads) = (vec![], vec![]);
    for (label, m) in [("1 vCPU", one), ("2 vCPUs", two)] {
        for kind in KINDS {
            heads.push(format!("{kind}, {label}"));
            cols.push(&m[kind]);
        }
    }
    let mut t = format!(
        "`make bench{}{}`: instruction-ns (icount) per bind+close, each boot's second least of \
         {rounds} rounds of {n}, the least of {boots} boots; `+` = over no probe\n\n",
        if flavor.arch == Arch::Arm64 {
            " ARCH=arm64"
        } else {
            ""
        },
        match flavor.kernel.name() {
            "6.12" => String::new(),
            k => format!(" KERNEL={k}"),
        }
    );
    let _ = writeln!(t, "| configuration | {} |", heads.join(" | "));
    let _ = writeln!(t, "|---|{}", "---:|".repeat(heads.len()));
    // A row for what any column has; a cell for what its column has (`ebpf_session` is a
    // kretprobe's only).
    for cfg in DISPLAY
        .iter()
        .filter(|c| cols.iter().any(|k| k.contains_key(**c)))
    {
        let cells: Vec<String> = cols
            .iter()
            .map(|k| match k.get(*cfg) {
                None => String::new(),
                Some(x) if *cfg == "none" => format!("{x:.0}"),
                Some(x) => format!("+{:.0}", x - k["none"]),
            })
            .collect();
        let _ = writeln!(t, "| `{cfg}` | {} |", cells.join(" | "));
    }
    let mut labels: Vec<&str> = vec![];
    for k in &cols {
        for (_, label, _) in ratios(k) {
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
    }
    // In ratios()' order: the floor's last.
    labels.sort_by_key(|l| l.contains("floor"));
    for label in labels {
        let cells: Vec<String> = cols
            .iter()
            .map(|k| {
                ratios(k)
                    .into_iter()
                    .find(|r| r.1 == label)
                    .map(|r| format!("{:.3}", r.2))
                    .unwrap_or_default()
            })
            .collect();
        let _ = writeln!(t, "| {label} | {} |", cells.join(" | "));
    }
    t
}

/// The page the generated tables are written into, relative to the repository.
pub const BENCH_DOC: &str = "docs/benchmark.md";

/// Replaces the generated table of `flavor` in the text of [`BENCH_DOC`], between
/// `<!-- bench:<flavor> -->` and `<!-- /bench:<flavor> -->`; `None` if it has no such block.
pub fn refresh_block(doc: &str, flavor: &str, table: &str) -> Option<String> {
    let (open, close) = (
        format!("<!-- bench:{flavor} -->\n"),
        format!("<!-- /bench:{flavor} -->"),
    );
    let a = doc.find(&open)? + open.len();
    let b = a + doc[a..].find(&close)?;
    Some(format!("{}{}{}", &doc[..a], table, &doc[b..]))
}

fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The cheapest of the configurations whose name starts with `prefix` (`rust_events` aside):
/// (its name, its cost over no probe).
fn cheapest(m: &BTreeMap<String, f64>, prefix: &str) -> Option<(String, f64)> {
    m.iter()
        .filter(|(c, _)| c.starts_with(prefix) && c.as_str() != "rust_events")
        .map(|(c, x)| (c.clone(), x - m["none"]))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The issue's goals for one probe kind at one vCPU count: (goal, value, met).
fn goals(m: &BTreeMap<String, f64>) -> Vec<(String, f64, bool)> {
    let over = |k: &str| m[k] - m["none"];
    let mut v = vec![];
    for (goal, r) in [
        (
            "rust / c, events <= 1",
            over("rust_events") / over("c_events"),
        ),
        (
            "rust / c, aggregate <= 1",
            over("rust_aggregate") / over("c_aggregate"),
        ),
    ] {
        v.push((goal.to_string(), r, r <= 1.0));
    }
    if let (Some((rust, r)), Some((ebpf, e))) = (cheapest(m, "rust_"), cheapest(m, "ebpf_")) {
        let ratio = r / e;
        v.push((
            format!("{rust} / {ebpf} (the cheapest of each) <= 1"),
            ratio,
            ratio <= 1.0,
        ));
    }
    v
}

/// The exact counts of a flavor for the benchmark page: per configuration, a hit's
/// instructions (own: the module's or BPF program's own code) and traps, then the picture.
fn exact_table(flavor: &Flavor, hits: &BTreeMap<u32, Hits>) -> String {
    let mut t = String::from(
        "\nInstructions per hit, exact (`insns_per_hit`: over no probe, all symbols; own: the \
         module's or BPF program's own code; traps: int3/brk and debug exceptions taken):\n\n\
         | configuration |",
    );
    let mut cols = vec![];
    for (cpus, label) in [(1, "1 vCPU"), (2, "2 vCPUs")] {
        for kind in KINDS {
            t += &format!(" {kind}, {label} |");
            cols.push((cpus, kind));
        }
    }
    t += "\n|---|";
    t += &"---:|".repeat(cols.len());
    t += "\n";
    for cfg in DISPLAY.iter().filter(|c| **c != "none") {
        let cells: Vec<String> = cols
            .iter()
            .map(|(cpus, kind)| {
                hits.get(cpus)
                    .and_then(|h| h.get(&(kind.to_string(), cfg.to_string())))
                    .map(|h| {
                        format!(
                            "{:.0} (own {:.0}, {:.0} trap{})",
                            h.total,
                            h.handler_own,
                            h.traps + 0.0,
                            if (h.traps - 1.0).abs() < 0.5 { "" } else { "s" }
                        )
                    })
                    .unwrap_or_default()
            })
            .collect();
        if cells.iter().all(|c| c.is_empty()) {
            continue;
        }
        t += &format!("| `{cfg}` | {} |\n", cells.join(" | "));
    }
    t += &format!(
        "\n![{0}: instructions per hit by component](bench/{0}.svg)\n",
        flavor.name()
    );
    t
}

/// The goals on one kind's exact counts at one vCPU count: (goal, value, met).
fn exact_goals(h: &Hits, kind: &str) -> Vec<(String, f64, bool)> {
    let get = |c: &str| h.get(&(kind.to_string(), c.to_string()));
    let mut v = vec![];
    for (rust, c, what) in [
        ("rust_events", "c_events", "events"),
        ("rust_aggregate", "c_aggregate", "aggregate"),
    ] {
        if let (Some(r), Some(c)) = (get(rust), get(c)) {
            let x = r.components["handler"] / c.components["handler"];
            v.push((format!("rust / c handler insns, {what} <= 1"), x, x <= 1.0));
        }
    }
    let cheapest = |prefix: &str| {
        h.iter()
            .filter(|((k, c), _)| k == kind && c.starts_with(prefix) && c != "rust_events")
            .map(|((_, c), x)| (c.clone(), x.total))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    };
    if let (Some((r, rt)), Some((e, et))) = (cheapest("rust_"), cheapest("ebpf_")) {
        let x = rt / et;
        v.push((
            format!("{r} / {e} total insns (the cheapest of each) <= 1"),
            x,
            x <= 1.0,
        ));
    }
    if let (Some(r), Some(f)) = (get("rust_aggregate"), get("c_empty")) {
        let x = r.total / f.total;
        v.push((
            "rust aggregate / c_empty total insns <= 1.2".into(),
            x,
            x <= 1.2,
        ));
    }
    v
}

/// How far apart two boots' figures are: |a - b| over their mean.
fn spread(a: f64, b: f64) -> f64 {
    (a - b).abs() / ((a + b) / 2.0)
}

/// Per (kind, configuration), a hit's exact cost.
type Hits = BTreeMap<(String, String), counts::Hit>;

/// The hits of one vCPU count: for each configuration, per symbol the least of its runs in
/// `boots`, minus the least of every no-probe run (both kinds run the same loop).
fn hits_of(arch: Arch, boots: &[Exact], n: u64) -> Hits {
    let runs = |key: &(String, String)| -> Vec<&counts::Counted> {
        boots.iter().filter_map(|b| b.get(key)).flatten().collect()
    };
    let none: Vec<&counts::Counted> = KINDS
        .iter()
        .flat_map(|k| runs(&(k.to_string(), "none".to_string())))
        .collect();
    let none = counts::least(&none);
    let keys: std::collections::BTreeSet<&(String, String)> =
        boots.iter().flat_map(|b| b.keys()).collect();
    keys.into_iter()
        .filter(|(_, c)| c != "none")
        .map(|key| {
            let probe = counts::least(&runs(key));
            (key.clone(), counts::hit(arch, &probe, &none, n))
        })
        .collect()
}

fn print_hits(cpus: u32, hits: &Hits) {
    for ((kind, cfg), h) in hits {
        let parts: Vec<String> = counts::COMPONENTS
            .iter()
            .map(|c| format!("{c} {:.0}", h.components[c]))
            .collect();
        println!(
            "exact {cpus} vCPU {kind} {cfg}: {:.1} insns/hit ({}), own code {:.1}, {:.2} traps",
            h.total,
            parts.join(", "),
            h.handler_own,
            h.traps + 0.0
        );
    }
}

/// Boot against boot: each configuration's own code per hit must be the same, and its total
/// within 0.1%. The differences, said.
fn repeat_exact(arch: Arch, exact: &BTreeMap<u32, Vec<Exact>>, n: u64) -> Vec<String> {
    let mut out = vec![];
    for (cpus, boots) in exact {
        if boots.len() < 2 {
            continue;
        }
        let each: Vec<Hits> = boots
            .iter()
            .map(|b| hits_of(arch, std::slice::from_ref(b), n))
            .collect();
        for (key, a) in &each[0] {
            let Some(b) = each[1].get(key) else { continue };
            let what = format!("{} {} {cpus} vCPU", key.0, key.1);
            if (a.handler_own - b.handler_own).abs() >= 0.05 {
                out.push(format!(
                    "{what}: own code {:.3} and {:.3} insns/hit in the two boots",
                    a.handler_own, b.handler_own
                ));
            }
            if spread(a.total, b.total) > 0.001 {
                let mut moved: Vec<(String, f64)> = a
                    .per_symbol
                    .keys()
                    .chain(b.per_symbol.keys())
                    .map(|s| {
                        let g = |h: &counts::Hit| h.per_symbol.get(s).copied().unwrap_or(0.0);
                        (s.clone(), g(b) - g(a))
                    })
                    .filter(|(s, d)| s != "user" && d.abs() >= 0.5)
                    .collect();
                moved.sort_by(|x, y| y.1.abs().total_cmp(&x.1.abs()));
                moved.dedup();
                moved.truncate(4);
                out.push(format!(
                    "{what}: total {:.1} and {:.1} insns/hit ({:.2}%; moved: {})",
                    a.total,
                    b.total,
                    spread(a.total, b.total) * 100.0,
                    moved
                        .iter()
                        .map(|(s, d)| format!("{s} {d:+.1}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    out
}

pub fn run(p: &Prepared) {
    // x86_64's runs fall in two groups about 180 instruction-ns apart (a run whose background
    // work comes in one piece less), one run in five in the lower; a configuration's least run
    // is its lower group's only if one of its runs fell there: 10 rounds a boot (20 runs) miss
    // it for about 1% of configurations, 5 for about 10%. arm64 runs take three times as long.
    let rounds: usize = env_or(
        "RK_BENCH_ROUNDS",
        if p.flavor.arch == Arch::X86_64 { 10 } else { 5 },
    );
    let n: u64 = env_or("RK_BENCH_N", 2000);
    let boots: usize = env_or("RK_BENCH_BOOTS", 2).max(1);
    let only = std::env::var("RK_BENCH_ONLY")
        .map(|s| Only::parse(&s))
        .unwrap_or_default();
    // Per vCPU count, each boot's rounds and exact counts.
    // The count boots: per-symbol least of a few short rounds is exact (see crate::counts).
    let count_rounds: usize = env_or("RK_BENCH_COUNT_ROUNDS", 4);
    let count_n: u64 = env_or("RK_BENCH_COUNT_N", 2000);
    let mut per_boot: Vec<(u32, Vec<Rounds>)> = vec![];
    let mut exact: BTreeMap<u32, Vec<Exact>> = BTreeMap::new();
    for cpus in [1, 2] {
        let b: Vec<Rounds> = (0..boots)
            .map(|boot| measure(p, cpus, boot, rounds, n, &only, false).rounds)
            .collect();
        per_boot.push((cpus, b));
        let c: Vec<Exact> = (0..boots)
            .map(|boot| measure(p, cpus, boot, count_rounds, count_n, &only, true).exact)
            .collect();
        exact.insert(cpus, c);
    }
    let arch = p.flavor.arch;
    let hits: BTreeMap<u32, Hits> = exact
        .iter()
        .map(|(cpus, b)| (*cpus, hits_of(arch, b, count_n)))
        .collect();
    for (cpus, h) in &hits {
        print_hits(*cpus, h);
    }
    let exact_repeat = repeat_exact(arch, &exact, count_n);
    for d in &exact_repeat {
        println!("exact counts differ between the boots: {d}");
    }
    if only.0.is_some() {
        // A quick comparison: costs over no probe, per boot and pooled.
        for (cpus, b) in &per_boot {
            for (i, m) in b.iter().map(estimate).chain([combine(b)]).enumerate() {
                let which = if i < b.len() {
                    format!("boot {}", i + 1)
                } else {
                    "pooled".into()
                };
                for (kind, cfgs) in &m {
                    let cells: Vec<String> = cfgs
                        .iter()
                        .filter(|(c, _)| c.as_str() != "none")
                        .map(|(c, x)| format!("{c} +{:.1}", x - cfgs["none"]))
                        .collect();
                    println!("{cpus} vCPU {which} {kind}: {}", cells.join(", "));
                }
            }
        }
        return;
    }
    let pooled: BTreeMap<u32, Medians> = per_boot
        .iter()
        .map(|(cpus, b)| (*cpus, combine(b)))
        .collect();
    let (one, two) = (&pooled[&1], &pooled[&2]);

    let mut results = Map::new();
    for kind in KINDS {
        results.insert(kind.into(), kind_json(&one[kind], kind, &hits[&1]));
    }
    let two_json: Map<String, Value> = KINDS
        .iter()
        .map(|k| (k.to_string(), kind_json(&two[*k], k, &hits[&2])))
        .collect();
    results.insert(
        "vcpus".into(),
        json!({"1": "the figures above", "2": two_json}),
    );
    // The goals, on the pooled figures.
    let mut goal_rows = vec![];
    let mut missed = vec![];
    for (cpus, m) in &pooled {
        for kind in KINDS {
            for (goal, value, met) in goals(&m[kind]) {
                if !met {
                    missed.push(format!("{kind}, {cpus} vCPU: {goal} ({value:.3})"));
                }
                goal_rows.push(json!({
                    "vcpus": cpus, "kind": kind, "goal": goal,
                    "value": (value * 10000.0).round() / 10000.0, "met": met,
                }));
            }
        }
    }
    // The goals on the exact counts.
    let mut exact_rows = vec![];
    let mut exact_missed = vec![];
    for (cpus, h) in &hits {
        for kind in KINDS {
            for (goal, value, met) in exact_goals(h, kind) {
                if !met {
                    exact_missed.push(format!("{kind}, {cpus} vCPU: {goal} ({value:.3})"));
                }
                exact_rows.push(json!({
                    "vcpus": cpus, "kind": kind, "goal": goal,
                    "value": (value * 10000.0).round() / 10000.0, "met": met,
                }));
            }
        }
    }
    results.insert(
        "exact".into(),
        json!({
            "goals": exact_rows,
            "missed": exact_missed,
            "repeat": {"boots": boots, "differences": exact_repeat},
            "rounds_per_boot": count_rounds,
            "ops_per_run": count_n,
            "method": "bench/plugin/rk_insns.c counts each translated block's executions in the loop's window; xtask/src/counts.rs attributes them to symbols; per symbol the least of a configuration's runs minus the least of the no-probe runs, over the hits",
        }),
    );
    // Repeatability: each ratio from each boot alone, and how far apart the boots are.
    let mut repeat = Map::new();
    let mut worst: Vec<(f64, String)> = vec![];
    for (cpus, b) in &per_boot {
        if b.len() < 2 {
            break;
        }
        let each: Vec<Medians> = b.iter().map(estimate).collect();
        let mut kinds = Map::new();
        for kind in KINDS {
            let mut rs = Map::new();
            for (i, (key, _, _)) in ratios(&each[0][kind]).into_iter().enumerate() {
                let vals: Vec<f64> = each.iter().map(|m| ratios(&m[kind])[i].2).collect();
                let d = spread(vals[0], vals[1]);
                worst.push((d, format!("{kind} {key}, {cpus} vCPU")));
                rs.insert(
                    key.into(),
                    json!({
                        "boots": vals.iter().map(|x| (x * 10000.0).round() / 10000.0).collect::<Vec<_>>(),
                        "spread": (d * 10000.0).round() / 10000.0,
                    }),
                );
            }
            kinds.insert(kind.into(), Value::Object(rs));
        }
        repeat.insert(cpus.to_string(), Value::Object(kinds));
    }
    let repeats = worst.iter().filter(|(d, _)| *d > 0.01).count();
    results.insert(
        "goals".into(),
        json!({"checks": goal_rows, "missed": missed}),
    );
    results.insert(
        "repeat".into(),
        json!({"boots": boots, "by_ratio": repeat, "over_1_percent": repeats}),
    );
    results.insert(
        "method".into(),
        json!({
            "ops_per_run": n,
            "rounds_per_boot": rounds,
            "boots_per_vcpu_count": boots,
            "estimate": "each configuration's second least run in each boot (background work only adds instructions, in steps; a single run can fall below its group: see estimate() in xtask/src/bench.rs), the least of the boots'",
            "order": "round r runs the configurations rotated by r",
            "qemu": "-icount shift=0,sleep=off",
            "unit": "instruction-ns per bind+close",
        }),
    );
    let dir = repo_root().join("build/bench").join(p.flavor.name());
    std::fs::create_dir_all(&dir).unwrap();
    let text = serde_json::to_string_pretty(&Value::Object(results)).unwrap() + "\n";
    std::fs::write(dir.join("results.json"), text).unwrap();

    // The picture: a hit's instructions by component, 1 vCPU, each configuration.
    let panels: Vec<(String, Vec<(String, &counts::Hit)>)> = KINDS
        .iter()
        .map(|kind| {
            let rows = DISPLAY
                .iter()
                .filter_map(|c| {
                    Some((
                        c.to_string(),
                        hits[&1].get(&(kind.to_string(), c.to_string()))?,
                    ))
                })
                .collect();
            (format!("{kind} (1 vCPU)"), rows)
        })
        .collect();
    let svg = counts::svg(
        &format!(
            "{}: instructions per hit, by component (make bench)",
            p.flavor.name()
        ),
        &panels,
    );
    let svg_path = repo_root().join(format!("docs/bench/{}.svg", p.flavor.name()));
    std::fs::create_dir_all(svg_path.parent().unwrap()).unwrap();
    std::fs::write(&svg_path, svg).unwrap();
    println!("written: {}", svg_path.display());
    let mut t = table(&p.flavor, one, two, boots, rounds, n);
    t.push_str(&exact_table(&p.flavor, &hits));
    print!("{t}");
    for (what, missed) in [("goals", &missed), ("exact goals", &exact_missed)] {
        if missed.is_empty() {
            println!("{what}: all met");
        } else {
            println!("{what} missed ({}):", missed.len());
            for m in missed {
                println!("  {m}");
            }
        }
    }
    if boots > 1 {
        match exact_repeat.len() {
            0 => println!(
                "exact counts: the boots agree (own code to the instruction, totals within 0.1%)"
            ),
            k => {
                println!("exact counts: {k} difference(s) between the boots:");
                for d in &exact_repeat {
                    println!("  {d}");
                }
            }
        }
    }
    if boots > 1 {
        worst.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!(
            "repeatability: {repeats} of {} ratios differ by more than 1% between boots{}",
            worst.len(),
            worst
                .first()
                .map(|(d, w)| format!(" (widest: {w}, {:.1}%)", d * 100.0))
                .unwrap_or_default()
        );
    }
    let doc_path = repo_root().join(BENCH_DOC);
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    match refresh_block(&doc, &p.flavor.name(), &t) {
        Some(new) => {
            std::fs::write(&doc_path, new).unwrap();
            println!("{BENCH_DOC}: the {} table refreshed", p.flavor.name());
        }
        None => println!(
            "{BENCH_DOC} has no `<!-- bench:{} -->` block: the table is not in it",
            p.flavor.name()
        ),
    }
    println!("written: {}", dir.join("results.json").display());
    refresh_goals();
}

/// Rewrites the goals table of [`BENCH_DOC`] (`<!-- bench:goals -->`) from the results.json of
/// every flavor measured on this machine (`build/bench/<flavor>/`); `cargo xtask bench-goals`
/// alone.
pub fn refresh_goals() {
    let doc_path = repo_root().join(BENCH_DOC);
    let results: Vec<(String, Value)> = FLAVORS
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(
                repo_root().join("build/bench").join(f).join("results.json"),
            )
            .ok()?;
            Some((f.to_string(), serde_json::from_str(&text).ok()?))
        })
        .collect();
    let mut doc = std::fs::read_to_string(&doc_path).unwrap();
    if let Some(new) = refresh_block(&doc, "exact-goals", &exact_goals_table(&results)) {
        doc = new;
    }
    if let Some(new) = refresh_block(&doc, "goals", &goals_table(&results)) {
        std::fs::write(&doc_path, new).unwrap();
        println!(
            "{BENCH_DOC}: the goals table refreshed ({} flavors' results.json)",
            results.len()
        );
    }
}

/// The flavors' order in the goals table.
const FLAVORS: [&str; 6] = [
    "x86_64",
    "arm64",
    "x86_64-7.3",
    "arm64-7.3",
    "x86_64-debian",
    "arm64-debian",
];

/// One goals-table cell: the goal's value for the kprobe and the kretprobe in `cpus` vCPUs (bold
/// where missed), each followed by `names(goal text)` in parentheses where it gives some.
fn goal_cell<'a>(
    checks: &'a [Value],
    cpus: i32,
    goal: &str,
    names: impl Fn(&'a str) -> Option<&'a str>,
) -> String {
    ["kprobe", "kretprobe"]
        .iter()
        .map(|kind| {
            let Some(c) = checks.iter().find(|c| {
                c["vcpus"] == cpus
                    && c["kind"] == *kind
                    && c["goal"].as_str().is_some_and(|g| g.contains(goal))
            }) else {
                return "—".to_string();
            };
            let mut v = format!("{:.3}", c["value"].as_f64().unwrap_or(f64::NAN));
            if let Some(n) = names(c["goal"].as_str().unwrap_or_default()) {
                let short = n.replace("rust_", "").replace("ebpf_", "");
                v = format!("{v} ({short})");
            }
            if c["met"] == true {
                v
            } else {
                format!("**{v}**")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The goals on the exact counts (`exact.goals`): per flavor and vCPU count, each goal's ratio
/// for the kprobe and the kretprobe (bold where missed), and how many of the configurations'
/// counts the two count boots disagree on (`exact.repeat`).
fn exact_goals_table(results: &[(String, Value)]) -> String {
    let mut t = String::from(
        "| flavor | vCPUs | Rust / C handler, events: kprobe, kretprobe | Rust / C handler, \
         aggregate | cheapest Rust / cheapest eBPF, total | Rust aggregate / `c_empty`, total \
         (<= 1.2) | count boots disagree on |\n|---|---:|---|---|---|---|---:|\n",
    );
    for (flavor, r) in results {
        let checks = r["exact"]["goals"].as_array().cloned().unwrap_or_default();
        let differences = r["exact"]["repeat"]["differences"]
            .as_array()
            .map(|d| d.len())
            .unwrap_or(0);
        for cpus in [1, 2] {
            let cell = |goal: &str| {
                goal_cell(&checks, cpus, goal, |g| {
                    (goal == "cheapest").then(|| g.split(" total").next().unwrap_or_default())
                })
            };
            let _ = writeln!(
                t,
                "| {flavor} | {cpus} | {} | {} | {} | {} | {} |",
                cell("handler insns, events"),
                cell("handler insns, aggregate"),
                cell("cheapest"),
                cell("c_empty"),
                if cpus == 1 {
                    differences.to_string()
                } else {
                    "(both counts)".to_string()
                }
            );
        }
    }
    t
}

/// The goals table: per flavor and vCPU count, each goal's ratio for the kprobe and
/// the kretprobe (bold where missed) and how many ratios the two boots put over 1% apart.
fn goals_table(results: &[(String, Value)]) -> String {
    let mut t = String::from(
        "| flavor | vCPUs | Rust / C, events: kprobe, kretprobe | Rust / C, aggregate: kprobe, \
         kretprobe | cheapest Rust / cheapest eBPF: kprobe, kretprobe | ratios over 1% apart \
         between the two boots |\n|---|---:|---|---|---|---:|\n",
    );
    for (flavor, r) in results {
        let checks = r["goals"]["checks"].as_array().cloned().unwrap_or_default();
        for cpus in [1, 2] {
            let cell = |goal: &str| {
                goal_cell(&checks, cpus, goal, |g| {
                    (goal == "cheapest" && (g.contains("fentry") || g.contains("session")))
                        .then(|| g.split(" (").next().unwrap_or_default())
                })
            };
            let spreads: Vec<f64> = r["repeat"]["by_ratio"][cpus.to_string()]
                .as_object()
                .into_iter()
                .flat_map(|kinds| kinds.values())
                .filter_map(|k| k.as_object())
                .flat_map(|k| k.values())
                .filter_map(|v| v["spread"].as_f64())
                .collect();
            let over = spreads.iter().filter(|d| **d > 0.01).count();
            let _ = writeln!(
                t,
                "| {flavor} | {cpus} | {} | {} | {} | {over} of {} |",
                cell("rust / c, events"),
                cell("rust / c, aggregate"),
                cell("cheapest"),
                spreads.len()
            );
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::{check, configs, refresh_block, script, table, Medians};
    use crate::util::Flavor;

    fn names(flavor: &str, kind: &str) -> Vec<&'static str> {
        configs(&Flavor::parse(flavor).unwrap(), kind)
            .into_iter()
            .map(|c| c.0)
            .collect()
    }

    #[test]
    fn fentry_and_fprobe_only_on_debian() {
        let base = [
            "none",
            "c_empty",
            "c_events",
            "c_aggregate",
            "rust_events",
            "rust_aggregate",
            "ftrace_event",
            "ebpf_aggregate",
        ];
        for f in ["x86_64", "arm64", "x86_64-7.3", "arm64-7.3"] {
            for kind in super::KINDS {
                assert_eq!(names(f, kind), base, "{f} {kind}");
            }
            let s = script(
                &Flavor::parse(f).unwrap(),
                1,
                10,
                &super::Only::default(),
                true,
            );
            assert!(
                !s.contains("dynamic_events") && !s.contains("-fentry") && !s.contains("-session"),
                "{f}"
            );
        }
        for kind in super::KINDS {
            let mut want = base.to_vec();
            want.insert(7, "fprobe_event");
            want.push("ebpf_fentry");
            want.insert(6, "rust_fprobe");
            if kind == "kretprobe" {
                want.push("ebpf_session");
            } else {
                want.insert(7, "rust_direct");
            }
            assert_eq!(names("x86_64-debian", kind), want, "{kind}");
        }
        let s = script(
            &Flavor::parse("x86_64-debian").unwrap(),
            1,
            10,
            &super::Only::default(),
            true,
        );
        for l in [
            "fp_on 'f:rkbench/fbind inet_bind port=+2($arg2):u16' fbind; sleep 0.25",
            "fp_on 'f:rkbench/frelease inet_release%return ret=$retval:s32' frelease; sleep 0.25",
            "echo BENCH kprobe ebpf_fentry 0; bpfload /lib/bpf/rk_bench.bpf.o bind-fentry -- sh -c ",
            "echo BENCH kretprobe ebpf_fentry 0; bpfload /lib/bpf/rk_bench.bpf.o release-fentry -- sh -c ",
            "echo BENCH kretprobe ebpf_session 0; bpfload /lib/bpf/rk_session.bpf.o release-session -- sh -c ",
        ] {
            // The eBPF runs: bpfload runs the dump of what is loaded, then the loop.
            let loop_ = "; loadgen bench 10\"";
            assert!(
                s.lines()
                    .any(|x| x == l || x.starts_with(l) && x.ends_with(loop_)),
                "no line {l}"
            );
        }
    }

    #[test]
    fn new_configurations_are_checked() {
        let f = |l: &str| super::fields(l);
        let ok = f("CHECK recorded=10 overrun=0");
        assert!(check("kprobe", "fprobe_event", &ok, 10).is_ok());
        assert!(check(
            "kprobe",
            "fprobe_event",
            &f("CHECK recorded=9 overrun=0"),
            10
        )
        .is_err());
        assert!(check(
            "kretprobe",
            "fprobe_event",
            &f("CHECK recorded=10 overrun=1"),
            10
        )
        .is_err());
        assert!(check("kprobe", "fprobe_event", &f("CHECK overrun=0"), 10).is_err());
        let bind = "RKBPF bind hits=10 reported=10 faults=0 port=0 jited=1";
        assert!(check("kprobe", "ebpf_fentry", &f(bind), 10).is_ok());
        assert!(check("kprobe", "ebpf_fentry", &f(bind), 11).is_err());
        let rel = "RKBPF release hits=10 count=10 missed=0 ret0=10 hist=10 jited=1+1";
        assert!(check("kretprobe", "ebpf_fentry", &f(rel), 10).is_ok());
        let rel = "RKBPF release hits=10 count=9 missed=1 ret0=9 hist=9 jited=1+1";
        assert!(check("kretprobe", "ebpf_fentry", &f(rel), 10).is_err());
        let sample = |l: &str| super::check_sample("kprobe", "fprobe_event", &f(l));
        assert!(
            sample("SAMPLE kprobe fprobe_event x fbind: (inet_bind+0x4/0x20) port=36895").is_ok()
        );
        assert!(sample("SAMPLE kprobe fprobe_event").is_err());
        let sample = |l: &str| super::check_sample("kretprobe", "fprobe_event", &f(l));
        assert!(sample("frelease: (__sock_release+0x3d/0xb0 <- inet_release) ret=0").is_ok());
        assert!(sample("frelease: (__sock_release+0x3d/0xb0 <- inet_release) ret=-22").is_err());
    }

    #[test]
    fn table_rows_only_for_what_was_measured() {
        let medians = |flavor: &str| -> Medians {
            super::KINDS
                .iter()
                .map(|k| {
                    let m = names(flavor, k)
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.to_string(), 100.0 + 10.0 * i as f64))
                        .collect();
                    (k.to_string(), m)
                })
                .collect()
        };
        let f = Flavor::parse("x86_64").unwrap();
        let m = medians("x86_64");
        let t = table(&f, &m, &m, 1, 1, 10);
        assert_eq!(t.lines().count(), 2 + 2 + 8 + 4, "{t}");
        assert!(!t.contains("fentry") && !t.contains("fprobe"), "{t}");
        let json = super::kind_json(&m["kprobe"], "kprobe", &Default::default());
        assert!(json.get("ratio_aggregate_vs_ebpf_fentry").is_none());
        let f = Flavor::parse("x86_64-debian").unwrap();
        let m = medians("x86_64-debian");
        let t = table(&f, &m, &m, 1, 1, 10);
        assert_eq!(t.lines().count(), 2 + 2 + 13 + 6, "{t}");
        assert!(t.contains("| `fprobe_event` |") && t.contains("| `ebpf_fentry` |"));
        assert!(t.contains("| rust / ebpf fentry, aggregate |"));
        // The session program is the kretprobe's only: empty kprobe cells.
        let row = |l: &str| t.lines().find(|x| x.starts_with(l)).unwrap().to_string();
        assert!(
            row("| `ebpf_session` | ").starts_with("| `ebpf_session` |  | +"),
            "{t}"
        );
        assert!(row("| rust / ebpf session").contains("|  | "), "{t}");
        assert!(t
            .lines()
            .last()
            .unwrap()
            .starts_with("| rust aggregate / floor |"));
        let json = super::kind_json(&m["kretprobe"], "kretprobe", &Default::default());
        assert!(json["ratio_aggregate_vs_ebpf_fentry"].is_number());
        assert!(json["ns_per_op"]["fprobe_event"].is_number());
    }

    #[test]
    fn a_configuration_s_figure_is_its_second_least_run() {
        let rounds = |none: &[f64], cfg: &[f64]| -> super::Rounds {
            let m = [("none", none), ("c_empty", cfg)]
                .iter()
                .map(|(c, v)| (c.to_string(), v.to_vec()))
                .collect();
            [("kprobe".to_string(), m)].into_iter().collect()
        };
        // arm64 7.3's two groups of runs: 3 low and 2 high here, 2 low and 3 high there. The
        // medians differ by the step; the least runs do not.
        let a = super::estimate(&rounds(
            &[1000.0; 5],
            &[1100.0, 1270.0, 1101.0, 1270.0, 1100.0],
        ));
        let b = super::estimate(&rounds(
            &[1000.0; 5],
            &[1270.0, 1100.0, 1271.0, 1270.0, 1101.0],
        ));
        assert_eq!(a["kprobe"]["c_empty"], 1100.0);
        assert_eq!(b["kprobe"]["c_empty"], 1101.0);
        assert_eq!(a["kprobe"]["none"], 1000.0);
        // x86_64 6.12's lone run below its group is not the figure; a rare lower group of two
        // runs or more is.
        let mut lone = vec![9_922.0; 19];
        lone.push(9_528.0);
        let mut rare = vec![10_456.0; 17];
        rare.extend([10_264.0, 10_296.0, 10_272.0]);
        let m = super::estimate(&rounds(&lone, &rare));
        assert_eq!(
            (m["kprobe"]["none"], m["kprobe"]["c_empty"]),
            (9_922.0, 10_272.0)
        );
        // x86_64 7.3's lucky slot: one run of C in each boot; each boot's figure is its second
        // least, and the figure the least of the boots'.
        let c1 = [10_334.0, 10_337.0, 10_197.0, 10_358.0, 10_333.0];
        let c2 = [10_331.0, 10_334.0, 10_199.0, 10_330.0, 10_333.0];
        let m = super::combine(&[rounds(&c1, &c1), rounds(&c2, &c2)]);
        assert_eq!(m["kprobe"]["c_empty"], 10_330.0);
    }

    #[test]
    fn goals_compare_the_cheapest_rust_with_the_cheapest_ebpf() {
        let m: std::collections::BTreeMap<String, f64> = [
            ("none", 1000.0),
            ("c_events", 2000.0),
            ("rust_events", 1900.0),
            ("c_aggregate", 1100.0),
            ("rust_aggregate", 1101.0),
            ("ebpf_aggregate", 1300.0),
            ("ebpf_fentry", 1050.0),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
        let g = super::goals(&m);
        assert_eq!(g.len(), 3);
        assert!(g[0].2, "{g:?}"); // 900 / 1000
        assert!(!g[1].2, "{g:?}"); // 101 / 100
        assert_eq!(
            g[2].0,
            "rust_aggregate / ebpf_fentry (the cheapest of each) <= 1"
        );
        assert!(!g[2].2 && (g[2].1 - 101.0 / 50.0).abs() < 1e-9, "{g:?}");
        let mut m = m;
        m.insert("rust_fprobe".into(), 1040.0);
        let g = super::goals(&m);
        assert_eq!(
            g[2].0,
            "rust_fprobe / ebpf_fentry (the cheapest of each) <= 1"
        );
        assert!(g[2].2, "{g:?}");
        assert!((super::spread(100.0, 101.0) - 1.0 / 100.5).abs() < 1e-12);
    }

    #[test]
    fn only_selects_configurations_and_keeps_the_baseline() {
        let f = Flavor::parse("x86_64").unwrap();
        let only = super::Only::parse("kretprobe:rust_aggregate,c_empty");
        let names = |k| -> Vec<&str> {
            super::selected(&f, k, &only)
                .into_iter()
                .map(|c| c.0)
                .collect()
        };
        assert_eq!(names("kprobe"), ["none", "c_empty"]);
        assert_eq!(names("kretprobe"), ["none", "c_empty", "rust_aggregate"]);
        assert_eq!(
            super::selected(&f, "kprobe", &super::Only::default()).len(),
            configs(&f, "kprobe").len()
        );
    }

    #[test]
    fn goals_table_shows_each_flavor_s_goals_and_spreads() {
        let r = serde_json::json!({
            "goals": {"checks": [
                {"vcpus": 1, "kind": "kprobe", "goal": "rust / c, events <= 1", "value": 0.9, "met": true},
                {"vcpus": 1, "kind": "kretprobe", "goal": "rust / c, events <= 1", "value": 1.02, "met": false},
                {"vcpus": 1, "kind": "kprobe", "goal": "rust_fprobe / ebpf_fentry (the cheapest of each) <= 1", "value": 1.13, "met": false},
            ]},
            "repeat": {"by_ratio": {"1": {"kprobe": {"a": {"spread": 0.02}, "b": {"spread": 0.001}}}}},
        });
        let t = super::goals_table(&[("x86_64-debian".to_string(), r)]);
        let row = t.lines().nth(2).unwrap();
        assert!(
            row.starts_with("| x86_64-debian | 1 | 0.900, **1.020** | —, — | **1.130 (fprobe / fentry)**, — | 1 of 2 |"),
            "{t}"
        );
        assert_eq!(t.lines().count(), 4, "{t}");
    }

    #[test]
    fn doc_block_is_replaced_and_only_it() {
        let r = "a\n<!-- bench:x86_64 -->\nold\n<!-- /bench:x86_64 -->\n<!-- bench:arm64 -->\nkeep\n<!-- /bench:arm64 -->\n";
        assert_eq!(
            refresh_block(r, "x86_64", "new\n").unwrap(),
            "a\n<!-- bench:x86_64 -->\nnew\n<!-- /bench:x86_64 -->\n<!-- bench:arm64 -->\nkeep\n<!-- /bench:arm64 -->\n"
        );
        assert!(refresh_block(r, "x86_64-7.3", "new\n").is_none());
    }
}
