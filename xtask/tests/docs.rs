//! The docs cannot drift: the README's Debian 13 quick start, its command block read out of
//! README.md (not copied here), is run as written, in two halves:
//!
//! - up to and including its `make KDIR=...` line, in the Debian 13 environment (the trixie
//!   root of `make setup KERNELS=debian`), in a copy of the sources. `sudo` runs the command as
//!   it is; `apt` only simulates (`apt-get -s`: the packages must exist and install together,
//!   nothing is installed, `apt update` is skipped); `tee` into /etc writes into the test's
//!   directory; `uname -r` is the Debian kernel's release. The `make` is real and must build
//!   both modules for that release;
//! - the lines after it, in a guest booted on that Debian kernel, in the directory of the
//!   modules (the harness's build of the same sources), with `sudo` running the command as it
//!   is: each `insmod` must plant its probe, each `rmmod` unregister it.
//!
//! `make check` runs it for x86_64 (the README's block is amd64's).

use std::process::Command;
use xtask::modules::sync;
use xtask::util::{repo_root, Arch, Flavor, Kver};

/// The first ```sh block after the heading `heading` of README.md.
fn readme_block(heading: &str) -> String {
    let p = repo_root().join("README.md");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let after = text
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no `{heading}`"))
        .1;
    let block = after
        .split_once("```sh\n")
        .and_then(|(_, b)| b.split_once("\n```"))
        .unwrap_or_else(|| panic!("no ```sh block after `{heading}`"))
        .0;
    block.to_string()
}

/// The block split before the first line after its `make KDIR=` line: (build, use).
fn halves(block: &str) -> (String, String) {
    let lines: Vec<&str> = block.lines().collect();
    let make = lines
        .iter()
        .position(|l| l.starts_with("make KDIR="))
        .unwrap_or_else(|| panic!("no `make KDIR=` line in:\n{block}"));
    (
        lines[..=make].join("\n") + "\n",
        lines[make + 1..].join("\n") + "\n",
    )
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn readme_quick_start_runs_as_written() {
    let flavor = Flavor {
        arch: Arch::X86_64,
        debug: false,
        kernel: Kver::Debian,
        hardened: false,
    };
    if let Ok(l) = std::env::var("RK_FLAVORS") {
        if !l.split_whitespace().any(|f| f == flavor.name()) {
            eprintln!(
                "readme_quick_start_runs_as_written: skipped ({} not in RK_FLAVORS)",
                flavor.name()
            );
            return;
        }
    }
    let p = match xtask::vm::prepared(flavor) {
        Ok(p) => p,
        Err(e) if std::env::var("RK_FLAVORS").is_err() => {
            eprintln!("readme_quick_start_runs_as_written: skipped ({e})");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let rel = xtask::debian::release(&flavor).unwrap_or_else(|e| panic!("{e}"));
    let (build, usage) = halves(&readme_block("## Quick start: Debian 13"));

    // The build half, in the Debian 13 root, in a copy of the sources under build/ (which the
    // root sees at the same path).
    let tmp = repo_root().join(format!("build/rk-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let src = tmp.join("src");
    for s in xtask::modules::SOURCES
        .iter()
        .chain(&["Makefile", "scripts"])
    {
        sync(&repo_root().join(s), &src.join(s));
    }
    let etc = tmp.join("etc");
    std::fs::create_dir_all(&etc).unwrap_or_else(|e| panic!("{}: {e}", etc.display()));
    let prelude = format!(
        "set -e
         sudo() {{ \"$@\"; }}
         apt() {{ [ \"$1\" = update ] || apt-get -s -qq \"$@\" >/dev/null; }}
         tee() {{ command tee \"{etc}/$(basename \"$1\")\"; }}
         uname() {{ if [ \"$1\" = -r ]; then echo {rel}; else command uname \"$@\"; fi; }}
         cd {src}
",
        etc = etc.display(),
        src = src.display()
    );
    let script = tmp.join("build.sh");
    std::fs::write(&script, prelude + &build).unwrap();
    let out = run(Command::new(repo_root().join("scripts/in-debian"))
        .arg("sh")
        .arg(&script));
    let result = std::panic::catch_unwind(|| {
        let list = std::fs::read_to_string(etc.join("trixie-backports.list"))
            .unwrap_or_else(|e| panic!("the block's tee wrote nothing: {e}\n{out}"));
        assert!(
            list.trim_end().ends_with(" trixie-backports main"),
            "{list}"
        );
        for m in ["rust_kprobe", "rust_kretprobe"] {
            let ko = src.join(format!("{m}.ko"));
            let vermagic = run(Command::new(repo_root().join("scripts/in-debian"))
                .args(["modinfo", "-F", "vermagic"])
                .arg(&ko));
            assert!(
                vermagic.starts_with(&format!("{rel} ")),
                "{m}: {vermagic}\n{out}"
            );
        }
    });
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }

    // The use half, in a guest on that kernel.
    let script = format!(
        "cd /lib/modules
         sudo() {{ \"$@\"; }}
         {usage}"
    );
    let opts = xtask::vm::Opts::for_flavor(&flavor);
    let run =
        xtask::vm::run(&p, "readme_quick_start", &script, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.exit, 0, "serial log: {}", run.log_path.display());
    let loads = usage.lines().filter(|l| l.contains("insmod ")).count();
    let planted = run
        .dmesg
        .iter()
        .filter(|l| {
            l.starts_with("rust_kprobe: Planted kprobe at ")
                || l.starts_with("rust_kretprobe: Planted return probe at ")
        })
        .count();
    assert_eq!((loads, planted), (2, 2), "{:#?}", run.dmesg);
    let gone = run
        .dmesg
        .iter()
        .filter(|l| l.contains(" unregistered"))
        .count();
    assert_eq!(gone, 2, "{:#?}", run.dmesg);
    assert!(run.splats().is_empty(), "{:#?}", run.splats());
}
