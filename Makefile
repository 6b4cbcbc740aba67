# SPDX-License-Identifier: GPL-2.0
#
# Out-of-tree build of rust_kprobe.ko and rust_kretprobe.ko against any Rust-enabled kernel:
#     make KDIR=<kernel build tree> LLVM=1
#     make KDIR=/usr/src/linux-headers-<release>     (Debian's own kernels: GCC, no LLVM=)
# and the project's VM tooling (a kernel of its own, QEMU):
#     make demo | make check | make bench | make help

KDIR ?= /lib/modules/$(shell uname -r)/build
LLVM ?= 1
# The host's architecture by default (Kbuild's names): the modules are built for the running
# kernel, and the harness boots guests of this architecture.
ARCH ?= $(patsubst aarch64,arm64,$(shell uname -m))
KERNEL ?= 6.12
export ARCH DEBUG HARDENED ARCHES KERNEL KERNELS

.PHONY: modules clean help setup demo check bench fmt kbuild-args modules_install dkms-add dkms-source deb rust-analyzer patches new

# Kbuild against KDIR. A distribution's headers lack the Rust metadata a Rust module builds
# against (Debian's /usr/src/linux-headers-<release>): scripts/rust-headers.sh regenerates it
# once, cached, and prints that tree (any other tree as it is); looked up when a recipe first
# needs it. A GCC-built kernel (Debian's) names its own CC and CROSS_COMPILE (its
# .kernelvariables), so LLVM is passed empty: an LLVM=1 given to this make would otherwise
# reach Kbuild through MAKEFLAGS.
rk_gcc = $(shell grep -qsx CONFIG_CC_IS_GCC=y '$(KDIR)/.config' && echo y)
rk_llvm = LLVM=$(if $(rk_gcc),,$(LLVM))
rk_tree = $(shell scripts/rust-headers.sh '$(KDIR)')
rk_kdir = $(eval rk_kdir := $(rk_tree))$(or $(rk_kdir),$(error \
	rust-kprobes: no tree to build against for KDIR=$(KDIR) (above)))
kbuild = $(MAKE) -C $(rk_kdir) M=$(CURDIR) $(rk_llvm)
ifneq ($(filter modules modules_install rust-analyzer,$(or $(MAKECMDGOALS),modules)),)
ifeq ($(origin LLVM)$(rk_gcc),command liney)
$(info rust-kprobes: note: LLVM=$(LLVM) ignored: $(KDIR) is a GCC-built kernel (CONFIG_CC_IS_GCC=y); its modules are built with its own GCC)
endif
endif

# The probe modules: every top-level <name>.rs that declares one (Kbuild finds them the same way).
rk_modules = $(basename $(notdir $(shell grep -ls '^kprobes::compat::rk_module!' $(CURDIR)/*.rs)))

modules:
	$(kbuild) modules

# A module of one's own: <NAME>.rs from template/probe.rs, a kprobe on SYMBOL.
new:
	@sh scripts/new-probe.sh '$(NAME)' '$(SYMBOL)'

# Both modules into $(INSTALL_MOD_PATH)/lib/modules/<release>/updates/, then depmod (Kbuild's
# own rule; INSTALL_MOD_PATH, INSTALL_MOD_DIR, INSTALL_MOD_STRIP as Kbuild takes them).
# A distribution kernel's CONFIG_MODULE_SIG_ALL names a build key only the distribution has:
# without that file Kbuild's sign-file only prints errors, so signing is left to the user (the
# README's "Secure Boot"), with one note. Without a System.map (headers have none) Kbuild skips
# depmod: it is run here.
rk_config = $(shell sed -n 's/^$(1)=//p' '$(KDIR)/.config' | tr -d '"')
rk_unsigned = $(if $(filter y,$(call rk_config,CONFIG_MODULE_SIG_ALL)),$(if $(wildcard \
	$(rk_kdir)/$(call rk_config,CONFIG_MODULE_SIG_KEY) $(call rk_config,CONFIG_MODULE_SIG_KEY)),,y))
modules_install:
	@for m in $(rk_modules); do test -f $$m.ko || exit 1; done || \
		{ echo "modules_install: build the modules first: make KDIR=$(KDIR)$(if $(rk_gcc),, LLVM=$(LLVM))" >&2; exit 1; }
	$(kbuild) $(if $(rk_unsigned),CONFIG_MODULE_SIG_ALL=) modules_install
	$(if $(rk_unsigned),@echo "rust-kprobes: note: modules installed unsigned (no $(call rk_config,CONFIG_MODULE_SIG_KEY) here); to sign them for Secure Boot see the README")
	$(if $(wildcard $(rk_kdir)/System.map),,depmod $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $(shell cat $(rk_kdir)/include/config/kernel.release))

# DKMS: the module sources (not the build products) into $(DKMS_SOURCETREE)/<name>-<version>,
# then `dkms add`; `dkms install <name>/<version>` builds and installs for a kernel.
# DKMS_FLAGS: more dkms options (--sourcetree, --dkmstree, ...).
DKMS_SOURCETREE ?= /usr/src
dkms_conf = $(shell sed -n 's/^$(1)="\(.*\)"/\1/p' $(CURDIR)/dkms.conf)
dkms_dir = $(DKMS_SOURCETREE)/$(call dkms_conf,PACKAGE_NAME)-$(call dkms_conf,PACKAGE_VERSION)
dkms-add:
	@$(MAKE) --no-print-directory dkms-source DKMS_DIR='$(dkms_dir)'
	dkms add $(call dkms_conf,PACKAGE_NAME)/$(call dkms_conf,PACKAGE_VERSION) \
		--sourcetree $(DKMS_SOURCETREE) $(DKMS_FLAGS)

# The DKMS source tree in DKMS_DIR, for `make dkms-add` and the Debian package (debian/rules)
# alike: the module sources, scripts/dkms-make and scripts/rust-headers.sh, and dkms.conf with
# one BUILT_MODULE_NAME/DEST_MODULE_LOCATION pair per probe module appended.
dkms_files = Kbuild $(addsuffix .rs,$(rk_modules)) helpers.c bindings_helper.h kprobes \
	scripts/dkms-make scripts/rust-headers.sh
dkms-source:
	$(if $(DKMS_DIR),,$(error dkms-source: give the directory: make dkms-source DKMS_DIR=<dir>))
	mkdir -p $(DKMS_DIR)
	cp -r --parents $(dkms_files) $(DKMS_DIR)/
	{ cat dkms.conf; i=0; for m in $(rk_modules); do \
		printf 'BUILT_MODULE_NAME[%d]="%s"\nDEST_MODULE_LOCATION[%d]="/updates/dkms"\n' $$i $$m $$i; \
		i=$$((i + 1)); done; } >$(DKMS_DIR)/dkms.conf

# The Debian package, build/deb/rust-kprobes-dkms_<version>_all.deb (debian/), built by
# dpkg-buildpackage in the Debian 13 environment from a copy of what it uses in build/deb/,
# then checked by lintian (scripts/deb.sh).
deb_src = build/deb/$(call dkms_conf,PACKAGE_NAME)-$(call dkms_conf,PACKAGE_VERSION)
deb:
	@rm -rf build/deb && mkdir -p $(deb_src)
	@cp -r --parents Makefile dkms.conf LICENSE debian man $(dkms_files) $(deb_src)/
	@bash scripts/deb.sh $(deb_src)

# The man pages, rust_kprobe(4) and rust_kretprobe(4), into $(DESTDIR)/usr/share/man/man4.
.PHONY: install-man
install-man:
	install -d $(DESTDIR)/usr/share/man/man4
	install -m 644 man/rust_kprobe.4 man/rust_kretprobe.4 $(DESTDIR)/usr/share/man/man4/

# rust-project.json for rust-analyzer: the kernel's own generator (scripts/generate_rust_analyzer.py,
# through its rust-analyzer target), then only the two module crates kept among the external
# ones, with the cfgs Kbuild passes them. Builds in place first: the crates need rk_bindings.rs
# and their rustc command lines. `src=` is what 7.3's Makefile passes itself: 6.12's looks for
# rust/Makefile in the object tree. LIBCLANG_PATH: that of the kernel's clang, as in Kbuild, or the
# kernel's toolchain check warns that bindgen's (the newest) libclang is not clang's version;
# a GCC-built kernel has no clang of its own: bindgen's default libclang.
rk_clang = $(if $(filter %/,$(LLVM)),$(LLVM)clang,$(if $(filter -%,$(LLVM)),clang$(LLVM),clang))
rk_libclang = LIBCLANG_PATH=$${LIBCLANG_PATH:-$$(dirname "$$(dirname "$$($(rk_clang) -print-resource-dir)")")}
rust-analyzer: modules
	$(if $(rk_gcc),,$(rk_libclang) )$(kbuild) rust-analyzer 'src=$$(srctree)/rust'
	python3 scripts/rust-project.py $(CURDIR)

# Kbuild's clean reads the kernel's rust/Makefile too, which headers lack: the tree a build
# uses, else KDIR; the `rm` runs in any case.
clean:
	$(MAKE) -C $(or $(rk_tree),$(KDIR)) M=$(CURDIR) $(rk_llvm) clean 2>/dev/null || true
	rm -rf build target rust-project.json

help:
	@echo "make KDIR=<dir> LLVM=1   build rust_kprobe.ko, rust_kretprobe.ko (and any module of make new) against"
	@echo "                         a Rust-enabled kernel"
	@echo "make new NAME=<name> SYMBOL=<function>"
	@echo "                         <name>.rs: a kprobe module of one's own, from template/probe.rs"
	@echo "make modules_install KDIR=<dir> LLVM=1 [INSTALL_MOD_PATH=<root>]"
	@echo "                         install the built modules for that kernel (then depmod)"
	@echo "make dkms-add            copy the module sources to /usr/src/rust-kprobes-<version>, dkms add"
	@echo "make deb                 build/deb/rust-kprobes-dkms_<version>_all.deb (in the Debian 13 environment), lintian"
	@echo "make rust-analyzer KDIR=<dir> LLVM=1"
	@echo "                         build in place, write rust-project.json for rust-analyzer"
	@echo "Needs root (or sudo): setup, demo, check, bench, modules_install, dkms-add, install-man."
	@echo "Takes long the first time: setup (~20 min), each kernel (12-21 min), check (~100 min cold, 45-60 warm)."
	@echo
	@echo "make setup               install what is missing (Debian packages, rust-src, musl targets, bindgen,"
	@echo "                         the Debian 13 environment for KERNEL=debian)"
	@echo "make demo [ARCH=arm64] [DEBUG=1|HARDENED=1] [KERNEL=7.3|debian]"
	@echo "                         build the project's kernel (cached) or take Debian's, the modules, boot QEMU, show the log"
	@echo "make check               host unit tests + VM tests on 6.12, 7.3 and Debian's 7.3, x86_64 and arm64"
	@echo "                         (KERNELS=\"7.3 debian\" or ARCHES=x86_64 narrow it)"
	@echo "make check DEBUG=1       the VM tests on the debug kernels, x86_64 (KASAN, lockdep, kmemleak, ...)"
	@echo "make check HARDENED=1    the VM tests on 7.3 hardened as production is (kCFI, signed modules only,"
	@echo "                         lockdown; arm64 shadow call stack, PAC, BTI): docs/testing.md"
	@echo "make -s kbuild-args [KERNEL=7.3|debian] [ARCH=arm64] [DEBUG=1]"
	@echo "                         make arguments for building against the project's kernel tree:"
	@echo "                         make \$$(make -s kbuild-args KERNEL=7.3)"
	@echo "make fmt                 format the Rust (modules: the kernel's .rustfmt.toml)"
	@echo "make bench [ARCH=arm64] [KERNEL=7.3|debian]"
	@echo "                         per-hit cost: Rust vs C vs kprobe_events vs eBPF vs no probe, in time"
	@echo "                         and exact instructions by component (a QEMU plugin; installs"
	@echo "                         libglib2.0-dev; build/bench/<flavor>/results.json, docs/bench/*.svg)"
	@echo "make patches             the layer and Rust twins of samples/kprobes/ as a patch series against"
	@echo "                         Linux 7.3 (build/patches/; checked by make check)"
	@echo "make clean               remove build outputs"

SETUP_ARCHES = $(if $(ARCHES),$(ARCHES),x86_64 arm64)
SETUP_KERNELS = $(if $(KERNELS),$(KERNELS),6.12 7.3 debian)
setup:
	@ARCHES="$(SETUP_ARCHES)" KERNELS="$(SETUP_KERNELS)" ./scripts/setup.sh

demo:
	@ARCHES="$(ARCH)" KERNELS="$(KERNEL)" ./scripts/setup.sh
	@cargo xtask demo

check: setup
	@cargo xtask check

bench:
	@PLUGIN=1 ARCHES="$(ARCH)" KERNELS="$(KERNEL)" ./scripts/setup.sh
	@cargo xtask bench

# The layer as an upstream series against 7.3: build/patches/*.patch (see upstream/).
patches:
	@ARCHES="$(ARCH)" KERNELS=7.3 ./scripts/setup.sh
	@cargo xtask patches

# The last line is `KDIR=<the cached kernel tree> LLVM=<its LLVM>` (the kernel is built first
# if needed; progress goes to stderr).
kbuild-args:
	@ARCHES="$(ARCH)" KERNELS="$(KERNEL)" ./scripts/setup.sh >&2
	@cargo xtask kbuild-args

fmt:
	rustfmt --edition 2021 --config-path $(HOME)/.cache/rust-kprobes/src/6.12/.rustfmt.toml rust_kprobe.rs rust_kretprobe.rs kprobes/*.rs kprobes/in_tree/*.rs
	cargo fmt
