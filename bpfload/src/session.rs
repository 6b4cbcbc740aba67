//! A kprobe.session program (`bench/rk_bench.bpf.c`'s `release_session`), loaded and attached
//! without aya, which cannot (0.14: no `kprobe.session` section in `aya-obj`'s
//! `ProgramSection`, no way to load a `KProbe` with an `expected_attach_type`, no kprobe_multi
//! link, no kfunc relocation). What libbpf does for one, done here for this one program:
//!
//! - its instructions from the object (the function symbol's bytes in its `.text.` section),
//!   relocated: a `ld_imm64` of a legacy map symbol gets the fd of the map aya created for it
//!   (`BPF_PSEUDO_MAP_FD`), a call of an undefined (`__ksym`) symbol becomes a kfunc call
//!   (`BPF_PSEUDO_KFUNC_CALL`) by the function's id in the kernel's BTF
//!   (/sys/kernel/btf/vmlinux);
//! - `BPF_PROG_LOAD` as `BPF_PROG_TYPE_KPROBE` with `expected_attach_type`
//!   `BPF_TRACE_KPROBE_SESSION` (the verifier allows the session kfuncs only then, and
//!   `bpf_kprobe_multi_link_attach` refuses any other program);
//! - `BPF_LINK_CREATE` of a kprobe_multi link (fprobe) on the function by name.
//!
//! The uapi numbers and layouts are those of include/uapi/linux/bpf.h.

use aya::maps::Map;
use aya::{Btf, Ebpf};
use aya_obj::btf::BtfKind;
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SymbolKind};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::die;

// enum bpf_cmd
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_CREATE: libc::c_long = 28;
// enum bpf_prog_type, enum bpf_attach_type
const BPF_PROG_TYPE_KPROBE: u32 = 2;
const BPF_TRACE_KPROBE_SESSION: u32 = 56;
// instructions
const BPF_LD_IMM64: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
const BPF_CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_PSEUDO_CALL: u8 = 1;
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_LINK_CREATE` of a kprobe_multi link.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    // kprobe_multi
    km_flags: u32,
    km_cnt: u32,
    km_syms: u64,
    km_addrs: u64,
    km_cookies: u64,
}

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a live, fully initialized bpf_attr prefix of its size; the kernel
    // reads it (and writes into the buffers it points to, which outlive the call).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The loaded program and its link: detached when dropped (at exit).
pub struct Session {
    _prog: OwnedFd,
    _link: OwnedFd,
}

/// The fd of map `name`, which aya created.
fn map_fd(bpf: &Ebpf, name: &str) -> RawFd {
    let data = match bpf.map(name) {
        Some(Map::PerCpuArray(d) | Map::Array(d) | Map::HashMap(d)) => d,
        Some(_) => die(&format!("map {name}: not an array or hash map")),
        None => die(&format!("no map {name} in the object")),
    };
    data.fd().as_fd().as_raw_fd()
}

/// Program `name`'s instructions from object `obj`, relocated against `bpf`'s maps and the
/// kernel's BTF.
fn instructions(bpf: &Ebpf, obj: &str, name: &str) -> Vec<u8> {
    let data = std::fs::read(obj).unwrap_or_else(|e| die(&format!("{obj}: {e}")));
    let elf = object::File::parse(&*data).unwrap_or_else(|e| die(&format!("{obj}: {e}")));
    let sym = elf
        .symbols()
        .find(|s| s.name() == Ok(name) && s.kind() == SymbolKind::Text)
        .unwrap_or_else(|| die(&format!("no function {name} in {obj}")));
    let sec_index = sym
        .section_index()
        .unwrap_or_else(|| die(&format!("{name}: no section")));
    let sec = elf.section_by_index(sec_index).unwrap();
    let bytes = sec
        .data()
        .unwrap_or_else(|e| die(&format!("{name}'s section: {e}")));
    let (start, len) = (sym.address() as usize, sym.size() as usize);
    if len == 0 || len % 8 != 0 || start + len > bytes.len() {
        die(&format!("{name}: odd symbol size {len} at {start}"));
    }
    let mut insns = bytes[start..start + len].to_vec();
    let mut btf: Option<Btf> = None;
    for (off, rel) in sec.relocations() {
        let off = off as usize;
        if off < start || off >= start + len {
            continue;
        }
        let i = off - start;
        let RelocationTarget::Symbol(target) = rel.target() else {
            die(&format!(
                "{name}: relocation at {off:#x} is not to a symbol"
            ));
        };
        let target = elf.symbol_by_index(target).unwrap();
        let tname = target.name().unwrap_or("?");
        let code = insns[i];
        let target_sec = target
            .section_index()
            .and_then(|s| elf.section_by_index(s).ok())
            .and_then(|s| s.name().ok().map(str::to_owned));
        if code == BPF_LD_IMM64 && target_sec.as_deref() == Some("maps") {
            // A legacy map: its fd.
            insns[i + 1] = (insns[i + 1] & 0x0f) | BPF_PSEUDO_MAP_FD << 4;
            insns[i + 4..i + 8].copy_from_slice(&map_fd(bpf, tname).to_le_bytes());
        } else if code == BPF_CALL && target.is_undefined() {
            // A kfunc: its id in vmlinux's BTF (off 0: vmlinux, not a module).
            let btf = btf.get_or_insert_with(|| {
                Btf::from_sys_fs().unwrap_or_else(|e| die(&format!("/sys/kernel/btf/vmlinux: {e}")))
            });
            let id = btf
                .id_by_type_name_kind(tname, BtfKind::Func)
                .unwrap_or_else(|e| die(&format!("kfunc {tname}: {e}")));
            insns[i + 1] = (insns[i + 1] & 0x0f) | BPF_PSEUDO_KFUNC_CALL << 4;
            insns[i + 2..i + 4].copy_from_slice(&0u16.to_le_bytes());
            insns[i + 4..i + 8].copy_from_slice(&id.to_le_bytes());
        } else {
            die(&format!(
                "{name}: relocation at {off:#x} to {tname}: neither a map nor a kfunc"
            ));
        }
    }
    // Calls to other BPF functions would need linking: the bodies are inlined.
    for (n, ins) in insns.chunks(8).enumerate() {
        if ins[0] == BPF_CALL && ins[1] >> 4 == BPF_PSEUDO_CALL {
            die(&format!("{name}: a BPF-to-BPF call at instruction {n}"));
        }
    }
    insns
}

/// Loads program `name` of object `obj` as a kprobe.session program and attaches it to kernel
/// function `func` (a kprobe_multi link); returns it and its JIT-compiled size.
pub fn attach(bpf: &Ebpf, obj: &str, name: &str, func: &str) -> (Session, u32) {
    let insns = instructions(bpf, obj, name);
    let license = c"GPL";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_KPROBE,
        insn_cnt: (insns.len() / 8) as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: BPF_TRACE_KPROBE_SESSION,
        ..Default::default()
    };
    let n = name.len().min(15);
    attr.prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let prog = match sys_bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => fd,
        Err(e) => {
            // Again with the verifier's log, to say why.
            let mut log = vec![0u8; 1 << 20];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = sys_bpf(BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            die(&format!(
                "loading {name}: {e}\n{}",
                String::from_utf8_lossy(&log[..end])
            ))
        }
    };
    // SAFETY: a new fd the kernel just returned, owned by nothing else.
    let prog = unsafe { OwnedFd::from_raw_fd(prog as RawFd) };
    let sym = CString::new(func).unwrap();
    let syms = [sym.as_ptr() as u64];
    let mut link = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_TRACE_KPROBE_SESSION,
        km_cnt: 1,
        km_syms: syms.as_ptr() as u64,
        ..Default::default()
    };
    let link = sys_bpf(BPF_LINK_CREATE, &mut link)
        .unwrap_or_else(|e| die(&format!("attaching {name} to {func}: {e}")));
    // SAFETY: as above.
    let link = unsafe { OwnedFd::from_raw_fd(link as RawFd) };
    // struct bpf_prog_info: jited_prog_len is the u32 at byte 16.
    let mut info = [0u64; 32];
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).unwrap_or_else(|e| die(&format!("{name}: {e}")));
    let jited = info[2] as u32;
    (
        Session {
            _prog: prog,
            _link: link,
        },
        jited,
    )
}
