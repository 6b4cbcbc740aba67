#!/bin/sh
# `make new NAME=<name> SYMBOL=<function>`: <name>.rs from template/probe.rs, a kprobe module on
# <function> that Kbuild (and DKMS, modules_install) find by themselves. Refuses a name that is
# not a C identifier, that a module or file already has, or an empty symbol.
set -eu
name=${1:-} symbol=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
case $name in
  '' ) echo "make new: NAME= is empty (make new NAME=my_probe SYMBOL=vfs_read)" >&2; exit 1 ;;
  *[!a-z0-9_]* | [0-9]* ) echo "make new: NAME=$name: lower-case letters, digits and _ only, not starting with a digit" >&2; exit 1 ;;
esac
case $symbol in
  '' ) echo "make new: SYMBOL= is empty: name the function to probe" >&2; exit 1 ;;
  *[!A-Za-z0-9_.]* ) echo "make new: SYMBOL=$symbol is not a kernel symbol name" >&2; exit 1 ;;
esac
out=$here/$name.rs
[ -e "$out" ] && { echo "make new: $name.rs exists already" >&2; exit 1; }
[ -e "$here/$name.c" ] && { echo "make new: $name.c exists: a module of that name would clash" >&2; exit 1; }
sed -e "s/@NAME@/$name/g" -e "s/@SYMBOL@/$symbol/g" "$here/template/probe.rs" >"$out"
echo "$name.rs: a kprobe module on $symbol. Build it with the others: make KDIR=<kernel tree>"
echo "then: insmod $name.ko [symbol=<function>]; dmesg | grep '$symbol name:'"
