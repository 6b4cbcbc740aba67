//! Module signing for the hardened kernels (`CONFIG_MODULE_SIG_FORCE`), by the steps
//! `docs/install.md` gives a Secure Boot user, read out of it (not copied here):
//!
//! - the key: its `openssl req` block, run once per machine with `/var/lib/dkms` replaced by
//!   `<cache>/mok/` (the key lives there, as DKMS's lives in `/var/lib/dkms`);
//! - trusting it: a Secure Boot machine enrolls it in the MOK list (`mokutil --import`, then the
//!   firmware's MOK manager at boot), which a QEMU guest without UEFI firmware cannot do. The
//!   hardened kernel trusts it as a built-in key instead (`CONFIG_SYSTEM_TRUSTED_KEYS`: the
//!   certificate, as PEM, in the build tree's `certs/rk-mok.pem`). Same check at `insmod`: a
//!   signature by a key in the kernel's trusted keyrings;
//! - signing: its `sign-file` loop, with the module list replaced by the modules to ship,
//!   `/lib/modules/$(uname -r)/build` by the kernel's build tree and `sudo` dropped.

use crate::util::{cache_dir, read, repo_root};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The ```sh block of docs/install.md's Secure Boot section that contains `needle`.
fn install_block(needle: &str) -> Result<String, String> {
    let p = repo_root().join("docs/install.md");
    let text = read(&p)?;
    let section = text
        .split_once("\n## Secure Boot\n")
        .map(|(_, s)| s.split("\n## ").next().unwrap_or(s))
        .ok_or_else(|| format!("{}: no `## Secure Boot` section", p.display()))?;
    section
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split_once("\n```").map(|(b, _)| b))
        .find(|b| b.contains(needle))
        .map(str::to_string)
        .ok_or_else(|| format!("{}: no ```sh block with `{needle}`", p.display()))
}

/// The docs' paths made the harness's, and no `sudo` (the harness runs as the user it is).
fn localise(block: &str, mok: &Path, kdir: Option<&Path>) -> String {
    let mut b = block
        .replace("/var/lib/dkms", &mok.display().to_string())
        .replace("sudo ", "");
    if let Some(k) = kdir {
        b = b.replace("/lib/modules/$(uname -r)/build", &k.display().to_string());
    }
    b
}

fn sh(script: &str, what: &str) -> Result<(), String> {
    let out = Command::new("sh")
        .args(["-ec", script])
        .output()
        .map_err(|e| format!("{what}: sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed:\n{script}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The machine's module-signing key, made by the docs' own command the first time:
/// `<cache>/mok/`, with `mok.key` and `mok.pub` (DER) as docs/install.md names them, and
/// `mok.pem`, the certificate as `CONFIG_SYSTEM_TRUSTED_KEYS` takes it.
pub fn mok() -> Result<PathBuf, String> {
    let dir = cache_dir().join("mok");
    let pem = dir.join("mok.pem");
    if pem.exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    sh(
        &localise(&install_block("openssl req")?, &dir, None),
        "docs/install.md's key (openssl req)",
    )?;
    let st = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-in"])
        .arg(dir.join("mok.pub"))
        .arg("-out")
        .arg(&pem)
        .status()
        .map_err(|e| format!("openssl: {e}"))?;
    if !st.success() {
        return Err(format!(
            "openssl x509: {} to PEM failed",
            dir.join("mok.pub").display()
        ));
    }
    Ok(dir)
}

/// Whether modules for the kernel in `kdir` must be signed (`CONFIG_MODULE_SIG_FORCE=y`).
pub fn required(kdir: &Path) -> bool {
    read(&kdir.join(".config")).is_ok_and(|c| c.lines().any(|l| l == "CONFIG_MODULE_SIG_FORCE=y"))
}

/// Signs `modules` in place with the machine's key ([`mok`]), by docs/install.md's loop.
pub fn sign(kdir: &Path, modules: &[PathBuf]) -> Result<(), String> {
    let dir = mok()?;
    let block = install_block("sign-file")?;
    let list = modules
        .iter()
        .map(|m| format!("'{}'", m.display()))
        .collect::<Vec<_>>()
        .join(" ");
    let (head, rest) = block
        .split_once("for m in ")
        .and_then(|(h, r)| r.split_once("; do").map(|(_, r)| (h, r)))
        .ok_or_else(|| {
            format!("docs/install.md's sign-file block has no `for m in ...; do`:\n{block}")
        })?;
    let script = format!("{head}for m in {list}; do{rest}");
    sh(
        &localise(&script, &dir, Some(kdir)),
        "docs/install.md's sign-file loop",
    )
}
