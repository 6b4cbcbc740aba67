//! The upstream series (`make patches`, `xtask/src/upstream.rs`): it applies to the 7.3 tree,
//! its first patch is the kprobes core fix alone, checkpatch has nothing to say, the patched
//! kernel builds with `CLIPPY=1`, `rustfmtcheck` and `rustdoc` are clean, the abstraction's
//! doctests pass as KUnit tests in the VM, and the samples print the seed's lines for real
//! binds and closes. `make check` builds the patched
//! kernel first (cached); the tests only read its logs and boot it.

use std::path::Path;
use std::process::Command;
use xtask::upstream;
use xtask::util::{repo_root, Arch, Flavor, Kver};
use xtask::vm::{self, hex_after, number_after, Opts, Prepared};

fn flavor() -> Flavor {
    Flavor {
        arch: Arch::X86_64,
        debug: false,
        kernel: Kver::V7_3,
        hardened: false,
    }
}

fn prepared() -> Prepared {
    upstream::prepared(flavor()).unwrap_or_else(|e| panic!("{e}"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn tree_of(dir: &Path) -> String {
    run(Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD^{tree}"]))
}

/// `git am` of the series on the pristine 7.3 files gives the tree the series was made from.
fn series_applies_with_git_am() {
    let src = xtask::kernel::source(Kver::V7_3).unwrap();
    let dir = repo_root().join("build/patches-am");
    upstream::base_repo(&dir, &src).unwrap();
    let patches = upstream::patches().unwrap();
    assert_eq!(patches.len(), 3, "{patches:?}");
    run(Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["am", "--whitespace=error-all"])
        .args(&patches));
    assert_eq!(tree_of(&dir), tree_of(&upstream::out_dir().join("git")));
}

/// Patch 1 is the fix to 7.3's kprobes core, on its own for stable: it changes
/// `kernel/kprobes.c` and nothing else, and names the commit it fixes; no other patch touches
/// the C core.
fn fix_is_first_and_only_kprobes_c() {
    let patches = upstream::patches().unwrap();
    let files = |p: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(p).unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix("diff --git a/"))
            .map(|l| l.split(' ').next().unwrap_or_default().to_string())
            .collect()
    };
    let fix = &patches[0];
    let text = std::fs::read_to_string(fix).unwrap();
    assert!(
        text.contains("\nSubject: [PATCH 1/3] kprobes: Return arm_kprobe()'s error from\n"),
        "{}",
        fix.display()
    );
    assert_eq!(files(fix), ["kernel/kprobes.c"], "{}", fix.display());
    for tag in [
        "Fixes: 587e8e6d640b (\"kprobes: Adopt guard() and scoped_guard()\")",
        "Cc: stable@vger.kernel.org",
        "Cc: Masami Hiramatsu <mhiramat@kernel.org>",
    ] {
        assert!(
            text.lines().any(|l| l == tag),
            "{}: no `{tag}`",
            fix.display()
        );
    }
    for p in &patches[1..] {
        assert!(
            !files(p).iter().any(|f| f.starts_with("kernel/")),
            "{}: {:?}",
            p.display(),
            files(p)
        );
    }
}

/// The series' `rust/kernel/kprobes*` are the in-tree layer's files, one for one
/// (`kprobes/in_tree.rs`, `kprobes/in_tree/*.rs`: what every out-of-tree build compiles), with
/// nothing of the out-of-tree build left in them.
fn series_is_the_in_tree_layer() {
    let repo = repo_root();
    let tree = upstream::out_dir().join("git");
    let listed = run(Command::new("git").arg("-C").arg(&tree).args([
        "ls-files",
        "rust/kernel/kprobes.rs",
        "rust/kernel/kprobes",
    ]));
    let mut in_series: Vec<&str> = listed.lines().collect();
    in_series.sort();
    let mut in_layer: Vec<String> = upstream::layer(&repo)
        .unwrap()
        .into_iter()
        .map(|(_, to)| to)
        .collect();
    in_layer.sort();
    assert_eq!(in_series, in_layer);
    for f in &in_layer {
        let text = std::fs::read_to_string(tree.join(f)).unwrap();
        for (n, l) in text.lines().enumerate() {
            assert!(
                !l.contains("rk_") && !l.contains("rk-") && !l.contains("pub(crate)"),
                "{f}:{}: `{l}`",
                n + 1
            );
        }
    }
}

/// The kernel's `checkpatch.pl --strict`: no error, warning or check on any patch. But for
/// `UNKNOWN_COMMIT_ID`: the 7.3 tree is a source package, without the history checkpatch looks
/// commit ids up in, so it warns for every one (patch 1's `Fixes:` tag, whose line
/// `fix_is_first_and_only_kprobes_c` checks).
fn checkpatch_strict_is_clean() {
    let src = xtask::kernel::source(Kver::V7_3).unwrap();
    for p in upstream::patches().unwrap() {
        let out = Command::new("perl")
            .arg(src.join("scripts/checkpatch.pl"))
            .args(["--strict", "--no-color", "--ignore", "UNKNOWN_COMMIT_ID"])
            .arg(&p)
            .current_dir(&src)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("total: 0 errors, 0 warnings, 0 checks,"),
            "{}:\n{text}",
            p.display()
        );
    }
}

/// Warnings (`warning:`/`error:` lines, rustfmt's diffs) in one of the patched kernel's logs.
fn findings(dir: &Path, log: &str) -> (String, Vec<String>) {
    let path = dir.join(log);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let found = text
        .lines()
        .filter(|l| {
            // rustc's and clippy's diagnostics start the line; objtool's and others' name the
            // object first: those count when they are about the series' code.
            l.starts_with("warning")
                || l.starts_with("error")
                || l.contains("Diff in")
                || ((l.contains("warning") || l.contains("error:"))
                    && (l.contains("kprobes") || l.contains("_example")))
        })
        .map(String::from)
        .collect();
    (text, found)
}

/// The patched kernel, the samples included, was built with `CLIPPY=1` and nothing warned.
fn clippy_build_has_no_warning() {
    let p = prepared();
    let (log, found) = findings(&p.kernel.dir, "build.log");
    for unit in [
        "CLIPPY L rust/kernel.o",
        "CLIPPY [M] samples/rust/rust_kprobe_example.o",
        "CLIPPY [M] samples/rust/rust_kretprobe_example.o",
    ] {
        assert!(
            log.contains(unit),
            "`{unit}` not in the build log: not built with clippy"
        );
    }
    assert!(
        found.is_empty(),
        "the CLIPPY=1 build warned:\n{}",
        found.join("\n")
    );
}

/// arm64: the kernel crate and the samples compile with `CLIPPY=1`, and nothing warned.
fn arm64_compiles_with_clippy() {
    let f = Flavor {
        arch: Arch::Arm64,
        ..flavor()
    };
    let dir = upstream::built_dir(&f).unwrap_or_else(|e| panic!("{e}"));
    let (log, found) = findings(&dir, "build.log");
    for unit in [
        "CLIPPY L rust/kernel.o",
        "CLIPPY [M] samples/rust/rust_kprobe_example.o",
        "CLIPPY [M] samples/rust/rust_kretprobe_example.o",
    ] {
        assert!(log.contains(unit), "`{unit}` not in the arm64 build log");
    }
    assert!(
        found.is_empty(),
        "the arm64 CLIPPY=1 build warned:\n{}",
        found.join("\n")
    );
}

/// `make rustfmtcheck` and `make rustdoc` on the patched tree: no diff, no warning.
fn rustfmtcheck_and_rustdoc_are_clean() {
    let p = prepared();
    let (_, found) = findings(&p.kernel.dir, "rustfmtcheck.log");
    assert!(found.is_empty(), "make rustfmtcheck:\n{}", found.join("\n"));
    let (log, found) = findings(&p.kernel.dir, "rustdoc.log");
    assert!(
        log.lines()
            .any(|l| l.contains("RUSTDOC") && l.ends_with("/rust/kernel/lib.rs")),
        "rustdoc did not document the kernel crate:\n{log}"
    );
    assert!(found.is_empty(), "make rustdoc:\n{}", found.join("\n"));
    for f in [
        "kprobes/index.html",
        "kprobes/kprobe/trait.KprobeHandler.html",
        "kprobes/hit/struct.Hit.html",
        "kprobes/arch/trait.Frame.html",
    ] {
        let doc = p
            .kernel
            .dir
            .join("Documentation/output/rust/rustdoc/kernel")
            .join(f);
        assert!(doc.exists(), "{} missing", doc.display());
    }
}

/// The abstraction's `# Examples`, run at boot as KUnit tests: one per probe kind, each
/// registering a real probe on `usleep_range_state()` and checking what its handler saw.
fn doctests_pass_as_kunit() {
    let p = prepared();
    let run = vm::run(
        &p,
        "upstream_doctests",
        "true",
        &Opts::for_flavor(&p.flavor),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ours: Vec<&str> = run
        .serial
        .lines()
        .map(|l| l.split_once("] ").map_or(l, |(_, rest)| rest).trim())
        .filter(|l| l.contains("rust_doctest_kernel_kprobes"))
        .filter(|l| l.starts_with("ok ") || l.starts_with("not ok "))
        .collect();
    for kind in ["kprobes_kprobe_rs", "kprobes_kretprobe_rs"] {
        let v: Vec<&&str> = ours.iter().filter(|l| l.contains(kind)).collect();
        assert!(
            !v.is_empty() && v.iter().all(|l| l.starts_with("ok ")),
            "{kind}: {v:?} (all: {ours:?}); serial log: {}",
            run.log_path.display()
        );
    }
    assert!(
        run.serial.contains("# rust_doctests_kernel: pass:"),
        "no KUnit summary for the doctests; serial log: {}",
        run.log_path.display()
    );
    assert_eq!(run.exit, 0);
}

/// The samples, loaded in the patched kernel: one seed line per bind with the load program's
/// own comm, pid and port; one timed `inet_release` per socket closed, with its return value;
/// nothing missed.
fn samples_print_the_seed_lines() {
    let p = prepared();
    let run = vm::run(
        &p,
        "upstream_samples",
        "kallsyms inet_bind
         kallsyms inet_release
         load rust_kprobe_example
         load rust_kretprobe_example maxactive=4
         loadgen bind 30000 30001 30002
         rmmod rust_kretprobe_example
         rmmod rust_kprobe_example",
        &Opts::for_flavor(&p.flavor),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.exit, 0, "serial log: {}", run.log_path.display());
    assert!(run.splats().is_empty(), "{:#?}", run.splats());
    let binds = run.ops("bind");
    assert_eq!(binds.len(), 3, "{:?}", run.guest);
    let klog = run.module_lines("rust_kprobe_example");
    for o in &binds {
        assert_eq!(o.ret, 0, "{o:?}");
        let want = o.kprobe_line("inet_bind");
        assert_eq!(
            klog.iter().filter(|l| **l == want).count(),
            1,
            "want `{want}` in {klog:#?}"
        );
    }
    assert_eq!(
        klog.iter().filter(|l| l.starts_with("inet_bind ")).count(),
        3,
        "{klog:#?}"
    );
    let planted = klog.iter().find_map(|l| hex_after(l, "Planted kprobe at "));
    assert_eq!(planted, run.kallsyms("inet_bind"), "{klog:#?}");

    let rlog = run.module_lines("rust_kretprobe_example");
    let returns: Vec<i64> = rlog
        .iter()
        .filter(|l| l.starts_with("inet_release returned "))
        .map(|l| {
            assert!(
                number_after(l, " and took ").is_some_and(|ns| ns > 0)
                    && l.ends_with(" ns to execute"),
                "{l}"
            );
            number_after(l, "inet_release returned ").unwrap()
        })
        .collect();
    assert_eq!(returns, [0, 0, 0], "{rlog:#?}");
    let planted = rlog
        .iter()
        .find_map(|l| hex_after(l, "Planted return probe at inet_release: "));
    assert_eq!(planted, run.kallsyms("inet_release"), "{rlog:#?}");
    assert!(
        rlog.contains(&"Missed probing 0 instances of inet_release"),
        "{rlog:#?}"
    );
}

macro_rules! tests {
    ($($t:ident),* $(,)?) => {
        $(
            #[test]
            fn $t() {
                super::$t()
            }
        )*
    };
}

/// Named after the flavor, so that `make check KERNELS=6.12` skips them with the rest of
/// `x86_64_7_3::`.
mod x86_64_7_3 {
    tests!(
        series_applies_with_git_am,
        fix_is_first_and_only_kprobes_c,
        series_is_the_in_tree_layer,
        checkpatch_strict_is_clean,
        clippy_build_has_no_warning,
        rustfmtcheck_and_rustdoc_are_clean,
        doctests_pass_as_kunit,
        samples_print_the_seed_lines,
    );
}

mod arm64_7_3 {
    tests!(arm64_compiles_with_clippy);
}
