//! The harness as a library, so that the VM tests (`xtask/tests/`) drive the same code.

pub mod bench;
pub mod counts;
pub mod debian;
pub mod initramfs;
pub mod kernel;
pub mod modules;
pub mod signing;
pub mod upstream;
pub mod util;
pub mod vm;
