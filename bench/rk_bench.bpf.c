// SPDX-License-Identifier: GPL-2.0
/*
 * eBPF twin of the Rust modules' aggregate mode, for `make bench` (configurations
 * `ebpf_aggregate` and, on Debian's kernel, `ebpf_fentry` and `ebpf_session`); loaded and
 * attached by `bpfload` (the workspace crate, on libbpf-rs).
 *
 *   bind          kprobe on inet_bind: per-CPU hits, a nofault copy of the sockaddr bounded by
 *                 addr_len, the port decode of rust_kprobe (kept in `last_port`), reported.
 *   release_entry kprobe on inet_release: per-CPU hits, the entry time in a hash map keyed by
 *   release_ret   the task (pid_tgid), as BCC's and bpftrace's latency tools keep it; the
 *                 kretprobe: count/sum/min/max, the log2 histogram and the return-value tally
 *                 of rust_kretprobe hist=1, in the same per-CPU layout.
 *
 *   bind_fentry, release_fentry, release_fexit: the same work (the same bodies, the same maps)
 *                 from fentry/fexit programs, i.e. the BPF trampoline that ftrace's call site
 *                 jumps to, the eBPF peer at its best. libbpf loads them against the kernel's
 *                 BTF (/sys/kernel/btf/vmlinux): Debian's kernel only.
 *
 *   release_session (built with -DRK_SESSION, into an object of its own) the same inet_release
 *                 work from one kprobe.session program (a kprobe_multi link with
 *                 BPF_TRACE_KPROBE_SESSION: fprobe, run at entry and at return), the entry time
 *                 kept in the session's cookie instead of the hash map, as a latency tool would
 *                 do it on kernels that have it. It calls two kfuncs (`__ksym` externs), which
 *                 libbpf resolves in the kernel's BTF for the whole object, whichever programs
 *                 it loads: hence a second object, loaded on Debian's kernel only.
 *
 * Self-contained (no libbpf headers, no vmlinux.h: the project's own kernels have no BTF): the
 * few helper ids and map types are those of include/uapi/linux/bpf.h; a kprobe's arguments are
 * read from the probe's register set at each arch's offsets (built with -D__TARGET_ARCH_x86 or
 * _arm64), an fentry/fexit program's from its u64 argument array (the return value after the
 * arguments). Maps are BTF-defined (`.maps`, built with -g), the only kind libbpf 1.x takes.
 */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int s32;
typedef unsigned long long u64;
typedef long long s64;

#define SEC(name) __attribute__((section(name), used))
#define INLINE static inline __attribute__((always_inline))

/* include/uapi/linux/bpf.h */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_ANY 0
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static long (*bpf_probe_read_kernel)(void *dst, u32 size, const void *src) = (void *)113;
#ifdef RK_SESSION
/* kernel/trace/bpf_trace.c's kfuncs of kprobe.session programs, as libbpf's bpf_helpers.h
 * declares them: externs in `.ksyms`, resolved by libbpf in the kernel's BTF. */
#define __ksym __attribute__((section(".ksyms")))
extern _Bool bpf_session_is_return(void *ctx) __ksym;
extern u64 *bpf_session_cookie(void *ctx) __ksym;
#endif

/* The probe's registers (struct pt_regs on x86_64, user_pt_regs on arm64): byte offsets. */
#if defined(__TARGET_ARCH_x86)
#define ARG1 104 /* si */
#define ARG2 96	 /* dx */
#define RET 80	 /* ax */
#elif defined(__TARGET_ARCH_arm64)
#define ARG1 8 /* regs[1] */
#define ARG2 16
#define RET 0
#else
#error "build with -D__TARGET_ARCH_x86 or -D__TARGET_ARCH_arm64"
#endif
#define REG(ctx, off) (*(u64 *)((char *)(ctx) + (off)))

/* A BTF-defined map's attributes, as libbpf's bpf_helpers.h spells them: each one a member
 * whose BTF type carries the value (an array's size, or the pointed-to type). */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

/* rust_kprobe's counters (kprobes/logic.rs SOCKADDR_MAX = 28), and the decoded port. */
enum { HITS, FILTERED, REPORTED, POST_PENDING, FAULTS, LAST_PORT, BIND_N };
struct bind_stats {
	u64 c[BIND_N];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct bind_stats);
} bind_stats SEC(".maps");

#define AF_UNSPEC 0
#define AF_INET 2
#define AF_INET6 10
#define SOCKADDR_MAX 28

INLINE u16 be16(const u8 *p)
{
	return (u16)p[0] << 8 | p[1];
}

/* What both inet_bind programs do with (uaddr, addr_len sign-extended). */
INLINE int bind_work(const void *uaddr, s64 len)
{
	u32 zero = 0;
	struct bind_stats *s = bpf_map_lookup_elem(&bind_stats, &zero);
	u8 buf[SOCKADDR_MAX] = {};
	s32 port = -1;
	u16 family;

	if (!s)
		return 0;
	s->c[HITS]++;
	if (len < 0)
		len = 0;
	if (len > SOCKADDR_MAX)
		len = SOCKADDR_MAX;
	if (bpf_probe_read_kernel(buf, len, uaddr)) {
		s->c[FAULTS]++;
		return 0;
	}
	/* kprobes/logic.rs Sockaddr::decode: AF_INET (and AF_UNSPEC with INADDR_ANY) from 16
	 * bytes, AF_INET6 from 24. */
	family = len >= 2 ? *(u16 *)buf : 0;
	if (len >= 16 && (family == AF_INET || (family == AF_UNSPEC && !*(u32 *)(buf + 4))))
		port = be16(buf + 2);
	else if (len >= 24 && family == AF_INET6)
		port = be16(buf + 2);
	s->c[LAST_PORT] = (u64)(s64)port;
	s->c[REPORTED]++;
	return 0;
}

/* inet_bind(struct socket *sock, struct sockaddr_unsized *uaddr, int addr_len) */
SEC("kprobe/inet_bind") int bind(void *ctx)
{
	return bind_work((const void *)REG(ctx, ARG1), (s32)REG(ctx, ARG2));
}

SEC("fentry/inet_bind") int bind_fentry(u64 *ctx)
{
	return bind_work((const void *)ctx[1], (s32)ctx[2]);
}

/* rust_kretprobe's per-CPU layout: totals, 65 log2 buckets, 135 return-value slots. */
#define BUCKETS 65
#define TALLY_SLOTS 135
enum { R_HITS, R_FILTERED, R_KTHREADS, COUNT, SUM_NS, MAX_NS, NOT_MIN_NS, MISSED, HIST };
#define RELEASE_N (HIST + BUCKETS + TALLY_SLOTS)
struct release_stats {
	u64 c[RELEASE_N];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct release_stats);
} release_stats SEC(".maps");
/* Entry time by task: pid_tgid -> ns (BCC's and bpftrace's `start` map). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u64);
	__type(value, u64);
} start SEC(".maps");

/* What both inet_release entry programs do. */
INLINE int release_entry_work(void)
{
	u32 zero = 0;
	struct release_stats *s = bpf_map_lookup_elem(&release_stats, &zero);
	u64 id = bpf_get_current_pid_tgid();
	u64 ts = bpf_ktime_get_ns();

	if (!s)
		return 0;
	s->c[R_HITS]++;
	bpf_map_update_elem(&start, &id, &ts, BPF_ANY);
	return 0;
}

/* fls64: 0 for 0, else the 1-based index of the highest set bit (no such BPF instruction). */
INLINE u32 fls64(u64 v)
{
	u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { v >>= 1; r += 1; }
	return r + (u32)v;
}

/* What every inet_release return program does with a call's duration d and return value. */
INLINE void release_account(struct release_stats *s, s64 d, s32 ret)
{
	u64 ns = d > 0 ? d : 0;
	u32 b, slot;

	s->c[COUNT]++;
	s->c[SUM_NS] += ns;
	if (ns > s->c[MAX_NS])
		s->c[MAX_NS] = ns;
	if (~ns > s->c[NOT_MIN_NS])
		s->c[NOT_MIN_NS] = ~ns;
	b = fls64(ns);
	if (b < BUCKETS)
		s->c[HIST + b]++;
	slot = ret == 0 ? 0 : (ret < 0 && ret >= -133 ? (u32)-ret : TALLY_SLOTS - 1);
	if (slot < TALLY_SLOTS)
		s->c[HIST + BUCKETS + slot]++;
}

/* What both inet_release return programs with the `start` map do with the return value. */
INLINE int release_ret_work(s32 ret)
{
	u32 zero = 0;
	struct release_stats *s = bpf_map_lookup_elem(&release_stats, &zero);
	u64 id = bpf_get_current_pid_tgid();
	u64 *tsp;
	s64 d;

	if (!s)
		return 0;
	tsp = bpf_map_lookup_elem(&start, &id);
	if (!tsp) {
		s->c[MISSED]++;
		return 0;
	}
	d = (s64)(bpf_ktime_get_ns() - *tsp);
	bpf_map_delete_elem(&start, &id);
	release_account(s, d, ret);
	return 0;
}

/* int inet_release(struct socket *sock) */
SEC("kprobe/inet_release") int release_entry(void *ctx)
{
	return release_entry_work();
}

SEC("kretprobe/inet_release") int release_ret(void *ctx)
{
	return release_ret_work((s32)REG(ctx, RET));
}

SEC("fentry/inet_release") int release_fentry(u64 *ctx)
{
	return release_entry_work();
}

/* fexit: ctx[0] is sock, ctx[1] the return value. */
SEC("fexit/inet_release") int release_fexit(u64 *ctx)
{
	return release_ret_work((s32)ctx[1]);
}

/* kprobe.session on inet_release: at entry the time goes to the session's cookie (a u64 the
 * kernel keeps for this call) and 0 asks for the return run, which accounts the call as
 * release_ret does. A return with a zero cookie (no entry time) counts as missed. */
#ifdef RK_SESSION
SEC("kprobe.session/inet_release") int release_session(void *ctx)
{
	u32 zero = 0;
	struct release_stats *s = bpf_map_lookup_elem(&release_stats, &zero);
	u64 *cookie = bpf_session_cookie(ctx);

	if (!s)
		return 0;
	if (!bpf_session_is_return(ctx)) {
		s->c[R_HITS]++;
		*cookie = bpf_ktime_get_ns();
		return 0;
	}
	if (!*cookie) {
		s->c[MISSED]++;
		return 0;
	}
	release_account(s, (s64)(bpf_ktime_get_ns() - *cookie), (s32)REG(ctx, RET));
	return 0;
}
#endif

char _license[] SEC("license") = "GPL";
