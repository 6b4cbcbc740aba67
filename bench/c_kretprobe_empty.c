// SPDX-License-Identifier: GPL-2.0
/* The floor of a kretprobe hit: empty handlers on inet_release, no instance data. */
#include <linux/module.h>
#include <linux/kprobes.h>

static int ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return 0;
}

static struct kretprobe rp = { .kp.symbol_name = "inet_release", .handler = ret, .maxactive = 20 };

static int __init m_init(void)
{
	return register_kretprobe(&rp);
}

static void __exit m_exit(void)
{
	unregister_kretprobe(&rp);
}

module_init(m_init);
module_exit(m_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("bench: empty kretprobe on inet_release");
