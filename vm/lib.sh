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

# Whether a module is loaded.
loaded() { grep -q "^$1 " /proc/modules; }
# Fails the scenario if a module is loaded ("nothing left behind"). Not `! loaded m`: sh -e
# does not stop on a negated command, so that line could never fail.
not_loaded() { if loaded "$1"; then echo "STILL-LOADED $1"; return 1; fi; }

# The probes registered with the kprobe core right now, each line prefixed (default KPROBES).
kprobes_list() { cat /sys/kernel/debug/kprobes/list 2>/dev/null | sed "s/^/${1:-KPROBES} /"; }

# A symbol's address, as /proc/kallsyms shows it to root.
kallsyms() { grep " [tT] $1\$" /proc/kallsyms | sed 's/^/KALLSYMS /'; }


# The kernel's own kprobe events (tracefs), the tests' second opinion on every hit.
T=/sys/kernel/tracing
# Define and enable one: kevent NAME 'p:NAME func args...' (or 'r:NAME func ...').
kevent() { echo "$2" >> $T/kprobe_events; echo 1 > $T/events/kprobes/$1/enable; }
# Disable and remove one.
kevent_rm() { echo 0 > $T/events/kprobes/$1/enable; echo "-:$1" >> $T/kprobe_events; }
# The trace buffer (events only) and the per-event hit counts, prefixed for the host. Before
# kevent_rm: removing an event clears the buffer.
trace_dump() {
  grep -v '^#' $T/trace | sed 's/^/TRACE /'
  sed 's/^ */KPROFILE /' $T/kprobe_profile
}
# A debugfs file printed with a prefix: dstat PREFIX MODULE FILE
dstat() { sed "s/^/$1 /" /sys/kernel/debug/$2/$3; }
