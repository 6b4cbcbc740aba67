/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input of the build-time bindgen run (see Kbuild): the kernel types `kernel::bindings` lacks
 * on 6.12 (kprobes, sockaddr_in/in6, per-CPU and debugfs calls) and the shims of helpers.c.
 * Types `kernel::bindings` already has are blocklisted in Kbuild and taken from there.
 */
#ifndef RUST_KPROBES_BINDINGS_HELPER_H
#define RUST_KPROBES_BINDINGS_HELPER_H

#include <linux/kprobes.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ktime.h>
#include <linux/uaccess.h>
#include <linux/percpu.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>

/* Module parameters of rust_kprobe.ko (read-only once loaded). */
struct rk_kprobe_params {
	const char *symbol;
	unsigned int offset;
	int pid;
	const char *comm;
	unsigned int port;
	unsigned int ratelimit;
	bool events;
};

/* Module parameters of rust_kretprobe.ko (read-only once loaded). */
struct rk_kretprobe_params {
	const char *func;
	int maxactive;
	const char *rettype;
	int pid;
	const char *comm;
	bool events;
	bool hist;
};

void rk_kprobe_params(struct rk_kprobe_params *out);
void rk_kretprobe_params(struct rk_kretprobe_params *out);

/* `current`, read without locks (handlers run in atomic context): the pid and whether it is
 * a kernel thread; the name, when wanted. */
int rk_current_task(bool *kthread);
void rk_current_comm(char comm[16]);

/* Static inline of <linux/kprobes.h>: the kretprobe an instance belongs to. */
struct kretprobe *rk_get_kretprobe(struct kretprobe_instance *ri);

/* __alloc_percpu() is a macro (alloc_hooks) on 6.12. */
void __percpu *rk_alloc_percpu(size_t size, size_t align);

/* Per-CPU accessors are macros. Handlers run with preemption disabled. */
void *rk_this_cpu_ptr(void __percpu *ptr);
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

#endif
