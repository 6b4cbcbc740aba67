/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input of the build-time bindgen run (see Kbuild): the kernel types `kernel::bindings` lacks
 * on 6.12 (kprobes, sockaddr_in/in6, per-CPU and debugfs calls) and the shims of helpers.c.
 * Kbuild allowlists only those, without recursion: every other type they name (pt_regs,
 * hlist_node, ...) is not generated and comes from `kernel::bindings` (kprobes/bindings.rs).
 */
#ifndef RUST_KPROBES_BINDINGS_HELPER_H
#define RUST_KPROBES_BINDINGS_HELPER_H

#include <linux/kprobes.h>
#include <linux/fprobe.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ktime.h>
#include <linux/uaccess.h>
#include <linux/percpu.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/kallsyms.h>
#include <linux/random.h>
#include <linux/moduleparam.h>

/* KSYM_SYMBOL_LEN (a sizeof() expression, which bindgen does not evaluate). */
enum { rk_ksym_symbol_len = KSYM_SYMBOL_LEN };

#ifdef MAX_FPROBE_DATA_SIZE
/* The most entry data an fprobe may ask for (7.3: 15 longs), likewise. */
enum { rk_max_fprobe_data_size = MAX_FPROBE_DATA_SIZE };
#endif

/*
 * Layouts as C has them. Rust checks its bindings against these before it registers a probe,
 * and reads `current`'s fields at these offsets instead of through `kernel::bindings`: on
 * 6.12 without CONFIG_SCHEDSTATS, bindgen drops the alignment of the empty
 * `____cacheline_aligned` `struct sched_statistics`, and every `task_struct` field after it
 * (mm, pid, comm, ...) is then 16 bytes off in `kernel::bindings` on x86_64.
 */
struct rk_layout {
	size_t task_mm, task_pid, task_comm;
	size_t kprobe, kretprobe, kretprobe_instance, pt_regs, sockaddr_in, sockaddr_in6;
	/* 0 without RK_FPROBE (Kbuild: the kernel has 7.3's fprobe) */
	size_t fprobe, ftrace_regs;
};
extern const struct rk_layout rk_layout;

/*
 * The offsets of the task_struct fields handlers read on every hit, as compile-time constants
 * for Rust (an immediate in the load, not a load of rk_layout first): libclang evaluates them
 * as C lays the struct out, which bindgen's Rust layout of task_struct does not always follow
 * (kprobes/layout.rs). rk_layout has them from the kernel's own compiler; the modules check
 * the two agree before registering a probe.
 */
enum {
	rk_off_task_mm = offsetof(struct task_struct, mm),
	rk_off_task_pid = offsetof(struct task_struct, pid),
	rk_off_task_comm = offsetof(struct task_struct, comm),
};

/* __alloc_percpu() is a macro (alloc_hooks) on 6.12. */
void __percpu *rk_alloc_percpu(size_t size, size_t align);

/* Per-CPU accessors are macros. (`this_cpu_ptr()` and `current`, on every hit, are read in
 * Rust: kprobes/cpu.rs.) */
void *rk_per_cpu_ptr(void __percpu *ptr, unsigned int cpu);
unsigned int rk_nr_cpu_ids(void);
bool rk_cpu_possible(unsigned int cpu);

/* A read-only debugfs file whose content `show(m, data)` writes (seq_file single_open). */
struct rk_show {
	int (*show)(struct seq_file *m, void *data);
	void *data;
};
struct dentry *rk_debugfs_create_show(const char *name, struct dentry *parent,
				      struct rk_show *show);

#ifdef RK_DIRECT
/*
 * rust_kprobe kind=direct (helpers.c): an ftrace direct call from the function's ftrace call
 * site to the module's own trampoline. Register by exact name; unregister; the calls the
 * trampoline skipped because they came while this CPU ran the handler.
 */
int rk_direct_register(const char *name);
void rk_direct_unregister(void);
unsigned long rk_direct_nmissed(void);
#endif

#endif
