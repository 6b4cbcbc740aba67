//! loadgen: the load program of the VM tests. It binds and closes sockets and reports every
//! operation on stdout as `LOADGEN op=... tid=... comm=... family=... port=... len=... ret=...`,
//! so the tests compare the kernel log with what really happened.
//!
//! ```text
//! loadgen bind [inet|inet6] PORT...          one socket per port: bind, close
//! loadgen bind-raw FAMILY LEN PORT           an AF_INET socket, a sockaddr with sa_family=FAMILY, addr_len=LEN
//! loadgen inuse PORT                         bind PORT twice (the second gets EADDRINUSE)
//! loadgen sleep THREADS MS                   THREADS threads in nanosleep(MS) at once
//! loadgen loop SECONDS                       bind port 0 + close in a loop until SECONDS pass or
//!                                            SIGTERM; reports the count (`op=loop ... binds=N`)
//! loadgen bench N                            N bind(port 0)+close; reports ns per operation
//! loadgen insmod FILE [PARAM...]             one finit_module(2); prints `INSMOD ok` or `INSMOD errno=-N`
//! loadgen insmod-fail N FILE [PARAM...]      the same with the N-th failable call of the load
//!                                            failed (`/proc/thread-self/fail-nth`, fault
//!                                            injection); prints `INSMOD-FAIL n=N injected=yes|no ok|errno=-N`
//! ```
//!
//! (`insmod` is here because busybox's retries a refused finit_module with init_module, which
//! runs a failing module init twice and doubles its error line.)

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn tid() -> i64 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

fn comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// finit_module(2) with the `n`-th failable call of this thread after the arming failed (fault
/// injection's `/proc/thread-self/fail-nth`). Everything is opened and allocated before the
/// arming, and `fail-nth` is armed and read back through one descriptor (its handlers do not
/// allocate), so that only the load's own calls count.
fn insmod_fail(n: u32, file: &str, params: &[String]) -> String {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let params = std::ffi::CString::new(params.join(" ")).unwrap();
    let path = "/proc/thread-self/fail-nth";
    let nth = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let arm = format!("{n}");
    let mut buf = [0u8; 16];
    // SAFETY: pwrite/finit_module/pread on valid descriptors, with buffers valid for the lengths
    // given and a NUL-terminated parameter string.
    let (w, r, e, got) = unsafe {
        let w = libc::pwrite(nth.as_raw_fd(), arm.as_ptr().cast(), arm.len(), 0);
        let r = libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), params.as_ptr(), 0);
        let e = errno();
        let got = libc::pread(nth.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0);
        libc::pwrite(nth.as_raw_fd(), b"0".as_ptr().cast(), 1, 0);
        (w, r, e, got)
    };
    assert!(
        w > 0 && got > 0,
        "{path}: write {w}, read {got}: errno {}",
        errno()
    );
    // Read back 0: the n-th call was failed; more: the load made fewer than n failable calls.
    let left = String::from_utf8_lossy(&buf[..got as usize])
        .trim()
        .to_string();
    let injected = if left == "0" { "yes" } else { "no" };
    let result = if r == 0 {
        "ok".to_string()
    } else {
        format!("errno=-{e}")
    };
    format!("INSMOD-FAIL n={n} injected={injected} {result}")
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn report(op: &str, family: &str, port: u16, len: usize, ret: i32) {
    let line = format!(
        "LOADGEN op={op} tid={} comm={} family={family} port={port} len={len} ret={ret}\n",
        tid(),
        comm()
    );
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).unwrap();
    out.flush().unwrap();
}

/// A socket of `domain` bound to a sockaddr of `family`/`port`, `len` bytes of it passed.
/// Returns (fd, bind's return value: 0 or -errno).
fn bind_raw(domain: i32, family: u16, port: u16, len: usize) -> (i32, i32) {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket: errno {}", errno());
    // sockaddr_in and sockaddr_in6 both start with family and port; any address (zeroes).
    let mut sa = [0u8; 28];
    sa[..2].copy_from_slice(&family.to_ne_bytes());
    sa[2..4].copy_from_slice(&port.to_be_bytes());
    // SAFETY: `sa` holds at least `len` (<= 28) initialised bytes.
    let r = unsafe { libc::bind(fd, sa.as_ptr().cast(), len as libc::socklen_t) };
    (fd, if r == 0 { 0 } else { -errno() })
}

/// A TCP connect to the loopback address of `family` (127.0.0.1 or ::1) at `port`; nothing
/// listens there, so it is refused (-ECONNREFUSED) after `tcp_v4_connect`/`tcp_v6_connect` ran.
/// Returns connect's return value (0 or -errno).
fn connect_loopback(domain: i32, family: u16, port: u16, len: usize) -> i32 {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket: errno {}", errno());
    let mut sa = [0u8; 28];
    sa[..2].copy_from_slice(&family.to_ne_bytes());
    sa[2..4].copy_from_slice(&port.to_be_bytes());
    if domain == libc::AF_INET {
        sa[4..8].copy_from_slice(&[127, 0, 0, 1]);
    } else {
        // sin6_flowinfo (4 bytes), then sin6_addr ::1.
        sa[23] = 1;
    }
    // SAFETY: `sa` holds `len` (<= 28) initialised bytes.
    let r = unsafe { libc::connect(fd, sa.as_ptr().cast(), len as libc::socklen_t) };
    let ret = if r == 0 { 0 } else { -errno() };
    // SAFETY: closing our socket.
    unsafe { libc::close(fd) };
    ret
}

fn close(fd: i32, family: &str) {
    // SAFETY: closing a socket this program opened.
    let r = unsafe { libc::close(fd) };
    report("close", family, 0, 0, if r == 0 { 0 } else { -errno() });
}

/// One AF_INET socket bound to port 0 (any free port), then closed: the unit of load.
/// The window markers of `make bench`'s QEMU plugin (bench/plugin/rk_insns.c): instructions
/// that do nothing, which the plugin finds in user space and counts the loop between. Without
/// the plugin they cost one instruction each.
mod marker {
    use std::arch::asm;

    #[inline(never)]
    pub fn open() {
        // SAFETY: exchanges a register with itself: no register, flag or memory changes.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            asm!("xchg rbx, rbx", options(nomem, nostack, preserves_flags))
        };
        // SAFETY: as above (`orr x9, xzr, x9`).
        #[cfg(target_arch = "aarch64")]
        unsafe {
            asm!("mov x9, x9", options(nomem, nostack, preserves_flags))
        };
    }

    #[inline(never)]
    pub fn close() {
        // SAFETY: as in `open`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            asm!("xchg rcx, rcx", options(nomem, nostack, preserves_flags))
        };
        // SAFETY: as in `open` (`orr x10, xzr, x10`).
        #[cfg(target_arch = "aarch64")]
        unsafe {
            asm!("mov x10, x10", options(nomem, nostack, preserves_flags))
        };
    }
}

fn bind_close_any() {
    let (fd, ret) = bind_raw(libc::AF_INET, libc::AF_INET as u16, 0, 16);
    assert_eq!(ret, 0, "bind to port 0 failed");
    // SAFETY: closing our socket.
    unsafe { libc::close(fd) };
}

/// This thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): what it ran, without the time other
/// tasks (kworkers, the other vCPU's) took while it waited, or, on a kernel with
/// `CONFIG_IRQ_TIME_ACCOUNTING`, the interrupts and softirqs that hit it.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Set by SIGTERM: `loop` stops and reports what it did.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn family(name: &str) -> (i32, u16, usize) {
    match name {
        "inet" => (libc::AF_INET, libc::AF_INET as u16, 16),
        "inet6" => (libc::AF_INET6, libc::AF_INET6 as u16, 28),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: loadgen bind [inet|inet6] PORT... | connect [inet|inet6] PORT... | bind-raw FAMILY LEN PORT | inuse PORT | sleep THREADS MS | loop SECONDS | bench N | insmod FILE [PARAM...] | insmod-fail N FILE [PARAM...] | seed FILE");
    std::process::exit(2)
}

fn num<T: std::str::FromStr>(s: Option<&String>) -> T {
    s.and_then(|s| s.parse().ok()).unwrap_or_else(|| usage())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bind") => {
            let (fam, ports) = match args.get(1).map(String::as_str) {
                Some(f @ ("inet" | "inet6")) => (f, &args[2..]),
                _ => ("inet", &args[1..]),
            };
            let (domain, af, len) = family(fam);
            let ports: Vec<u16> = if ports.is_empty() {
                vec![49152]
            } else {
                ports.iter().map(|p| num(Some(p))).collect()
            };
            for port in ports {
                let (fd, ret) = bind_raw(domain, af, port, len);
                report("bind", fam, port, len, ret);
                close(fd, fam);
            }
        }
        Some("connect") => {
            let (fam, ports) = match args.get(1).map(String::as_str) {
                Some(f @ ("inet" | "inet6")) => (f, &args[2..]),
                _ => ("inet", &args[1..]),
            };
            let (domain, af, len) = family(fam);
            for p in ports {
                let port: u16 = num(Some(p));
                report(
                    "connect",
                    fam,
                    port,
                    len,
                    connect_loopback(domain, af, port, len),
                );
            }
        }
        Some("bind-raw") => {
            let (af, len, port): (u16, usize, u16) =
                (num(args.get(1)), num(args.get(2)), num(args.get(3)));
            let (fd, ret) = bind_raw(libc::AF_INET, af, port, len.min(28));
            report("bind", &format!("raw{af}"), port, len, ret);
            close(fd, "inet");
        }
        Some("inuse") => {
            let port: u16 = num(args.get(1));
            let (a, ra) = bind_raw(libc::AF_INET, libc::AF_INET as u16, port, 16);
            report("bind", "inet", port, 16, ra);
            let (b, rb) = bind_raw(libc::AF_INET, libc::AF_INET as u16, port, 16);
            report("bind", "inet", port, 16, rb);
            close(b, "inet");
            close(a, "inet");
        }
        Some("sleep") => {
            let (n, ms): (usize, u64) = (num(args.get(1)), num(args.get(2)));
            let threads: Vec<_> = (0..n)
                .map(|_| {
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(ms));
                        report("sleep", "-", 0, 0, 0);
                    })
                })
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
        }
        Some("loop") => {
            let secs: u64 = num(args.get(1));
            let handler: extern "C" fn(libc::c_int) = on_term;
            // SAFETY: the handler only stores to an atomic.
            unsafe { libc::signal(libc::SIGTERM, handler as libc::sighandler_t) };
            let end = Instant::now() + Duration::from_secs(secs);
            let mut n = 0u64;
            while Instant::now() < end && !STOP.load(Ordering::Relaxed) {
                bind_close_any();
                n += 1;
            }
            println!("LOADGEN op=loop tid={} comm={} binds={n}", tid(), comm());
        }
        Some("seed") => {
            // The guest's RNG, credited with the host's random bytes in FILE (RNDADDENTROPY), as
            // a machine with RDRAND or a hardware RNG has it at boot: an x86_64 guest of QEMU's
            // default CPU has neither, and until its RNG has 128 bits (about two minutes of
            // timer entropy), every get_random_u32() hashes the input pool, bind(0)'s port
            // choice among them (8,000 instructions a bind).
            let file = args.get(1).unwrap_or_else(|| usage());
            let seed = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(
                seed.len() >= 32 && seed.len() % 4 == 0,
                "{file}: want 32+ bytes"
            );
            // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
            let mut info: Vec<i32> = vec![(seed.len() * 8) as i32, seed.len() as i32];
            info.extend(
                seed.chunks(4)
                    .map(|c| i32::from_ne_bytes(c.try_into().unwrap())),
            );
            let f = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
            use std::os::fd::AsRawFd;
            // RNDADDENTROPY: _IOW('R', 0x03, int[2]).
            const RNDADDENTROPY: u64 = 0x4008_5203;
            // SAFETY: `info` is a valid rand_pool_info with `buf_size` bytes of buffer after
            // its two ints, alive for the call.
            let r = unsafe { libc::ioctl(f.as_raw_fd(), RNDADDENTROPY as _, info.as_ptr()) };
            assert_eq!(r, 0, "RNDADDENTROPY: errno {}", errno());
            println!("SEEDED bits={}", seed.len() * 8);
        }
        Some("bench") => {
            let n: u64 = num(args.get(1));
            let (start, cpu0) = (Instant::now(), thread_cpu_ns());
            marker::open();
            (0..n).for_each(|_| bind_close_any());
            marker::close();
            let ns = start.elapsed().as_nanos() as u64 / n.max(1);
            let cpu = (thread_cpu_ns() - cpu0) / n.max(1);
            println!(
                "LOADGEN op=bench tid={} n={n} ns_per_op={ns} cpu_ns_per_op={cpu}",
                tid()
            );
        }
        Some("insmod") => {
            let file = args.get(1).unwrap_or_else(|| usage());
            let f = std::fs::File::open(file).unwrap_or_else(|e| panic!("{file}: {e}"));
            let params = std::ffi::CString::new(args[2..].join(" ")).unwrap();
            use std::os::fd::AsRawFd;
            // SAFETY: finit_module(fd, params, flags) with a valid fd and NUL-terminated params.
            let r =
                unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), params.as_ptr(), 0) };
            if r == 0 {
                println!("INSMOD ok");
            } else {
                println!("INSMOD errno=-{}", errno());
                std::process::exit(1);
            }
        }
        Some("insmod-fail") => {
            let n: u32 = args
                .get(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| usage());
            let file = args.get(2).unwrap_or_else(|| usage());
            println!("{}", insmod_fail(n, file, &args[3..]));
        }
        _ => usage(),
    }
}
