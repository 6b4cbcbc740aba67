//! `make bench`: what a probe hit costs the caller of the probed function.
//!
//! One VM boot per vCPU count, under `-icount shift=0,sleep=off` (guest time counts executed
//! instructions, so runs repeat to ~0.3%). The load program does N bind+close per run; runs of
//! every configuration are interleaved, round after round; the medians go to
//! `build/bench/results.json`.

use crate::kernel::Kernel;
use crate::modules::sync;
use crate::util::{fail, repo_root, run_logged, Arch, Flavor};
use crate::vm::{self, Opts, Prepared};
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

/// The C reference modules of `bench/` (x86_64 only: the benchmark runs there).
pub fn modules(k: &Kernel, flavor: &Flavor) -> Vec<PathBuf> {
    if flavor.arch != Arch::X86_64 || flavor.debug {
        return vec![];
    }
    let dir = crate::util::build_dir(flavor).join("bench");
    sync(&repo_root().join("bench"), &dir);
    let mut args = vec![
        "-C".to_string(),
        k.dir.display().to_string(),
        format!("M={}", dir.display()),
    ];
    args.extend(flavor.make_vars());
    args.push("modules".into());
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    run_logged("make", &args, &log, "bench module build");
    NAMES.iter().map(|n| dir.join(format!("{n}.ko"))).collect()
}

/// (configuration, what to load) per probe kind; `none` loads nothing.
fn configs(kind: &str) -> Vec<(&'static str, &'static str)> {
    match kind {
        "kprobe" => vec![
            ("none", ""),
            ("c_empty", "c_kprobe_empty"),
            ("c_events", "c_kprobe"),
            ("c_aggregate", "c_kprobe events=0"),
            ("rust_events", "rust_kprobe"),
            ("rust_aggregate", "rust_kprobe events=0"),
        ],
        _ => vec![
            ("none", ""),
            ("c_empty", "c_kretprobe_empty"),
            ("c_events", "c_kretprobe"),
            ("c_aggregate", "c_kretprobe events=0 hist=1"),
            ("rust_events", "rust_kretprobe"),
            ("rust_aggregate", "rust_kretprobe events=0 hist=1"),
        ],
    }
}

const KINDS: [&str; 2] = ["kprobe", "kretprobe"];

fn script(rounds: usize, n: u64) -> String {
    let mut s = format!("loadgen bench {n} > /dev/null\n");
    for r in 0..rounds {
        for kind in KINDS {
            for (cfg, load) in configs(kind) {
                let module = load.split_whitespace().next();
                if let Some(m) = module {
                    // The kprobe optimizer replaces int3 by a jump ~20 ms after registration
                    // (when it can): wait for it, or part of a run would measure the int3.
                    let _ = writeln!(s, "load {load}; sleep 1");
                    let _ = writeln!(
                        s,
                        "echo BENCH {kind} {cfg} {r}; loadgen bench {n}; rmmod {m}"
                    );
                } else {
                    // The previous module's unload leaves deferred work (RCU callbacks, freeing
                    // its instances); with 2 vCPUs, icount time counts the other vCPU's
                    // instructions too: let it settle, as the loads above do.
                    let _ = writeln!(s, "sleep 1; echo BENCH {kind} {cfg} {r}; loadgen bench {n}");
                }
            }
        }
    }
    s
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

type Medians = BTreeMap<String, BTreeMap<String, f64>>;

fn measure(p: &Prepared, cpus: u32, rounds: usize, n: u64) -> Medians {
    eprintln!(
        "bench: {cpus} vCPU(s), {rounds} rounds x {} configurations x {n} bind+close",
        2 * configs("kprobe").len()
    );
    let opts = Opts {
        cpus,
        mem_mb: 256,
        timeout: Duration::from_secs(1800),
        icount: true,
        el2: false,
    };
    let run = vm::run(p, &format!("bench-{cpus}cpu"), &script(rounds, n), &opts)
        .unwrap_or_else(|e| fail(&e));
    if run.exit != 0 || !run.splats().is_empty() {
        fail(&format!(
            "benchmark boot failed; see {}",
            run.log_path.display()
        ));
    }
    let mut samples: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for l in &run.guest {
        if let Some(rest) = l.strip_prefix("BENCH ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            current = Some((f[0].to_string(), f[1].to_string()));
        } else if let (Some(key), Some(ns)) = (
            &current,
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("ns_per_op=")),
        ) {
            samples
                .entry(key.clone())
                .or_default()
                .push(ns.parse().unwrap());
            current = None;
        }
    }
    let mut out = Medians::new();
    for ((kind, cfg), mut v) in samples {
        if v.len() != rounds {
            fail(&format!(
                "bench: {kind}/{cfg} has {} samples, want {rounds}",
                v.len()
            ));
        }
        out.entry(kind).or_default().insert(cfg, median(&mut v));
    }
    out
}

fn ratios(m: &BTreeMap<String, f64>) -> [(&'static str, f64); 3] {
    let over = |k: &str| m[k] - m["none"];
    [
        ("ratio_rust_vs_c", over("rust_events") / over("c_events")),
        (
            "ratio_aggregate_vs_c",
            over("rust_aggregate") / over("c_aggregate"),
        ),
        (
            "ratio_aggregate_vs_floor",
            over("rust_aggregate") / over("c_empty"),
        ),
    ]
}

fn kind_json(m: &BTreeMap<String, f64>) -> String {
    let ns: Vec<String> = m.iter().map(|(k, v)| format!("\"{k}\": {v:.1}")).collect();
    let r: Vec<String> = ratios(m)
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v:.4}"))
        .collect();
    format!("{{\"ns_per_op\": {{{}}}, {}}}", ns.join(", "), r.join(", "))
}

pub fn run(p: &Prepared) {
    let rounds: usize = std::env::var("RK_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let n: u64 = std::env::var("RK_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let one = measure(p, 1, rounds, n);
    let two = measure(p, 2, rounds, n);
    let mut json = String::from("{\n");
    for kind in KINDS {
        let _ = writeln!(json, "  \"{kind}\": {},", kind_json(&one[kind]));
    }
    let two_json: Vec<String> = KINDS
        .iter()
        .map(|k| format!("\"{k}\": {}", kind_json(&two[*k])))
        .collect();
    let _ = writeln!(
        json,
        "  \"vcpus\": {{\"1\": \"the figures above\", \"2\": {{{}}}}},",
        two_json.join(", ")
    );
    let _ = writeln!(json, "  \"method\": {{\"ops_per_run\": {n}, \"rounds\": {rounds}, \"qemu\": \"-icount shift=0,sleep=off\", \"unit\": \"instruction-ns per bind+close\"}}");
    json.push_str("}\n");
    let dir = repo_root().join("build/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("results.json"), &json).unwrap();

    println!("per bind+close, instruction-ns (icount), median of {rounds} rounds of {n}; `+` = over no probe");
    for (label, m) in [("1 vCPU", &one), ("2 vCPUs", &two)] {
        for kind in KINDS {
            let k = &m[kind];
            let over = |c: &str| k[c] - k["none"];
            println!(
                "{label:7} {kind:9}  none {:7.0}  c_empty +{:5.0}  c_events +{:6.0}  rust_events +{:6.0}  c_aggregate +{:5.0}  rust_aggregate +{:5.0}",
                k["none"], over("c_empty"), over("c_events"), over("rust_events"), over("c_aggregate"), over("rust_aggregate")
            );
            let r = ratios(k);
            println!(
                "{:7} {:9}  rust/c events {:.3}   rust/c aggregate {:.3}   aggregate/floor {:.2}",
                "", "", r[0].1, r[1].1, r[2].1
            );
        }
    }
    println!("written: {}", dir.join("results.json").display());
}
