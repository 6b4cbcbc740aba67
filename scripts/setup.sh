#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine: installs only what is missing, then checks
# that each kernel's build accepts the Rust toolchain. Used by `make setup` (and demo/check/bench).
#   ARCHES="x86_64 arm64"   guest architectures (QEMU, busybox, musl targets)
#   KERNELS="6.12 7.3"      kernel sources to prepare (6.12: bookworm's linux-source-6.12, built
#                           with clang 14; 7.3: trixie-backports' linux-source-7.3, clang 19;
#                           debian: Debian 13's own 7.3 kernels, scripts/debian.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

BINDGEN_VERSION=0.73.2
ARCHES=${ARCHES:-x86_64}
KERNELS=${KERNELS:-6.12}
log=/tmp/rust-kprobes-setup.log
quiet() { "$@" >"$log" 2>&1 || { echo "setup: '$*' failed; see $log" >&2; tail -5 "$log" >&2; exit 1; }; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
cache=${RUST_KPROBES_CACHE:-$HOME/.cache/rust-kprobes}

# Both LLVMs: 14 (bookworm's default, builds 6.12 as it always has) and 19 (7.3 needs >= 17.0.1).
# Having both is also what proves the module's bindgen run uses the kernel's own libclang.
pkgs=(linux-source-6.12 clang lld llvm libclang-dev clang-19 lld-19 llvm-19 libclang-19-dev
      flex bison bc libelf-dev libssl-dev openssl cpio xz-utils make gcc python3 kmod dkms)
missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  quiet sudo_ apt-get update
  quiet sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# QEMU >= 8.1 from bookworm-backports: older TCG can run a translated block that still holds a
# removed int3 on another vCPU (fixed upstream by deba78709a, "accel/tcg: Always lock pages
# before translation"). The backports suite is added the standard Debian way if missing; only the
# QEMU packages are taken from it (-t).
qemu_pkgs=(qemu-system-x86)
case " $ARCHES " in *" arm64 "*) qemu_pkgs+=(qemu-system-arm) ;; esac
qemu_ok() {
  for p in "${qemu_pkgs[@]}"; do
    v=$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null) || return 1
    case "$v" in "install ok installed "*) ;; *) return 1 ;; esac
    dpkg --compare-versions "${v##* }" ge 1:8.1 || return 1
  done
}
if ! qemu_ok; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    . "$here/apt-mirror.sh"
    echo "setup: adding bookworm-backports ($rk_mirror) to apt's sources (for QEMU >= 8.1)"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$rk_mirror" |
      sudo_ tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
  fi
  echo "setup: installing ${qemu_pkgs[*]} from bookworm-backports"
  quiet sudo_ apt-get update
  quiet sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    -t bookworm-backports "${qemu_pkgs[@]}"
fi

# busybox for the guests: the static binary is taken out of the .deb of each guest architecture,
# so an arm64 busybox needs no multiarch install (only the package lists).
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

# linux-source-7.3 is in trixie-backports only. It is fetched with apt's own tools and a private
# sources list, lists and cache under $cache/apt, so the machine's sources are not changed for it;
# apt checks the Release signature (Debian's archive keyring) and the .deb's hash.
fetch_73() {
  local d="$cache/apt" o
  . "$here/apt-mirror.sh"
  mkdir -p "$d/lists/partial" "$d/archives/partial" "$d/deb"
  printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie-backports main\n' "$rk_mirror" >"$d/sources.list"
  o=(-o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$d/lists" -o Dir::Cache="$d" -o Dir::Cache::Archives="$d/archives"
     -o APT::Architecture=amd64 -o Debug::NoLocking=1)
  quiet apt-get "${o[@]}" update
  (cd "$d/deb" && rm -f linux-source-7.3_*.deb && quiet apt-get "${o[@]}" download linux-source-7.3)
  echo "$d/deb/$(cd "$d/deb" && ls linux-source-7.3_*.deb | head -1)"
}

# PLUGIN=1 (`make bench`): what its QEMU plugin (bench/plugin/rk_insns.c) is built with: glib's
# headers and the plugin API header of the QEMU installed here, taken out of Debian's source
# package of that QEMU version (the upstream tarball is the same for every Debian revision;
# apt fetches it by a private deb-src list and checks its hash against the signed Sources).
fetch_qemu_header() {
  local d="$cache/apt-src" o qver up dir suite
  qver=$(dpkg-query -W -f='${Version}' qemu-system-common)
  up=${qver#*:}; up=${up%-*}
  dir="$cache/src/qemu-$up"
  [ -f "$dir/include/qemu/qemu-plugin.h" ] && return 0
  . "$here/apt-mirror.sh"
  echo "setup: fetching the source of QEMU $up for its plugin header (private apt lists in $d)"
  mkdir -p "$d/lists/partial" "$d/archives/partial" "$d/src"
  for suite in trixie bookworm-backports; do
    printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "$rk_mirror" "$suite"
  done >"$d/sources.list"
  o=(-o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$d/lists" -o Dir::Cache="$d" -o Dir::Cache::Archives="$d/archives"
     -o Debug::NoLocking=1)
  quiet apt-get "${o[@]}" update
  # Any revision of the version carries the tarball; its .dsc may be gone (a 404), the tarball not.
  (cd "$d/src" && apt-get "${o[@]}" source --download-only "qemu=$qver" >"$log" 2>&1 || true)
  [ -f "$d/src/qemu_$up.orig.tar.xz" ] ||
    (cd "$d/src" && apt-get "${o[@]}" source --download-only qemu >"$log" 2>&1 || true)
  [ -f "$d/src/qemu_$up.orig.tar.xz" ] || {
    echo "setup: no qemu_$up.orig.tar.xz in Debian's sources (trixie, bookworm-backports); see $log" >&2; exit 1; }
  mkdir -p "$dir"
  tar -xJf "$d/src/qemu_$up.orig.tar.xz" -C "$dir" --strip-components=1 --wildcards '*/include/qemu/qemu-plugin.h'
  rm -f "$d/src/"*.orig.tar.xz
}
# PLUGIN=1 also builds the bench's eBPF loader (bpfload, on libbpf-rs): a static glibc binary
# that links Debian's libelf.a and libz.a (libelf-dev, zlib1g-dev) of the guest's arch. For arm64
# guests: the cross C compiler and glibc, rustup's aarch64-unknown-linux-gnu target, and arm64's
# libelf-dev and zlib1g-dev unpacked into $cache/sysroot/arm64 (no arm64 package is installed).
arm64_sysroot() {
  local root="$cache/sysroot/arm64" tmp p
  [ -f "$root/usr/lib/aarch64-linux-gnu/libelf.a" ] && [ -f "$root/usr/lib/aarch64-linux-gnu/libz.a" ] && return 0
  echo "setup: fetching libelf-dev:arm64 and zlib1g-dev:arm64 for bpfload (into $root)"
  tmp=$(mktemp -d)
  (cd "$tmp" && quiet apt-get download libelf-dev:arm64 zlib1g-dev:arm64) ||
    { quiet sudo_ apt-get update; (cd "$tmp" && quiet apt-get download libelf-dev:arm64 zlib1g-dev:arm64); }
  mkdir -p "$root"
  for p in "$tmp"/*.deb; do dpkg-deb -x "$p" "$root"; done
  rm -rf "$tmp"
}
if [ "${PLUGIN:-0}" = 1 ]; then
  plugin_pkgs=(libglib2.0-dev pkg-config libelf-dev zlib1g-dev)
  case " $ARCHES " in *" arm64 "*) plugin_pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross) ;; esac
  for p in "${plugin_pkgs[@]}"; do
    installed "$p" || { echo "setup: installing $p"; quiet sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$p"; }
  done
  fetch_qemu_header
  case " $ARCHES " in *" arm64 "*)
    rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu ||
      { echo "setup: rustup target add aarch64-unknown-linux-gnu"; quiet rustup target add aarch64-unknown-linux-gnu; }
    arm64_sysroot ;;
  esac
fi

for k in $KERNELS; do
  case $k in
    debian) ARCHES="$ARCHES" "$here/debian.sh" | sed 's/^/setup: /'; continue ;;
    6.12)
      tarball=/usr/src/linux-source-6.12.tar.xz
      [ -f "$tarball" ] || { echo "setup: $tarball missing (apt-get install linux-source-6.12)" >&2; exit 1; }
      ver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
      llvm=1 ;;
    7.3)
      ver=$(cat "$cache/src/7.3.version" 2>/dev/null || true)
      if [ -z "$ver" ] || [ ! -f "$cache/src/linux-$ver/.unpacked" ]; then
        echo "setup: fetching linux-source-7.3 from trixie-backports (private apt lists in $cache/apt)"
        deb=$(fetch_73)
        ver=$(dpkg-deb -f "$deb" Version)
        tmp=$(mktemp -d)
        dpkg-deb -x "$deb" "$tmp"
        tarball=$(ls "$tmp"/usr/src/linux-source-7.3.tar.xz)
      fi
      llvm=-19 ;;
    *) echo "setup: unknown KERNEL=$k (6.12, 7.3 or debian)" >&2; exit 1 ;;
  esac
  src="$cache/src/linux-$ver"
  if [ ! -f "$src/.unpacked" ]; then
    echo "setup: unpacking linux-source-$k $ver"
    rm -rf "$src"; mkdir -p "$src"
    tar -xJf "$tarball" -C "$src" --strip-components=1
    touch "$src/.unpacked"
  fi
  [ -n "${tmp:-}" ] && { rm -rf "$tmp"; tmp=; }
  echo "$ver" >"$cache/src/$k.version"
  ln -sfn "$src" "$cache/src/$k"
  # The check the kernel itself makes of the Rust toolchain, with the libclang of that LLVM.
  libclang=$(dirname "$(dirname "$(clang${llvm#1} -print-resource-dir)")")
  if ! out=$(LIBCLANG_PATH=$libclang make -s -C "$src" LLVM=$llvm rustavailable 2>&1); then
    echo "setup: 'make LLVM=$llvm rustavailable' failed for $k: $(echo "$out" | grep -m1 -i -E 'error|not|\*\*\*' || echo "$out" | head -1)" >&2
    exit 1
  fi
  echo "setup: ok (kernel $k: source $ver, $(clang${llvm#1} --version | head -1 | sed 's/.*version \([0-9.]*\).*/clang \1/'))"
done
echo "setup: ok ($(rustc --version | cut -d' ' -f1-2), bindgen $BINDGEN_VERSION, $(qemu-system-x86_64 --version | head -1 | sed 's/.*version \([0-9.]*\).*/QEMU \1/'))"
