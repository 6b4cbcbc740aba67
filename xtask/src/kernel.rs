//! Step 2 of the harness: a Rust-enabled kernel, built once per (source, config, toolchain).

use crate::util::{cache_dir, capture, read, sha256_hex, try_run_logged, Flavor, Kver};
use std::fs;
use std::path::{Path, PathBuf};

/// A built kernel tree usable as `KDIR` for out-of-tree modules.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The build tree (`KDIR`), as the host sees it.
    pub dir: PathBuf,
    pub src: PathBuf,
    pub image: PathBuf,
    /// Builds against it run in the Debian 13 environment (`scripts/in-debian`), with the tree
    /// at `dir` less the environment's root.
    pub in_debian: bool,
}

impl Kernel {
    /// `make -C <tree> <args>`, where builds against this kernel run: the command and its
    /// arguments.
    pub fn make(&self, args: &[String]) -> (String, Vec<String>) {
        if self.in_debian {
            let root = crate::debian::root();
            let dir = Path::new("/").join(self.dir.strip_prefix(&root).unwrap_or(&self.dir));
            let mut a = vec!["make".into(), "-C".into(), dir.display().to_string()];
            a.extend(args.iter().cloned());
            let tool = crate::util::repo_root().join("scripts/in-debian");
            (tool.display().to_string(), a)
        } else {
            let mut a = vec!["-C".into(), self.dir.display().to_string()];
            a.extend(args.iter().cloned());
            ("make".into(), a)
        }
    }

    /// `usr/gen_init_cpio` of the tree (a headers tree has none: the project's 7.3 kernel's, or
    /// one compiled from the Debian source).
    pub fn gen_init_cpio(&self) -> PathBuf {
        if self.in_debian {
            crate::debian::gen_init_cpio()
        } else {
            self.dir.join("usr/gen_init_cpio")
        }
    }
}

fn fragments(repo: &Path, flavor: &Flavor) -> Vec<PathBuf> {
    let mut v = vec![repo.join("kernel/config.fragment")];
    let arch = repo.join(format!("kernel/config-{}.fragment", flavor.arch.name()));
    if arch.exists() {
        v.push(arch);
    }
    let kver = repo.join(format!("kernel/config-{}.fragment", flavor.kernel.name()));
    if kver.exists() {
        v.push(kver);
    }
    if flavor.hardened {
        v.push(repo.join("kernel/hardened.fragment"));
        v.push(repo.join(format!("kernel/hardened-{}.fragment", flavor.arch.name())));
    }
    if flavor.debug {
        v.push(repo.join("kernel/debug.fragment"));
    }
    if flavor.function_tracer() {
        v.push(repo.join("kernel/fprobe-7.3.fragment"));
    }
    v
}

/// Everything that changes the kernel build goes into its cache key.
fn cache_key(repo: &Path, flavor: &Flavor, src: &Path) -> Result<String, String> {
    let mut s = format!(
        "arch={}\nsrc={}\n",
        flavor.arch.name(),
        canonical(src)?.display()
    );
    for f in fragments(repo, flavor) {
        s += &read(&f)?;
    }
    if flavor.hardened {
        // The certificate the kernel trusts (kernel/hardened.fragment): a new key, a new kernel.
        s += &read(&crate::signing::mok()?.join("mok.pem"))?;
    }
    let clang = flavor.kernel.clang();
    let lld = clang.replace("clang", "ld.lld");
    for tool in [
        &["rustc", "--version"][..],
        &["bindgen", "--version"],
        &[&clang, "--version"],
        &[&lld, "--version"],
    ] {
        s += &capture(tool[0], &tool[1..]).unwrap_or_default();
    }
    Ok(sha256_hex(&s)[..16].to_string())
}

/// `fs::canonicalize`, with an error naming the path.
fn canonical(path: &Path) -> Result<PathBuf, String> {
    fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether a `Kconfig*` file of the tree at `src` defines `sym` (`config SYM`).
fn defined_in_kconfig(src: &Path, sym: &str) -> bool {
    std::process::Command::new("grep")
        .args(["-rqsxE", "--include=Kconfig*"])
        .arg(format!("(menu)?config {sym}"))
        .arg(src)
        .status()
        .map(|s| s.success())
        .unwrap_or(true)
}

/// The unpacked source of `kver` (`make setup KERNELS=...` fetches and unpacks it).
pub fn source(kver: Kver) -> Result<PathBuf, String> {
    let src = cache_dir().join("src").join(kver.name());
    if !src.join("Makefile").exists() {
        return Err(format!(
            "kernel {} source not unpacked: run `make setup KERNELS={}` first",
            kver.name(),
            kver.name()
        ));
    }
    canonical(&src)
}

fn locate(repo: &Path, flavor: &Flavor) -> Result<Kernel, String> {
    if !flavor.kernel.built_here() {
        return crate::debian::locate(flavor);
    }
    let src = source(flavor.kernel)?;
    let key = cache_key(repo, flavor, &src)?;
    let dir = cache_dir()
        .join("kernel")
        .join(format!("{}-{key}", flavor.name()));
    let image = dir.join(flavor.arch.image_path());
    Ok(Kernel {
        dir,
        src,
        image,
        in_debian: false,
    })
}

/// The cached kernel of `flavor` for the current sources and tools, if built.
pub fn find(flavor: &Flavor) -> Result<Option<Kernel>, String> {
    let k = locate(&crate::util::repo_root(), flavor)?;
    let built = if k.in_debian { ".rk-ready" } else { ".built" };
    Ok(k.dir.join(built).exists().then_some(k))
}

/// Builds (or finds in the cache) the kernel for `flavor`.
pub fn ensure(repo: &Path, flavor: &Flavor) -> Result<Kernel, String> {
    if !flavor.kernel.built_here() {
        return crate::debian::ensure(flavor);
    }
    let k = locate(repo, flavor)?;
    let (dir, src) = (k.dir.clone(), k.src.clone());
    if dir.join(".built").exists() {
        return Ok(k);
    }
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log = dir.join("build.log");
    let libclang = flavor.kernel.libclang_path()?;
    let mk = |args: &[&str], what: &str| {
        let mut a = vec![
            "-C".to_string(),
            src.display().to_string(),
            format!("O={}", dir.display()),
        ];
        a.extend(flavor.make_vars());
        // The kernel's own bindgen runs load the libclang of the LLVM that builds it.
        a.push(format!("LIBCLANG_PATH={}", libclang.display()));
        a.extend(args.iter().map(|s| s.to_string()));
        try_run_logged("make", &a, &log, what)
    };
    let started = std::time::Instant::now();
    eprintln!(
        "kernel: building {} in {} (12 to 21 minutes on 2 cores; log: {})",
        flavor.name(),
        dir.display(),
        log.display()
    );
    if flavor.hardened {
        // CONFIG_SYSTEM_TRUSTED_KEYS (kernel/hardened.fragment), relative to the build tree.
        let certs = dir.join("certs");
        fs::create_dir_all(&certs).map_err(|e| format!("{}: {e}", certs.display()))?;
        let pem = crate::signing::mok()?.join("mok.pem");
        fs::copy(&pem, certs.join("rk-mok.pem"))
            .map_err(|e| format!("copy {}: {e}", pem.display()))?;
    }
    mk(&["tinyconfig"], "tinyconfig")?;
    let mut merge = vec![
        "-m".to_string(),
        "-O".into(),
        dir.display().to_string(),
        dir.join(".config").display().to_string(),
    ];
    merge.extend(
        fragments(repo, flavor)
            .iter()
            .map(|p| p.display().to_string()),
    );
    try_run_logged(
        &src.join("scripts/kconfig/merge_config.sh")
            .display()
            .to_string(),
        &merge,
        &log,
        "merge_config",
    )?;
    mk(&["olddefconfig"], "olddefconfig")?;
    // Every `=y` the fragments ask for must have survived olddefconfig (RUST drops out silently
    // when the toolchain is unusable, KASAN when its dependencies are off, ...).
    // A later fragment overrides an earlier one (debug.fragment turns eBPF off again).
    let config = read(&dir.join(".config"))?;
    let mut wanted = std::collections::BTreeMap::new();
    for f in fragments(repo, flavor) {
        for line in read(&f)?.lines() {
            if let Some((opt, val)) = line.trim().split_once('=') {
                if opt.starts_with("CONFIG_") {
                    wanted.insert(opt.to_string(), val.to_string());
                }
            }
        }
    }
    let mut lost = vec![];
    for (opt, val) in &wanted {
        let arch_specific = opt.contains("8250") || opt.contains("PL011");
        let set = format!("{opt}={val}");
        if val == "y" && !arch_specific && !config.lines().any(|l| l == set) {
            lost.push(opt.clone());
        }
    }
    // An option this kernel no longer has is not lost (ARM64_PAN: always on since 6.x, the
    // option is gone in 7.3), as long as no Kconfig of the tree defines it.
    lost.retain(|opt| defined_in_kconfig(&src, opt.trim_start_matches("CONFIG_")));
    if !lost.is_empty() {
        return Err(format!(
            "kernel config dropped {} (for CONFIG_RUST: `make -C {} LLVM={} rustavailable`)",
            lost.join(", "),
            src.display(),
            flavor.kernel.llvm()
        ));
    }
    let jobs = format!(
        "-j{}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    );
    mk(&[&jobs, "all"], "kernel build")?;
    let built = dir.join(".built");
    fs::write(&built, "").map_err(|e| format!("{}: {e}", built.display()))?;
    let t = started.elapsed().as_secs();
    eprintln!(
        "kernel: {} ready, built in {} min {} s",
        flavor.name(),
        t / 60,
        t % 60
    );
    Ok(k)
}
