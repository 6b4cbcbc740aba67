// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of rust_kprobe.ko and rust_kretprobe.ko: only what Rust cannot do itself on
 * Linux 6.12: static inlines and macros, the layout check, and (for a module whose handler
 * is an ftrace direct call: RK_DIRECT_ENTRY from Kbuild) the trampoline. Nothing in it is
 * per module: Kbuild compiles it once for each (a .o belongs to one module). Parameters are
 * declared in Rust (kprobes/params.rs).
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kallsyms.h>
#include <linux/sched.h>
#include <linux/cpumask.h>
#include "bindings_helper.h"

#if defined(RK_DIRECT_ENTRY) && defined(RK_DIRECT)
/*
 * kind=direct: the function's ftrace call site calls rk_direct_tramp directly (an ftrace direct
 * call, as BPF's fentry trampolines are), with no ftrace_ops list and no fprobe lookup between.
 * The trampoline is assembly because it runs before the function's own prologue: it must keep
 * every argument register and return into the function as if nothing ran. It saves them in an
 * ftrace_regs, as ftrace's own caller does (the arguments, ip, sp), for kprobes/ftrace_regs.rs's
 * FtraceEntry, and calls rk_direct_call(). It is C's asm, not Rust's global_asm!,
 * for the kernel's macros: ASM_ENDBR, CALL_DEPTH_ACCOUNT and ASM_RET (the return thunk) are
 * alternatives and config choices only C sees.
 */
#include <linux/ftrace.h>
#include <linux/kprobes.h>
#include <linux/atomic.h>
#ifdef CONFIG_X86_64
#include <asm/ibt.h>
#include <asm/linkage.h>
#include <asm/nospec-branch.h>
#endif

/* rust_kprobe.rs (kprobes::direct::direct_entry!): the handler, for this module's one site. */
void rk_direct_entry(struct ftrace_regs *fregs, unsigned long ip);
void rk_direct_tramp(void);
void rk_direct_call(struct ftrace_regs *fregs, unsigned long ip);

static struct ftrace_ops rk_direct_ops;
static atomic_long_t rk_direct_missed;

/*
 * From rk_direct_tramp: `ip` is the ftrace call site. Preemption off (the handler's per-CPU counters) and no nesting on a CPU: a call
 * that arrives while this CPU runs the handler (an interrupt or NMI whose path calls the
 * function, or the handler's own printk when the function is one printk calls) is skipped and
 * counted, as the kprobe core skips and counts a hit while a probe runs. Stricter than
 * ftrace's recursion guard (which lets one call per context level nest), so the handler's
 * per-CPU counters, updated without atomics, never see a nested update.
 */
static DEFINE_PER_CPU(int, rk_direct_busy);

__visible void notrace rk_direct_call(struct ftrace_regs *fregs, unsigned long ip)
{
	preempt_disable_notrace();
	if (likely(!__this_cpu_read(rk_direct_busy))) {
		__this_cpu_write(rk_direct_busy, 1);
		rk_direct_entry(fregs, ip);
		__this_cpu_write(rk_direct_busy, 0);
	} else {
		atomic_long_inc(&rk_direct_missed);
	}
	preempt_enable_notrace();
}
NOKPROBE_SYMBOL(rk_direct_call);

/*
 * The trampolines' frame offsets are plain numbers (asm-offsets.h, included in C, redefines
 * arm64 macros): each is checked against the C layout here, so a kernel that lays the frame out
 * otherwise fails to build.
 */
#define RK_S(x) __stringify(x)
#define RK_CHECK(type, field, off) static_assert(offsetof(type, field) == (off))
#ifdef CONFIG_X86_64
/* x86_64: ftrace_regs is a pt_regs (HAVE_FTRACE_REGS_HAVING_PT_REGS). */
#define RK_DI 112
#define RK_SI 104
#define RK_DX 96
#define RK_CX 88
#define RK_AX 80
#define RK_R8 72
#define RK_R9 64
#define RK_IP 128
#define RK_SP 152
#define RK_FRAME 176 /* sizeof(struct pt_regs) + 8: %rsp 16-byte aligned at the call */
RK_CHECK(struct pt_regs, di, RK_DI);
RK_CHECK(struct pt_regs, si, RK_SI);
RK_CHECK(struct pt_regs, dx, RK_DX);
RK_CHECK(struct pt_regs, cx, RK_CX);
RK_CHECK(struct pt_regs, ax, RK_AX);
RK_CHECK(struct pt_regs, r8, RK_R8);
RK_CHECK(struct pt_regs, r9, RK_R9);
RK_CHECK(struct pt_regs, ip, RK_IP);
RK_CHECK(struct pt_regs, sp, RK_SP);
static_assert(sizeof(struct __arch_ftrace_regs) == sizeof(struct pt_regs));
static_assert(sizeof(struct pt_regs) + 8 == RK_FRAME);
asm(
"	.pushsection .text, \"ax\", @progbits\n"
"	.type rk_direct_tramp, @function\n"
"	.globl rk_direct_tramp\n"
"rk_direct_tramp:\n"
	ASM_ENDBR
"	pushq %rbp\n"
"	movq %rsp, %rbp\n"
	CALL_DEPTH_ACCOUNT
"	subq $" RK_S(RK_FRAME) ", %rsp\n"
"	movq %rdi, " RK_S(RK_DI) "(%rsp)\n"
"	movq %rsi, " RK_S(RK_SI) "(%rsp)\n"
"	movq %rdx, " RK_S(RK_DX) "(%rsp)\n"
"	movq %rcx, " RK_S(RK_CX) "(%rsp)\n"
"	movq %r8, " RK_S(RK_R8) "(%rsp)\n"
"	movq %r9, " RK_S(RK_R9) "(%rsp)\n"
"	movq %rax, " RK_S(RK_AX) "(%rsp)\n"
	/* ip: after the call site, as ftrace saves it; sp: the function's, at the call site */
"	movq 8(%rbp), %rsi\n"
"	movq %rsi, " RK_S(RK_IP) "(%rsp)\n"
"	leaq 16(%rbp), %rdx\n"
"	movq %rdx, " RK_S(RK_SP) "(%rsp)\n"
"	subq $" RK_S(MCOUNT_INSN_SIZE) ", %rsi\n"
"	movq %rsp, %rdi\n"
"	call rk_direct_call\n"
"	movq " RK_S(RK_DI) "(%rsp), %rdi\n"
"	movq " RK_S(RK_SI) "(%rsp), %rsi\n"
"	movq " RK_S(RK_DX) "(%rsp), %rdx\n"
"	movq " RK_S(RK_CX) "(%rsp), %rcx\n"
"	movq " RK_S(RK_R8) "(%rsp), %r8\n"
"	movq " RK_S(RK_R9) "(%rsp), %r9\n"
"	movq " RK_S(RK_AX) "(%rsp), %rax\n"
"	leave\n"
	ASM_RET
"	.size rk_direct_tramp, .-rk_direct_tramp\n"
"	.popsection\n"
);
#elif defined(CONFIG_ARM64)
/*
 * arm64: entered from the call site's `bl` (or ftrace_caller's `br x17`) with x30 the address
 * after the call site and x9 the function's own return address; returns to x30 with x30 = x9,
 * as ftrace_stub_direct_tramp does. `bti c`: a `br x17` may land here.
 */
#define RK_X0 0
#define RK_X2 16
#define RK_X4 32
#define RK_X6 48
#define RK_X8 64
#define RK_LR 88
#define RK_SP 96
#define RK_PC 104
#define RK_FREGS 112 /* sizeof(struct __arch_ftrace_regs), then a frame record */
#define RK_FRAME 128
RK_CHECK(struct __arch_ftrace_regs, regs[0], RK_X0);
RK_CHECK(struct __arch_ftrace_regs, regs[2], RK_X2);
RK_CHECK(struct __arch_ftrace_regs, regs[4], RK_X4);
RK_CHECK(struct __arch_ftrace_regs, regs[6], RK_X6);
RK_CHECK(struct __arch_ftrace_regs, regs[8], RK_X8);
RK_CHECK(struct __arch_ftrace_regs, lr, RK_LR);
RK_CHECK(struct __arch_ftrace_regs, sp, RK_SP);
RK_CHECK(struct __arch_ftrace_regs, pc, RK_PC);
static_assert(sizeof(struct __arch_ftrace_regs) == RK_FREGS);
static_assert(RK_FREGS + 16 == RK_FRAME);
asm(
"	.pushsection .text, \"ax\", @progbits\n"
"	.type rk_direct_tramp, @function\n"
"	.globl rk_direct_tramp\n"
"rk_direct_tramp:\n"
"	hint 34\n" /* bti c */
"	sub sp, sp, #" RK_S(RK_FRAME) "\n"
"	stp x29, x30, [sp, #" RK_S(RK_FREGS) "]\n"
"	add x29, sp, #" RK_S(RK_FREGS) "\n"
"	stp x0, x1, [sp, #" RK_S(RK_X0) "]\n"
"	stp x2, x3, [sp, #" RK_S(RK_X2) "]\n"
"	stp x4, x5, [sp, #" RK_S(RK_X4) "]\n"
"	stp x6, x7, [sp, #" RK_S(RK_X6) "]\n"
"	str x8, [sp, #" RK_S(RK_X8) "]\n"
"	str x9, [sp, #" RK_S(RK_LR) "]\n"
"	str x30, [sp, #" RK_S(RK_PC) "]\n"
"	add x0, sp, #" RK_S(RK_FRAME) "\n"
"	str x0, [sp, #" RK_S(RK_SP) "]\n"
"	mov x0, sp\n"
"	sub x1, x30, #" RK_S(AARCH64_INSN_SIZE) "\n"
"	bl rk_direct_call\n"
"	ldp x0, x1, [sp, #" RK_S(RK_X0) "]\n"
"	ldp x2, x3, [sp, #" RK_S(RK_X2) "]\n"
"	ldp x4, x5, [sp, #" RK_S(RK_X4) "]\n"
"	ldp x6, x7, [sp, #" RK_S(RK_X6) "]\n"
"	ldr x8, [sp, #" RK_S(RK_X8) "]\n"
"	ldr x9, [sp, #" RK_S(RK_LR) "]\n"
"	ldp x29, x30, [sp, #" RK_S(RK_FREGS) "]\n"
"	add sp, sp, #" RK_S(RK_FRAME) "\n"
"	mov x10, x30\n"
"	mov x30, x9\n"
"	ret x10\n"
"	.size rk_direct_tramp, .-rk_direct_tramp\n"
"	.popsection\n"
);
#else
#error "rust-kprobes: kind=direct has a trampoline for x86_64 and arm64 only"
#endif
NOKPROBE_SYMBOL(rk_direct_tramp);

/*
 * The ftrace_ops is the trampoline's: one of each per module. ftrace_set_filter() takes the
 * exact name (Rust refuses glob and command characters first) and resolves it as the
 * `set_ftrace_filter` file does; it says EINVAL for a name that matches no traceable function,
 * which this turns into ENOENT (the kprobe core's word for it). On any error the filter is
 * freed: nothing stays behind.
 */
int rk_direct_register(const char *name)
{
	char buf[KSYM_NAME_LEN];
	int err;

	if (strscpy(buf, name, sizeof(buf)) < 0)
		return -EINVAL;
	atomic_long_set(&rk_direct_missed, 0);
	err = ftrace_set_filter(&rk_direct_ops, buf, strlen(buf), 1);
	if (err == -EINVAL)
		err = -ENOENT;
	if (!err)
		err = register_ftrace_direct(&rk_direct_ops, (unsigned long)rk_direct_tramp);
	if (err)
		ftrace_free_filter(&rk_direct_ops);
	return err;
}

/*
 * When this returns no CPU runs the trampoline or the handler, and none will: the ops is not
 * in core kernel data, so ftrace treats it as dynamic and waits for RCU-tasks (every task
 * past a voluntary switch: none is inside, even preempted) before unregistering returns.
 */
void rk_direct_unregister(void)
{
	unregister_ftrace_direct(&rk_direct_ops, (unsigned long)rk_direct_tramp, true);
}

unsigned long rk_direct_nmissed(void)
{
	return atomic_long_read(&rk_direct_missed);
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
