// SPDX-License-Identifier: GPL-2.0

//! An example [`super::kprobe::KprobeHandler`], compiled with the layer (and never called), that
//! [`super::percpu::PerCpu`]'s documentation shows: a kprobe on `inet_bind` that counts binds to
//! port 80. (The in-tree layer's own examples are the doctests of `upstream/`.)

use super::hit::{Fault, Hit};
use super::kprobe::{Kprobe, KprobeHandler};
use super::percpu::{Counter, PerCpu};
use kernel::c_str;
use kernel::prelude::*;

/// What the handler counts, per CPU.
#[derive(Zeroable)]
struct Stats {
    /// Binds to port 80.
    http: Counter,
}

/// The handler: atomic context, no sleeping, no allocation, no lock.
struct Port80 {
    stats: PerCpu<Stats>,
}

impl KprobeHandler for Port80 {
    fn pre(&self, hit: &Hit<'_>) -> Result<(), Fault> {
        // int inet_bind(struct socket *sock, struct sockaddr *uaddr, int addr_len)
        let (Some(uaddr), Some(addr_len)) = (hit.regs.arg::<*const u8>(1), hit.regs.arg::<i32>(2))
        else {
            return Ok(());
        };
        // `sa_family`, then the port in network byte order.
        let mut head = [0u8; 4];
        if addr_len >= 4 {
            hit.read("struct sockaddr", uaddr, &mut head)?;
            if u16::from_be_bytes([head[2], head[3]]) == 80 {
                self.stats.this_cpu().http.add(1);
            }
        }
        Ok(())
    }

    fn fault(&self, _hit: &Hit<'_>, fault: &Fault) {
        pr_info!(
            "reading {} at {:#x} failed ({})\n",
            fault.what,
            fault.addr,
            fault.errno
        );
    }
}

/// Probes `inet_bind` (process context), then reports.
fn example() -> Result {
    let handler = Port80 {
        stats: PerCpu::new()?,
    };
    let probe = KBox::pin_init(Kprobe::new(c_str!("inet_bind"), 0, handler), GFP_KERNEL)?;
    pr_info!("kprobe at {:#x}\n", probe.addr());
    // ... while binds happen; then, or on drop:
    let done = Kprobe::unregister(probe);
    pr_info!(
        "{} binds to port 80, {} missed\n",
        done.handler.stats.sum(|s| &s.http),
        done.nmissed
    );
    Ok(())
}
