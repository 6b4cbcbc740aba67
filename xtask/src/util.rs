//! Small shared pieces of the harness: architectures, paths, running commands with progress.
//!
//! Library code returns its errors (a `String` saying what failed and, for I/O, on which
//! path); only the binary (`main.rs`) turns one into `error: ...` and an exit, with [`fail`].

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A guest architecture: the only place the harness knows per-arch names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    pub fn parse(s: &str) -> Result<Arch, String> {
        match s {
            "x86_64" | "x86" | "amd64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            _ => Err(format!("unsupported ARCH={s} (x86_64 or arm64)")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
    pub fn image_path(self) -> &'static str {
        match self {
            Arch::X86_64 => "arch/x86/boot/bzImage",
            Arch::Arm64 => "arch/arm64/boot/Image",
        }
    }
    pub fn image_name(self) -> &'static str {
        Path::new(self.image_path())
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
    }
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }
    pub fn deb_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// A kernel release the project builds, and the LLVM that builds it. The only place the
/// harness knows what differs between them (the modules' differences are in `kprobes/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kver {
    /// 6.12 LTS: bookworm's `linux-source-6.12`, built with bookworm's clang 14 (`LLVM=1`).
    V6_12,
    /// 7.3: trixie-backports' `linux-source-7.3`; needs LLVM >= 17.0.1, built with clang 19.
    V7_3,
    /// Debian 13's own 7.3 kernel (trixie-backports' `linux-binary-unsigned-<release>`), built by
    /// Debian with GCC 14; the modules are built against its `linux-headers` in a Debian 13
    /// environment (`scripts/debian.sh`, `xtask::debian`).
    Debian,
}

impl Kver {
    pub const ALL: [Kver; 3] = [Kver::V6_12, Kver::V7_3, Kver::Debian];

    pub fn parse(s: &str) -> Result<Kver, String> {
        match s {
            "6.12" => Ok(Kver::V6_12),
            "7.3" => Ok(Kver::V7_3),
            "debian" => Ok(Kver::Debian),
            _ => Err(format!("unsupported KERNEL={s} (6.12, 7.3 or debian)")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Kver::V6_12 => "6.12",
            Kver::V7_3 => "7.3",
            Kver::Debian => "debian",
        }
    }
    /// Whether the project builds this kernel itself (else it is a distribution's: Debian's).
    pub fn built_here(self) -> bool {
        self != Kver::Debian
    }
    /// Kbuild's `LLVM=`: `1` for the unversioned tools, `-19` for `clang-19`, `ld.lld-19`, ...
    pub fn llvm(self) -> &'static str {
        match self {
            Kver::V6_12 => "1",
            Kver::V7_3 => "-19",
            // Not an LLVM build: Debian's GCC 14 (its headers' .kernelvariables name it).
            Kver::Debian => "",
        }
    }
    /// The `clang` of that LLVM.
    pub fn clang(self) -> String {
        format!("clang{}", self.llvm().trim_start_matches('1'))
    }
    /// Where the libclang of that LLVM is: `<prefix>/lib` of clang's resource directory
    /// (`<prefix>/lib/clang/<version>`). bindgen must load this one, not the newest installed.
    pub fn libclang_path(self) -> Result<PathBuf, String> {
        let dir = capture(&self.clang(), &["-print-resource-dir"])
            .ok_or_else(|| format!("{} not found (run `make setup`)", self.clang()))?;
        let dir = PathBuf::from(dir.trim());
        dir.parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .ok_or_else(|| format!("odd clang resource directory {}", dir.display()))
    }
    /// Suffix of folder names: none for the LTS, `-7.3` otherwise.
    pub fn suffix(self) -> &'static str {
        match self {
            Kver::V6_12 => "",
            Kver::V7_3 => "-7.3",
            Kver::Debian => "-debian",
        }
    }
}

/// One kernel build: a release, an architecture, with or without the debug options, or
/// hardened as production hardens it (`HARDENED=1`, 7.3 only: kernel/hardened*.fragment).
#[derive(Clone, Copy, Debug)]
pub struct Flavor {
    pub arch: Arch,
    pub debug: bool,
    pub kernel: Kver,
    pub hardened: bool,
}

impl Flavor {
    /// Whether this flavor's kernel has the function tracer and 7.3's fprobe: Debian's, and the
    /// project's 7.3 debug and hardened kernels (kernel/fprobe-7.3.fragment). The project's
    /// other kernels have none (kernel/config.fragment says why).
    pub fn function_tracer(&self) -> bool {
        !self.kernel.built_here() || ((self.debug || self.hardened) && self.kernel == Kver::V7_3)
    }

    /// The flavor `ARCH`, `DEBUG` and `KERNEL` select (x86_64, 6.12 by default).
    pub fn from_env() -> Result<Flavor, String> {
        let arch = Arch::parse(&std::env::var("ARCH").unwrap_or_else(|_| "x86_64".into()))?;
        let debug = matches!(
            std::env::var("DEBUG").as_deref(),
            Ok("1") | Ok("y") | Ok("yes")
        );
        let hardened = matches!(
            std::env::var("HARDENED").as_deref(),
            Ok("1") | Ok("y") | Ok("yes")
        );
        let kernel = match std::env::var("KERNEL") {
            Ok(k) if !k.trim().is_empty() => Kver::parse(k.trim())?,
            _ if hardened => Kver::V7_3,
            _ => Kver::V6_12,
        };
        if debug && kernel == Kver::Debian {
            return Err(
                "DEBUG=1 is for the project's own kernels; Debian ships no debug kernel".into(),
            );
        }
        if hardened && (debug || kernel != Kver::V7_3) {
            return Err("HARDENED=1 is a 7.3 kernel of the project's own, without DEBUG=1".into());
        }
        Ok(Flavor {
            arch,
            debug,
            kernel,
            hardened,
        })
    }
    /// `x86_64`, `arm64`, `x86_64-debug`, `x86_64-7.3`, `arm64-hardened-7.3`, ...: names of
    /// cache and `build/` folders.
    pub fn name(&self) -> String {
        format!(
            "{}{}{}{}",
            self.arch.name(),
            if self.debug { "-debug" } else { "" },
            if self.hardened { "-hardened" } else { "" },
            self.kernel.suffix()
        )
    }
    /// The flavor named `name` (as [`Flavor::name`] writes it).
    pub fn parse(name: &str) -> Result<Flavor, String> {
        let (rest, kernel) = match name.rsplit_once('-') {
            Some((r, k)) if k.contains('.') || k == "debian" => (r, Kver::parse(k)?),
            _ => (name, Kver::V6_12),
        };
        let (rest, hardened) = match rest.strip_suffix("-hardened") {
            Some(a) => (a, true),
            None => (rest, false),
        };
        let (arch, debug) = match rest.strip_suffix("-debug") {
            Some(a) => (a, true),
            None => (rest, false),
        };
        let arch = match arch {
            "x86_64" => Arch::X86_64,
            "arm64" => Arch::Arm64,
            _ => return Err(format!("unknown flavor {name}")),
        };
        Ok(Flavor {
            arch,
            debug,
            kernel,
            hardened,
        })
    }
    /// `make` variables for the kernel and for Kbuild module builds.
    pub fn make_vars(&self) -> Vec<String> {
        let mut v = vec![format!("ARCH={}", self.arch.name())];
        if self.kernel.built_here() {
            v.push(format!("LLVM={}", self.kernel.llvm()));
        }
        v
    }
}

/// `fs::read_to_string`, with an error naming the path.
pub fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `fs::write`, creating the parent directories first; an error names the path.
pub fn write(path: &Path, data: impl AsRef<[u8]>) -> Result<(), String> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    std::fs::write(path, data).map_err(|e| format!("{}: {e}", path.display()))
}

/// Prints `error: <msg>` and exits with status 1: for the binary, not for library code.
pub fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn cache_dir() -> PathBuf {
    match std::env::var_os("RUST_KPROBES_CACHE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/rust-kprobes"),
    }
}

pub fn build_dir(flavor: &Flavor) -> PathBuf {
    repo_root().join("build").join(flavor.name())
}

/// Runs a command and returns its stdout, or None when it cannot run or fails.
pub fn capture(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The SHA-256 of `s`, in hex (`sha256sum`, part of coreutils; panics if it cannot run).
pub fn sha256_hex(s: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot run sha256sum");
    child
        .stdin
        .take()
        .expect("sha256sum's stdin is piped")
        .write_all(s.as_bytes())
        .expect("writing to sha256sum");
    let out = child.wait_with_output().expect("waiting for sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum printed nothing")
        .to_string()
}

/// [`try_run_logged`], exiting with its error: for the binary's steps that call it directly
/// (`kernel.rs`, `bench.rs`).
pub fn run_logged(cmd: &str, args: &[String], log: &Path, what: &str) {
    try_run_logged(cmd, args, log, what).unwrap_or_else(|e| fail(&e))
}

/// Runs a long command with its output going to `log`; prints a progress line every 30 s
/// (the last thing it built) and, on failure, the log's last lines; the error says what failed
/// and where the full log is.
pub fn try_run_logged(cmd: &str, args: &[String], log: &Path, what: &str) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{what}: {}: {e}", log.display());
    let mut logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io)?;
    writeln!(logf, "$ {cmd} {}", args.join(" ")).map_err(io)?;
    // Not the flags of the `make` that ran the harness: `make -s kbuild-args` would silence the
    // kernel build, and its progress with it.
    let mut child = Command::new(cmd)
        .args(args)
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot run {cmd}: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr is piped");
    let tx2 = tx.clone();
    let t = std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(l);
        }
    });
    let stdout = child.stdout.take().expect("stdout is piped");
    let t2 = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let start = Instant::now();
    let mut last_report = Instant::now();
    let mut lines = 0usize;
    let mut last = String::new();
    let mut tail: Vec<String> = vec![];
    loop {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(l) => {
                writeln!(logf, "{l}").map_err(io)?;
                lines += 1;
                if l.trim_start().starts_with(|c: char| c.is_ascii_uppercase()) {
                    last = l.trim().to_string();
                }
                tail.push(l);
                if tail.len() > 20 {
                    tail.remove(0);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "  {what}: {}s, {lines} steps, at: {last}",
                start.elapsed().as_secs()
            );
            last_report = Instant::now();
        }
    }
    let _ = t.join();
    let _ = t2.join();
    let st = child
        .wait()
        .map_err(|e| format!("{what}: waiting for {cmd}: {e}"))?;
    if !st.success() {
        for l in &tail {
            eprintln!("  | {l}");
        }
        return Err(format!("{what} failed ({st}); full log: {}", log.display()));
    }
    Ok(())
}
