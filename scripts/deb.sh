#!/usr/bin/env bash
# deb.sh <source dir under build/deb>: `make deb`'s build. Runs dpkg-buildpackage -b in the
# Debian 13 environment (the host if it is Debian 13, else the root of scripts/debian.sh,
# through scripts/in-debian) on the copy `make deb` made, so that nothing is written into the
# checkout but build/deb/; prints the .deb and runs lintian on it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$1" && pwd)
out=$(dirname "$src")
name=$(sed -n 's/^PACKAGE_NAME="\(.*\)"/\1/p' "$src/dkms.conf")
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$src/dkms.conf")
deb=$out/${name}-dkms_${ver}_all.deb
log=$out/build.log
tools=(build-essential debhelper dh-dkms lintian)

if [ "$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")" = trixie ]; then
  run() { "$@"; }
  root=
else
  run() { "$here/in-debian" "$@"; }
  root=y
fi
missing=()
for p in "${tools[@]}"; do
  run dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ -n "$root" ] || { echo "deb: missing ${missing[*]}: sudo apt install ${missing[*]}" >&2; exit 1; }
  echo "deb: installing ${missing[*]} in the Debian 13 root"
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1 ||
    { tail -5 "$log" >&2; echo "deb: apt-get install ${missing[*]} failed; see $log" >&2; exit 1; }
fi

# As root in the Debian 13 root: give build/deb back to whoever ran make.
owner="$(id -u):$(id -g)"
done_() { [ -z "$root" ] || run chown -R "$owner" "$out"; }
trap done_ EXIT
echo "deb: dpkg-buildpackage -b in $src"
(cd "$src" && run dpkg-buildpackage -b -us -uc) >"$log" 2>&1 ||
  { tail -15 "$log" >&2; echo "deb: dpkg-buildpackage failed; see $log" >&2; exit 1; }
[ -f "$deb" ] || { echo "deb: no $deb; see $log" >&2; exit 1; }
echo "deb: $deb"
# lintian, with the informational and pedantic tags too; not as root (in the Debian 13 root,
# as nobody). debian/*.lintian-overrides explains each tag it overrides.
# nobody may not enter the checkout (a clone in a 0700 directory, such as mktemp -d's), so it
# lints a copy in the root's /tmp, from /.
lint=(lintian -I --pedantic)
target=$deb
if [ -n "$root" ]; then
  droot=${RUST_KPROBES_CACHE:-$HOME/.cache/rust-kprobes}/debian/root
  copy=$(mktemp -d "$droot/tmp/lint.XXXXXX")
  trap 'rm -rf "$copy"' EXIT
  chmod 755 "$copy" && cp "$deb" "$copy/"
  target=/tmp/$(basename "$copy")/$(basename "$deb")
  lint=(setpriv --reuid=nobody --regid=nogroup --clear-groups env -C / HOME=/tmp "${lint[@]}")
fi
tags=$(run "${lint[@]}" "$target" 2>&1) || { echo "$tags" >&2; echo "deb: lintian failed" >&2; exit 1; }
echo "lintian: ${tags:-no tags}"
