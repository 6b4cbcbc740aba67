#!/usr/bin/env bash
# KERNEL=debian: Debian 13's own 7.3 kernels (trixie-backports), built by Debian with GCC 14,
# rustc 1.85.1 and bindgen 0.71.1. Modules for them must be built with exactly those tools, so
# they are built in a Debian 13 environment:
#   - the host itself, when it is Debian 13 with the packages below (nothing is made);
#   - otherwise a trixie root made with debootstrap, cached in $cache/debian/root
#     (trixie + trixie-backports, the machine's own mirror and proxy, Debian's keyring).
# In it: rustc, rust-src, bindgen, rust-clippy, gcc-14 (and the arm64 cross gcc-14, with the
# 32-bit ARM gcc the arm64 kernel's compat vDSO needs, and an arm64 libc: CC_CAN_LINK),
# linux-source-7.3 and Debian's linux-headers of the current 7.3 kernel, all of one version;
# outside it, in $cache/debian/<release>/, the unsigned image of that kernel, for the VM.
# Then, per architecture, the Rust metadata the headers lack (scripts/rust-headers.sh).
#   ARCHES="x86_64 arm64"
# Prints, as its last line, `debian: ok (<release>, ...)`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
ARCHES=${ARCHES:-x86_64}
cache=${RUST_KPROBES_CACHE:-$HOME/.cache/rust-kprobes}
log=/tmp/rust-kprobes-debian.log
quiet() { "$@" >>"$log" 2>&1 || { echo "debian: '$*' failed; see $log" >&2; tail -5 "$log" >&2; exit 1; }; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
: >"$log"

# The packages of the build environment (amd64 names; the arm64 headers are unpacked beside).
pkgs=(rustc rust-src bindgen rust-clippy rustfmt gcc-14 gcc-14-aarch64-linux-gnu
      binutils-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf make flex bison bc libelf-dev libssl-dev python3 kmod cpio
      xz-utils dwarves dkms openssl)

host_is_trixie() {
  [ "$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")" = trixie ]
}

if host_is_trixie; then
  root=/
  run() { "$@"; }
else
  root=$cache/debian/root
  run() { "$here/in-debian" "$@"; }
  if [ ! -f "$root/.rk-ready" ]; then
    command -v debootstrap >/dev/null || {
      echo "debian: installing debootstrap"
      quiet sudo_ apt-get update
      quiet sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
    }
    . "$here/apt-mirror.sh"
    echo "debian: making a Debian 13 (trixie) root in $root with debootstrap from $rk_mirror (about 3 minutes)"
    rm -rf "$root"; mkdir -p "$root"
    quiet sudo_ env ${rk_apt_proxy:+http_proxy=$rk_apt_proxy} debootstrap --variant=minbase \
      --keyring=/usr/share/keyrings/debian-archive-keyring.gpg trixie "$root" "$rk_mirror"
    {
      printf 'Types: deb\nURIs: %s\nSuites: trixie trixie-updates trixie-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$rk_mirror"
      [ -n "$rk_security_mirror" ] &&
        printf '\nTypes: deb\nURIs: %s\nSuites: trixie-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$rk_security_mirror"
    } >"$root/etc/apt/sources.list.d/debian.sources"
    rm -f "$root/etc/apt/sources.list"
    [ -n "$rk_apt_proxy" ] && echo "Acquire::http::Proxy \"$rk_apt_proxy\";" >"$root/etc/apt/apt.conf.d/80proxy"
    echo "debian: installing rustc, bindgen, gcc-14 and the kernel build tools in the root"
    quiet run apt-get update
    quiet run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
    touch "$root/.rk-ready"
  fi
fi

# The current 7.3 kernel of trixie-backports, and one version for its source and headers.
missing=()
for p in "${pkgs[@]}"; do run dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$root" = / ] || { echo "debian: the root lacks ${missing[*]}"; }
  echo "debian: installing ${missing[*]}"
  quiet run apt-get update
  quiet run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
abi=$(run apt-cache depends -t trixie-backports linux-headers-amd64 2>/dev/null |
  sed -n 's/.*Depends: linux-headers-\(7\.3\.[^ ]*\)-amd64$/\1/p' | head -1)
if [ -z "$abi" ]; then
  quiet run apt-get update
  abi=$(run apt-cache depends -t trixie-backports linux-headers-amd64 2>/dev/null |
    sed -n 's/.*Depends: linux-headers-\(7\.3\.[^ ]*\)-amd64$/\1/p' | head -1)
fi
[ -n "$abi" ] || { echo "debian: trixie-backports has no 7.3 linux-headers-amd64 (apt-cache depends -t trixie-backports linux-headers-amd64)" >&2; exit 1; }
ver=$(run apt-cache show "linux-headers-$abi-amd64" | sed -n 's/^Version: //p' | head -1)
mkdir -p "$cache/debian" && echo "$abi" >"$cache/debian/release"
have=$(run dpkg-query -W -f='${Version} ' linux-source-7.3 "linux-headers-$abi-amd64" 2>/dev/null || true)
if [ "$have" != "$ver $ver " ]; then
  echo "debian: installing linux-source-7.3 and linux-headers-$abi-amd64 ($ver)"
  quiet run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    -t trixie-backports "linux-source-7.3=$ver" "linux-headers-$abi-amd64=$ver"
fi

# The arm64 headers, and both unsigned images, are unpacked from their packages (an amd64
# environment cannot install arm64 packages; the headers' scripts are the amd64 linux-kbuild's).
img_dir=$cache/debian/$abi
mkdir -p "$img_dir"
fetch_deb() { # package version destination
  local tmp; tmp=$(mktemp -d "${root%/}/tmp/rk-deb.XXXXXX")
  quiet run sh -c "cd '${tmp#"${root%/}"}' && apt-get download '$1=$2'"
  dpkg-deb -x "$tmp"/*.deb "$3"
  rm -rf "$tmp"
}
case " $ARCHES " in *" arm64 "*)
  if ! run dpkg --print-foreign-architectures | grep -qx arm64; then
    run dpkg --add-architecture arm64
    quiet run apt-get update
  fi ;;
esac
for a in $ARCHES; do
  d=amd64; [ "$a" = arm64 ] && d=arm64
  rel=$abi-$d
  if [ "$d" = arm64 ] && [ ! -f "$root/usr/src/linux-headers-$rel/.config" ]; then
    echo "debian: unpacking linux-headers-$rel ($ver)"
    fetch_deb "linux-headers-$rel" "$ver" "$root"
  fi
  if [ ! -f "$img_dir/$d/vmlinuz" ]; then
    echo "debian: fetching linux-binary-unsigned-$rel ($ver) for the VM"
    tmp=$(mktemp -d)
    fetch_deb "linux-binary-unsigned-$rel" "$ver" "$tmp"
    mkdir -p "$img_dir/$d"
    cp "$tmp/usr/lib/modules/$rel/vmlinuz.unsigned" "$img_dir/$d/vmlinuz"
    rm -rf "$tmp"
  fi
  # The Rust metadata (a few minutes the first time, then cached).
  run "$repo/scripts/rust-headers.sh" "/usr/src/linux-headers-$rel" >/dev/null
done
echo "debian: ok ($abi, $ver; $(run rustc --version | cut -d' ' -f1-2), $(run bindgen --version), $(run x86_64-linux-gnu-gcc-14 --version | head -1 | sed 's/.*) //;s/^/gcc /'))"
