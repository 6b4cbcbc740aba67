// SPDX-License-Identifier: GPL-2.0
/*
 * rk_target: a function in a module, for the VM tests to probe and then unload under the probe
 * (the kprobe core marks such a probe [GONE]). Each write of a number of milliseconds to
 * /sys/kernel/debug/rk_target/call makes one call rk_target_call(<bytes written>, <ms>), which
 * sleeps that long (0: not at all) and returns <bytes written> + 1.
 */
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/kstrtox.h>
#include <linux/module.h>

/* Not static, not inlined: a symbol of its own in kallsyms, called as written. */
noinline int rk_target_call(int n, unsigned int ms)
{
	if (ms)
		msleep(ms);
	return n + 1;
}

static ssize_t call_write(struct file *file, const char __user *buf, size_t len, loff_t *pos)
{
	unsigned int ms;
	int ret = kstrtouint_from_user(buf, len, 10, &ms);

	if (ret)
		return ret;
	ret = rk_target_call(len, ms);
	return ret == len + 1 ? len : -EIO;
}

static const struct file_operations call_fops = {
	.owner = THIS_MODULE,
	.write = call_write,
};

static struct dentry *dir;

static int __init rk_target_init(void)
{
	dir = debugfs_create_dir("rk_target", NULL);
	debugfs_create_file("call", 0200, dir, NULL, &call_fops);
	return 0;
}

static void __exit rk_target_exit(void)
{
	debugfs_remove(dir);
}

module_init(rk_target_init);
module_exit(rk_target_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("rust-kprobes VM tests: a function to probe in a module that goes away");
