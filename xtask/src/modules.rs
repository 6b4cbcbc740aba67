//! Step 3: the two modules, built with Kbuild against the project's kernel, out of a copy of
//! the sources in `build/<flavor>/src/` (6.12's Kbuild builds `M=` trees in place, and the
//! flavors must not share objects).

use crate::kernel::Kernel;
use crate::util::{build_dir, fail, repo_root, try_run_logged, Flavor};
use crate::vm::Prepared;
use std::fs;
use std::path::{Path, PathBuf};

/// The module sources, relative to the repository root.
pub const SOURCES: &[&str] = &[
    "Kbuild",
    "rust_kprobe.rs",
    "rust_kretprobe.rs",
    "helpers.c",
    "bindings_helper.h",
    "kprobes",
];

/// [`try_sync`], exiting with its error (for `bench.rs`).
pub fn sync(from: &Path, to: &Path) {
    try_sync(from, to).unwrap_or_else(|e| fail(&e))
}

/// Copies `from` to `to` where the content differs, so unchanged files keep their mtime.
pub fn try_sync(from: &Path, to: &Path) -> Result<(), String> {
    if from.is_dir() {
        fs::create_dir_all(to).map_err(at(to))?;
        for e in fs::read_dir(from).map_err(at(from))? {
            let e = e.map_err(at(from))?;
            try_sync(&e.path(), &to.join(e.file_name()))?;
        }
    } else if fs::read(from).ok() != fs::read(to).ok() {
        if let Some(dir) = to.parent() {
            fs::create_dir_all(dir).map_err(at(dir))?;
        }
        fs::copy(from, to)
            .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
    }
    Ok(())
}

/// An I/O error, with the path it happened on.
fn at(p: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", p.display())
}

/// `fs::copy`, with an error naming both paths.
fn copy(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))
}

pub struct Built {
    pub kprobe: PathBuf,
    pub kretprobe: PathBuf,
}

/// Builds the modules for `flavor` (extra `make` arguments such as `CLIPPY=1`) and copies them
/// to `build/<flavor>/`.
pub fn build(kernel: &Kernel, flavor: &Flavor, extra: &[&str]) -> Result<Built, String> {
    let out = build_dir(flavor);
    let b = build_in(kernel, flavor, &out, extra)?;
    copy(&kernel.image, &out.join(flavor.arch.image_name()))?;
    Ok(b)
}

/// [`build`] in `out` (the sources copied to `out/src/`, the modules to `out/`), without the
/// copy of the kernel image.
pub fn build_in(
    kernel: &Kernel,
    flavor: &Flavor,
    out: &Path,
    extra: &[&str],
) -> Result<Built, String> {
    let src = out.join("src");
    for s in SOURCES {
        try_sync(&repo_root().join(s), &src.join(s))?;
    }
    let log = out.join("modules.log");
    let _ = fs::remove_file(&log);
    let mut args = vec![format!("M={}", src.display())];
    args.extend(flavor.make_vars());
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("modules".into());
    let (cmd, args) = kernel.make(&args);
    try_run_logged(&cmd, &args, &log, "module build")?;
    // The modules must build with no compiler warnings.
    let text = fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("warning")).collect();
    if !warnings.is_empty() {
        for w in &warnings {
            eprintln!("  | {w}");
        }
        return Err(format!(
            "module build has {} warning line(s); see {}",
            warnings.len(),
            log.display()
        ));
    }
    let b = Built {
        kprobe: out.join("rust_kprobe.ko"),
        kretprobe: out.join("rust_kretprobe.ko"),
    };
    copy(&src.join("rust_kprobe.ko"), &b.kprobe)?;
    copy(&src.join("rust_kretprobe.ko"), &b.kretprobe)?;
    Ok(b)
}

/// Testing only: the two modules built against `kernel` with `RK_TEST_NO_CHECK_KEPT=1` (no
/// check that the kprobe core holds a probe its `register_kprobe()` said 0 for, see Kbuild:
/// they then behave as plain C `register_kprobe()` callers), and an initramfs with them, in
/// `build/<flavor>/no-check-kept/<tag>/` (`tag` names the kernel: the normal modules of
/// `build/<flavor>/` stay as they are). For the VM test that the kprobes fix of `make patches`
/// works: run on the patched 7.3 kernel and on the unpatched one.
pub fn no_check_kept(kernel: Kernel, flavor: Flavor, tag: &str) -> Result<Prepared, String> {
    let out = build_dir(&flavor).join("no-check-kept").join(tag);
    eprintln!(
        "modules: building for {} without the check_kept workaround, against {} (in {})",
        flavor.name(),
        kernel.dir.display(),
        out.display()
    );
    let b = build_in(&kernel, &flavor, &out, &["RK_TEST_NO_CHECK_KEPT=1"])?;
    let initramfs = crate::initramfs::build_at(
        &kernel,
        &flavor,
        &[b.kprobe, b.kretprobe],
        &out.join("initramfs.cpio"),
    )?;
    Ok(Prepared {
        kernel,
        flavor,
        initramfs,
    })
}

/// Kbuild's `modules` for the external module in `dir`, against `kernel`, logged to `log`.
fn kbuild(
    kernel: &Kernel,
    flavor: &Flavor,
    dir: &Path,
    log: &Path,
    what: &str,
) -> Result<(), String> {
    let mut args = vec![format!("M={}", dir.display())];
    args.extend(flavor.make_vars());
    args.push("modules".into());
    let (cmd, args) = kernel.make(&args);
    try_run_logged(&cmd, &args, log, what)
}

/// `vm/target/rk_target.ko`: a C module only the VM tests load (a function to probe in code
/// that goes away), built against `kernel` like the modules, into `build/<flavor>/target/`.
pub fn test_modules(kernel: &Kernel, flavor: &Flavor) -> Result<Vec<PathBuf>, String> {
    let dir = build_dir(flavor).join("target");
    try_sync(&repo_root().join("vm/target"), &dir)?;
    let log = dir.join("build.log");
    let _ = fs::remove_file(&log);
    kbuild(kernel, flavor, &dir, &log, "test module build")?;
    let mut v = vec![dir.join("rk_target.ko"), new_probe(kernel, flavor)?];
    if flavor.hardened {
        v.push(cfi_module(kernel, flavor)?);
    }
    Ok(v)
}

/// `vm/cfi/rk_cfi.rs`: the hardened kernels' test-only module (a pre handler of a wrong type,
/// for kCFI), built with the project's Kbuild in a copy of the sources without the two modules,
/// into `build/<flavor>/cfi/`.
fn cfi_module(kernel: &Kernel, flavor: &Flavor) -> Result<PathBuf, String> {
    let dir = build_dir(flavor).join("cfi");
    for s in SOURCES.iter().filter(|s| !s.ends_with(".rs")) {
        try_sync(&repo_root().join(s), &dir.join(s))?;
    }
    try_sync(
        &repo_root().join("vm/cfi/rk_cfi.rs"),
        &dir.join("rk_cfi.rs"),
    )?;
    let log = dir.join("build.log");
    let _ = fs::remove_file(&log);
    kbuild(kernel, flavor, &dir, &log, "rk_cfi module build")?;
    Ok(dir.join("rk_cfi.ko"))
}

/// The module a user makes with `make new`: `make new NAME=rk_newprobe SYMBOL=inet_bind` in a
/// copy of the sources without the two modules (so that Kbuild finds only the new one), then
/// built like them, into `build/<flavor>/newprobe/`. The VM tests load it.
pub const NEW_PROBE: &str = "rk_newprobe";

fn new_probe(kernel: &Kernel, flavor: &Flavor) -> Result<PathBuf, String> {
    let dir = build_dir(flavor).join("newprobe");
    for s in SOURCES.iter().filter(|s| !s.ends_with(".rs")).chain(&[
        "Makefile",
        "template",
        "scripts/new-probe.sh",
    ]) {
        try_sync(&repo_root().join(s), &dir.join(s))?;
    }
    let ours = dir.join(format!("{NEW_PROBE}.rs"));
    let _ = fs::remove_file(&ours);
    let log = dir.join("build.log");
    let _ = fs::remove_file(&log);
    let new: Vec<String> = [
        "-s",
        "-C",
        &dir.display().to_string(),
        "new",
        &format!("NAME={NEW_PROBE}"),
        "SYMBOL=inet_bind",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    try_run_logged("make", &new, &log, "make new")?;
    kbuild(kernel, flavor, &dir, &log, "make new's module build")?;
    let text = fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    if text.lines().any(|l| l.contains("warning")) {
        return Err(format!(
            "make new's module builds with warnings; see {}",
            log.display()
        ));
    }
    Ok(dir.join(format!("{NEW_PROBE}.ko")))
}
