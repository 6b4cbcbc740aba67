//! `KERNEL=debian`: Debian 13's own 7.3 kernels, which the project does not build. `make setup
//! KERNEL=debian` (`scripts/debian.sh`) makes the Debian 13 environment (the host itself if it
//! is Debian 13, else a debootstrap'd trixie root), installs Debian's headers and source there,
//! fetches the unsigned images and regenerates the Rust metadata the headers lack
//! (`scripts/rust-headers.sh`); this finds what it made. Module builds run in that environment
//! ([`Kernel::make`]), with the rustc, bindgen and GCC Debian built the kernel with.

use crate::kernel::Kernel;
use crate::util::{cache_dir, repo_root, Flavor};
use std::path::{Path, PathBuf};
use std::process::Command;

fn host_is_trixie() -> bool {
    std::fs::read_to_string("/etc/os-release")
        .map(|s| s.lines().any(|l| l == "VERSION_CODENAME=trixie"))
        .unwrap_or(false)
}

/// The Debian 13 environment's root: `/` on a Debian 13 host, else the debootstrap'd root.
pub fn root() -> PathBuf {
    if host_is_trixie() {
        PathBuf::from("/")
    } else {
        cache_dir().join("debian/root")
    }
}

/// The ABI of the current Debian 7.3 kernel (`7.3.4+deb13`), as `scripts/debian.sh` found it.
pub fn abi() -> Result<String, String> {
    let f = cache_dir().join("debian/release");
    std::fs::read_to_string(&f)
        .map(|s| s.trim().to_string())
        .map_err(|_| "no Debian kernel set up: run `make setup KERNEL=debian`".to_string())
}

/// The kernel release of `flavor`: `7.3.4+deb13-amd64`, `7.3.4+deb13-arm64`.
pub fn release(flavor: &Flavor) -> Result<String, String> {
    Ok(format!("{}-{}", abi()?, flavor.arch.deb_arch()))
}

/// Where `rust-headers.sh`, run in the environment, keeps the regenerated tree (host path).
fn headers_cache() -> PathBuf {
    if host_is_trixie() {
        cache_dir().join("headers")
    } else {
        root().join("root/.cache/rust-kprobes/headers")
    }
}

pub fn locate(flavor: &Flavor) -> Result<Kernel, String> {
    let rel = release(flavor)?;
    let abi = abi()?;
    Ok(Kernel {
        dir: headers_cache().join(&rel),
        src: root().join(format!("usr/src/linux-headers-{rel}")),
        image: cache_dir()
            .join("debian")
            .join(abi)
            .join(flavor.arch.deb_arch())
            .join("vmlinuz"),
        in_debian: !host_is_trixie(),
    })
}

/// The Debian kernel of `flavor`, with its Rust metadata regenerated (once; `make setup
/// KERNEL=debian` normally did it already).
pub fn ensure(flavor: &Flavor) -> Result<Kernel, String> {
    let k = locate(flavor)?;
    if !k.image.exists() {
        return Err(format!(
            "{} missing: run `make setup KERNEL=debian ARCHES={}`",
            k.image.display(),
            flavor.arch.name()
        ));
    }
    let headers = format!("/usr/src/linux-headers-{}", release(flavor)?);
    let script = repo_root().join("scripts/rust-headers.sh");
    let mut c = if k.in_debian {
        let mut c = Command::new(repo_root().join("scripts/in-debian"));
        c.arg(&script);
        c
    } else {
        Command::new(&script)
    };
    let st = c
        .arg(&headers)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !st.success() {
        return Err(format!("no Rust metadata for {headers} (above)"));
    }
    ensure_gen_init_cpio()?;
    Ok(k)
}

/// `usr/gen_init_cpio` for the guests' initramfs, which a headers tree does not have.
pub fn gen_init_cpio() -> PathBuf {
    cache_dir().join("debian/gen_init_cpio")
}

/// Compiles `gen_init_cpio` (one C file of the kernel source) with the host's compiler.
fn ensure_gen_init_cpio() -> Result<(), String> {
    let out = gen_init_cpio();
    if out.exists() {
        return Ok(());
    }
    let src = crate::kernel::source(crate::util::Kver::V7_3)
        .map(|d| d.join("usr/gen_init_cpio.c"))
        .ok()
        .filter(|p| p.exists())
        .or_else(|| find_source_file(&headers_cache(), "usr/gen_init_cpio.c"))
        .ok_or("no kernel source with usr/gen_init_cpio.c (make setup KERNEL=debian)")?;
    let st = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .map_err(|e| format!("cc: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("cc {} failed", src.display()))
    }
}

/// `<dir>/linux-source-*/<file>`, the Debian source `rust-headers.sh` unpacked.
fn find_source_file(dir: &Path, file: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join(file))
        .find(|p| p.exists())
}
