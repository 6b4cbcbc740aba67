# Sourced by every scenario (sh -e): small helpers for the guest side of the VM tests.
M=/lib/modules

# Load a module; its parameters follow.
load() { m=$1; shift; loadgen insmod "$M/$m.ko" "$@" >/dev/null; }

# A load that must be refused: prints "REFUSED <module> INSMOD errno=-N" or fails the scenario.
refused() {
  m=$1; shift
  if out=$(loadgen insmod "$M/$m.ko" "$@" 2>&1); then
    echo "UNEXPECTED-LOAD $m"; rmmod "$m"; return 1
  fi
  echo "REFUSED $m $out"
}

# Whether a module is loaded (for "nothing left behind").
loaded() { grep -q "^$1 " /proc/modules; }

# The probes registered with the kprobe core right now.
kprobes_list() { cat /sys/kernel/debug/kprobes/list 2>/dev/null | sed 's/^/KPROBES /'; }

# A symbol's address, as /proc/kallsyms shows it to root.
kallsyms() { grep " [tT] $1\$" /proc/kallsyms | sed 's/^/KALLSYMS /'; }

