//! Small shared pieces of the harness: architectures, paths, running commands with progress.

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
    pub fn parse(s: &str) -> Arch {
        match s {
            "x86_64" | "x86" | "amd64" => Arch::X86_64,
            "arm64" | "aarch64" => Arch::Arm64,
            _ => fail(&format!("unsupported ARCH={s} (x86_64 or arm64)")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
    /// `make` variables for the kernel and for Kbuild module builds.
    pub fn make_vars(self) -> Vec<String> {
        vec![format!("ARCH={}", self.name()), "LLVM=1".into()]
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

/// One kernel build: an architecture, with or without the debug options.
#[derive(Clone, Copy, Debug)]
pub struct Flavor {
    pub arch: Arch,
    pub debug: bool,
}

impl Flavor {
    pub fn from_env() -> Flavor {
        let arch = Arch::parse(&std::env::var("ARCH").unwrap_or_else(|_| "x86_64".into()));
        let debug = matches!(
            std::env::var("DEBUG").as_deref(),
            Ok("1") | Ok("y") | Ok("yes")
        );
        Flavor { arch, debug }
    }
    /// `x86_64`, `arm64`, `x86_64-debug`: names of cache and `build/` folders.
    pub fn name(&self) -> String {
        format!(
            "{}{}",
            self.arch.name(),
            if self.debug { "-debug" } else { "" }
        )
    }
}

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

pub fn sha256_hex(s: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Runs a long command with its output going to `log`; prints a progress line every 30 s
/// (the last thing it built) and, on failure, the log's last lines and one error line.
pub fn run_logged(cmd: &str, args: &[String], log: &Path, what: &str) {
    let mut logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    writeln!(logf, "$ {cmd} {}", args.join(" ")).unwrap();
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("{what}: cannot run {cmd}: {e}")));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    let t = std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(l);
        }
    });
    let stdout = child.stdout.take().unwrap();
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
                writeln!(logf, "{l}").unwrap();
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
    t.join().unwrap();
    t2.join().unwrap();
    let st = child.wait().unwrap();
    if !st.success() {
        for l in &tail {
            eprintln!("  | {l}");
        }
        fail(&format!(
            "{what} failed ({st}); full log: {}",
            log.display()
        ));
    }
}
