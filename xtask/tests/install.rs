//! Host tests of what someone who keeps the modules on a machine uses: `make modules_install`,
//! DKMS (`make dkms-add`, `dkms build`) and `make rust-analyzer`, against the project's cached
//! kernel trees. Each works on a private copy of the sources (or private DKMS trees) in a
//! temporary directory, removed afterwards. `make check` runs them per flavor (`x86_64::`, ...);
//! a flavor whose kernel is not built is skipped with a message.
//!
//! Debian's own kernels (`x86_64_debian::`, ...) are tested as a Debian user has them: in the
//! Debian 13 environment (`scripts/in-debian` when the host is not Debian 13), against
//! `/usr/src/linux-headers-<release>`, through the top-level Makefile and dkms, which build
//! against the tree `scripts/rust-headers.sh` regenerated from those headers. Their temporary
//! directories are under the repository's `build/`, which that environment sees at the same path.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use xtask::kernel::Kernel;
use xtask::modules::sync;
use xtask::util::{repo_root, Arch, Flavor, Kver};

/// A line on the test's stderr that the test harness does not capture.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// The kernel tree of `flavor`, or None (with a message) when the test must be skipped.
/// Under `make check` (RK_FLAVORS set) a listed flavor's kernel must exist.
fn tree(flavor: &Flavor, test: &str) -> Option<Kernel> {
    let listed = std::env::var("RK_FLAVORS").ok();
    if let Some(l) = &listed {
        if !l.split_whitespace().any(|f| f == flavor.name()) {
            say(&format!(
                "{test}: skipped ({} not in RK_FLAVORS)",
                flavor.name()
            ));
            return None;
        }
    }
    let how = if flavor.kernel.built_here() {
        "`make check` builds it".to_string()
    } else {
        format!("`make setup KERNEL=debian ARCHES={}`", flavor.arch.name())
    };
    let found = match xtask::kernel::find(flavor) {
        Ok(found) => found,
        // No Debian kernel set up at all.
        Err(e) if listed.is_none() && !flavor.kernel.built_here() => {
            say(&format!("{test}: skipped ({e})"));
            return None;
        }
        Err(e) => panic!("{e}"),
    };
    match found {
        Some(k) => Some(k),
        None if listed.is_some() => panic!(
            "RK_FLAVORS lists {} but its kernel is not built",
            flavor.name()
        ),
        None => {
            say(&format!(
                "{test}: skipped (no {} kernel built; {how})",
                flavor.name()
            ));
            None
        }
    }
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    /// In the system's temporary directory, or, for builds in the Debian 13 root (`k.in_debian`),
    /// under the repository's `build/`: the root sees the repository, not the host's /tmp.
    fn new(name: &str, k: &Kernel) -> TempDir {
        let base = if k.in_debian {
            repo_root().join("build")
        } else {
            std::env::temp_dir()
        };
        let p = base.join(format!("rk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        // What scripts/in-debian made as root, when the tests are not.
        if self.0.exists() {
            let _ = Command::new("sudo")
                .args(["-n", "rm", "-rf"])
                .arg(&self.0)
                .status();
        }
    }
}

/// What a checkout has that these targets use: the module sources, Makefile, dkms.conf, scripts/.
fn copy_sources(to: &Path) {
    let repo = repo_root();
    for s in xtask::modules::SOURCES
        .iter()
        .chain(&["Makefile", "dkms.conf", "scripts"])
    {
        sync(&repo.join(s), &to.join(s));
    }
}

/// Runs `cmd`; panics with its output's last lines when it fails. Returns stdout + stderr.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!("{cmd:?} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    text
}

/// `prog` where builds against `k` run, niced (the machine builds kernels too): on the host,
/// or in the Debian 13 root through `scripts/in-debian` (as root, the repository at its own
/// path, so paths under it are the same in and out).
fn in_env(k: &Kernel, prog: &str) -> Command {
    let mut c = Command::new("nice");
    if k.in_debian {
        c.arg(repo_root().join("scripts/in-debian"));
    }
    c.arg(prog);
    c
}

/// The KDIR a user passes: the project's kernel tree, or for Debian's kernels the headers a
/// Debian user has (a path in the Debian 13 environment).
fn kdir(k: &Kernel, flavor: &Flavor) -> PathBuf {
    if flavor.kernel.built_here() {
        k.dir.clone()
    } else {
        PathBuf::from(format!("/usr/src/linux-headers-{}", release(k, flavor)))
    }
}

/// `make -C dir KDIR=<tree> ARCH=.. LLVM=.. args...`. For Debian's kernels `make KDIR=<headers>`
/// only, what a Debian user types: the headers' .kernelvariables set ARCH and the compiler.
fn make(dir: &Path, k: &Kernel, flavor: &Flavor, args: &[&str]) -> String {
    let mut c = in_env(k, "make");
    c.arg("-C")
        .arg(dir)
        .arg(format!("KDIR={}", kdir(k, flavor).display()));
    if flavor.kernel.built_here() {
        c.args(flavor.make_vars());
    }
    c.args(args);
    run(&mut c)
}

fn release(k: &Kernel, flavor: &Flavor) -> String {
    if !flavor.kernel.built_here() {
        return xtask::debian::release(flavor).unwrap_or_else(|e| panic!("{e}"));
    }
    let p = k.dir.join("include/config/kernel.release");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// `<dir>/<m>.ko`, or the compressed one (`.ko.xz`, ...) where the kernel compresses modules.
fn module_file(dir: &Path, m: &str) -> PathBuf {
    ["ko", "ko.xz", "ko.zst", "ko.gz"]
        .iter()
        .map(|ext| dir.join(format!("{m}.{ext}")))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            let have: Vec<_> = std::fs::read_dir(dir)
                .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
                .unwrap_or_default();
            panic!("no {m}.ko in {}: {have:?}", dir.display())
        })
}

/// `modinfo -F <field> <file>`, run where the build ran (Debian's kmod reads its compressed
/// modules).
fn modinfo(k: &Kernel, field: &str, file: &Path) -> String {
    let mut c = in_env(k, "modinfo");
    c.args(["-F", field]).arg(file);
    run(&mut c).trim().to_string()
}

// ---- make modules_install -----------------------------------------------------------------

fn modules_install(flavor: Flavor) {
    let Some(k) = tree(&flavor, "modules_install") else {
        return;
    };
    let tmp = TempDir::new(&format!("modules-install-{}", flavor.name()), &k);
    let src = tmp.0.join("src");
    let root = tmp.0.join("root");
    copy_sources(&src);
    let out = make(&src, &k, &flavor, &["-j2"]);
    let rel = release(&k, &flavor);
    let root_arg = format!("INSTALL_MOD_PATH={}", root.display());
    if !flavor.kernel.built_here() {
        assert!(!out.contains("ignored"), "a note without LLVM=:\n{out}");
        debian_llvm_ignored(&src, &k, &flavor);
        make(&src, &k, &flavor, &[&root_arg, "modules_install"]);
        debian_installed(&src, &root, &k, &rel);
        under_sudo(&tmp.0, &src, &k, &flavor, &rel);
        return;
    }
    make(&src, &k, &flavor, &[&root_arg, "modules_install"]);
    let dir = root.join("lib/modules").join(&rel).join("updates");
    for m in ["rust_kprobe", "rust_kretprobe"] {
        let ko = dir.join(format!("{m}.ko"));
        let (a, b) = (
            std::fs::read(&ko),
            std::fs::read(src.join(format!("{m}.ko"))),
        );
        assert!(
            matches!((&a, &b), (Ok(a), Ok(b)) if a == b),
            "{} is not the built {m}.ko",
            ko.display()
        );
        // depmod ran for that root and release: modinfo finds the module by name.
        let mut c = Command::new("modinfo");
        c.arg("-b")
            .arg(&root)
            .args(["-k", &rel, "-F", "vermagic", m]);
        let vermagic = run(&mut c);
        assert!(
            vermagic.starts_with(&format!("{rel} ")),
            "{m} vermagic: {vermagic}"
        );
    }
}

/// `make KDIR=<Debian's headers> LLVM=1` after a build without: one note that LLVM=1 is
/// ignored for this GCC-built kernel, and Kbuild, seeing the same commands, rebuilds nothing.
fn debian_llvm_ignored(src: &Path, k: &Kernel, flavor: &Flavor) {
    let out = make(src, k, flavor, &["-j2", "LLVM=1"]);
    let notes: Vec<&str> = out.lines().filter(|l| l.contains("ignored")).collect();
    assert!(
        notes.len() == 1 && notes[0].contains("LLVM=1 ignored") && notes[0].contains("GCC"),
        "want one note that LLVM=1 is ignored for a GCC-built kernel:\n{out}"
    );
    let rebuilt: Vec<&str> = out
        .lines()
        .filter(|l| {
            ["CC [M]", "RUSTC", "BINDGEN", "LD [M]"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert!(rebuilt.is_empty(), "LLVM=1 rebuilt {rebuilt:?}:\n{out}");
}

/// `sudo make modules_install` after a user's build: sudo's HOME is root's, but the Rust
/// metadata the user's build regenerated (under the home of `SUDO_USER`) is found, not made
/// again as root. Simulated as root: HOME an empty directory, `SUDO_USER=root`, whose home
/// holds the metadata the build above used.
fn under_sudo(tmp: &Path, src: &Path, k: &Kernel, flavor: &Flavor, rel: &str) {
    let (home, root) = (tmp.join("sudo-home"), tmp.join("sudo-root"));
    std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{}: {e}", home.display()));
    let mut c = in_env(k, "env");
    c.arg(format!("HOME={}", home.display()))
        .arg("SUDO_USER=root")
        .arg("make")
        .arg("-C")
        .arg(src)
        .arg(format!("KDIR={}", kdir(k, flavor).display()))
        .arg(format!("INSTALL_MOD_PATH={}", root.display()))
        .arg("modules_install");
    let out = run(&mut c);
    assert!(
        !out.contains("regenerating the Rust metadata"),
        "sudo make modules_install regenerated the metadata:\n{out}"
    );
    debian_installed(src, &root, k, rel);
}

/// Debian's modules_install: Kbuild compresses the modules as the kernel does
/// (CONFIG_MODULE_COMPRESS_XZ), tries to sign them (no key: Kbuild goes on for external modules)
/// and skips depmod (neither Debian's headers nor the regenerated tree have a System.map), so
/// the installed files themselves are checked: this release's, these builds.
fn debian_installed(src: &Path, root: &Path, k: &Kernel, rel: &str) {
    let dir = root.join("lib/modules").join(rel).join("updates");
    for m in ["rust_kprobe", "rust_kretprobe"] {
        let ko = module_file(&dir, m);
        let vermagic = modinfo(k, "vermagic", &ko);
        assert!(
            vermagic.starts_with(&format!("{rel} ")),
            "{}: vermagic {vermagic}",
            ko.display()
        );
        let built = src.join(format!("{m}.ko"));
        assert_eq!(
            modinfo(k, "srcversion", &ko),
            modinfo(k, "srcversion", &built),
            "{} is not the built {m}.ko",
            ko.display()
        );
    }
}

// ---- DKMS ---------------------------------------------------------------------------------

fn dkms_conf(key: &str) -> String {
    let p = repo_root().join("dkms.conf");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=\"")))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{}: no {key}", p.display()))
        .to_string()
}

/// How to run a command as root: directly, or through `sudo -n`; None when neither works.
fn root_prefix() -> Option<Vec<&'static str>> {
    let uid = run(Command::new("id").arg("-u"));
    if uid.trim() == "0" {
        return Some(vec![]);
    }
    let sudo = Command::new("sudo").args(["-n", "true"]).output();
    sudo.is_ok_and(|o| o.status.success())
        .then(|| vec!["sudo", "-n", "--preserve-env=PATH"])
}

/// The signing key dkms makes itself when it finds the kernel's sign-file; removed if this
/// test made it.
const MOK: [&str; 2] = ["/var/lib/dkms/mok.key", "/var/lib/dkms/mok.pub"];

fn dkms_build(flavor: Flavor) {
    let Some(k) = tree(&flavor, "dkms_build") else {
        return;
    };
    // The Debian 13 root has its own dkms (scripts/debian.sh installs it).
    if !k.in_debian && Command::new("dkms").arg("--version").output().is_err() {
        panic!("dkms is not installed (make setup installs it)");
    }
    let Some(prefix) = root_prefix() else {
        say("dkms_build: skipped (dkms needs root: run as root or with passwordless sudo)");
        return;
    };
    // In the Debian 13 root, through scripts/in-debian, which runs it as root.
    let as_root = |prog: &str| {
        if k.in_debian {
            return in_env(&k, prog);
        }
        let mut c = Command::new(prefix.first().copied().unwrap_or(prog));
        if !prefix.is_empty() {
            c.args(&prefix[1..]).arg(prog);
        }
        c
    };
    let tmp = TempDir::new(&format!("dkms-{}", flavor.name()), &k);
    // Private source and DKMS trees: a real install of the package is left alone.
    let (sources, dkms_tree) = (tmp.0.join("usr-src"), tmp.0.join("dkms"));
    std::fs::create_dir_all(&dkms_tree).unwrap_or_else(|e| panic!("{}: {e}", dkms_tree.display()));
    let private = |c: &mut Command| {
        c.arg("--sourcetree")
            .arg(&sources)
            .arg("--dkmstree")
            .arg(&dkms_tree);
    };
    // The key's path on the host: in the Debian 13 root's /var/lib/dkms for builds there.
    let host = |p: &str| {
        if k.in_debian {
            xtask::debian::root().join(&p[1..])
        } else {
            PathBuf::from(p)
        }
    };
    let mok_before: Vec<bool> = MOK.iter().map(|p| host(p).exists()).collect();
    let (name, version) = (dkms_conf("PACKAGE_NAME"), dkms_conf("PACKAGE_VERSION"));
    let module = format!("{name}/{version}");
    let (rel, arch) = (release(&k, &flavor), flavor.arch.name());

    let result = std::panic::catch_unwind(|| {
        // `make dkms-add` from the checkout: the sources into the private /usr/src, dkms add.
        let mut c = as_root("make");
        c.arg("-C").arg(repo_root()).arg("dkms-add");
        c.arg(format!("DKMS_SOURCETREE={}", sources.display()));
        c.arg(format!("DKMS_FLAGS=--dkmstree {}", dkms_tree.display()));
        run(&mut c);
        let mut b = as_root("dkms");
        b.args([
            "build",
            &module,
            "-k",
            &rel,
            "-a",
            arch,
            "--kernelsourcedir",
        ]);
        b.arg(kdir(&k, &flavor));
        private(&mut b);
        let out = run(&mut b);
        let built = dkms_tree
            .join(&name)
            .join(&version)
            .join(&rel)
            .join(arch)
            .join("module");
        for m in ["rust_kprobe", "rust_kretprobe"] {
            let ko = module_file(&built, m);
            let vermagic = modinfo(&k, "vermagic", &ko);
            assert!(
                vermagic.starts_with(&format!("{rel} ")),
                "{m} vermagic: {vermagic}\n{out}"
            );
        }
        let mut s = as_root("dkms");
        s.args(["status", &module]);
        private(&mut s);
        let status = run(&mut s);
        assert!(
            status.contains(&format!("{rel}, {arch}: built")),
            "dkms status: {status}"
        );
    });
    // dkms's make.log goes with the trees: its end first, when the build failed.
    let log = dkms_tree.join(&name).join(&version).join("build/make.log");
    if let (Err(_), Ok(text)) = (&result, std::fs::read_to_string(&log)) {
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        say(&format!("{}:\n{}", log.display(), tail.join("\n")));
    }
    // Whatever happened: dkms remove, and the key if this test made it.
    let mut r = as_root("dkms");
    r.args(["remove", &module, "--all"]);
    private(&mut r);
    let removed = r.output();
    for (p, before) in MOK.iter().zip(mok_before) {
        if !before && host(p).exists() {
            let _ = as_root("rm").args(["-f", p]).status();
        }
    }
    let gone = !dkms_tree.join(&name).join(&version).exists();
    if !prefix.is_empty() {
        let _ = as_root("rm").arg("-rf").arg(&tmp.0).status();
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    let removed = removed.expect("dkms remove");
    assert!(
        removed.status.success() && gone,
        "dkms remove {module} failed or left {}: {}",
        dkms_tree.join(&name).display(),
        String::from_utf8_lossy(&removed.stderr)
    );
}

// ---- The Debian package -------------------------------------------------------------------

/// `dpkg-query`'s status of `pkg` in the environment of `k`: `install ok installed`, or "".
fn deb_status(k: &Kernel, pkg: &str) -> String {
    let mut c = in_env(k, "dpkg-query");
    c.args(["-W", "-f=${Status}", pkg]);
    c.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `apt <args> -y`, non-interactive, in the environment of `k`.
fn apt(k: &Kernel, args: &[&str]) -> Command {
    let mut c = in_env(k, "env");
    c.args(["DEBIAN_FRONTEND=noninteractive", "apt"])
        .args(args)
        .arg("-y");
    c
}

/// What the scenario of [`deb_boot`] runs: the hashes of the modules it loads, then the demo.
const DEB_SCENARIO: &str = "
sha256sum $M/rust_kprobe.ko $M/rust_kretprobe.ko | sed 's/^/SHA256 /'
load rust_kprobe
load rust_kretprobe func=inet_release
loadgen bind 49152
rmmod rust_kretprobe
rmmod rust_kprobe
";

/// Boots Debian's kernel of `flavor` with the modules the package installed (`kos`, host paths)
/// instead of the harness's: its initramfs (`cargo xtask prepare`) followed by an archive
/// holding these two at /lib/modules (the kernel unpacks the archives in order, the later
/// files replacing the earlier). The guest prints their hashes; both modules print their
/// lines. False (with a message) if the flavor is not prepared and need not be.
fn deb_boot(flavor: Flavor, kos: &[PathBuf], tmp: &Path) -> bool {
    // Under `make check` (RK_FLAVORS) a listed flavor is prepared.
    let listed =
        std::env::var("RK_FLAVORS").is_ok_and(|l| l.split_whitespace().any(|f| f == flavor.name()));
    let p = match xtask::vm::prepared(flavor) {
        Ok(p) => p,
        Err(e) if !listed => {
            say(&format!(
                "deb_package: {} not booted ({e}; KERNEL=debian ARCH={} cargo xtask prepare)",
                flavor.name(),
                flavor.arch.name()
            ));
            return false;
        }
        Err(e) => panic!("{e}"),
    };
    let dir = tmp.join(flavor.name());
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut list = "dir /lib/modules 755 0 0\n".to_string();
    let mut want = vec![];
    for ko in kos {
        let name = ko.file_name().unwrap().to_str().unwrap();
        let m = name.split('.').next().unwrap();
        let plain = dir.join(format!("{m}.ko"));
        // Compressed by dkms (.ko.xz, ...): the guest's finit_module is given the ELF file.
        if name.ends_with(".ko") {
            std::fs::copy(ko, &plain).unwrap_or_else(|e| panic!("{}: {e}", ko.display()));
        } else {
            let out = run(Command::new("sh")
                .arg("-c")
                .arg("xz -dc \"$1\" > \"$2\" || zstd -dcq \"$1\" > \"$2\"")
                .args(["sh", ko.to_str().unwrap(), plain.to_str().unwrap()]));
            assert!(plain.exists(), "{out}");
        }
        let sum = run(Command::new("sha256sum").arg(&plain));
        want.push(format!("SHA256 {}  /lib/modules/{m}.ko", &sum[..64]));
        list += &format!("file /lib/modules/{m}.ko {} 644 0 0\n", plain.display());
    }
    let list_file = dir.join("modules.list");
    std::fs::write(&list_file, list).unwrap();
    let tool = p.kernel.gen_init_cpio();
    let cpio = Command::new(&tool)
        .arg(&list_file)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", tool.display()));
    assert!(
        cpio.status.success(),
        "{}: {}",
        tool.display(),
        String::from_utf8_lossy(&cpio.stderr)
    );
    let mut bytes =
        std::fs::read(&p.initramfs).unwrap_or_else(|e| panic!("{}: {e}", p.initramfs.display()));
    bytes.extend(cpio.stdout);
    let initramfs = dir.join("initramfs.cpio");
    std::fs::write(&initramfs, bytes).unwrap();
    let p = xtask::vm::Prepared { initramfs, ..p };
    let r = xtask::vm::run(
        &p,
        "deb_package",
        DEB_SCENARIO,
        &xtask::vm::Opts::for_flavor(&flavor),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log = r.log_path.display();
    assert_eq!(r.exit, 0, "scenario failed; serial log: {log}");
    assert!(
        r.splats().is_empty(),
        "kernel complained: {:#?}\nserial log: {log}",
        r.splats()
    );
    let got = r.guest_with("SHA256 ");
    assert_eq!(
        got, want,
        "the guest did not load the package's modules; serial log: {log}"
    );
    let kp = r.module_lines("rust_kprobe");
    let kr = r.module_lines("rust_kretprobe");
    let has = |lines: &[&str], s: &str| lines.iter().any(|l| l.contains(s));
    for (lines, s) in [
        (&kp, "Planted kprobe at "),
        (&kp, "inet_bind name:loadgen pid:"),
        (&kp, "socket bind port=49152"),
        (&kp, "unregistered: "),
        (&kr, "Planted return probe at inet_release"),
        (&kr, "inet_release returned "),
        (&kr, "unregistered"),
    ] {
        assert!(
            has(lines, s),
            "no `{s}` line in {lines:#?}\nserial log: {log}"
        );
    }
    say(&format!(
        "deb_package: {} booted the package's modules",
        flavor.name()
    ));
    true
}

/// The Debian package (debian/, `make deb`) as a Debian 13 user installs it: `apt install
/// ./rust-kprobes-dkms_<version>_all.deb` in the Debian 13 root, whose postinst (dh_dkms's)
/// builds and installs both modules with dkms for every kernel whose headers are there:
/// x86_64's, and arm64's, which `make setup` unpacks beside them (a cross build there:
/// scripts/dkms-make takes ARCH from the tree). Then `dkms status`, the installed files'
/// vermagic, a boot of Debian's own kernel with them (each architecture whose flavor is
/// prepared), and `apt purge`, which must leave nothing. The package is purged whatever
/// happens, and dkms's signing key removed if its first build made it.
fn deb_package() {
    let flavor = Flavor {
        arch: Arch::X86_64,
        debug: false,
        kernel: Kver::Debian,
        hardened: false,
    };
    let Some(k) = tree(&flavor, "deb_package") else {
        return;
    };
    if !k.in_debian {
        say("deb_package: skipped (it installs into the Debian 13 root; this host is Debian 13 itself)");
        return;
    }
    if root_prefix().is_none() {
        say("deb_package: skipped (apt and dkms need root: run as root or with passwordless sudo)");
        return;
    }
    let start = std::time::Instant::now();
    let (name, version) = (dkms_conf("PACKAGE_NAME"), dkms_conf("PACKAGE_VERSION"));
    let pkg = format!("{name}-dkms");
    let droot = xtask::debian::root();
    let host = |p: &str| droot.join(p.trim_start_matches('/'));
    if deb_status(&k, &pkg).contains("installed") {
        say(&format!(
            "deb_package: purging the {pkg} already installed in the Debian 13 root"
        ));
        run(&mut apt(&k, &["purge", &pkg]));
    }
    let mok_before: Vec<bool> = MOK.iter().map(|p| host(p).exists()).collect();
    // The releases dkms builds for: x86_64's, and arm64's where its headers are unpacked.
    let arm = Flavor {
        arch: Arch::Arm64,
        ..flavor
    };
    let mut flavors = vec![flavor];
    let arm_rel = xtask::debian::release(&arm).unwrap_or_else(|e| panic!("{e}"));
    if host(&format!("/usr/src/linux-headers-{arm_rel}/.config")).exists() {
        flavors.push(arm);
    } else {
        say("deb_package: no arm64 headers in the Debian 13 root (make setup KERNEL=debian ARCHES=arm64): x86_64 only");
    }
    let tmp = TempDir::new("deb", &k);
    let booted = std::sync::Mutex::new(vec![]);

    let result = std::panic::catch_unwind(|| {
        let out = run(Command::new("make").arg("-C").arg(repo_root()).arg("deb"));
        let deb = out
            .lines()
            .find_map(|l| l.strip_prefix("deb: ").filter(|p| p.ends_with(".deb")))
            .unwrap_or_else(|| panic!("make deb printed no .deb:\n{out}"));
        assert_eq!(
            Path::new(deb).file_name().unwrap().to_str().unwrap(),
            format!("{pkg}_{version}_all.deb")
        );
        assert!(out.contains("lintian: no tags"), "lintian:\n{out}");
        let out = run(&mut apt(&k, &["install", deb]));
        let module = format!("{name}/{version}");
        let status = run(in_env(&k, "dkms").args(["status", &module]));
        for f in &flavors {
            let rel = xtask::debian::release(f).unwrap();
            // dkms names the machine's architecture (`uname -m`) for every release it builds
            // for without -a, as the postinst does; the modules' own architecture is the tree's.
            let machine = std::env::consts::ARCH;
            assert!(
                status.contains(&format!("{module}, {rel}, {machine}: installed")),
                "dkms status: {status}\napt install:\n{out}"
            );
            let dir = format!("/lib/modules/{rel}/updates/dkms");
            let mut kos = vec![];
            for m in ["rust_kprobe", "rust_kretprobe"] {
                let ko = module_file(&host(&dir), m);
                let inside = Path::new(&dir).join(ko.file_name().unwrap());
                let vermagic = modinfo(&k, "vermagic", &inside);
                assert!(
                    vermagic.starts_with(&format!("{rel} ")),
                    "{}: vermagic {vermagic}",
                    inside.display()
                );
                kos.push(ko);
            }
            if deb_boot(*f, &kos, &tmp.0) {
                booted.lock().unwrap().push(f.name());
            }
        }
    });

    // Whatever happened: apt purge (its prerm runs dkms remove --all), then nothing may be left.
    let purged = apt(&k, &["purge", &pkg]).output();
    for (p, before) in MOK.iter().zip(mok_before) {
        if !before && host(p).exists() {
            let _ = in_env(&k, "rm").args(["-f", p]).status();
        }
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    let purged = purged.expect("apt purge");
    assert!(
        purged.status.success(),
        "apt purge {pkg}: {}",
        String::from_utf8_lossy(&purged.stderr)
    );
    let status = run(in_env(&k, "dkms").arg("status"));
    assert!(
        !status.contains(&name),
        "dkms status after apt purge: {status}"
    );
    assert_eq!(deb_status(&k, &pkg), "", "{pkg} after apt purge");
    let mut left = vec![
        format!("/usr/src/{name}-{version}"),
        format!("/var/lib/dkms/{name}"),
    ];
    for f in &flavors {
        let rel = xtask::debian::release(f).unwrap();
        for m in ["rust_kprobe", "rust_kretprobe"] {
            for ext in ["ko", "ko.xz", "ko.zst"] {
                left.push(format!("/lib/modules/{rel}/updates/dkms/{m}.{ext}"));
            }
        }
    }
    left.retain(|p| host(p).exists());
    assert!(left.is_empty(), "left after apt purge: {left:?}");
    say(&format!(
        "deb_package: make deb, apt install ({} releases built by dkms), booted {:?}, apt purge: {:.0}s",
        flavors.len(),
        booted.lock().unwrap(),
        start.elapsed().as_secs_f64()
    ));
}

// ---- make rust-analyzer -------------------------------------------------------------------

/// Kbuild's `srctree` (host path), whose files decide the modules' cfgs: the kernel's source, or
/// for Debian's kernels the linux-source that rust-headers.sh unpacked, which the regenerated
/// tree's `source` link names (a path in the Debian 13 environment).
fn source_tree(k: &Kernel, flavor: &Flavor) -> PathBuf {
    if flavor.kernel.built_here() {
        return k.src.clone();
    }
    let link = k.dir.join("source");
    let to = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    xtask::debian::root().join(to.strip_prefix("/").unwrap_or(&to))
}

/// The crates of a rust-project.json, read by python3's json module: (name, root, cfgs, deps).
fn crates(json: &Path) -> Vec<(String, String, Vec<String>, Vec<String>)> {
    let script = "import json, sys
p = json.load(open(sys.argv[1]))
c = p['crates']
for x in c:
    print('\\t'.join([x['display_name'], x['root_module'], ' '.join(x['cfg']),
                     ' '.join(c[d['crate']]['display_name'] for d in x['deps'])]))";
    let out = run(Command::new("python3").args(["-c", script]).arg(json));
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let words = |s: &str| s.split_whitespace().map(String::from).collect();
            (f[0].into(), f[1].into(), words(f[2]), words(f[3]))
        })
        .collect()
}

fn rust_analyzer(flavor: Flavor) {
    let Some(k) = tree(&flavor, "rust_analyzer") else {
        return;
    };
    let tmp = TempDir::new(&format!("rust-analyzer-{}", flavor.name()), &k);
    let src = tmp.0.join("src");
    copy_sources(&src);
    // The harness's copy of the sources, which must not become crates.
    let copy = src.join("build").join(flavor.name()).join("src");
    for s in xtask::modules::SOURCES {
        sync(&repo_root().join(s), &copy.join(s));
    }
    // A module of the user's own, which no list names: a crate like the others.
    sync(&repo_root().join("template"), &src.join("template"));
    run(Command::new("make").arg("-C").arg(&src).args([
        "new",
        "NAME=rk_ra_probe",
        "SYMBOL=vfs_read",
    ]));
    make(&src, &k, &flavor, &["-j2", "rust-analyzer"]);
    let crates = crates(&src.join("rust-project.json"));
    let find = |name: &str| {
        let c: Vec<_> = crates.iter().filter(|c| c.0 == name).collect();
        assert_eq!(c.len(), 1, "want one crate {name}: {crates:#?}");
        c[0].clone()
    };
    let kernel = find("kernel");
    assert!(kernel.1.ends_with("rust/kernel/lib.rs"), "{kernel:?}");
    // What Kbuild passes these modules for this tree (see Kbuild's rk_has).
    let srctree = source_tree(&k, &flavor);
    let has = |file: &str, line_start: &str| {
        std::fs::read_to_string(srctree.join(file))
            .is_ok_and(|t| t.lines().any(|l| l.starts_with(line_start)))
    };
    let mut want = vec![];
    if flavor.arch == Arch::X86_64 {
        want.push(
            if has("arch/x86/include/asm/current.h", "struct pcpu_hot") {
                "rk_x86_pcpu_hot"
            } else {
                "rk_x86_current_task"
            },
        );
    }
    let module_rs = srctree.join("rust/macros/module.rs");
    if std::fs::read_to_string(&module_rs).is_ok_and(|t| t.contains("authors")) {
        want.push("rk_module_authors");
    }
    if has("rust/kernel/fmt.rs", "pub trait Display") {
        want.push("rk_kernel_fmt");
    }
    if !has("rust/kernel/str.rs", "pub struct CStr ")
        && !has("rust/kernel/str.rs", "pub struct CStr(")
    {
        want.push("rk_cstr_is_core");
    }
    for m in ["rust_kprobe", "rust_kretprobe", "rk_ra_probe"] {
        let c = find(m);
        assert_eq!(Path::new(&c.1), src.join(format!("{m}.rs")), "{c:?}");
        assert!(
            c.3.iter().any(|d| d == "kernel"),
            "{m} does not depend on kernel: {c:?}"
        );
        for w in &want {
            assert!(c.2.iter().any(|x| x == w), "{m} lacks cfg {w}: {:?}", c.2);
        }
        assert!(
            c.2.iter().any(|x| x.starts_with("CONFIG_KPROBES")),
            "{m}: no kernel cfgs"
        );
    }
    for c in &crates {
        assert!(
            !Path::new(&c.1).starts_with(src.join("build")),
            "a copy is a crate: {c:?}"
        );
    }

    // Not for a project file made in the Debian 13 root: its paths (the kernel's crates in the
    // regenerated tree's source, Debian's rust-src) are the root's, which the host's
    // rust-analyzer cannot read, and Debian 13 has no rust-analyzer for its rustc 1.85.
    if k.in_debian {
        say("rust_analyzer: project file checked only (made in the Debian 13 root)");
        return;
    }
    // rust-analyzer itself, if rustup installed it: no unresolved import, path, type or name in
    // the modules' crates. (Only these: rust-analyzer 1.95's CLI reports primitive methods of
    // `core` as missing, E0599, even for a one-line crate with only `sysroot` set.)
    let ra = Command::new("rust-analyzer").arg("--version").output();
    if !ra.is_ok_and(|o| o.status.success()) {
        say("rust_analyzer: rust-analyzer not installed (rustup component add rust-analyzer); project file checked only");
        return;
    }
    let mut c = Command::new("nice");
    c.args(["rust-analyzer", "diagnostics"]).arg(&src);
    let out = c.output().expect("rust-analyzer diagnostics");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    for m in ["rust_kprobe", "rust_kretprobe", "rk_ra_probe"] {
        let root = src.join(format!("{m}.rs"));
        assert!(
            text.contains(&format!("processing {}", root.display())),
            "rust-analyzer did not analyse {}:\n{text}",
            root.display()
        );
    }
    let unresolved: Vec<&str> = text
        .split("at crate ")
        .filter(|d| d.starts_with("rust_k"))
        .filter(|d| {
            ["E0432", "E0433", "E0412", "E0425", "unresolved"]
                .iter()
                .any(|code| d.contains(code))
        })
        .collect();
    assert!(unresolved.is_empty(), "rust-analyzer: {unresolved:#?}");
}

macro_rules! install_tests {
    ($arch:expr, $kernel:expr) => {
        use super::{Arch, Flavor, Kver};
        const F: Flavor = Flavor {
            arch: $arch,
            debug: false,
            kernel: $kernel,
            hardened: false,
        };
        #[test]
        fn modules_install() {
            super::modules_install(F)
        }
        #[test]
        fn dkms_build() {
            super::dkms_build(F)
        }
        #[test]
        fn rust_analyzer() {
            super::rust_analyzer(F)
        }
    };
}

mod x86_64 {
    install_tests!(Arch::X86_64, Kver::V6_12);
}

mod arm64 {
    install_tests!(Arch::Arm64, Kver::V6_12);
}

mod x86_64_7_3 {
    install_tests!(Arch::X86_64, Kver::V7_3);
}

mod arm64_7_3 {
    install_tests!(Arch::Arm64, Kver::V7_3);
}

mod x86_64_debian {
    install_tests!(Arch::X86_64, Kver::Debian);
    /// The Debian package, for both architectures' headers in the Debian 13 root.
    #[test]
    fn deb_package() {
        super::deb_package()
    }
}

mod arm64_debian {
    install_tests!(Arch::Arm64, Kver::Debian);
}
