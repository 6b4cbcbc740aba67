// SPDX-License-Identifier: GPL-2.0

//! @NAME@ (from `make new`): a kprobe on `@SYMBOL@` (`symbol=`) logging task and arguments.

#[allow(dead_code)]
#[path = "kprobes/mod.rs"]
mod kprobes;

use kernel::prelude::*;
use kprobes::hit::{Fault, Hit};
use kprobes::kprobe::{Kprobe, KprobeHandler};

kprobes::compat::rk_module! {
    type: ProbeModule,
    name: "@NAME@",
    description: "kprobe on @SYMBOL@ (Rust, from the rust-kprobes template)",
}

kprobes::params::module_params! {
    symbol: str[512] = "@SYMBOL@", "Function to probe (default @SYMBOL@)";
}

struct Handler {
    symbol: &'static str,
}

impl KprobeHandler for Handler {
    /// Runs on every call, in atomic context: no sleeping, no allocation, no locks.
    fn pre(&self, hit: &Hit<'_>) -> Result<(), Fault> {
        let task = kprobes::task::current();
        // The first two arguments (from 0), as their C types: here as raw 64-bit values.
        let a: u64 = hit.regs.arg(0).unwrap_or(0);
        let b: u64 = hit.regs.arg(1).unwrap_or(0);
        let (sym, comm, pid) = (self.symbol, task.comm(), task.pid);
        pr_info!("{sym} name:{comm} pid:{pid} arg1={a:#x} arg2={b:#x}\n");
        Ok(())
    }

    /// Runs when `pre` returned a `Fault` (a `hit.read()` of memory that failed).
    fn fault(&self, _hit: &Hit<'_>, f: &Fault) {
        let (sym, what, errno) = (self.symbol, f.what, f.errno);
        pr_info!("{sym}: reading {what} failed ({errno})\n");
    }
}

struct ProbeModule {
    _probe: Pin<KBox<Kprobe<Handler>>>,
}

impl kernel::Module for ProbeModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let p = Params::get();
        let symbol = p.symbol.as_str().ok_or(EINVAL)?;
        let handler = Handler { symbol };
        let probe = KBox::pin_init(Kprobe::new(p.symbol.as_cstr(), 0, handler), GFP_KERNEL)
            .inspect_err(|e| pr_err!("cannot probe {symbol}: {}\n", kprobes::why(*e)))?;
        pr_info!("Planted kprobe at {:#x} on {symbol}\n", probe.addr());
        Ok(ProbeModule { _probe: probe })
    }
}
