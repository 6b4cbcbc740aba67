// SPDX-License-Identifier: GPL-2.0
/*
 * C twin of rust_kprobe.ko for `make bench`: the same work per hit (per-CPU counters, pid and
 * comm filters, a nofault copy of the sockaddr bounded by addr_len, the same decode, port
 * filter, rate-limit check, and with events=1 the same two lines).
 */
/* The module-name prefix Rust's pr_info!() always writes ("rust_kprobe: "): the same line. */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/module.h>
#include <linux/kprobes.h>
#include <linux/percpu.h>
#include <linux/sched.h>
#include <linux/uaccess.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ktime.h>

static bool events = true;
module_param(events, bool, 0444);
MODULE_PARM_DESC(events, "one line per event (default Y)");

enum { HITS, FILTERED, REPORTED, POST_PENDING, FAULTS, NCOUNTERS };
struct counters { u64 c[NCOUNTERS]; };
static struct counters __percpu *stats;
/* Parameters, like the Rust module's (so the compiler cannot fold the filters away). */
static int fpid;
module_param_named(pid, fpid, int, 0444);
static char fcomm[TASK_COMM_LEN];
module_param_string(comm, fcomm, sizeof(fcomm), 0444);
static unsigned int fport, per_sec;
module_param_named(port, fport, uint, 0444);
module_param_named(ratelimit, per_sec, uint, 0444);
static atomic64_t window_start, in_window;

static bool ratelimit_pass(u64 now)
{
	u64 start;

	if (!per_sec)
		return true;
	start = atomic64_read(&window_start);
	if (now - start >= NSEC_PER_SEC && atomic64_cmpxchg(&window_start, start, now) == start)
		atomic64_set(&in_window, 0);
	return atomic64_inc_return(&in_window) <= per_sec;
}

static int pre(struct kprobe *p, struct pt_regs *regs)
{
	struct counters *s = this_cpu_ptr(stats);
	u8 buf[sizeof(struct sockaddr_in6)];
	int pid = task_pid_nr(current), len, port = -1;
	char comm[TASK_COMM_LEN];
	unsigned long uaddr;
	u16 family;

	s->c[HITS]++;
	/* The name is read only for a comm filter or a line, as in Rust. */
	if (fcomm[0] || events) {
		memcpy(comm, current->comm, TASK_COMM_LEN);
		comm[TASK_COMM_LEN - 1] = 0;
	}
	if ((fpid && fpid != pid) || (fcomm[0] && strcmp(fcomm, comm))) {
		s->c[FILTERED]++;
		return 0;
	}
	uaddr = regs_get_kernel_argument(regs, 1);
	len = clamp((int)regs_get_kernel_argument(regs, 2), 0, (int)sizeof(buf));
	if (copy_from_kernel_nofault(buf, (void *)uaddr, len)) {
		s->c[FAULTS]++;
		pr_info("fault_handler: p->addr = %px, reading struct sockaddr at %lx failed\n", p->addr, uaddr);
		return 0;
	}
	family = len >= 2 ? *(u16 *)buf : 0;
	if (len >= 2 && (family == AF_INET || family == AF_UNSPEC) && len >= 16 &&
	    (family == AF_INET || !*(u32 *)(buf + 4)))
		port = ntohs(*(__be16 *)(buf + 2));
	else if (len >= 24 && family == AF_INET6)
		port = ntohs(*(__be16 *)(buf + 2));
	if (fport && port != fport) {
		s->c[FILTERED]++;
		return 0;
	}
	if (!ratelimit_pass(ktime_get_mono_fast_ns()))
		return 0;
	if (events) {
		if (port >= 0)
			pr_info("%s name:%s pid:%d socket bind port=%d\n", p->symbol_name, comm, pid, port);
		else
			pr_info("%s name:%s pid:%d socket bind: family %u has no port\n", p->symbol_name, comm, pid, family);
		s->c[POST_PENDING] = 1;
	}
	s->c[REPORTED]++;
	return 0;
}

static void post(struct kprobe *p, struct pt_regs *regs, unsigned long flags)
{
	struct counters *s = this_cpu_ptr(stats);

	if (s->c[POST_PENDING]) {
		s->c[POST_PENDING] = 0;
		pr_info("%s post_handler: probed instruction at %px single-stepped, ip now %lx\n",
			p->symbol_name, p->addr, instruction_pointer(regs));
	}
}

static struct kprobe kp = { .symbol_name = "inet_bind", .pre_handler = pre };

static int __init m_init(void)
{
	int ret;

	stats = alloc_percpu(struct counters);
	if (!stats)
		return -ENOMEM;
	if (events)
		kp.post_handler = post;
	ret = register_kprobe(&kp);
	if (ret)
		free_percpu(stats);
	return ret;
}

static void __exit m_exit(void)
{
	unregister_kprobe(&kp);
	free_percpu(stats);
}

module_init(m_init);
module_exit(m_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("bench: C twin of rust_kprobe");
