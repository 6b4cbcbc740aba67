// SPDX-License-Identifier: GPL-2.0
/* The floor of a kprobe hit: an empty pre handler on inet_bind. */
#include <linux/module.h>
#include <linux/kprobes.h>

static int pre(struct kprobe *p, struct pt_regs *regs)
{
	return 0;
}

static struct kprobe kp = { .symbol_name = "inet_bind", .pre_handler = pre };

static int __init m_init(void)
{
	return register_kprobe(&kp);
}

static void __exit m_exit(void)
{
	unregister_kprobe(&kp);
}

module_init(m_init);
module_exit(m_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("bench: empty kprobe on inet_bind");
