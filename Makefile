# SPDX-License-Identifier: GPL-2.0
#
# Out-of-tree build of rust_kprobe.ko and rust_kretprobe.ko against any Rust-enabled kernel:
#     make KDIR=<kernel build tree> LLVM=1
# and the project's VM tooling (a kernel of its own, QEMU):
#     make demo | make check | make bench | make help

KDIR ?= /lib/modules/$(shell uname -r)/build
LLVM ?= 1
ARCH ?= x86_64
KERNEL ?= 6.12
export ARCH DEBUG ARCHES KERNEL KERNELS

.PHONY: modules clean help setup demo check bench fmt kbuild-args
modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(LLVM) modules

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(LLVM) clean 2>/dev/null || true
	rm -rf build target

help:
	@echo "make KDIR=<dir> LLVM=1   build rust_kprobe.ko and rust_kretprobe.ko against a Rust-enabled kernel"
	@echo "make setup               install what is missing (Debian packages, rust-src, musl targets, bindgen)"
	@echo "make demo [ARCH=arm64] [DEBUG=1] [KERNEL=7.3]"
	@echo "                         build the project's kernel (cached), the modules, boot QEMU, show the log"
	@echo "make check               host unit tests + VM tests on 6.12 and 7.3, x86_64 and arm64"
	@echo "                         (KERNELS=7.3 or ARCHES=x86_64 narrow it)"
	@echo "make check DEBUG=1       the VM tests on the debug kernels, x86_64 (KASAN, lockdep, kmemleak, ...)"
	@echo "make -s kbuild-args [KERNEL=7.3] [ARCH=arm64] [DEBUG=1]"
	@echo "                         make arguments for building against the project's kernel tree:"
	@echo "                         make \$$(make -s kbuild-args KERNEL=7.3)"
	@echo "make fmt                 format the Rust (modules: the kernel's .rustfmt.toml)"
	@echo "make bench [ARCH=arm64] [KERNEL=7.3]"
	@echo "                         per-hit cost: Rust vs C vs kprobe_events vs eBPF vs no probe"
	@echo "                         (build/bench/<flavor>/results.json)"
	@echo "make clean               remove build outputs"

SETUP_ARCHES = $(if $(ARCHES),$(ARCHES),x86_64 arm64)
SETUP_KERNELS = $(if $(KERNELS),$(KERNELS),6.12 7.3)
setup:
	@ARCHES="$(SETUP_ARCHES)" KERNELS="$(SETUP_KERNELS)" ./scripts/setup.sh

demo:
	@ARCHES="$(ARCH)" KERNELS="$(KERNEL)" ./scripts/setup.sh
	@cargo xtask demo

check: setup
	@cargo xtask check

bench:
	@ARCHES="$(ARCH)" KERNELS="$(KERNEL)" ./scripts/setup.sh
	@cargo xtask bench

# The last line is `KDIR=<the cached kernel tree> LLVM=<its LLVM>` (the kernel is built first
# if needed; progress goes to stderr).
kbuild-args:
	@ARCHES="$(ARCH)" KERNELS="$(KERNEL)" ./scripts/setup.sh >&2
	@cargo xtask kbuild-args

fmt:
	rustfmt --edition 2021 --config-path $(HOME)/.cache/rust-kprobes/src/6.12/.rustfmt.toml rust_kprobe.rs rust_kretprobe.rs kprobes/*.rs
	cargo fmt
