// SPDX-License-Identifier: GPL-2.0
/*
 * C twin of rust_kretprobe.ko for `make bench`: the same work per call (kthread skip, pid and
 * comm filters, two ktime_get_mono_fast_ns (NMI-safe, as in Rust), per-CPU count/sum/min/max, log2 histogram, return-value tally,
 * and with events=1 the same line).
 */
/* The module-name prefix Rust's pr_info!() always writes ("rust_kretprobe: "): the same line. */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/module.h>
#include <linux/kprobes.h>
#include <linux/percpu.h>
#include <linux/sched.h>
#include <linux/ktime.h>
#include <linux/log2.h>

static bool events = true;
module_param(events, bool, 0444);
MODULE_PARM_DESC(events, "one line per call (default Y)");
static bool hist;
module_param(hist, bool, 0444);
MODULE_PARM_DESC(hist, "histogram at unload (accepted for parity; counters are always kept)");

#define BUCKETS 65
#define TALLY_SLOTS 135
enum { HITS, FILTERED, KTHREADS, COUNT, SUM_NS, MAX_NS, NOT_MIN_NS, HIST };
struct counters { u64 c[HIST + BUCKETS + TALLY_SLOTS]; };
static struct counters __percpu *stats;
/* Parameters, like the Rust module's (so the compiler cannot fold the filters away). */
static int fpid;
module_param_named(pid, fpid, int, 0444);
static char fcomm[TASK_COMM_LEN];
module_param_string(comm, fcomm, sizeof(fcomm), 0444);

struct stamp { s64 entry_ns; };

static int entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct counters *s = this_cpu_ptr(stats);
	char comm[TASK_COMM_LEN];

	s->c[HITS]++;
	if (!current->mm) {
		s->c[KTHREADS]++;
		return 1;
	}
	if ((fpid && fpid != task_pid_nr(current)) ||
	    (fcomm[0] && (memcpy(comm, current->comm, TASK_COMM_LEN), comm[TASK_COMM_LEN - 1] = 0,
			  strcmp(fcomm, comm)))) {
		s->c[FILTERED]++;
		return 1;
	}
	((struct stamp *)ri->data)->entry_ns = ktime_get_mono_fast_ns();
	return 0;
}

static int ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct counters *s = this_cpu_ptr(stats);
	s64 d = ktime_get_mono_fast_ns() - ((struct stamp *)ri->data)->entry_ns;
	u64 ns = d > 0 ? d : 0;
	int retval = (int)regs_return_value(regs);
	int slot = retval == 0 ? 0 : (retval < 0 && retval >= -133 ? -retval : TALLY_SLOTS - 1);

	if (events)
		pr_info("%s returned %d and took %llu ns to execute\n",
			get_kretprobe(ri)->kp.symbol_name, retval, ns);
	s->c[COUNT]++;
	s->c[SUM_NS] += ns;
	if (ns > s->c[MAX_NS])
		s->c[MAX_NS] = ns;
	if (~ns > s->c[NOT_MIN_NS])
		s->c[NOT_MIN_NS] = ~ns;
	s->c[HIST + (ns ? fls64(ns) : 0)]++;
	s->c[HIST + BUCKETS + slot]++;
	return 0;
}

static struct kretprobe rp = {
	.kp.symbol_name = "inet_release",
	.handler = ret,
	.entry_handler = entry,
	.data_size = sizeof(struct stamp),
	.maxactive = 20,
};

static int __init m_init(void)
{
	int r;

	stats = alloc_percpu(struct counters);
	if (!stats)
		return -ENOMEM;
	r = register_kretprobe(&rp);
	if (r)
		free_percpu(stats);
	return r;
}

static void __exit m_exit(void)
{
	unregister_kretprobe(&rp);
	free_percpu(stats);
}

module_init(m_init);
module_exit(m_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("bench: C twin of rust_kretprobe");
