//! Step 5: boot QEMU with the kernel, the initramfs and one scenario; collect what the guest
//! printed and what the kernel logged.

use crate::initramfs;
use crate::kernel::Kernel;
use crate::util::{build_dir, Arch, Flavor};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How to boot.
#[derive(Clone, Debug)]
pub struct Opts {
    pub cpus: u32,
    pub mem_mb: u32,
    pub timeout: Duration,
    /// `-icount shift=0,sleep=off`: guest time counts instructions (repeatable timings).
    pub icount: bool,
    /// arm64: boot the kernel at EL2 (`-M virt,virtualization=on`); it then keeps EL2 with VHE,
    /// where per-CPU data hangs off `tpidr_el2` instead of `tpidr_el1`.
    pub el2: bool,
    /// More of the kernel's command line (`lockdown=integrity`), or empty.
    pub cmdline: String,
    /// A TCG plugin and its arguments (`-plugin <so>,out=<file>`: `make bench`'s counts).
    pub plugin: Option<String>,
}

impl Opts {
    pub fn for_flavor(flavor: &Flavor) -> Opts {
        // The debug kernel (KASAN, lockdep, kmemleak) runs tens of times slower under TCG.
        let timeout = if flavor.debug { 900 } else { 300 };
        Opts {
            // x86_64 guests are SMP in every test: two vCPUs on two host threads (MTTCG).
            cpus: if flavor.arch == Arch::X86_64 { 2 } else { 1 },
            mem_mb: if flavor.debug { 1024 } else { 256 },
            timeout: Duration::from_secs(timeout),
            icount: false,
            el2: false,
            cmdline: String::new(),
            plugin: None,
        }
    }
}

/// What one boot produced.
pub struct Run {
    /// The whole serial console.
    pub serial: String,
    /// The kernel log (`dmesg` at the end of the scenario), timestamps removed.
    pub dmesg: Vec<String>,
    /// What the scenario printed (console lines outside the dmesg dump).
    pub guest: Vec<String>,
    /// The scenario's exit status.
    pub exit: i32,
    pub log_path: PathBuf,
}

impl Run {
    /// Kernel log lines of `module` (`<module>: ...`), prefix removed.
    /// The module loader's notices about an out-of-tree or unsigned module (a distribution
    /// kernel with `MODULE_SIG` taints on the first unsigned one) are not the module's.
    pub fn module_lines(&self, module: &str) -> Vec<&str> {
        let p = format!("{module}: ");
        self.dmesg
            .iter()
            .filter_map(|l| l.strip_prefix(&p))
            .filter(|l| {
                !l.starts_with("loading out-of-tree module taints kernel")
                    && !l.starts_with("module verification failed: signature")
            })
            .collect()
    }

    /// Kernel log lines containing `s`.
    pub fn dmesg_with(&self, s: &str) -> Vec<&str> {
        self.dmesg
            .iter()
            .filter(|l| l.contains(s))
            .map(String::as_str)
            .collect()
    }

    /// Guest lines starting with `prefix`.
    pub fn guest_with(&self, prefix: &str) -> Vec<&str> {
        self.guest
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }

    /// Kernel complaints: oops, BUG, WARN, KASAN, lockdep, sleeping in atomic, kmemleak.
    pub fn splats(&self) -> Vec<&str> {
        const SIGNS: &[&str] = &[
            "BUG:",
            "WARNING:",
            "Oops",
            "kernel BUG",
            "Call Trace",
            "Kernel panic",
            "KASAN",
            "KFENCE:",
            "possible recursive locking",
            "possible circular locking",
            "inconsistent lock state",
            "sleeping function called from invalid context",
            "unreferenced object",
            "general protection",
            "Unable to handle kernel",
            "stack-protector",
            "UBSAN",
        ];
        self.serial
            .lines()
            .filter(|l| SIGNS.iter().any(|s| l.contains(s)))
            .collect()
    }

    /// [`Run::splats`] but for the stack dumps that go with a reported allocation failure
    /// (`page allocation failure`, `vmalloc error`, `FAULT_INJECTION: forcing a failure`): the
    /// kernel's own report of a failure a test injected, not a complaint. A `Call Trace` within
    /// the few lines after such a header is excused; every other sign counts.
    pub fn splats_beyond_allocation_failures(&self) -> Vec<&str> {
        const HEADERS: &[&str] = &[
            "page allocation failure",
            "vmalloc error",
            "FAULT_INJECTION: forcing a failure",
        ];
        let splats = self.splats();
        let lines: Vec<&str> = self.serial.lines().collect();
        let mut excused = std::collections::HashSet::new();
        for (i, l) in lines.iter().enumerate() {
            if l.contains("Call Trace") {
                let from = i.saturating_sub(8);
                if lines[from..i]
                    .iter()
                    .any(|h| HEADERS.iter().any(|s| h.contains(s)))
                {
                    excused.insert(*l as *const str);
                }
            }
        }
        splats
            .into_iter()
            .filter(|l| !excused.contains(&(*l as *const str)))
            .collect()
    }
}

fn qemu_cmd(arch: Arch, accel: &str, el2: bool) -> Command {
    let mut c = match arch {
        Arch::X86_64 => Command::new("qemu-system-x86_64"),
        Arch::Arm64 => {
            let mut c = Command::new("qemu-system-aarch64");
            // The CPU production arm64 kernels run on (Graviton, Ampere, Apple silicon): `max`
            // has PAN, pointer authentication (`pauth-impdef=on`: QEMU's own cipher, much faster
            // under TCG than QARMA), BTI and MTE (which needs the machine's tag memory,
            // `mte=on`). Debian's kernel and the hardened one use them all
            // (ARM64_PTR_AUTH_KERNEL, ARM64_BTI(_KERNEL), ARM64_MTE); the others, what they have.
            let machine = if el2 {
                "virt,virtualization=on,mte=on"
            } else {
                "virt,mte=on"
            };
            c.args(["-M", machine, "-cpu", "max,pauth-impdef=on"]);
            c
        }
    };
    c.args([
        "-accel",
        accel,
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-nodefaults",
    ]);
    c
}

/// Whether multi-threaded TCG runs this arch's SMP guests faithfully. For x86_64 it does not:
/// a vCPU can run a translated block that still holds an `int3` another vCPU has just removed,
/// and Linux >= 6.3 oopses on such an int3 (8e791f7eba4c dropped the "int3 already removed"
/// retry, relying on `text_poke_sync()`'s IPI, after which no CPU may run the old byte). QEMU
/// 8.1 fixed one cause (deba78709a, "accel/tcg: Always lock pages before translation"), but
/// QEMU 10.0.2 still did it here: `Oops: int3` at `inet_bind+0x1` and `inet_release+0x1` in 2
/// of about 20 under-fire runs on 7.3 with the host busy. So x86_64 SMP guests run with
/// `thread=single`: the vCPUs interleave on one host thread, switching at block boundaries,
/// which still races them against each other but never runs a block past a patch.
fn mttcg_safe(arch: Arch) -> bool {
    arch != Arch::X86_64
}

fn console(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "ttyS0",
        Arch::Arm64 => "ttyAMA0",
    }
}

/// `kvm` only where a probe boot proved it works (the verdict is cached per machine); else `tcg`.
fn accel(kernel: &Kernel, flavor: &Flavor, initrd: &Path) -> &'static str {
    let host_is = match flavor.arch {
        Arch::X86_64 => cfg!(target_arch = "x86_64"),
        Arch::Arm64 => cfg!(target_arch = "aarch64"),
    };
    if std::env::var_os("RK_NO_KVM").is_some() || !host_is || !Path::new("/dev/kvm").exists() {
        return "tcg";
    }
    let verdict = crate::util::cache_dir().join(format!("kvm-verdict-{}", flavor.arch.name()));
    if let Ok(v) = fs::read_to_string(&verdict) {
        return if v.trim() == "kvm" { "kvm" } else { "tcg" };
    }
    let dir = build_dir(flavor).join("kvm-probe");
    fs::create_dir_all(&dir).unwrap();
    let Ok(probe) = initramfs::scenario(kernel, &dir, "echo kvm-probe-ok") else {
        return "tcg";
    };
    let opts = Opts {
        timeout: Duration::from_secs(20),
        ..Opts::for_flavor(flavor)
    };
    let ok = boot(kernel, flavor, initrd, &probe, &dir, &opts, "kvm")
        .map(|r| r.exit == 0)
        .unwrap_or(false);
    let v = if ok { "kvm" } else { "tcg" };
    fs::write(&verdict, v).unwrap();
    eprintln!(
        "vm: KVM {} here; using {v}",
        if ok { "works" } else { "does not boot a guest" }
    );
    v
}

fn boot(
    kernel: &Kernel,
    flavor: &Flavor,
    base: &Path,
    scenario: &Path,
    dir: &Path,
    opts: &Opts,
    accel: &str,
) -> Result<Run, String> {
    // One initrd: the base archive followed by the scenario's.
    let initrd = dir.join("initrd.cpio");
    let mut bytes = fs::read(base).unwrap();
    bytes.extend(fs::read(scenario).unwrap());
    fs::write(&initrd, bytes).unwrap();
    let log_path = dir.join("serial.log");
    let _ = fs::remove_file(&log_path);
    let accel = if accel == "tcg" && opts.cpus > 1 && !mttcg_safe(flavor.arch) {
        "tcg,thread=single"
    } else {
        accel
    };
    let mut c = qemu_cmd(flavor.arch, accel, opts.el2);
    c.arg("-kernel")
        .arg(&kernel.image)
        .arg("-initrd")
        .arg(&initrd);
    c.args([
        "-m",
        &opts.mem_mb.to_string(),
        "-smp",
        &opts.cpus.to_string(),
    ]);
    c.arg("-serial").arg(format!("file:{}", log_path.display()));
    if let Some(plugin) = &opts.plugin {
        c.args(["-plugin", plugin]);
    }
    if opts.icount {
        c.args(["-icount", "shift=0,sleep=off"]);
    }
    let debug = if flavor.debug { " kmemleak=on" } else { "" };
    // x86_64: no IO-APIC timer check; on a loaded host a TCG vCPU can miss its window and
    // the kernel panics with "IO-APIC + timer doesn't work!" (seen here with 7.3).
    let timer = if flavor.arch == Arch::X86_64 {
        " no_timer_check"
    } else {
        ""
    };
    let extra = if opts.cmdline.is_empty() {
        String::new()
    } else {
        format!(" {}", opts.cmdline)
    };
    let append = format!(
        "console={} loglevel=2 panic=-1 log_buf_len=16M{timer}{debug}{extra}",
        console(flavor.arch)
    );
    c.args(["-append", &append]);
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("cannot start QEMU: {e}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > opts.timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let serial =
        String::from_utf8_lossy(&fs::read(&log_path).unwrap_or_default()).replace('\r', "");
    let Some(status) = status else {
        return Err(format!(
            "guest hung: no exit after {}s; serial log: {}",
            opts.timeout.as_secs(),
            log_path.display()
        ));
    };
    if !status.success() {
        let mut err = String::new();
        use std::io::Read;
        child.stderr.take().unwrap().read_to_string(&mut err).ok();
        return Err(format!("QEMU failed ({status}): {}", err.trim()));
    }
    let (mut dmesg, mut guest, mut exit, mut in_dmesg) = (vec![], vec![], None, false);
    for l in serial.lines() {
        match l {
            "RK-DMESG-BEGIN" => in_dmesg = true,
            "RK-DMESG-END" => in_dmesg = false,
            _ if in_dmesg => dmesg.push(strip_time(l).to_string()),
            _ => {
                if let Some(rc) = l.strip_prefix("RK-EXIT ") {
                    exit = rc.trim().parse().ok();
                }
                guest.push(l.to_string())
            }
        }
    }
    let Some(exit) = exit else {
        return Err(format!(
            "guest stopped before the scenario ended (panic?); serial log: {}",
            log_path.display()
        ));
    };
    Ok(Run {
        serial,
        dmesg,
        guest,
        exit,
        log_path,
    })
}

fn strip_time(l: &str) -> &str {
    match (l.starts_with('['), l.find("] ")) {
        (true, Some(i)) => &l[i + 2..],
        _ => l,
    }
}

/// Everything a boot needs, built once per flavor by `cargo xtask` (demo/check) before tests.
pub struct Prepared {
    pub kernel: Kernel,
    pub flavor: Flavor,
    pub initramfs: PathBuf,
}

/// The artifacts of `flavor` as `cargo xtask prepare` left them (for the tests).
pub fn prepared(flavor: Flavor) -> Result<Prepared, String> {
    let k = crate::kernel::find(&flavor)?
        .ok_or_else(|| format!("no {} kernel built: run `make check`", flavor.name()))?;
    let initramfs = build_dir(&flavor).join("initramfs.cpio");
    if !initramfs.exists() {
        return Err(format!("{} missing: run `make check`", initramfs.display()));
    }
    Ok(Prepared {
        kernel: k,
        flavor,
        initramfs,
    })
}

/// The run folder's name: the running test's (`x86_64::kprobe_ratelimit` gives
/// `kprobe_ratelimit`; the flavor is already in the folder above). Under `cargo test` each test
/// runs on a thread named after it.
pub fn test_name() -> String {
    let t = std::thread::current();
    let name = t
        .name()
        .filter(|n| *n != "main")
        .unwrap_or_else(|| panic!("run folders are named after the test: run under `cargo test`"));
    name.rsplit("::").next().unwrap_or(name).to_string()
}

/// Boots one scenario (`script`, run by busybox sh -e with `vm/lib.sh` sourced) in `name`'s
/// own folder under `build/<flavor>/runs/`.
pub fn run(p: &Prepared, name: &str, script: &str, opts: &Opts) -> Result<Run, String> {
    let dir = build_dir(&p.flavor).join("runs").join(name);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sc = initramfs::scenario(&p.kernel, &dir, script)?;
    let accel = if opts.icount {
        "tcg"
    } else {
        accel(&p.kernel, &p.flavor, &p.initramfs)
    };
    boot(&p.kernel, &p.flavor, &p.initramfs, &sc, &dir, opts, accel)
}

/// `key=value` words of a line, in order.
fn key_values(line: &str) -> Vec<(String, String)> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One operation the load program reported (`LOADGEN op=... tid=... comm=... family=...
/// port=... len=... ret=...`). Parsing is strict: a missing or malformed field panics with
/// the line, so that a lost field never reads as a default (a missing `ret=` as success).
#[derive(Debug, Clone)]
pub struct Op {
    pub op: String,
    pub tid: u32,
    pub comm: String,
    pub family: String,
    pub port: u16,
    pub len: u32,
    pub ret: i32,
}

impl Op {
    /// Parses one `LOADGEN` line of a socket operation (bind, close, sleep).
    pub fn parse(line: &str) -> Result<Op, String> {
        let fields = key_values(line);
        let get = |k: &str| -> Result<&str, String> {
            let mut it = fields.iter().filter(|(f, _)| f == k);
            match (it.next(), it.next()) {
                (Some((_, v)), None) if !v.is_empty() => Ok(v.as_str()),
                (None, _) => Err(format!("no `{k}=` in load program line `{line}`")),
                _ => Err(format!("bad `{k}=` in load program line `{line}`")),
            }
        };
        fn num<T: std::str::FromStr>(line: &str, k: &str, v: &str) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("`{k}={v}` is not a number in load program line `{line}`"))
        }
        Ok(Op {
            op: get("op")?.to_string(),
            tid: num(line, "tid", get("tid")?)?,
            comm: get("comm")?.to_string(),
            family: get("family")?.to_string(),
            port: num(line, "port", get("port")?)?,
            len: num(line, "len", get("len")?)?,
            ret: num(line, "ret", get("ret")?)?,
        })
    }

    /// The line `rust_kprobe` logs for this bind when it probes `sym` at its entry.
    pub fn kprobe_line(&self, sym: &str) -> String {
        format!(
            "{sym} name:{} pid:{} socket bind port={}",
            self.comm, self.tid, self.port
        )
    }
}

impl Run {
    /// The socket operations (`bind`, `close`, `sleep`) the load program reported, in order.
    /// Panics on a `LOADGEN` line that does not parse.
    pub fn loadgen(&self) -> Vec<Op> {
        self.guest_with("LOADGEN ")
            .iter()
            .filter(|l| !l.contains(" op=loop ") && !l.contains(" op=bench "))
            .map(|l| Op::parse(l).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    /// The operations `op` (`bind`, `close`, ...) the load program reported, in order.
    pub fn ops(&self, op: &str) -> Vec<Op> {
        self.loadgen().into_iter().filter(|o| o.op == op).collect()
    }

    /// The `binds=` of every `LOADGEN op=loop` line (one per `loadgen loop`), in order.
    pub fn loop_binds(&self) -> Vec<u64> {
        self.guest_with("LOADGEN op=loop ")
            .iter()
            .map(|l| {
                let f = key_values(l);
                let v = f.iter().find(|(k, _)| k == "binds").map(|(_, v)| v);
                v.and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("no number `binds=` in `{l}`"))
            })
            .collect()
    }

    /// `KALLSYMS <addr> T <sym>` lines the scenario printed: the symbol's address.
    pub fn kallsyms(&self, sym: &str) -> Option<u64> {
        self.guest_with("KALLSYMS ").iter().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[3] == sym)
                .then(|| u64::from_str_radix(f[1], 16).ok())
                .flatten()
        })
    }

    /// `<PREFIX> key value` lines (a debugfs `stats` file the scenario printed with a prefix):
    /// the value of `key`. Panics if the key is missing, repeated or not a number.
    pub fn stat(&self, prefix: &str, key: &str) -> u64 {
        let p = format!("{prefix} {key} ");
        let v: Vec<&str> = self
            .guest
            .iter()
            .filter_map(|l| l.strip_prefix(&p))
            .collect();
        match v[..] {
            [v] => v
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("`{p}{v}`: not a number")),
            _ => panic!(
                "want one `{p}<n>` line, got {v:?}; guest: {:#?}",
                self.guest
            ),
        }
    }

    /// Events `name` of the kernel's own tracing (`TRACE` lines of `trace_dump`), in order.
    pub fn trace_events(&self, name: &str) -> Vec<TraceEvent> {
        let tag = format!(" {name}: ");
        self.guest_with("TRACE ")
            .iter()
            .filter(|l| l.contains(&tag))
            .map(|l| TraceEvent::parse(l, &tag).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }
}

/// One line of `/sys/kernel/tracing/trace` for a kprobe event:
/// `<comm>-<pid> [cpu] flags time: <name>: (<where>) key=value...`.
#[derive(Debug, Clone)]
pub struct TraceEvent {
    pub comm: String,
    pub pid: u32,
    /// What the kernel printed in parentheses (`inet_bind+0x0/0x60`,
    /// `__sys_bind+0x9d/0xe0 <- inet_bind`).
    pub at: String,
    pub args: Vec<(String, String)>,
}

impl TraceEvent {
    fn parse(line: &str, tag: &str) -> Result<TraceEvent, String> {
        let bad = |what: &str| format!("trace line `{line}`: {what}");
        let body = line.strip_prefix("TRACE ").unwrap_or(line);
        let task = body
            .trim_start()
            .split(" [")
            .next()
            .ok_or_else(|| bad("no task"))?
            .trim();
        let (comm, pid) = task.rsplit_once('-').ok_or_else(|| bad("no comm-pid"))?;
        let pid = pid.parse().map_err(|_| bad("pid is not a number"))?;
        let rest = &body[body.find(tag).ok_or_else(|| bad("no event"))? + tag.len()..];
        let (at, args) = rest
            .strip_prefix('(')
            .and_then(|r| r.split_once(')'))
            .ok_or_else(|| bad("no (location)"))?;
        Ok(TraceEvent {
            comm: comm.to_string(),
            pid,
            at: at.to_string(),
            args: key_values(args),
        })
    }

    /// The value of fetch argument `key`, as a number. Panics if missing or malformed.
    /// A field as an unsigned 64-bit number (`x64`, the default type of `$argN`: kernel
    /// pointers do not fit an `i64`).
    pub fn arg_u64(&self, key: &str) -> u64 {
        let v = self.args.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let n = v.and_then(|v| match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        });
        n.unwrap_or_else(|| panic!("trace event {self:?}: no number `{key}=`"))
    }

    pub fn arg(&self, key: &str) -> i64 {
        let v = self.args.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let n = v.and_then(|v| match v.strip_prefix("0x") {
            Some(h) => i64::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        });
        n.unwrap_or_else(|| panic!("trace event {self:?}: no number `{key}=`"))
    }
}

/// The number right after `prefix` in `line` (`-98` in `returned -98 and`).
pub fn number_after(line: &str, prefix: &str) -> Option<i64> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    let end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}

/// The `0x...` number right after `prefix` in `line`.
pub fn hex_after(line: &str, prefix: &str) -> Option<u64> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    let rest = rest.strip_prefix("0x")?;
    let end = rest
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(rest.len());
    u64::from_str_radix(&rest[..end], 16).ok()
}

/// `rust_kprobe`'s unload line (`kprobe at 0x... unregistered: N hits, N reported, N filtered,
/// N suppressed, N faults, N missed`), parsed; every field must be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KprobeTotals {
    pub addr: u64,
    pub hits: u64,
    pub reported: u64,
    pub filtered: u64,
    pub suppressed: u64,
    pub faults: u64,
    pub missed: u64,
}

impl KprobeTotals {
    pub fn parse(line: &str) -> Result<KprobeTotals, String> {
        let bad = || format!("malformed kprobe unload line `{line}`");
        let addr = hex_after(line, "kprobe at ").ok_or_else(bad)?;
        let rest = line.split_once("unregistered: ").ok_or_else(bad)?.1;
        let mut v = [0u64; 6];
        let names = [
            "hits",
            "reported",
            "filtered",
            "suppressed",
            "faults",
            "missed",
        ];
        let parts: Vec<&str> = rest.split(", ").collect();
        if parts.len() != names.len() {
            return Err(bad());
        }
        for ((slot, part), name) in v.iter_mut().zip(&parts).zip(names) {
            let (n, w) = part.trim().split_once(' ').ok_or_else(bad)?;
            if w != name {
                return Err(bad());
            }
            *slot = n.parse().map_err(|_| bad())?;
        }
        let [hits, reported, filtered, suppressed, faults, missed] = v;
        Ok(KprobeTotals {
            addr,
            hits,
            reported,
            filtered,
            suppressed,
            faults,
            missed,
        })
    }

    /// Every unload line among `rust_kprobe`'s lines, in order.
    pub fn all(module_lines: &[&str]) -> Vec<KprobeTotals> {
        module_lines
            .iter()
            .filter(|l| l.starts_with("kprobe at "))
            .map(|l| KprobeTotals::parse(l).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }
}
