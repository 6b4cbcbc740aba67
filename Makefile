# SPDX-License-Identifier: GPL-2.0
#
# Out-of-tree build of rust_kprobe.ko and rust_kretprobe.ko against any Rust-enabled kernel:
#     make KDIR=<kernel build tree> LLVM=1
# and the project's VM tooling (a kernel of its own, QEMU):
#     make demo | make check | make bench | make help

KDIR ?= /lib/modules/$(shell uname -r)/build
LLVM ?= 1
ARCH ?= x86_64
export ARCH DEBUG ARCHES

.PHONY: modules clean help setup demo check bench fmt
modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(LLVM) modules

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(LLVM) clean 2>/dev/null || true
	rm -rf build target

help:
	@echo "make KDIR=<dir> LLVM=1   build rust_kprobe.ko and rust_kretprobe.ko against a Rust-enabled kernel"
	@echo "make setup               install what is missing (Debian packages, rust-src, musl targets, bindgen)"
	@echo "make demo [ARCH=arm64] [DEBUG=1]"
	@echo "                         build the project's kernel (cached), the modules, boot QEMU, show the log"
	@echo "make check               host unit tests + VM tests on x86_64 and arm64 (ARCHES=x86_64 for one)"
	@echo "make check DEBUG=1 ARCHES=x86_64"
	@echo "                         the VM tests on the debug kernel (KASAN, lockdep, kmemleak, ...)"
	@echo "make fmt                 format the Rust (modules: the kernel's .rustfmt.toml)"
	@echo "make bench               per-hit cost, Rust vs C vs empty probe (build/bench/results.json)"
	@echo "make clean               remove build outputs"

SETUP_ARCHES = $(if $(ARCHES),$(ARCHES),x86_64 arm64)
setup:
	@ARCHES="$(SETUP_ARCHES)" ./scripts/setup.sh

demo:
	@ARCHES="$(ARCH)" ./scripts/setup.sh
	@cargo xtask demo

check: setup
	@cargo xtask check

bench: 
	@ARCHES="x86_64" ./scripts/setup.sh
	@cargo xtask bench

fmt:
	rustfmt --edition 2021 --config-path $(HOME)/.cache/rust-kprobes/src/current/.rustfmt.toml rust_kprobe.rs rust_kretprobe.rs kprobes/*.rs
	cargo fmt
