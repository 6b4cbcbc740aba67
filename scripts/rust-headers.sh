#!/usr/bin/env bash
# rust-headers.sh <kernel build dir>: prints a build directory for out-of-tree Rust modules.
#
# A distribution's headers tree (Debian's /usr/src/linux-headers-<release>) of a kernel with
# CONFIG_RUST=y lacks the Rust metadata a Rust module builds against (rust/*.rmeta,
# libmacros.so, the target spec). This regenerates it once per release, in
# $cache/headers/<release>/, the way Debian built it: the same Debian version's
# linux-source-<x.y>, the headers' .config and .kernelvariables (Debian's CC and
# CROSS_COMPILE), `make modules_prepare` with the rustc and bindgen the .config names; then the
# headers' own Module.symvers and vmlinux (for module BTF). It refuses a toolchain other than the
# kernel's, and a .config that syncconfig changed. Kbuild checks the result once more: every
# Rust symbol a module imports must be in Module.symvers (see Kbuild).
#
# Any other tree (a kernel built in place, or headers that already have the metadata) is
# printed as it is. Progress and errors go to stderr.
set -euo pipefail
die() { echo "rust-kprobes: $*" >&2; exit 1; }
[ $# = 1 ] || die "usage: $0 <kernel build dir>"
kdir=$1
hdr=$(cd "$1" 2>/dev/null && pwd -P) || die "KDIR=$1 does not exist (install the kernel's headers package)"
cfg=$hdr/.config
[ -f "$cfg" ] || die "$hdr has no .config: not a kernel build directory"
if ! grep -qx 'CONFIG_RUST=y' "$cfg" || [ -f "$hdr/rust/libkernel.rmeta" ]; then
  echo "$hdr"
  exit 0
fi
rel=$(cat "$hdr/include/config/kernel.release")
val() { sed -n "s/^$1=\"\\(.*\\)\"\$/\\1/p" "$cfg"; }

# The kernel's own tools, exactly: Rust has no stable ABI, and the crates' symbol names hash the
# compiler version. A tool of another version first on PATH can hide the right one (rustup's
# rustc and a cargo-installed bindgen in ~/.cargo/bin before Debian's in /usr/bin): then the
# message names the directory to put first, not a package that is already installed.
# tool_is <program> <version text>: the first <program> on PATH, or else in /usr/bin, whose
# `--version` prints exactly that; nothing if none does.
tool_is() {
  local p
  for p in $(type -ap "$1") "/usr/bin/$1"; do
    [ -x "$p" ] && [ "$("$p" --version 2>/dev/null)" = "$2" ] && { echo "$p"; return 0; }
  done
  return 0
}
# check_tool <program> <the kernel's version text> <Debian package>
check_tool() {
  local have alt
  have=$("$1" --version 2>/dev/null || echo "no $1")
  [ "$2" = "$have" ] && return
  alt=$(tool_is "$1" "$2")
  [ -n "$alt" ] && die "$rel was built with $2, but the first $1 on PATH ($(command -v "$1")) is '$have'; $alt is the kernel's. Put $(dirname "$alt") first on PATH: PATH=$(dirname "$alt"):\$PATH make KDIR=$kdir"
  if [ -x "/usr/bin/$1" ]; then
    local usr=
    [ "$(command -v "$1")" = "/usr/bin/$1" ] || usr="; /usr/bin/$1 is '$(/usr/bin/"$1" --version 2>/dev/null)'"
    die "$rel was built with $2; here $1 is '$have'$usr. Debian's is installed, but another version: upgrade it (apt install --only-upgrade $3), or build against a kernel built with this $1"
  fi
  die "$rel was built with $2; here $1 is '$have'. Install Debian's (Debian 13: apt install $3)"
}
check_tool rustc "$(val CONFIG_RUSTC_VERSION_TEXT)" "rustc rust-src bindgen"
[ -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library/core" ] || die "rust-src is missing (apt install rust-src)"
check_tool bindgen "$(val CONFIG_BINDGEN_VERSION_TEXT)" bindgen
cc=$(val CONFIG_CC_VERSION_TEXT); cc=${cc%% *}
# x86_64-linux-gnu-gcc-14 is Debian's gcc-14 on x86_64, aarch64-linux-gnu-gcc-14 elsewhere its
# gcc-14-aarch64-linux-gnu.
cc_pkg=${cc#*-linux-gnu-}
[ "${cc%-linux-gnu-*}" = "$(uname -m)" ] || cc_pkg=$cc_pkg-${cc%-gcc*}
command -v "$cc" >/dev/null || die "$rel was built with $cc, which is not installed (apt install $cc_pkg)"

# The source: Debian's linux-source-<x.y>, of the Debian version the headers were built from
# (UTS_VERSION names it: "... Debian 7.3.4-1~bpo13+1 (...)").
debver=$(sed -n 's/.* Debian \([^ ]*\) .*/\1/p' "$hdr/include/generated/utsversion.h" 2>/dev/null || true)
[ -n "$debver" ] || die "$hdr is not a Debian kernel's headers (no Debian version in include/generated/utsversion.h); build modules against the kernel's own build tree"
xy=$(echo "$rel" | cut -d. -f1-2)
tarball=/usr/src/linux-source-$xy.tar.xz
srcver=$(dpkg-query -W -f='${Version}' "linux-source-$xy" 2>/dev/null || true)
[ -f "$tarball" ] && [ "$srcver" = "$debver" ] ||
  die "the Rust metadata of $rel is rebuilt from its source: apt install linux-source-$xy=$debver (installed: ${srcver:-none})"

cache=${RUST_KPROBES_CACHE:-$HOME/.cache/rust-kprobes}/headers
out=$cache/$rel
key="$rel $debver $(rustc --version) $(bindgen --version) $(sha256sum <"$cfg" | cut -c1-16)"
# Under sudo (`sudo make modules_install`) HOME is root's: the metadata the invoking user's
# build made is used where it is ready, read-only (nothing is written into their home as root).
if [ -z "${RUST_KPROBES_CACHE:-}" ] && [ -n "${SUDO_USER:-}" ] && [ "$(id -u)" = 0 ]; then
  user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  theirs=$user_home/.cache/rust-kprobes/headers/$rel
  if [ -n "$user_home" ] && [ "$(cat "$theirs/.rk-ready" 2>/dev/null)" = "$key" ]; then
    echo "$theirs"
    exit 0
  fi
fi
if [ "$(cat "$out/.rk-ready" 2>/dev/null)" = "$key" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ "$(cat "$out/.rk-ready" 2>/dev/null)" != "$key" ]; then
  src=$cache/linux-source-$debver
  if [ ! -f "$src/.unpacked" ]; then
    echo "rust-kprobes: unpacking linux-source-$xy $debver into $src" >&2
    rm -rf "$src" && mkdir -p "$src"
    tar -xJf "$tarball" -C "$src" --strip-components=1
    touch "$src/.unpacked"
  fi
  echo "rust-kprobes: regenerating the Rust metadata of $rel in $out (make modules_prepare, about 5 minutes, once)" >&2
  rm -rf "$out" && mkdir -p "$out"
  cp "$cfg" "$hdr/.kernelvariables" "$out/"
  start=$(date +%s)
  make -C "$src" O="$out" -j"$(nproc)" modules_prepare >"$out/prepare.log" 2>&1 &
  pid=$!
  while kill -0 $pid 2>/dev/null; do
    sleep 30
    kill -0 $pid 2>/dev/null && echo "rust-kprobes: modules_prepare $rel: $(( $(date +%s) - start ))s, at: $(grep -E '^  [A-Z]' "$out/prepare.log" | tail -1 | awk '{print $NF}')" >&2
  done
  wait $pid || { tail -5 "$out/prepare.log" >&2; die "make modules_prepare failed for $rel; see $out/prepare.log"; }
  # syncconfig must not have changed a thing: another compiler or rustc would show up here.
  if ! diff -q <(grep -v '^#' "$cfg" | grep .) <(grep -v '^#' "$out/.config" | grep .) >/dev/null; then
    diff <(grep -v '^#' "$cfg" | grep .) <(grep -v '^#' "$out/.config" | grep .) | head -6 >&2
    die "modules_prepare changed $rel's .config (above): the tools here are not the ones Debian used"
  fi
  cmp -s "$hdr/include/generated/utsrelease.h" "$out/include/generated/utsrelease.h" ||
    die "the regenerated tree is not release $rel (include/generated/utsrelease.h)"
  for f in rust/libkernel.rmeta rust/libmacros.so; do
    [ -f "$out/$f" ] || die "modules_prepare made no $f for $rel; see $out/prepare.log"
  done
  cp "$hdr/Module.symvers" "$out/"
  [ -f "$hdr/vmlinux" ] && cp "$hdr/vmlinux" "$out/"
  echo "$key" >"$out/.rk-ready"
  echo "rust-kprobes: Rust metadata of $rel ready after $(( $(date +%s) - start ))s" >&2
fi
echo "$out"
