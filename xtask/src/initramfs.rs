//! Step 4: the guest's initramfs, made with the kernel's own `usr/gen_init_cpio`: busybox, the
//! load program, the modules and `/init`. Each VM run appends a one-file archive holding that
//! run's `/scenario.sh` (the kernel unpacks concatenated archives in order).

use crate::kernel::Kernel;
use crate::util::{build_dir, cache_dir, repo_root, try_run_logged, write, Arch, Flavor};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the load program for the guest (a static musl binary).
pub fn loadgen(flavor: &Flavor) -> Result<PathBuf, String> {
    guest_program(flavor, "loadgen")
}

/// Builds workspace package `package` (its binary of the same name) for the guest: a static
/// musl binary.
pub fn guest_program(flavor: &Flavor, package: &str) -> Result<PathBuf, String> {
    build_guest(flavor, package, flavor.arch.rust_target(), vec![])
}

/// Builds `bpfload` (`make bench`'s eBPF loader, on libbpf-rs) for the guest: a static glibc
/// binary, since libbpf needs elfutils' libelf, which builds on glibc only. libbpf-sys builds
/// its vendored libbpf with the guest arch's C compiler and links Debian's `libelf.a` and
/// `libz.a` of that arch: the host's for x86_64; for arm64, `aarch64-linux-gnu-gcc` and the
/// arm64 `libelf-dev` and `zlib1g-dev` that `PLUGIN=1 scripts/setup.sh` unpacks into
/// [`arm64_sysroot`].
pub fn bpfload(flavor: &Flavor) -> Result<PathBuf, String> {
    let (target, libs, cross) = match flavor.arch {
        Arch::X86_64 => (
            "x86_64-unknown-linux-gnu",
            PathBuf::from("/usr/lib/x86_64-linux-gnu"),
            None,
        ),
        Arch::Arm64 => {
            let root = arm64_sysroot();
            (
                "aarch64-unknown-linux-gnu",
                root.join("usr/lib/aarch64-linux-gnu"),
                Some(root),
            )
        }
    };
    let t = target.replace('-', "_");
    let mut env = vec![
        format!("LIBBPF_SYS_LIBRARY_PATH_{t}={}", libs.display()),
        format!(
            "CARGO_TARGET_{}_RUSTFLAGS=-C target-feature=+crt-static",
            t.to_uppercase()
        ),
    ];
    if let Some(root) = cross {
        env.push(format!("CC_{t}=aarch64-linux-gnu-gcc"));
        env.push(format!(
            "CFLAGS_{t}=-I{}",
            root.join("usr/include").display()
        ));
        env.push(format!(
            "CARGO_TARGET_{}_LINKER=aarch64-linux-gnu-gcc",
            t.to_uppercase()
        ));
    }
    build_guest(flavor, "bpfload", target, env)
}

/// Where `scripts/setup.sh` (PLUGIN=1) unpacks Debian's arm64 `libelf-dev` and `zlib1g-dev`.
pub fn arm64_sysroot() -> PathBuf {
    cache_dir().join("sysroot/arm64")
}

/// `cargo build` of workspace package `package` for `target`, under `env` (`NAME=value`).
fn build_guest(
    flavor: &Flavor,
    package: &str,
    target: &str,
    env: Vec<String>,
) -> Result<PathBuf, String> {
    let dir = build_dir(flavor);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log = dir.join(format!("{package}.log"));
    let _ = fs::remove_file(&log);
    let args: Vec<String> = env
        .into_iter()
        .chain(
            [
                "cargo",
                "build",
                "--quiet",
                "--release",
                "-p",
                package,
                "--target",
                target,
            ]
            .iter()
            .map(|s| s.to_string()),
        )
        .collect();
    try_run_logged("env", &args, &log, &format!("{package} build"))?;
    Ok(repo_root()
        .join("target")
        .join(target)
        .join("release")
        .join(package))
}

fn gen_init_cpio(kernel: &Kernel, list: &str, out: &Path) -> Result<(), String> {
    let list_file = out.with_extension("list");
    write(&list_file, list)?;
    let tool = kernel.gen_init_cpio();
    let cpio = Command::new(&tool)
        .arg(&list_file)
        .output()
        .map_err(|e| format!("{}: {e}", tool.display()))?;
    if !cpio.status.success() {
        return Err(format!(
            "gen_init_cpio failed: {}",
            String::from_utf8_lossy(&cpio.stderr)
        ));
    }
    write(out, cpio.stdout)
}

/// The base archive: `build/<flavor>/initramfs.cpio`. `files` are more to ship, placed by name:
/// modules (`*.ko`) in `/lib/modules`, BPF objects (`*.o`) in `/lib/bpf`, programs in `/bin`.
pub fn build(kernel: &Kernel, flavor: &Flavor, files: &[PathBuf]) -> Result<PathBuf, String> {
    build_at(
        kernel,
        flavor,
        files,
        &build_dir(flavor).join("initramfs.cpio"),
    )
}

/// [`build`], written to `out`.
pub fn build_at(
    kernel: &Kernel,
    flavor: &Flavor,
    files: &[PathBuf],
    out: &Path,
) -> Result<PathBuf, String> {
    let repo = repo_root();
    let busybox = cache_dir()
        .join("busybox")
        .join(flavor.arch.deb_arch())
        .join("bin/busybox");
    if !busybox.exists() {
        return Err(format!(
            "{} missing: run `make setup ARCHES={}`",
            busybox.display(),
            flavor.arch.name()
        ));
    }
    let loadgen = loadgen(flavor)?;
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
    // A kernel that loads only signed modules (the hardened ones) gets signed copies, and the
    // kprobe module unsigned too, in /lib/modules/unsigned/, for the test that it is refused.
    let signed;
    let files = if crate::signing::required(&kernel.dir) {
        let dir = out.with_extension("signed");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut copies = vec![];
        for m in files
            .iter()
            .filter(|m| m.extension().is_some_and(|e| e == "ko"))
        {
            let c = dir.join(m.file_name().unwrap());
            fs::copy(m, &c).map_err(|e| format!("copy {}: {e}", m.display()))?;
            copies.push(c);
        }
        crate::signing::sign(&kernel.dir, &copies)?;
        list += "dir /lib/modules/unsigned 755 0 0\n";
        for m in files.iter().filter(|m| m.ends_with("rust_kprobe.ko")) {
            list += &format!(
                "file /lib/modules/unsigned/rust_kprobe.ko {} 644 0 0\n",
                m.display()
            );
        }
        copies.extend(
            files
                .iter()
                .filter(|m| !m.extension().is_some_and(|e| e == "ko"))
                .cloned(),
        );
        signed = copies;
        &signed[..]
    } else {
        files
    };
    for m in files {
        let name = m
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: not a file name", m.display()))?;
        let (dir, mode) = if name.ends_with(".ko") {
            ("/lib/modules", "644")
        } else if name.ends_with(".o") {
            ("/lib/bpf", "644")
        } else {
            ("/bin", "755")
        };
        list += &format!("file {dir}/{name} {} {mode} 0 0\n", m.display());
    }
    if let Some(d) = out.parent() {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    gen_init_cpio(kernel, &list, out)?;
    Ok(out.to_path_buf())
}

/// The per-run archive holding `/scenario.sh` (the helpers of `vm/lib.sh` sourced first).
pub fn scenario(kernel: &Kernel, dir: &Path, script: &str) -> Result<PathBuf, String> {
    let sh = dir.join("scenario.sh");
    write(&sh, format!(". /lib/rk.sh\n{script}\n"))?;
    // 32 bytes of the host's randomness, which /init credits to the guest's RNG (`loadgen
    // seed`): the guest starts with a ready RNG, as a machine with RDRAND does.
    let seed = dir.join("seed");
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    fs::write(&seed, bytes).map_err(|e| format!("{}: {e}", seed.display()))?;
    let out = dir.join("scenario.cpio");
    gen_init_cpio(
        kernel,
        &format!(
            "file /scenario.sh {} 755 0 0\nfile /seed {} 600 0 0\n",
            sh.display(),
            seed.display()
        ),
        &out,
    )?;
    Ok(out)
}
