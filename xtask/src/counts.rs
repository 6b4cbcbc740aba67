//! `make bench`'s exact counts: every guest instruction of a measured loop attributed to its
//! kernel symbol, and a probe hit's instructions and traps by component.
//!
//! The QEMU plugin `bench/plugin/rk_insns.c` counts each translated block's executions between
//! the two markers `loadgen bench` executes around its loop (a *window*), and writes the
//! windows of a boot to a file. Here each block is attributed to the symbol its first
//! instruction is in: vmlinux's from the guest's own `/proc/kallsyms` (dumped once a boot, `K`
//! lines, so KASLR and Debian's kernels need nothing more); a module's (C or Rust) as the
//! module, from `/proc/modules` (`M` lines, dumped by each run, since a module can load
//! elsewhere each time); kprobe slots, ftrace and BPF trampolines and BPF programs by their
//! `[__builtin__*]`/`[bpf]` kallsyms lines (also `M`). A probe hit's cost, per symbol, is the
//! least count of its configuration's windows minus the least of the no-probe windows, over
//! the hits: background work (timers, RCU callbacks, the other vCPU) only adds, and the least
//! of several windows has none of it. The symbols are then summed by component
//! ([`component`]): `entry`, `core`, `handler`, `step`, `return`.

use crate::util::{repo_root, Arch};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One window: per block (start address, instructions), its executions.
pub type Window = Vec<(u64, u32, u64)>;

/// The windows of one boot, in the order the guest closed them.
pub fn windows(path: &Path) -> Result<Vec<Window>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out: Vec<Window> = vec![];
    for (i, l) in text.lines().enumerate() {
        if let Some(rest) = l.strip_prefix("W ") {
            if rest.contains("overflowed") {
                return Err(format!(
                    "{}: the plugin ran out of block slots (MAX_SLOTS in bench/plugin/rk_insns.c)",
                    path.display()
                ));
            }
            out.push(vec![]);
            continue;
        }
        let bad = || format!("{}:{}: `{l}`", path.display(), i + 1);
        let f: Vec<&str> = l.split_whitespace().collect();
        let [a, n, e] = f[..] else { return Err(bad()) };
        let w = out.last_mut().ok_or_else(bad)?;
        w.push((
            u64::from_str_radix(a, 16).map_err(|_| bad())?,
            n.parse().map_err(|_| bad())?,
            e.parse().map_err(|_| bad())?,
        ));
    }
    Ok(out)
}

/// The plugin, built against the header of the QEMU installed here (fetched by
/// `PLUGIN=1 scripts/setup.sh`) into `build/plugin/`.
pub fn plugin() -> Result<PathBuf, String> {
    let src = repo_root().join("bench/plugin/rk_insns.c");
    let qver = crate::util::capture("dpkg-query", &["-W", "-f=${Version}", "qemu-system-common"])
        .ok_or("no qemu-system-common installed (make setup)")?;
    let up = qver.trim();
    let up = up.split_once(':').map_or(up, |(_, v)| v);
    let up = up.rsplit_once('-').map_or(up, |(v, _)| v);
    let inc = crate::util::cache_dir().join(format!("src/qemu-{up}/include/qemu"));
    if !inc.join("qemu-plugin.h").exists() {
        return Err(format!(
            "{}/qemu-plugin.h missing: run `PLUGIN=1 scripts/setup.sh` (make bench does)",
            inc.display()
        ));
    }
    let out = repo_root().join("build/plugin/rk_insns.so");
    let fresh = |o: &Path| -> Option<bool> {
        Some(o.metadata().ok()?.modified().ok()? >= src.metadata().ok()?.modified().ok()?)
    };
    if fresh(&out) == Some(true) {
        return Ok(out);
    }
    std::fs::create_dir_all(out.parent().unwrap()).map_err(|e| e.to_string())?;
    let glib = crate::util::capture("pkg-config", &["--cflags", "glib-2.0"])
        .ok_or("pkg-config --cflags glib-2.0 failed (libglib2.0-dev: PLUGIN=1 scripts/setup.sh)")?;
    let mut args: Vec<String> = ["-O2", "-Wall", "-Werror", "-shared", "-fPIC"]
        .map(String::from)
        .to_vec();
    args.extend(glib.split_whitespace().map(String::from));
    args.push(format!("-I{}", inc.display()));
    args.extend([
        "-o".into(),
        out.display().to_string(),
        src.display().to_string(),
    ]);
    let o = std::process::Command::new("cc")
        .args(&args)
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "building {}: {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(out)
}

/// Text symbols: (address, name), sorted.
#[derive(Default, Clone)]
pub struct Symbols(Vec<(u64, String)>);

impl Symbols {
    /// From `/proc/kallsyms` lines (`<addr> <type> <name> [<module>]`), text only.
    pub fn from_kallsyms<'a>(lines: impl Iterator<Item = &'a str>) -> Symbols {
        let mut v: Vec<(u64, String)> = lines
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let a = u64::from_str_radix(f.first()?, 16).ok()?;
                if !matches!(*f.get(1)?, "t" | "T") || a == 0 {
                    return None;
                }
                Some((a, f[2..].join(" ")))
            })
            .collect();
        v.sort();
        Symbols(v)
    }

    fn find(&self, a: u64) -> Option<&str> {
        let i = self.0.partition_point(|(s, _)| *s <= a);
        (i > 0).then(|| self.0[i - 1].1.as_str())
    }

    fn at(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(_, n)| n == name).map(|(a, _)| *a)
    }
}

/// What one run had loaded: modules (name, base, size) from `/proc/modules`, and the
/// `[__builtin__*]`/`[bpf]` symbols (kprobe slots, trampolines, BPF programs).
#[derive(Default, Clone)]
pub struct Loaded {
    pub modules: Vec<(String, u64, u64)>,
    pub extra: Symbols,
}

impl Loaded {
    /// From the run's `M ` lines (prefix stripped).
    pub fn parse(lines: &[&str]) -> Loaded {
        let mut modules = vec![];
        let mut extra = vec![];
        for l in lines {
            let f: Vec<&str> = l.split_whitespace().collect();
            // `/proc/modules`: name size refs deps state address
            if f.len() >= 6 && f[5].starts_with("0x") {
                if let (Ok(size), Ok(base)) = (
                    f[1].parse::<u64>(),
                    u64::from_str_radix(f[5].trim_start_matches("0x"), 16),
                ) {
                    modules.push((f[0].to_string(), base, size));
                    continue;
                }
            }
            extra.push(*l);
        }
        Loaded {
            modules,
            extra: Symbols::from_kallsyms(extra.into_iter()),
        }
    }
}

/// Where a block starts: its symbol's name, `[module]` for a module's own code, `user`.
pub fn resolve(a: u64, vmlinux: &Symbols, loaded: &Loaded) -> String {
    if a >> 47 == 0 {
        return "user".into();
    }
    if let Some((m, _, _)) = loaded
        .modules
        .iter()
        .find(|(_, b, s)| (*b..b + s).contains(&a))
    {
        return format!("[{m}]");
    }
    // A builtin/BPF symbol covers at most a page from its start.
    if let Some(i) = loaded
        .extra
        .0
        .partition_point(|(s, _)| *s <= a)
        .checked_sub(1)
    {
        let (s, n) = &loaded.extra.0[i];
        if a - s < 4096 {
            return n.clone();
        }
    }
    vmlinux.find(a).unwrap_or("?").to_string()
}

/// Instructions per symbol, and how many times each trap entry ([`trap_entries`]) ran.
#[derive(Default, Clone, Debug)]
pub struct Counted {
    pub insns: BTreeMap<String, u64>,
    pub traps: BTreeMap<String, u64>,
}

pub fn count(arch: Arch, w: &Window, vmlinux: &Symbols, loaded: &Loaded) -> Counted {
    let traps: Vec<(u64, &str)> = trap_entries(arch)
        .iter()
        .filter_map(|t| Some((vmlinux.at(t)?, *t)))
        .collect();
    let mut c = Counted::default();
    for &(a, n, e) in w {
        *c.insns.entry(resolve(a, vmlinux, loaded)).or_default() += n as u64 * e;
        if let Some((_, t)) = traps.iter().find(|(ta, _)| *ta == a) {
            *c.traps.entry(t.to_string()).or_default() += e;
        }
    }
    c
}

fn least_of(maps: &[&BTreeMap<String, u64>]) -> BTreeMap<String, u64> {
    let keys: std::collections::BTreeSet<&String> = maps.iter().flat_map(|m| m.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let m = maps.iter().map(|r| r.get(k).copied().unwrap_or(0)).min();
            (k.clone(), m.unwrap_or(0))
        })
        .collect()
}

/// Per symbol (and per trap entry), the least over `runs`.
pub fn least(runs: &[&Counted]) -> Counted {
    Counted {
        insns: least_of(&runs.iter().map(|r| &r.insns).collect::<Vec<_>>()),
        traps: least_of(&runs.iter().map(|r| &r.traps).collect::<Vec<_>>()),
    }
}

pub const COMPONENTS: [&str; 5] = ["entry", "core", "handler", "step", "return"];

/// The component of a hit a symbol belongs to. `entry`: getting from the probed instruction
/// into the probe core and back (the trap's entry and exit code, ftrace's caller, the BPF or
/// module's direct trampoline, an optimized probe's detour buffer); `core`: the kprobe, fprobe or
/// rethook core; `step`: executing the probed instruction out of line (the slot, the
/// single-step or emulation); `return`: a return probe's way back (the rethook or fgraph
/// trampoline and its handler); `handler`: the rest: the module's or BPF program's own code and
/// the kernel functions it calls (printk, the ring buffer, maps, clocks).
pub fn component(arch: Arch, sym: &str) -> &'static str {
    let s = sym.split(" [").next().unwrap_or(sym);
    let any = |names: &[&str]| {
        names
            .iter()
            .any(|n| n.strip_suffix('*').map_or(s == *n, |p| s.starts_with(p)))
    };
    if sym.ends_with("[__builtin__kprobes]") {
        return if s == "kprobe_optinsn_page" {
            "entry"
        } else {
            "step"
        };
    }
    if sym.ends_with("[__builtin__ftrace]")
        || (sym.ends_with("[bpf]") && s.starts_with("bpf_trampoline_"))
    {
        return "entry";
    }
    if s.starts_with("rk_direct_") {
        return "entry";
    }
    const ENTRY_ANY: &[&str] = &[
        "ftrace_caller",
        "ftrace_regs_caller",
        "ftrace_call",
        "ftrace_regs_call",
        "ftrace_stub*",
        "ftrace_ops_list_func",
        "arch_ftrace_ops_list_func",
        "ftrace_common*",
        "ftrace_call_ops*",
        "optimized_callback",
        "__bpf_prog_enter*",
        "__bpf_prog_exit*",
        "__bpf_tramp_enter",
        "__bpf_tramp_exit",
        "ftrace_ops_assist_func",
        "ftrace_ops_test",
    ];
    const CORE: &[&str] = &[
        "kprobe_int3_handler",
        "kprobe_handler",
        "kprobe_brk_handler",
        "get_kprobe",
        "opt_pre_handler",
        "aggr_pre_handler",
        "aggr_post_handler",
        "kprobe_ftrace_handler",
        "kprobe_busy_begin",
        "kprobe_busy_end",
        "pre_handler_kretprobe",
        "setup_detour_execution",
        "kprobe_running",
        "kprobe_fault_handler",
        "arch_rethook_prepare",
        "rethook_hook",
        "rethook_try_get",
        "rethook_recycle",
        "objpool_*",
        "fprobe_handler",
        "fprobe_entry",
        "fprobe_ftrace_entry",
        "fprobe_fgraph_entry",
        "__fprobe_handler",
        "fprobe_init*",
        "kprobe_multi_link_handler",
        "kprobe_multi_link_prog_run",
        "fprobe_kprobe_handler",
        "__kretprobe_find_ret_addr",
        "kprobe_perf_func",
    ];
    const STEP: &[&str] = &[
        "setup_singlestep",
        "resume_singlestep",
        "kprobe_post_process",
        "kprobe_emulate_*",
        "kprobe_ss_brk_handler",
        "post_kprobe_handler",
        "simulate_*",
        "arch_simulate_insn",
        "kprobes_save_local_irqflag",
        "kprobes_restore_local_irqflag",
        "kprobe_ss_hit",
        "kprobe_reenter_check",
        "skip_prefixes",
        "kprobe_copy_insn",
    ];
    const RETURN: &[&str] = &[
        "arch_rethook_trampoline",
        "arch_rethook_trampoline_callback",
        "rethook_trampoline_handler",
        "kretprobe_rethook_handler",
        "__kretprobe_trampoline_handler",
        "arch_rethook_fixup_return",
        "return_to_handler",
        "ftrace_return_to_handler",
        "function_graph_enter*",
        "fgraph_*",
        "ftrace_graph_*",
        "fprobe_return",
        "fprobe_fgraph_exit*",
        "__fprobe_exit*",
        "ftrace_push_return_trace*",
        "ftrace_pop_return_trace",
        "ret_stack_*",
        "fprobe_exit_handler",
        "rethook_find_ret_addr",
        "kretprobe_find_ret_addr",
    ];
    let entry_arch: &[&str] = match arch {
        Arch::X86_64 => &[
            "asm_exc_int3",
            "exc_int3",
            "do_int3",
            "error_entry",
            "error_return",
            "restore_regs_and_return_to_kernel",
            "native_iret",
            "irqentry_nmi_enter",
            "irqentry_nmi_exit",
            "ct_nmi_enter",
            "ct_nmi_exit",
            "poke_int3_handler",
            "paranoid_entry",
            "paranoid_exit",
            "asm_exc_debug",
            "exc_debug",
            "exc_debug_kernel",
            "smp_text_poke_int3_handler",
            "text_poke_int3_handler",
        ],
        Arch::Arm64 => &[
            "el1h_64_sync",
            "el1h_64_sync_handler",
            "el1_dbg",
            "el1_brk64",
            "el1_softstp",
            "do_el1_brk64",
            "do_el1_softstep",
            "do_debug_exception",
            "call_el1_break_hook",
            "call_break_hook",
            "brk_handler",
            "arm64_enter_el1_dbg",
            "arm64_exit_el1_dbg",
            "debug_exception_enter",
            "debug_exception_exit",
            "enter_from_kernel_mode",
            "exit_to_kernel_mode",
            "ret_to_kernel",
            "vectors",
            "ct_nmi_enter",
            "ct_nmi_exit",
            "irqentry_nmi_enter",
            "irqentry_nmi_exit",
            "kernel_entry*",
            "el1_interrupt",
        ],
    };
    if any(entry_arch) || any(ENTRY_ANY) {
        "entry"
    } else if any(CORE) {
        "core"
    } else if any(STEP) {
        "step"
    } else if any(RETURN) {
        "return"
    } else {
        "handler"
    }
}

/// The trap entries counted as traps: x86's `int3` and debug exception entry, arm64's EL1
/// synchronous exception (a `brk`, or the single-step's).
pub fn trap_entries(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::X86_64 => &["asm_exc_int3", "asm_exc_debug"],
        Arch::Arm64 => &["el1h_64_sync"],
    }
}

/// A probe hit: instructions per symbol (the difference over the hits), by component, traps.
pub struct Hit {
    pub per_symbol: BTreeMap<String, f64>,
    pub components: BTreeMap<&'static str, f64>,
    pub total: f64,
    /// The module's or BPF program's own code (no kernel function it calls).
    pub handler_own: f64,
    pub traps: f64,
}

pub fn hit(arch: Arch, probe: &Counted, none: &Counted, hits: u64) -> Hit {
    let h = hits.max(1) as f64;
    let diff = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| -> BTreeMap<String, f64> {
        a.keys()
            .chain(b.keys())
            .filter_map(|k| {
                let d =
                    a.get(k).copied().unwrap_or(0) as f64 - b.get(k).copied().unwrap_or(0) as f64;
                (d != 0.0).then(|| (k.clone(), d / h))
            })
            .collect()
    };
    let per_symbol = diff(&probe.insns, &none.insns);
    let mut components: BTreeMap<&'static str, f64> =
        COMPONENTS.iter().map(|c| (*c, 0.0)).collect();
    let mut handler_own = 0.0;
    for (s, d) in &per_symbol {
        if s == "user" {
            continue;
        }
        *components.get_mut(component(arch, s)).unwrap() += d;
        if (s.starts_with('[') && !s.starts_with("[__builtin__"))
            || (s.ends_with("[bpf]") && s.starts_with("bpf_prog_"))
        {
            handler_own += d;
        }
    }
    let total = components.values().sum();
    let traps = diff(&probe.traps, &none.traps).values().sum();
    Hit {
        per_symbol,
        components,
        total,
        handler_own,
        traps,
    }
}

/// Three decimals (and no `-0`).
fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0 + 0.0
}

impl Hit {
    pub fn json(&self) -> Value {
        let mut c: serde_json::Map<String, Value> = self
            .components
            .iter()
            .map(|(k, v)| (k.to_string(), json!(r3(*v))))
            .collect();
        c.insert("total".into(), json!(r3(self.total)));
        c.insert("handler_own".into(), json!(r3(self.handler_own)));
        Value::Object(c)
    }

    /// The symbols that moved most, for the log: `+43 kprobe_int3_handler`.
    pub fn top(&self, n: usize) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = self
            .per_symbol
            .iter()
            .filter(|(s, _)| s.as_str() != "user")
            .map(|(s, d)| (s.clone(), *d))
            .collect();
        v.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        v.truncate(n);
        v
    }
}

/// The picture of `make bench` (docs/benchmark.md): per probe kind, one stacked bar per
/// configuration, a hit's instructions by component. Configurations that print (`*_events`:
/// printk's ~10^4 instructions) would flatten the rest: the axis ends past the widest other
/// bar and theirs are cut there, their total written at the end. Plain SVG: rectangles and
/// text, nothing a library would add.
pub fn svg(title: &str, panels: &[(String, Vec<(String, &Hit)>)]) -> String {
    const COLORS: [(&str, &str); 5] = [
        ("entry", "#4e79a7"),
        ("core", "#f28e2b"),
        ("handler", "#59a14f"),
        ("step", "#e15759"),
        ("return", "#b07aa1"),
    ];
    let (label_w, bar_w, row_h, gap) = (150.0, 560.0, 18.0, 6.0);
    let rows: usize = panels.iter().map(|(_, r)| r.len() + 2).sum();
    let height = 60.0 + rows as f64 * (row_h + gap);
    let width = label_w + bar_w + 90.0;
    let widest = panels
        .iter()
        .flat_map(|(_, r)| r.iter())
        .filter(|(c, _)| !c.ends_with("_events"))
        .map(|(_, h)| h.total)
        .fold(1.0, f64::max);
    let scale = bar_w / (widest * 1.1);
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"8\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        esc(title)
    );
    let mut x = 8.0;
    for (c, color) in COLORS {
        o += &format!(
            "<rect x=\"{x}\" y=\"28\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"38\">{c}</text>\n",
            x + 16.0
        );
        x += 90.0;
    }
    let mut y = 60.0;
    for (name, rows) in panels {
        o += &format!(
            "<text x=\"8\" y=\"{}\" font-weight=\"bold\">{}</text>\n",
            y + 12.0,
            esc(name)
        );
        y += row_h + gap;
        for (cfg, h) in rows {
            o += &format!("<text x=\"8\" y=\"{}\">{}</text>\n", y + 13.0, esc(cfg));
            let mut x = label_w;
            for (c, color) in COLORS {
                let w = (h.components[c].max(0.0) * scale).min(label_w + bar_w - x);
                if w > 0.0 {
                    o += &format!(
                        "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{row_h}\" \
                         fill=\"{color}\"><title>{c}: {:.1}</title></rect>\n",
                        h.components[c]
                    );
                }
                x += w;
            }
            let cut = if x >= label_w + bar_w - 0.5 {
                " (cut)"
            } else {
                ""
            };
            o += &format!(
                "<text x=\"{:.1}\" y=\"{}\">{:.0}{cut}</text>\n",
                x + 4.0,
                y + 13.0,
                h.total
            );
            y += row_h + gap;
        }
        y += row_h;
    }
    o + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_of_the_int3_path() {
        assert_eq!(component(Arch::X86_64, "asm_exc_int3"), "entry");
        assert_eq!(component(Arch::X86_64, "kprobe_int3_handler"), "core");
        assert_eq!(component(Arch::X86_64, "kprobe_emulate_call"), "step");
        assert_eq!(
            component(Arch::X86_64, "kprobe_insn_page [__builtin__kprobes]"),
            "step"
        );
        assert_eq!(component(Arch::X86_64, "arch_rethook_trampoline"), "return");
        assert_eq!(component(Arch::X86_64, "[rust_kprobe]"), "handler");
        assert_eq!(component(Arch::X86_64, "vprintk_emit"), "handler");
        assert_eq!(component(Arch::Arm64, "el1h_64_sync"), "entry");
        assert_eq!(component(Arch::Arm64, "kprobe_ss_brk_handler"), "step");
    }

    #[test]
    fn least_is_per_symbol() {
        let c = |v: &[(&str, u64)]| Counted {
            insns: v.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
            traps: BTreeMap::new(),
        };
        let l = least(&[&c(&[("a", 5), ("b", 9)]), &c(&[("a", 7), ("b", 3)])]);
        assert_eq!(l.insns["a"], 5);
        assert_eq!(l.insns["b"], 3);
    }

    #[test]
    fn hit_is_the_difference_over_the_hits() {
        let none = Counted {
            insns: [("user".to_string(), 100), ("x".to_string(), 10)].into(),
            traps: BTreeMap::new(),
        };
        let probe = Counted {
            insns: [
                ("user".to_string(), 100),
                ("x".to_string(), 10),
                ("asm_exc_int3".to_string(), 40),
                ("[m]".to_string(), 60),
            ]
            .into(),
            traps: [("asm_exc_int3".to_string(), 2)].into(),
        };
        let h = hit(Arch::X86_64, &probe, &none, 2);
        assert_eq!(h.traps, 1.0);
        assert_eq!(h.components["entry"], 20.0);
        assert_eq!(h.components["handler"], 30.0);
        assert_eq!(h.handler_own, 30.0);
        assert_eq!(h.total, 50.0);
    }
}
