//! Step 4: the guest's initramfs, made with the kernel's own `usr/gen_init_cpio`: busybox, the
//! load program, the modules and `/init`. Each VM run appends a one-file archive holding that
//! run's `/scenario.sh` (the kernel unpacks concatenated archives in order).

use crate::kernel::Kernel;
use crate::util::{build_dir, cache_dir, fail, repo_root, run_logged, Flavor};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the load program for the guest (a static musl binary).
pub fn loadgen(flavor: &Flavor) -> PathBuf {
    guest_program(flavor, "loadgen")
}

/// Builds workspace package `package` (its binary of the same name) for the guest: a static
/// musl binary.
pub fn guest_program(flavor: &Flavor, package: &str) -> PathBuf {
    let target = flavor.arch.rust_target();
    let log = build_dir(flavor).join(format!("{package}.log"));
    let _ = fs::remove_file(&log);
    let args: Vec<String> = [
        "build",
        "--quiet",
        "--release",
        "-p",
        package,
        "--target",
        target,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run_logged("cargo", &args, &log, &format!("{package} build"));
    repo_root()
        .join("target")
        .join(target)
        .join("release")
        .join(package)
}

fn gen_init_cpio(kernel: &Kernel, list: &str, out: &Path) {
    let list_file = out.with_extension("list");
    fs::write(&list_file, list).unwrap();
    let tool = kernel.dir.join("usr/gen_init_cpio");
    let cpio = Command::new(&tool)
        .arg(&list_file)
        .output()
        .unwrap_or_else(|e| fail(&format!("{}: {e}", tool.display())));
    if !cpio.status.success() {
        fail(&format!(
            "gen_init_cpio failed: {}",
            String::from_utf8_lossy(&cpio.stderr)
        ));
    }
    fs::write(out, cpio.stdout).unwrap();
}

/// The base archive: `build/<flavor>/initramfs.cpio`. `files` are more to ship, placed by name:
/// modules (`*.ko`) in `/lib/modules`, BPF objects (`*.o`) in `/lib/bpf`, programs in `/bin`.
pub fn build(kernel: &Kernel, flavor: &Flavor, files: &[PathBuf]) -> PathBuf {
    let repo = repo_root();
    let busybox = cache_dir()
        .join("busybox")
        .join(flavor.arch.deb_arch())
        .join("bin/busybox");
    if !busybox.exists() {
        fail(&format!(
            "{} missing: run `make setup ARCHES={}`",
            busybox.display(),
            flavor.arch.name()
        ));
    }
    let loadgen = loadgen(flavor);
    let mut list = String::new();
    for d in [
        "/bin",
        "/sbin",
        "/dev",
        "/proc",
        "/sys",
        "/tmp",
        "/lib",
        "/lib/modules",
    ] {
        list += &format!("dir {d} 755 0 0\n");
    }
    list += "nod /dev/console 600 0 0 c 5 1\n";
    list += &format!("file /bin/busybox {} 755 0 0\n", busybox.display());
    list += "slink /bin/sh /bin/busybox 777 0 0\n";
    list += &format!("file /init {} 755 0 0\n", repo.join("vm/init").display());
    list += &format!(
        "file /lib/rk.sh {} 644 0 0\n",
        repo.join("vm/lib.sh").display()
    );
    list += &format!("file /bin/loadgen {} 755 0 0\n", loadgen.display());
    list += "dir /lib/bpf 755 0 0\n";
    for m in files {
        let name = m.file_name().unwrap().to_str().unwrap();
        let (dir, mode) = if name.ends_with(".ko") {
            ("/lib/modules", "644")
        } else if name.ends_with(".o") {
            ("/lib/bpf", "644")
        } else {
            ("/bin", "755")
        };
        list += &format!("file {dir}/{name} {} {mode} 0 0\n", m.display());
    }
    let out = build_dir(flavor).join("initramfs.cpio");
    gen_init_cpio(kernel, &list, &out);
    out
}

/// The per-run archive holding `/scenario.sh` (the helpers of `vm/lib.sh` sourced first).
pub fn scenario(kernel: &Kernel, dir: &Path, script: &str) -> PathBuf {
    let sh = dir.join("scenario.sh");
    fs::write(&sh, format!(". /lib/rk.sh\n{script}\n")).unwrap();
    let out = dir.join("scenario.cpio");
    gen_init_cpio(
        kernel,
        &format!("file /scenario.sh {} 755 0 0\n", sh.display()),
        &out,
    );
    out
}
