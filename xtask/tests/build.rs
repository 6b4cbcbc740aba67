//! Build tests (no VM): what the module build did for each flavor `make check` prepared.

use std::path::PathBuf;
use std::process::Command;
use xtask::util::{build_dir, Flavor, Kver};

/// The flavors `make check` built (`RK_FLAVORS`); the 6.12 x86_64 one when run by hand.
fn flavors() -> Vec<Flavor> {
    let names = std::env::var("RK_FLAVORS").unwrap_or_else(|_| "x86_64".into());
    names
        .split_whitespace()
        .map(|n| Flavor::parse(n).unwrap_or_else(|e| panic!("RK_FLAVORS: {e}")))
        .collect()
}

/// The command Kbuild ran for the module's bindgen step (`savedcmd_... := <cmd>`).
fn bindgen_cmd(flavor: &Flavor) -> String {
    let path: PathBuf = build_dir(flavor).join("src/.rk_bindings.rs.cmd");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `make check` first)", path.display()));
    let line = text
        .lines()
        .find(|l| l.starts_with("savedcmd_") || l.starts_with("cmd_"))
        .unwrap_or_else(|| panic!("{}: no saved command", path.display()));
    line.split_once(" := ")
        .unwrap_or_else(|| panic!("{}: malformed: {line}", path.display()))
        .1
        .to_string()
}

/// The major version of the libclang bindgen loads with `LIBCLANG_PATH` set to `path` (or
/// unset: bindgen's own choice, the newest installed).
fn libclang_major(kernel_src: &std::path::Path, path: Option<&std::path::Path>) -> u32 {
    let mut c = Command::new("bindgen");
    c.arg(kernel_src.join("scripts/rust_is_available_bindgen_libclang.h"))
        .env_remove("LIBCLANG_PATH");
    if let Some(p) = path {
        c.env("LIBCLANG_PATH", p);
    }
    let out = c.output().expect("bindgen");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let v = text
        .split("clang version ")
        .nth(1)
        .unwrap_or_else(|| panic!("no clang version in bindgen's output: {text}"));
    v.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("malformed clang version: {v}"))
}

/// bindgen parses the kernel's `$(c_flags)` with the libclang of the clang that built the
/// kernel, not the newest one installed. On the 6.12 kernel (clang 14) with LLVM 19 also
/// installed, the same command with bindgen's own choice of libclang fails.
#[test]
fn module_bindgen_uses_the_kernels_libclang() {
    // A GCC-built kernel (Debian's) has no clang of its own: see the next test.
    for flavor in flavors().into_iter().filter(|f| f.kernel.built_here()) {
        let k = xtask::kernel::find(&flavor)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no {} kernel built: run `make check`", flavor.name()));
        let cmd = bindgen_cmd(&flavor);
        let want = flavor.kernel.libclang_path().expect("libclang path");
        let set = format!("LIBCLANG_PATH={}", want.display());
        assert!(
            cmd.trim_start().starts_with(&set),
            "{}: the module's bindgen run does not set {set}: {cmd}",
            flavor.name()
        );
        let config = std::fs::read_to_string(k.dir.join(".config")).expect("kernel .config");
        let clang: u32 = config
            .lines()
            .find_map(|l| l.strip_prefix("CONFIG_CLANG_VERSION="))
            .and_then(|v| v.parse().ok())
            .expect("CONFIG_CLANG_VERSION in .config");
        assert_eq!(
            libclang_major(&k.src, Some(&want)),
            clang / 10000,
            "{}: libclang in {} is not the kernel's clang",
            flavor.name(),
            want.display()
        );
        if flavor.kernel != Kver::V6_12 {
            continue;
        }
        // The trap is armed: bindgen alone would load a newer libclang...
        let newest = libclang_major(&k.src, None);
        assert!(
            newest > clang / 10000,
            "only one LLVM installed (bindgen picks libclang {newest}): `make setup` installs 14 and 19"
        );
        // ... and with it, the same command fails on this kernel's flags.
        let tmp = std::env::temp_dir().join(format!("rk-bindgen-{}.rs", std::process::id()));
        let out_arg = cmd
            .split_whitespace()
            .skip_while(|a| *a != "-o")
            .nth(1)
            .expect("-o in the bindgen command")
            .to_string();
        let bare = cmd
            .trim_start()
            .strip_prefix(&set)
            .unwrap()
            .replace(&format!("-o {out_arg}"), &format!("-o {}", tmp.display()));
        let out = Command::new("sh")
            .args(["-c", &bare])
            .current_dir(&k.dir)
            .env_remove("LIBCLANG_PATH")
            .output()
            .expect("sh");
        let _ = std::fs::remove_file(&tmp);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("unknown argument"),
            "{}: with libclang {newest} the bindgen run was expected to fail on clang-{} flags; status {}, stderr: {err}",
            flavor.name(),
            clang / 10000,
            out.status
        );
    }
}

/// Kbuild refuses, before any `.ko` is linked, an object whose Rust symbols the kernel does not
/// export (a kernel crate from another rustc or another kernel build): with one symbol that
/// `rust_kprobe` imports taken out of a copy of the kernel's `Module.symvers`, a fresh build
/// stops with the one line naming it, and writes no `.ko`. On the Debian flavor when it was
/// built (where the metadata is regenerated), else the first.
#[test]
fn rust_symbols_are_checked_before_any_ko() {
    let fl = flavors();
    let flavor = *fl.iter().find(|f| !f.kernel.built_here()).unwrap_or(&fl[0]);
    let k = xtask::kernel::find(&flavor)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no {} kernel: run `make check`", flavor.name()));
    let obj = build_dir(&flavor).join("src/rust_kprobe_rs.o");
    let nm = Command::new("llvm-nm-19")
        .arg("-u")
        .arg(&obj)
        .output()
        .expect("llvm-nm-19");
    let imported: Vec<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| s.starts_with("_R"))
        .map(String::from)
        .collect();
    let symvers = std::fs::read_to_string(k.dir.join("Module.symvers")).expect("Module.symvers");
    let victim = imported
        .iter()
        .find(|s| symvers.contains(&format!("\t{s}\t")))
        .unwrap_or_else(|| {
            panic!(
                "{} imports no exported Rust symbol: {imported:?}",
                obj.display()
            )
        });
    let dir = build_dir(&flavor).join("symcheck");
    let _ = std::fs::remove_dir_all(&dir);
    for s in xtask::modules::SOURCES {
        xtask::modules::sync(&xtask::util::repo_root().join(s), &dir.join(s));
    }
    let cut = dir.join("Module.symvers.cut");
    let kept: String = symvers
        .lines()
        .filter(|l| !l.contains(&format!("\t{victim}\t")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&cut, kept).expect("write");
    let mut args = vec![format!("M={}", dir.display())];
    args.extend(flavor.make_vars());
    args.push(format!("RK_SYMVERS={}", cut.display()));
    args.push("modules".into());
    let (cmd, args) = k.make(&args);
    let out = Command::new(&cmd).args(&args).output().expect("make");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let ko_written = dir.join("rust_kprobe.ko").exists() || dir.join("rust_kretprobe.ko").exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !out.status.success(),
        "{}: the build went through: {text}",
        flavor.name()
    );
    assert!(
        text.contains(&format!(
            "needs 1 Rust symbol(s) this kernel does not export (first: {victim})"
        )),
        "{}: no such line in {text}",
        flavor.name()
    );
    assert!(!ko_written, "{}: a .ko was written", flavor.name());
}

/// The `-m`/`-f`/`-w`/`--target` flags of a bindgen command (after `--`).
fn code_flags(cmd: &str) -> std::collections::BTreeSet<String> {
    cmd.split_once(" -- ")
        .unwrap_or_else(|| panic!("no `--` in {cmd}"))
        .1
        .split_whitespace()
        .filter(|a| {
            a.starts_with("-m") || a.starts_with("-f") || *a == "-w" || a.starts_with("--target")
        })
        .map(String::from)
        .collect()
}

/// On a GCC-built kernel (Debian's) the module's bindgen run hands libclang the flags the
/// kernel's own `rust/Makefile` handed it for `kernel::bindings` (GCC-only ones filtered out,
/// `-w --target=...` added): the same set, but for `-fmacro-prefix-map`, which Kbuild adds to
/// in-tree builds only.
#[test]
fn gcc_kernel_bindgen_flags_are_the_kernels_own() {
    for flavor in flavors().into_iter().filter(|f| !f.kernel.built_here()) {
        let k = xtask::kernel::find(&flavor)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no {} kernel: run `make check`", flavor.name()));
        let kernel_cmd_file = k.dir.join("rust/bindings/.bindings_generated.rs.cmd");
        let kernel_cmd = std::fs::read_to_string(&kernel_cmd_file)
            .unwrap_or_else(|e| panic!("{}: {e}", kernel_cmd_file.display()));
        let mut want = code_flags(&kernel_cmd);
        want.retain(|f| !f.starts_with("-fmacro-prefix-map="));
        let module = bindgen_cmd(&flavor);
        assert!(
            !module.contains("LIBCLANG_PATH="),
            "{}: {module}",
            flavor.name()
        );
        // Nothing but options and their arguments reaches libclang.
        let args: Vec<&str> = module
            .split_once(" -- ")
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        for w in args.windows(2) {
            assert!(
                w[1].starts_with('-') || ["-include", "-isystem", "-I", "-o"].contains(&w[0]),
                "{}: stray `{}` after `{}` in the bindgen flags: {module}",
                flavor.name(),
                w[1],
                w[0]
            );
        }
        let got = code_flags(&module);
        assert_eq!(
            got,
            want,
            "{}: module vs kernel bindgen flags",
            flavor.name()
        );
        assert!(got.contains("-w"), "{}: {got:?}", flavor.name());
    }
}
