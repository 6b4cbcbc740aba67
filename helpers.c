// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of rust_kprobe.ko and rust_kretprobe.ko: only what Rust cannot do itself on
 * Linux 6.12. Module parameters (the 6.12 `module!` macro has none), static inlines and
 * macros. Kbuild compiles this file once per module, with RK_KPROBE or
 * RK_KRETPROBE defined, so that each module carries only its own parameters.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kallsyms.h>
#include <linux/sched.h>
#include <linux/cpumask.h>
#include "bindings_helper.h"

#ifdef RK_KPROBE
static char symbol[KSYM_NAME_LEN] = "inet_bind";
module_param_string(symbol, symbol, sizeof(symbol), 0444);
MODULE_PARM_DESC(symbol, "Function to probe (default inet_bind; inet6_bind decodes IPv6 ports)");
static unsigned int offset;
module_param(offset, uint, 0444);
MODULE_PARM_DESC(offset, "Offset into the function, in bytes (default 0)");
static int pid;
module_param(pid, int, 0444);
MODULE_PARM_DESC(pid, "Only report this pid (0: all)");
static char comm[TASK_COMM_LEN];
module_param_string(comm, comm, sizeof(comm), 0444);
MODULE_PARM_DESC(comm, "Only report tasks with this name (empty: all)");
static unsigned int port;
module_param(port, uint, 0444);
MODULE_PARM_DESC(port, "Only report binds to this port (0: all)");
static unsigned int ratelimit;
module_param(ratelimit, uint, 0444);
MODULE_PARM_DESC(ratelimit, "At most this many event lines per second (0: unlimited)");
static bool events = true;
module_param(events, bool, 0444);
MODULE_PARM_DESC(events, "Log one line per bind (default Y; N: count only, see debugfs stats)");
static char kind[16] = "kprobe";
module_param_string(kind, kind, sizeof(kind), 0444);
MODULE_PARM_DESC(kind, "kprobe (default) or fprobe: an entry-only fprobe on the function's ftrace call site, no post handler, no offset= (kernels with CONFIG_FPROBE)");

void rk_kprobe_params(struct rk_kprobe_params *out)
{
	*out = (struct rk_kprobe_params){ symbol, offset, pid, comm, port, ratelimit, events,
					  kind };
}
#endif

#ifdef RK_KRETPROBE
static char func[KSYM_NAME_LEN] = "inet_release";
module_param_string(func, func, sizeof(func), 0444);
MODULE_PARM_DESC(func, "Function to kretprobe; reports its return value and time taken (default inet_release)");
static int maxactive = 20;
module_param(maxactive, int, 0444);
MODULE_PARM_DESC(maxactive, "Concurrent instances to track, 0..=4096 (0: the kernel's default; default 20; kind=kretprobe only: an fprobe has no instance pool)");
static char rettype[8] = "int";
module_param_string(rettype, rettype, sizeof(rettype), 0444);
MODULE_PARM_DESC(rettype, "Return type of func: int (default), long, ulong or ptr");
static int pid;
module_param(pid, int, 0444);
MODULE_PARM_DESC(pid, "Only report this pid (0: all)");
static char comm[TASK_COMM_LEN];
module_param_string(comm, comm, sizeof(comm), 0444);
MODULE_PARM_DESC(comm, "Only report tasks with this name (empty: all)");
static bool events = true;
module_param(events, bool, 0444);
MODULE_PARM_DESC(events, "Log one line per call (default Y)");
static bool hist;
module_param(hist, bool, 0444);
MODULE_PARM_DESC(hist, "Print a log2 latency histogram and return-value tally at unload (default N)");
static char kind[16] = "kretprobe";
module_param_string(kind, kind, sizeof(kind), 0444);
MODULE_PARM_DESC(kind, "kretprobe (default) or fprobe: ftrace-based entry and exit, entry data kept by fprobe, no maxactive (kernels with CONFIG_FPROBE)");

void rk_kretprobe_params(struct rk_kretprobe_params *out)
{
	*out = (struct rk_kretprobe_params){ func, maxactive, rettype, pid, comm, events, hist,
					     kind };
}
#endif

const struct rk_layout rk_layout = {
	.task_mm = offsetof(struct task_struct, mm),
	.task_pid = offsetof(struct task_struct, pid),
	.task_comm = offsetof(struct task_struct, comm),
	.kprobe = sizeof(struct kprobe),
	.kretprobe = sizeof(struct kretprobe),
	.kretprobe_instance = sizeof(struct kretprobe_instance),
	.pt_regs = sizeof(struct pt_regs),
	.sockaddr_in = sizeof(struct sockaddr_in),
	.sockaddr_in6 = sizeof(struct sockaddr_in6),
#ifdef RK_FPROBE
	.fprobe = sizeof(struct fprobe),
	.ftrace_regs = sizeof(struct __arch_ftrace_regs),
#endif
};

void __percpu *rk_alloc_percpu(size_t size, size_t align)
{
	return __alloc_percpu(size, align);
}

void *rk_per_cpu_ptr(void __percpu *ptr, unsigned int cpu)
{
	return per_cpu_ptr(ptr, cpu);
}

unsigned int rk_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}

bool rk_cpu_possible(unsigned int cpu)
{
	return cpu_possible(cpu);
}

static int rk_show_one(struct seq_file *m, void *v)
{
	struct rk_show *s = m->private;

	return s->show(m, s->data);
}

static int rk_show_open(struct inode *inode, struct file *file)
{
	return single_open(file, rk_show_one, inode->i_private);
}

static const struct file_operations rk_show_fops = {
	.owner = THIS_MODULE,
	.open = rk_show_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = single_release,
};

struct dentry *rk_debugfs_create_show(const char *name, struct dentry *parent,
				      struct rk_show *show)
{
	return debugfs_create_file(name, 0444, parent, show, &rk_show_fops);
}
