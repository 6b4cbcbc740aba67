#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine: installs only what is missing, then checks
# that the kernel build accepts the Rust toolchain. Used by `make setup` (and by demo/check).
set -euo pipefail

BINDGEN_VERSION=0.73.2
ARCHES=${ARCHES:-x86_64}        # space-separated: x86_64 arm64
quiet() { "$@" >/tmp/rust-kprobes-setup.log 2>&1 || { echo "setup: '$*' failed; see /tmp/rust-kprobes-setup.log" >&2; tail -5 /tmp/rust-kprobes-setup.log >&2; exit 1; }; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

pkgs=(linux-source-6.12 clang lld llvm libclang-dev flex bison bc libelf-dev libssl-dev cpio
      xz-utils make gcc python3 qemu-system-x86 kmod)
case " $ARCHES " in *" arm64 "*) pkgs+=(qemu-system-arm) ;; esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  quiet sudo_ apt-get update
  quiet sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# busybox for the guests: the static binary is taken out of the .deb of each guest architecture,
# so an arm64 busybox needs no multiarch install (only the package lists).
cache=${RUST_KPROBES_CACHE:-$HOME/.cache/rust-kprobes}
for a in $ARCHES; do
  deb_arch=$a; [ "$a" = x86_64 ] && deb_arch=amd64
  bb="$cache/busybox/$deb_arch/bin/busybox"
  [ -x "$bb" ] && continue
  if [ "$deb_arch" != amd64 ] && ! dpkg --print-foreign-architectures | grep -qx "$deb_arch"; then
    sudo_ dpkg --add-architecture "$deb_arch"
    quiet sudo_ apt-get update
  fi
  echo "setup: fetching busybox-static:$deb_arch"
  tmp=$(mktemp -d)
  (cd "$tmp" && quiet apt-get download "busybox-static:$deb_arch") || { quiet sudo_ apt-get update; (cd "$tmp" && quiet apt-get download "busybox-static:$deb_arch"); }
  mkdir -p "$cache/busybox/$deb_arch"
  dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/x"
  install -D -m755 "$tmp/x/bin/busybox" "$bb"
  rm -rf "$tmp"
done

# Rust: the kernel needs rust-src; the load program is a static musl binary per guest arch.
export PATH="$HOME/.cargo/bin:$PATH"
command -v rustup >/dev/null || { echo "setup: rustup not found; install Rust with rustup first (https://rustup.rs)" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^rust-src' || { echo "setup: rustup component add rust-src"; quiet rustup component add rust-src; }
for a in $ARCHES; do
  t="$( [ "$a" = arm64 ] && echo aarch64 || echo x86_64 )-unknown-linux-musl"
  rustup target list --installed | grep -qx "$t" || { echo "setup: rustup target add $t"; quiet rustup target add "$t"; }
done
if ! bindgen --version 2>/dev/null | grep -q " $BINDGEN_VERSION\$"; then
  echo "setup: cargo install bindgen-cli@$BINDGEN_VERSION (about 2 minutes)"
  quiet cargo install --locked bindgen-cli --version "$BINDGEN_VERSION"
fi

# Kernel source: Debian ships a tarball; unpack it once into the cache.
tarball=$(ls /usr/src/linux-source-6.12.tar.xz 2>/dev/null || true)
[ -n "$tarball" ] || { echo "setup: /usr/src/linux-source-6.12.tar.xz missing (apt-get install linux-source-6.12)" >&2; exit 1; }
ver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
src="$cache/src/linux-$ver"
if [ ! -f "$src/.unpacked" ]; then
  echo "setup: unpacking linux-source-6.12 $ver"
  rm -rf "$src"; mkdir -p "$src"
  tar -xJf "$tarball" -C "$src" --strip-components=1
  touch "$src/.unpacked"
fi
ln -sfn "$src" "$cache/src/current"

# The check the kernel itself makes of the Rust toolchain.
if ! out=$(make -s -C "$src" LLVM=1 rustavailable 2>&1); then
  echo "setup: 'make LLVM=1 rustavailable' failed: $(echo "$out" | grep -m1 -i -E 'error|not|\*\*\*' || echo "$out" | head -1)" >&2
  exit 1
fi
echo "setup: ok (kernel source $ver, $(rustc --version | cut -d' ' -f1-2), bindgen $BINDGEN_VERSION, $(clang --version | head -1 | sed 's/.*version \([0-9.]*\).*/clang \1/'))"
