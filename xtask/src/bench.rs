//! `make bench`: per-hit cost of the probes (see the README).

use crate::kernel::Kernel;
use crate::util::{fail, Flavor};
use std::path::PathBuf;

/// The C reference modules of `bench/`, for the initramfs (none yet).
pub fn modules(_k: &Kernel, _flavor: &Flavor) -> Vec<PathBuf> {
    vec![]
}

pub fn run() {
    fail("make bench: not implemented yet")
}
