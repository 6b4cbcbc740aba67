// SPDX-License-Identifier: GPL-2.0
/*
 * rk_insns: the QEMU TCG plugin of `make bench` (docs/benchmark.md, "Exact counts").
 *
 * Counts, per translated block (TB), how many times the guest executed it, over windows the
 * guest opens and closes itself: `loadgen bench` executes a marker instruction before its loop
 * and another after it (x86_64 `xchg %rbx,%rbx` and `xchg %rcx,%rcx`, arm64 `mov x9,x9` and
 * `mov x10,x10`: no-ops no compiler emits, looked for in user space only). At each close the
 * plugin appends the window to the file `out=`:
 *
 *   W <n>                          the n-th window of the boot (from 0)
 *   <vaddr> <insns> <execs>        a TB that ran in it: guest start address, its instructions,
 *                                  how many times it ran (all vCPUs)
 *
 * The host attributes each TB's instructions to its kernel symbol (xtask/src/counts.rs). A TB's
 * count is taken at its start: a TB left early by an exception
 * counts whole; kernel code leaves TBs early only on a fault, which the measured paths do not
 * take. Built by `make bench` against the header of the QEMU that runs it (Debian's source
 * package, plugin API version 4).
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

/* TBs the plugin can tell apart in one boot; a boot of `make bench` translates ~10^5. */
#define MAX_SLOTS (1u << 19)

struct slot {
	uint64_t key; /* vaddr << 10 | insns: a TB translated again with the same shape shares it */
	uint64_t vaddr;
	uint32_t insns;
};

static struct slot *slots;
static uint64_t *base; /* each slot's count when the window opened */
static unsigned int n_slots;
static GHashTable *by_key;
static GMutex lock;
/*
 * Per vCPU, one u64 per slot: the executions of that TB on that vCPU, counted by a callback at
 * the TB's start. (An inline add on a scoreboard entry would be cheaper, but QEMU 10.0.2
 * corrupted SMP guests with it: "Bad icount read" under -icount, user-space segfaults
 * without.)
 */
#define MAX_VCPUS 8
static uint64_t *counts[MAX_VCPUS];
static FILE *out;
static bool window_open;
static unsigned int windows;
static bool overflowed;

enum marker { OPEN = 1, CLOSE = 2 };

struct marker_bytes {
	const uint8_t *bytes;
	size_t len;
	enum marker what;
};

static const uint8_t x86_open[] = { 0x48, 0x87, 0xdb }, x86_close[] = { 0x48, 0x87, 0xc9 };
static const uint8_t a64_open[] = { 0xe9, 0x03, 0x09, 0xaa }, a64_close[] = { 0xea, 0x03, 0x0a, 0xaa };
static struct marker_bytes markers[2];

static uint64_t sum(unsigned int i)
{
	uint64_t n = 0;
	unsigned int v;

	for (v = 0; v < MAX_VCPUS; v++)
		n += counts[v][i];
	return n;
}

static void on_tb(unsigned int vcpu, void *udata)
{
	if (vcpu < MAX_VCPUS)
		counts[vcpu][GPOINTER_TO_UINT(udata)]++;
}

static void on_marker(unsigned int vcpu G_GNUC_UNUSED, void *udata)
{
	enum marker what = (enum marker)GPOINTER_TO_UINT(udata);
	unsigned int i, n;

	g_mutex_lock(&lock);
	n = n_slots;
	if (what == OPEN) {
		for (i = 0; i < n; i++)
			base[i] = sum(i);
		window_open = true;
	} else if (window_open) {
		fprintf(out, "W %u%s\n", windows++, overflowed ? " overflowed" : "");
		for (i = 0; i < n; i++) {
			uint64_t d = sum(i) - base[i];

			if (d)
				fprintf(out, "%" PRIx64 " %u %" PRIu64 "\n", slots[i].vaddr,
					slots[i].insns, d);
		}
		fflush(out);
		window_open = false;
	}
	g_mutex_unlock(&lock);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
	size_t insns = qemu_plugin_tb_n_insns(tb), i, m;
	uint64_t key = vaddr << 10 | (insns & 0x3ff);
	unsigned int idx;
	gpointer found;

	g_mutex_lock(&lock);
	found = g_hash_table_lookup(by_key, &key);
	if (found) {
		idx = GPOINTER_TO_UINT(found) - 1;
	} else if (n_slots < MAX_SLOTS) {
		idx = n_slots++;
		slots[idx] = (struct slot){ key, vaddr, (uint32_t)insns };
		base[idx] = 0;
		g_hash_table_insert(by_key, &slots[idx].key, GUINT_TO_POINTER(idx + 1));
	} else {
		overflowed = true;
		g_mutex_unlock(&lock);
		return;
	}
	g_mutex_unlock(&lock);

	qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb, QEMU_PLUGIN_CB_NO_REGS,
					     GUINT_TO_POINTER(idx));

	/* The markers are user-space instructions (the lower half of the address space). */
	if (vaddr >> 47)
		return;
	for (i = 0; i < insns; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		uint8_t buf[16];
		size_t len = qemu_plugin_insn_data(insn, buf, sizeof(buf));

		for (m = 0; m < G_N_ELEMENTS(markers); m++) {
			if (markers[m].bytes && len == markers[m].len &&
			    !memcmp(buf, markers[m].bytes, len))
				qemu_plugin_register_vcpu_insn_exec_cb(
					insn, on_marker, QEMU_PLUGIN_CB_NO_REGS,
					GUINT_TO_POINTER(markers[m].what));
		}
	}
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
	if (out)
		fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
					   int argc, char **argv)
{
	const char *path = NULL;
	int i;

	for (i = 0; i < argc; i++)
		if (g_str_has_prefix(argv[i], "out="))
			path = argv[i] + 4;
	if (!path || info->system_emulation == false) {
		fprintf(stderr, "rk_insns: want out=<file>, in system emulation\n");
		return -1;
	}
	if (!strcmp(info->target_name, "x86_64")) {
		markers[0] = (struct marker_bytes){ x86_open, sizeof(x86_open), OPEN };
		markers[1] = (struct marker_bytes){ x86_close, sizeof(x86_close), CLOSE };
	} else if (!strcmp(info->target_name, "aarch64")) {
		markers[0] = (struct marker_bytes){ a64_open, sizeof(a64_open), OPEN };
		markers[1] = (struct marker_bytes){ a64_close, sizeof(a64_close), CLOSE };
	} else {
		fprintf(stderr, "rk_insns: no markers for target %s\n", info->target_name);
		return -1;
	}
	out = fopen(path, "w");
	if (!out) {
		perror(path);
		return -1;
	}
	slots = g_new0(struct slot, MAX_SLOTS);
	base = g_new0(uint64_t, MAX_SLOTS);
	by_key = g_hash_table_new(g_int64_hash, g_int64_equal);
	for (i = 0; i < MAX_VCPUS; i++)
		counts[i] = g_new0(uint64_t, MAX_SLOTS);
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
