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

# Whether the kernel accepts a kprobe event at function $1 + offset $2 (fetching $3, if any):
# its own instruction decoder and entry test decide. The event is removed again.
probe_ok() { echo "p:rk_try $1+$2 $3" >> $T/kprobe_events 2>/dev/null && echo "-:rk_try" >> $T/kprobe_events; }
# The first offset past function $1's entry where a kprobe can go: an instruction boundary at
# which fetching $arg1 (allowed on the function's entry only, as the kprobe core reckons it:
# offset 0, or 4 after an x86 endbr64) is refused.
past_entry() {
  for o in $(seq 1 64); do
    if probe_ok "$1" "$o" && ! probe_ok "$1" "$o" '$arg1'; then echo "$o"; return 0; fi
  done
  return 1
}
# The first offset into function $1 that is not an instruction boundary (refused).
inside_insn() {
  for o in $(seq 1 64); do probe_ok "$1" "$o" || { echo "$o"; return 0; }; done
  return 1
}

# Fault injection (debug kernels): failures are injected only through a task's fail-nth
# (probability stays 0), into sleeping allocations as well, and silently (no stack dump per
# injected failure).
failinit() {
  for f in failslab fail_page_alloc; do
    echo N > /sys/kernel/debug/$f/ignore-gfp-wait
    echo 0 > /sys/kernel/debug/$f/verbose
  done
}
# fail_each slab|all MODULE [PARAM...]: loads MODULE with the 1st, 2nd, ... failable call of the
# load failed, until a load makes fewer calls than that (`FAILPOINTS <mode> MODULE <n>`). `slab`
# counts slab allocations only (every kmalloc is one call, whatever the slabs hold, so the
# points do not drift from one attempt to the next), `all` page allocations of every order too.
# After each failed load, nothing may be left (module, debugfs directory, kprobe); a load that
# went through despite the failure binds port 41000 once and is removed. Each attempt is marked
# in the kernel log (`RKFAIL <mode> MODULE n=<n>`).
fail_each() {
  mode=$1; m=$2; shift 2
  if [ "$mode" = slab ]; then order=11; else order=0; fi
  echo $order > /sys/kernel/debug/fail_page_alloc/min-order
  n=1
  while :; do
    echo "RKFAIL $mode $m n=$n" > /dev/kmsg
    out=$(loadgen insmod-fail $n $M/$m.ko "$@")
    echo "$out"
    case "$out" in
      *"injected=no ok") rmmod $m; echo "FAILPOINTS $mode $m $((n - 1))"; return 0 ;;
      *"injected=no "*) echo "UNEXPECTED $out"; return 1 ;;
      *" ok") loadgen bind 41000; rmmod $m ;;
      *)
        not_loaded $m
        if [ -e /sys/kernel/debug/$m ]; then echo "LEFT-DEBUGFS $m"; return 1; fi
        if [ -s /sys/kernel/debug/kprobes/list ]; then kprobes_list LEFT; return 1; fi ;;
    esac
    n=$((n + 1))
  done
}
