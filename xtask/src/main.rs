//! The harness: `cargo xtask <command>`, normally through `make` (see `make help`).
//! setup (scripts/setup.sh) -> kernel -> modules -> initramfs -> QEMU -> assertions.

use std::process::Command;
use std::time::Instant;
use xtask::util::{build_dir, fail, repo_root, Arch, Flavor, Kver};
use xtask::{kernel, modules, vm};

/// Kernel, modules (clippy-clean, warning-free) and initramfs of one flavor.
fn prepare(flavor: Flavor) -> vm::Prepared {
    let repo = repo_root();
    let k = kernel::ensure(&repo, &flavor).unwrap_or_else(|e| fail(&e));
    eprintln!("modules: building for {}", flavor.name());
    let m = modules::build(&k, &flavor, &["CLIPPY=1"]).unwrap_or_else(|e| fail(&e));
    let mut mods = vec![m.kprobe, m.kretprobe];
    mods.extend(xtask::bench::modules(&k, &flavor));
    mods.extend(modules::test_modules(&k, &flavor).unwrap_or_else(|e| fail(&e)));
    xtask::initramfs::build(&k, &flavor, &mods).unwrap_or_else(|e| fail(&e));
    vm::prepared(flavor).unwrap_or_else(|e| fail(&e))
}

const DEMO: &str = "
load rust_kprobe
load rust_kretprobe func=inet_release
loadgen bind 49152
rmmod rust_kretprobe
rmmod rust_kprobe
";

fn demo(flavor: Flavor) {
    let p = prepare(flavor);
    eprintln!(
        "vm: booting {} ({} under QEMU) with both modules; the load program binds port 49152",
        flavor.name(),
        flavor.arch.image_name()
    );
    let t = Instant::now();
    let run =
        vm::run(&p, "demo", DEMO, &vm::Opts::for_flavor(&flavor)).unwrap_or_else(|e| fail(&e));
    let serial = build_dir(&flavor).join("serial.log");
    std::fs::copy(&run.log_path, &serial).unwrap();
    println!("--- load program (guest) ---");
    for l in run.guest_with("LOADGEN") {
        println!("{l}");
    }
    println!("--- kernel log (dmesg) ---");
    for l in run.dmesg.iter().filter(|l| l.starts_with("rust_k")) {
        println!("{l}");
    }
    println!("---");
    println!(
        "boot + scenario: {:.1}s; artifacts in {}/ (serial log: serial.log)",
        t.elapsed().as_secs_f64(),
        build_dir(&flavor).display()
    );
    let splats = run.splats();
    if run.exit != 0 || !splats.is_empty() {
        fail(&format!(
            "scenario exit {} with {} kernel complaint(s); see {}",
            run.exit,
            splats.len(),
            serial.display()
        ));
    }
}

/// Formatting (the kernel's .rustfmt.toml) of the module sources.
fn rustfmt_check() {
    let k = kernel::source(Kver::V6_12).unwrap_or_else(|e| fail(&e));
    let mut files: Vec<String> = vec!["rust_kprobe.rs".into(), "rust_kretprobe.rs".into()];
    // The layer and its in-tree part (`kprobes/in_tree/`).
    for dir in ["kprobes", "kprobes/in_tree"] {
        for e in std::fs::read_dir(repo_root().join(dir)).unwrap() {
            let name = e.unwrap().file_name().to_str().unwrap().to_string();
            if name.ends_with(".rs") {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    let st = Command::new("rustfmt")
        .args(["--check", "--edition", "2021", "--config-path"])
        .arg(k.join(".rustfmt.toml"))
        .args(&files)
        .current_dir(repo_root())
        .status()
        .unwrap();
    if !st.success() {
        fail("module sources are not formatted with the kernel's .rustfmt.toml (run `make fmt`)");
    }
}

/// A list from the environment (`make` exports it even when unset: empty means `default`).
fn list(var: &str, default: &str) -> Vec<String> {
    let v = std::env::var(var).ok().filter(|a| !a.trim().is_empty());
    let v = v.unwrap_or_else(|| default.into());
    v.split_whitespace().map(String::from).collect()
}

/// `KERNELS` x `ARCHES` (6.12, 7.3 and Debian's, both arches by default; the project's two
/// kernels, x86_64 only, with `DEBUG=1`).
fn flavors() -> Vec<Flavor> {
    let env = Flavor::from_env().unwrap_or_else(|e| fail(&e));
    let (debug, hardened) = (env.debug, env.hardened);
    let arches = list("ARCHES", if debug { "x86_64" } else { "x86_64 arm64" });
    // Debian ships no debug kernel: the debug suite is the project's kernels'. The hardened
    // kernel is a 7.3 one.
    let kernels = list(
        "KERNELS",
        if debug {
            "6.12 7.3"
        } else if hardened {
            "7.3"
        } else {
            "6.12 7.3 debian"
        },
    );
    let mut v = vec![];
    for k in &kernels {
        let kernel = Kver::parse(k).unwrap_or_else(|e| fail(&e));
        for a in &arches {
            v.push(Flavor {
                arch: Arch::parse(a).unwrap_or_else(|e| fail(&e)),
                debug,
                kernel,
                hardened,
            });
        }
    }
    v
}

fn check() {
    rustfmt_check();
    let fl = flavors();
    for f in &fl {
        prepare(*f);
    }
    let names: Vec<String> = fl.iter().map(|f| f.name()).collect();
    // The upstream series is checked on 7.3 (`xtask/tests/upstream.rs`): booted on x86_64,
    // compiled for arm64.
    for f in fl
        .iter()
        .filter(|f| f.kernel == Kver::V7_3 && !f.debug && !f.hardened)
    {
        eprintln!(
            "upstream: the patch series (make patches) and the patched 7.3 kernel, {}",
            f.arch.name()
        );
        xtask::upstream::prepare(f).unwrap_or_else(|e| fail(&e));
    }
    // The kprobes fix's VM test (`kprobes_fix_makes_the_sweep_pass_without_the_check`, 7.3
    // debug, x86_64): the patched 7.3 debug kernel, and the modules without the layer's check
    // built against it and against the unpatched one (the test builds them again: a no-op then).
    for f in fl
        .iter()
        .filter(|f| f.kernel == Kver::V7_3 && f.debug && f.arch == Arch::X86_64)
    {
        eprintln!("upstream: the patched 7.3 debug kernel, for the kprobes fix's test");
        let patched = xtask::upstream::prepare(f).unwrap_or_else(|e| fail(&e));
        let unpatched = kernel::ensure(&repo_root(), f).unwrap_or_else(|e| fail(&e));
        for (k, tag) in [(patched, "patched"), (unpatched, "unpatched")] {
            modules::no_check_kept(k, *f, tag).unwrap_or_else(|e| fail(&e));
        }
    }
    eprintln!(
        "tests: host unit tests, then VM tests on {}",
        names.join(", ")
    );
    let mut args: Vec<String> = [
        "test",
        "-p",
        "logic",
        "-p",
        "xtask",
        "--lib",
        "--test",
        "build",
        "--test",
        "vm",
        "--test",
        "install",
        "--test",
        "upstream",
        "--test",
        "docs",
        "--",
        "--test-threads=2",
    ]
    .map(String::from)
    .to_vec();
    // Test modules are named after flavors (`x86_64_debug_7_3::`): skip the others.
    for kernel in Kver::ALL {
        for f in [
            "x86_64",
            "arm64",
            "x86_64-debug",
            "x86_64-hardened",
            "arm64-hardened",
        ] {
            if f.ends_with("-debug") && !kernel.built_here()
                || f.ends_with("-hardened") && kernel != Kver::V7_3
            {
                continue;
            }
            let f = format!("{f}{}", kernel.suffix());
            if !names.contains(&f) {
                args.push("--skip".into());
                args.push(format!("{}::", f.replace(['-', '.'], "_")));
            }
        }
    }
    let st = Command::new("cargo")
        .args(&args)
        .env("RK_FLAVORS", names.join(" "))
        .current_dir(repo_root())
        .status()
        .unwrap();
    std::process::exit(st.code().unwrap_or(1));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flavor = Flavor::from_env().unwrap_or_else(|e| fail(&e));
    match args.first().map(String::as_str) {
        Some("kernel") => {
            let k = kernel::ensure(&repo_root(), &flavor).unwrap_or_else(|e| fail(&e));
            println!("{}", k.dir.display())
        }
        Some("kbuild-args") => {
            let k = kernel::ensure(&repo_root(), &flavor).unwrap_or_else(|e| fail(&e));
            if flavor.kernel.built_here() {
                println!("KDIR={} {}", k.dir.display(), flavor.make_vars().join(" "));
            } else {
                // Debian's headers, as a Debian 13 system has them: the Makefile regenerates
                // the Rust metadata they lack (already done by setup) and builds with their GCC.
                let rel = xtask::debian::release(&flavor).unwrap_or_else(|e| fail(&e));
                if k.in_debian {
                    eprintln!(
                        "kbuild-args: build in the Debian 13 environment: scripts/in-debian make $(make -s kbuild-args KERNEL=debian)"
                    );
                }
                println!("KDIR=/usr/src/linux-headers-{rel}");
            }
        }
        Some("prepare") => {
            prepare(flavor);
        }
        Some("upstream-prepare") => {
            let k = xtask::upstream::prepare(&flavor).unwrap_or_else(|e| fail(&e));
            println!("{}", k.dir.display())
        }
        Some("patches") => {
            let patches = xtask::upstream::generate().unwrap_or_else(|e| fail(&e));
            for p in patches {
                println!("{}", p.display());
            }
        }
        Some("demo") => demo(flavor),
        Some("check") => check(),
        Some("fmt-check") => rustfmt_check(),
        Some("bench-goals") => xtask::bench::refresh_goals(),
        Some("bench") => {
            let p = prepare(Flavor {
                debug: false,
                ..flavor
            });
            xtask::bench::run(&p)
        }
        Some("vm") => {
            // cargo xtask vm SCRIPT [CPUS]: boot one scenario (built artifacts), print the log.
            let path = args
                .get(1)
                .unwrap_or_else(|| fail("usage: cargo xtask vm SCRIPT [CPUS]"));
            let script =
                std::fs::read_to_string(path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
            let mut opts = vm::Opts::for_flavor(&flavor);
            opts.cpus = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(1);
            // RK_ICOUNT=1: guest time counts instructions, as `make bench` runs it.
            opts.icount = std::env::var("RK_ICOUNT").is_ok_and(|v| v == "1");
            // RK_PLUGIN=<so>,<args>: a TCG plugin (`-plugin`), as `make bench` loads its own.
            opts.plugin = std::env::var("RK_PLUGIN").ok();
            let p = vm::prepared(flavor).unwrap_or_else(|e| fail(&e));
            let run = vm::run(&p, "adhoc", &script, &opts).unwrap_or_else(|e| fail(&e));
            print!("{}", run.serial);
            std::process::exit(run.exit);
        }
        _ => fail(
            "usage: cargo xtask kernel|kbuild-args|prepare|demo|check|fmt-check|bench|bench-goals",
        ),
    }
}
