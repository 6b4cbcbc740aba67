// SPDX-License-Identifier: GPL-2.0

//! Rust kprobe sample, the counterpart of `samples/kprobes/kprobe_example.c`.
//!
//! Plants a kprobe on `inet_bind()` and logs each bind: the task and the port it asked for,
//! `inet_bind name:<comm> pid:<pid> socket bind port=<port>`. The task's name is copied with
//! a nofault read, as `comm` may change under it (`set_task_comm()`).

use core::mem::offset_of;
use kernel::bindings;
use kernel::kprobes::hit::{Fault, Hit};
use kernel::kprobes::kprobe::{Kprobe, KprobeHandler};
use kernel::kprobes::probe::Probe;
use kernel::prelude::*;

module! {
    type: RustKprobeExample,
    name: "rust_kprobe_example",
    authors: ["@AUTHOR@"],
    description: "Rust kprobe sample",
    license: "GPL",
}

/// The handler; it runs in atomic context, so it only reads and prints.
struct BindLogger;

impl KprobeHandler for BindLogger {
    fn pre(&self, hit: &Hit<'_>) -> Result<(), Fault> {
        // int inet_bind(struct socket *sock, struct sockaddr *uaddr, int addr_len)
        let (Some(uaddr), Some(addr_len)) = (hit.regs.arg::<*const u8>(1), hit.regs.arg::<i32>(2))
        else {
            return Ok(());
        };
        let task = kernel::current!();
        let mut comm = [0u8; bindings::TASK_COMM_LEN as usize];
        let comm_ptr = task
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(offset_of!(bindings::task_struct, comm));
        hit.read("task comm", comm_ptr, &mut comm)?;
        let len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
        let comm = core::str::from_utf8(&comm[..len]).unwrap_or("?");
        // `sa_family`, then the port in network byte order (sockaddr_in and sockaddr_in6).
        let mut head = [0u8; 4];
        if addr_len < 4 {
            return Ok(());
        }
        hit.read("struct sockaddr", uaddr, &mut head)?;
        let family = u32::from(u16::from_ne_bytes([head[0], head[1]]));
        if family == bindings::AF_INET || family == bindings::AF_INET6 {
            pr_info!(
                "inet_bind name:{} pid:{} socket bind port={}\n",
                comm,
                task.pid(),
                u16::from_be_bytes([head[2], head[3]])
            );
        }
        Ok(())
    }

    fn fault(&self, _hit: &Hit<'_>, fault: &Fault) {
        pr_info!(
            "reading {} at {:#x} faulted ({})\n",
            fault.what,
            fault.addr,
            fault.errno
        );
    }
}

struct RustKprobeExample {
    probe: Option<Pin<KBox<Kprobe<BindLogger>>>>,
}

impl kernel::Module for RustKprobeExample {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let probe = KBox::pin_init(Kprobe::new(c"inet_bind", 0, BindLogger), GFP_KERNEL)
            .inspect_err(|e| pr_err!("register_kprobe failed, returned {}\n", e.to_errno()))?;
        pr_info!("Planted kprobe at {:#x}\n", probe.addr());
        Ok(Self { probe: Some(probe) })
    }
}

impl Drop for RustKprobeExample {
    fn drop(&mut self) {
        if let Some(probe) = self.probe.take() {
            let done = Probe::unregister(probe);
            pr_info!("kprobe at {:#x} unregistered\n", done.addr);
        }
    }
}
