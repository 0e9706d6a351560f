/*
 * batchflow.bpf.c - kernel side of `batchflow record` (loaded by bcc).
 *
 * Tracepoints only (no kprobes on the kernels we target).  Every record is
 * a struct bf_event (batchflow.h) written to the `events` ring buffer.
 *
 * Where each call is seen:
 *   raw_syscalls:sys_exit   open/stat/chdir/wait families, fork failures and
 *                           exec results: one program run per system call,
 *                           reading the arguments from the saved registers.
 *                           The per-syscall tracepoints cost two runs (entry
 *                           and exit), a map slot to carry the arguments
 *                           across, and the heavier per-syscall event path.
 *   syscalls:sys_enter_*    only where the arguments are gone at exit:
 *                           execve/execveat (the old image's argv), the clone
 *                           family (its flags, needed in sched_process_fork)
 *                           and exit/exit_group (which do not return).
 *   sched:*, signal:*       fork, exec, exit and fatal signals.
 *
 * Scope is decided here, in the kernel: a task is traced when its byte in
 * `tids` is set (or in system mode).  A child joins in sched_process_fork,
 * which runs in the parent before the child is first scheduled, so no event
 * of a child can be missed.
 *
 * The loader (agent/capture/loader.py) defines, before compiling:
 *   BF_RINGBUF_PAGES, BF_MAX_TASKS, BF_WAKEUP_BYTES
 *   BF_HAVE_<syscall> for each syscall tracepoint present on this kernel
 *   BF_HAVE_GROUP_DEAD when sched_process_exit has the group_dead field
 */
#include "batchflow.h"
#include "arch_x86_64.h"

BPF_RINGBUF_OUTPUT(events, BF_RINGBUF_PAGES);

/* The traced set: one byte per tid, its recording slot (0 = not traced).  An array (its lookup is
 * inlined) of every possible tid (PID_MAX_LIMIT, 4 MiB), mapped by the agent
 * so that it can add a task with a one-byte store; a hash lookup here cost
 * more than everything else a record needs but the path copy. */
struct bf_tids {
	u8 on[BF_TIDS_PER_SLOT];
};
BPF_F_TABLE("array", u32, struct bf_tids, tids, BF_TID_SLOTS, BPF_F_MMAPABLE);

/* Per task (tid) in a fork-family call: its clone flags, for
 * sched_process_fork (which only names the child). */
struct bf_forking {
	s64 flags;
	u8 call;
	u8 _pad[7];
};
BPF_HASH(forking, u32, struct bf_forking, BF_MAX_TASKS);
/* tgid -> parent tgid, learned at fork (the kernel's task_struct layout is
 * not ours to read: bcc compiles against headers that may not match) */
BPF_HASH(parents, u32, u32, BF_MAX_TASKS);
/* The last tgid this CPU looked up in `parents`, and its answer: records come
 * in runs from one process, and a hash lookup per record costs more than all
 * the record's other fields together.  Valid while `exits` has not moved: a
 * tgid can name another process only after a traced process has ended. */
struct bf_ppid_seen {
	u32 tgid;
	u32 ppid;
	u64 exits;
};
BPF_PERCPU_ARRAY(ppid_seen, struct bf_ppid_seen, 1);
BPF_ARRAY(exits, u64, 1);

/* execve records are built at entry (the old image's argv is gone at exit)
 * and completed at exit; keyed by tid. */
BPF_HASH(execs, u32, struct bf_record, 256);

/* tgid -> exit code given to exit_group/exit; tgid -> fatal signal */
BPF_HASH(exit_codes, u32, s64, BF_MAX_TASKS);
BPF_HASH(fatal_sigs, u32, s64, BF_MAX_TASKS);

BPF_PERCPU_ARRAY(scratch, struct bf_record, 1);
BPF_PERCPU_ARRAY(losses, u64, BF_SLOTS * BF_LOSS_MAX);
/* bytes this CPU submitted since it last woke the consumer */
BPF_PERCPU_ARRAY(unwoken, u64, 1);

/* indexed by enum bf_config (batchflow.h) */
BPF_ARRAY(config, u32, BF_CFG_MAX);

/* ---- control rules (agent/control/kernel.py fills them; struct bf_krule
 * and its flags are in batchflow.h) ----
 * DISCARD and FOCUS conditions the kernel can decide: a time window, a set
 * of event kinds, optionally a pid set (tgid -> bit per slot in `kpids`), a
 * uid and a comm, each possibly negated.  Discarded records never reach the
 * ring buffer; a FOCUS record wakes the consumer at once. */
BPF_ARRAY(krules, struct bf_krule, BF_KRULES);
BPF_HASH(kpids, u32, u32, BF_MAX_TASKS);
BPF_PERCPU_ARRAY(kdropped, u64, BF_KRULES);

static __always_inline void bf_lost(u32 what, u8 slot)
{
	u32 i = (u32)slot * BF_LOSS_MAX + what;
	u64 *n = losses.lookup(&i);
	if (n)
		(*n)++;
}

/* ---- Filters: the one place that decides what is recorded. ---- */
static __always_inline u8 *bf_tid_byte(u32 tid)
{
	u32 slot = tid / BF_TIDS_PER_SLOT;
	struct bf_tids *w = tids.lookup(&slot);
	return w ? &w->on[tid % BF_TIDS_PER_SLOT] : NULL;
}

static __always_inline int bf_system_wide(u32 tgid)
{
	u32 k = BF_CFG_SCOPE;
	u32 *scope = config.lookup(&k);
	if (!scope || *scope != BF_SCOPE_SYSTEM)
		return 0;
	k = BF_CFG_SELF;
	u32 *self = config.lookup(&k);
	return !(self && *self == tgid);
}

/* The task's recording slot (0: not in the traced set). */
static __always_inline u8 bf_slot(u32 tid)
{
	u8 *on = bf_tid_byte(tid);
	return on ? *on : 0;
}

/* The task (id: tgid << 32 | tid) as one look at the traced set sees it: its
 * recording slot, 0 when only whole-host scope wants it, -1 when its events
 * are not wanted.  Hot paths keep the answer rather than look twice. */
static __always_inline int bf_scope(u64 id)
{
	u8 *on = bf_tid_byte((u32)id);
	if (on && *on)
		return *on;
	return bf_system_wide(id >> 32) ? 0 : -1;
}

/* 1 when the task's events are wanted. */
static __always_inline int bf_wanted(u32 tgid, u32 tid)
{
	return bf_scope(((u64)tgid << 32) | tid) >= 0;
}

static __always_inline int bf_current(void)
{
	u64 id = bpf_get_current_pid_tgid();
	return bf_wanted(id >> 32, (u32)id);
}

/* The task joins recording `slot` (a forked child: its parent's). */
static __always_inline void bf_join(u32 tid, u8 slot)
{
	u8 *on = bf_tid_byte(tid);
	if (on)
		*on = slot;
	else
		bf_lost(BF_LOSS_TRACED, slot);
}

static __always_inline void bf_leave(u32 tid)
{
	u8 *on = bf_tid_byte(tid);
	if (on)
		*on = 0;
}

/* Control rules: 1 when a DISCARD applies to an event with these fields
 * (its slot in *slot); sets *focus when a FOCUS does.  Scope stays
 * bf_wanted's alone: a discarded task stays traced, so its children still
 * join and its exit still cleans up. */
static __always_inline int bf_rules_match(u64 ts, u32 pid, u32 uid, u8 kind,
					  const char *comm, int *focus, u32 *slot)
{
	u32 k = BF_CFG_ACTIVE;
	u32 *active = config.lookup(&k);
	if (!active || !*active)
		return 0;
	u32 mask = *active;
	u32 *pbits = kpids.lookup(&pid);
	u32 bits = pbits ? *pbits : 0;
	u64 c0 = 0, c1 = 0;
	__builtin_memcpy(&c0, comm, 8);
	__builtin_memcpy(&c1, comm + 8, 8);
	for (u32 i = 0; i < BF_KRULES; i++) {
		if (!(mask & (1u << i)))
			continue;
		u32 n = i;
		struct bf_krule *r = krules.lookup(&n);
		if (!r || ts < r->lo || ts > r->hi || kind >= 32 || !(r->kinds & (1u << kind)))
			continue;
		if ((r->flags & BF_KR_PIDS) && !(bits & (1u << i)))
			continue;
		if ((r->flags & BF_KR_UID) && (uid == r->uid) == !!(r->flags & BF_KR_UID_NOT))
			continue;
		if ((r->flags & BF_KR_COMM) &&
		    (c0 == r->comm[0] && c1 == r->comm[1]) == !!(r->flags & BF_KR_COMM_NOT))
			continue;
		if (r->type == BF_KR_DISCARD) {
			*slot = i;
			return 1;
		}
		*focus = 1;
	}
	return 0;
}

static __always_inline void bf_count_dropped(u32 slot)
{
	u64 *n = kdropped.lookup(&slot);
	if (n)
		(*n)++;
}

/* On a finished record: 1 when it is discarded (and counted). */
static __always_inline int bf_discarded(struct bf_event *e, int *focus)
{
	u32 slot = 0;
	if (!bf_rules_match(e->ts_ns, e->pid, e->uid, e->kind, e->comm, focus, &slot))
		return 0;
	bf_count_dropped(slot);
	return 1;
}

static __always_inline u32 bf_ppid(u32 tgid)
{
	u32 zero = 0;
	struct bf_ppid_seen *seen = ppid_seen.lookup(&zero);
	u64 *ended = exits.lookup(&zero);
	if (!seen || !ended) {
		u32 *pp = parents.lookup(&tgid);
		return pp ? *pp : 0;
	}
	u64 now = *ended;   /* read before the lookup: an exit after it invalidates */
	if (seen->tgid == tgid && seen->exits == now)
		return seen->ppid;
	u32 *pp = parents.lookup(&tgid);
	seen->tgid = tgid;
	seen->ppid = pp ? *pp : 0;
	seen->exits = now;
	return seen->ppid;
}

/* The current task (id and slot as bf_scope found them) in a fresh header. */
static __always_inline void bf_fill(struct bf_event *e, u64 id, u8 slot, u64 ts, u8 call, u8 kind)
{
	e->ts_ns = ts;
	e->pid = id >> 32;
	e->tid = (u32)id;
	e->ppid = bf_ppid(e->pid);
	e->uid = (u32)bpf_get_current_uid_gid();
	e->ret = 0;
	e->arg0 = 0;
	e->arg1 = 0;
	e->dirfd = AT_FDCWD;
	e->size = BF_HEADER_SIZE;
	e->kind = kind;
	e->call = call;
	e->path_len = 0;
	e->argv_len = 0;
	e->argc = 0;
	e->trunc = 0;
	e->slot = slot;
	e->_pad = 0;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
}

/* Submit without waking the consumer (it drains on a short timer) unless
 * this CPU has written BF_WAKEUP_BYTES since its last wake-up: a wake-up per
 * record doubled the cost of a stat-heavy loop, and none at all would let a
 * burst fill the ring between two timer ticks. */
static __always_inline void bf_output(struct bf_record *r, int focus)
{
	u32 size = BF_HEADER_SIZE + r->hdr.path_len + r->hdr.argv_len;
	if (size > sizeof(*r))
		size = sizeof(*r);
	r->hdr.size = size;
	u64 flags = BPF_RB_NO_WAKEUP;
	u32 zero = 0;
	u64 *since = unwoken.lookup(&zero);
	if (since) {
		*since += size;
		if (*since > BF_WAKEUP_BYTES) {
			flags = BPF_RB_FORCE_WAKEUP;
			*since = 0;
		}
	}
	if (focus)
		flags = BPF_RB_FORCE_WAKEUP;
	if (events.ringbuf_output(r, size, flags) != 0)
		bf_lost(BF_LOSS_RINGBUF, r->hdr.slot);
}

static __always_inline void bf_submit(struct bf_record *r)
{
	int focus = 0;
	if (!bf_discarded(&r->hdr, &focus))
		bf_output(r, focus);
}

/* Copies a user string to data[off..]; returns bytes stored, NUL included,
 * 0 when it cannot be read (then counted, unless the caller will retry). */
static __always_inline u32 bf_read_str_or(struct bf_record *r, u32 off, u32 bound,
					  const char *src, u8 trunc_bit, int count)
{
	if (off > BF_DATA_MAX - bound)
		return 0;
	int n = bpf_probe_read_user_str(&r->data[off], bound, src);
	if (n <= 0) {
		/* The string copy reads whole words: an empty path (glibc's fstat
		 * passes "" with AT_EMPTY_PATH, and the kernel then reads just
		 * its first byte) a few bytes before a page that is not mapped
		 * in yet fails as a whole.  Its one byte can still be read. */
		char c = 1;
		if (bpf_probe_read_user(&c, 1, src) == 0 && c == 0) {
			r->data[off] = 0;
			return 1;
		}
		if (count)
			bf_lost(BF_LOSS_READ, r->hdr.slot);
		return 0;
	}
	if (n == bound) {
		/* Full buffer: src[bound-1] is the NUL of a string of exactly
		 * bound-1 bytes, or the first byte that did not fit. */
		char next = 0;
		bpf_probe_read_user(&next, 1, src + bound - 1);
		if (next)
			r->hdr.trunc |= trunc_bit;
	}
	return n;
}

static __always_inline u32 bf_read_str(struct bf_record *r, u32 off, u32 bound,
				       const char *src, u8 trunc_bit)
{
	return bf_read_str_or(r, off, bound, src, trunc_bit, 1);
}

static __always_inline struct bf_record *bf_scratch(void)
{
	u32 zero = 0;
	return scratch.lookup(&zero);
}

/* This CPU's scratch record with its header filled for task `id` in
 * recording `slot`, or NULL. */
static __always_inline struct bf_record *bf_start_as(u64 id, u8 slot, u64 ts, u8 call, u8 kind)
{
	struct bf_record *r = bf_scratch();
	if (r)
		bf_fill(&r->hdr, id, slot, ts, call, kind);
	return r;
}

/* The same for the current task, looked up here (paths that run rarely). */
static __always_inline struct bf_record *bf_start(u64 ts, u8 call, u8 kind)
{
	u64 id = bpf_get_current_pid_tgid();
	return bf_start_as(id, bf_slot((u32)id), ts, call, kind);
}

/* ---- fork family: the flags at entry, the child in sched_process_fork ---- */
static __always_inline int bf_fork_enter(u8 call, s64 flags)
{
	u64 id = bpf_get_current_pid_tgid();
	if (!bf_wanted(id >> 32, (u32)id))
		return 0;
	u32 tid = (u32)id;
	struct bf_forking f = {.flags = flags, .call = call};
	forking.update(&tid, &f);
	return 0;
}

#ifdef BF_HAVE_fork
TRACEPOINT_PROBE(syscalls, sys_enter_fork) { return bf_fork_enter(BF_SYS_FORK, BF_FLAGS_FORK); }
#endif
#ifdef BF_HAVE_vfork
TRACEPOINT_PROBE(syscalls, sys_enter_vfork) { return bf_fork_enter(BF_SYS_VFORK, BF_FLAGS_VFORK); }
#endif
#ifdef BF_HAVE_clone
TRACEPOINT_PROBE(syscalls, sys_enter_clone) { return bf_fork_enter(BF_SYS_CLONE, args->clone_flags); }
#endif
#ifdef BF_HAVE_clone3
TRACEPOINT_PROBE(syscalls, sys_enter_clone3)
{
	u64 flags = 0;  /* struct clone_args starts with u64 flags */
	bpf_probe_read_user(&flags, sizeof(flags), args->uargs);
	return bf_fork_enter(BF_SYS_CLONE3, flags);
}
#endif

/* Runs in the parent, before the child first runs: the child joins the
 * traced set here. */
TRACEPOINT_PROBE(sched, sched_process_fork)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, tid = (u32)id;
	if (!bf_wanted(tgid, tid))
		return 0;
	u32 child = args->child_pid;
	struct bf_forking *f = forking.lookup(&tid);
	s64 flags = f ? f->flags : BF_FLAGS_FORK;
	u8 call = f ? f->call : 0;
	u8 slot = bf_slot(tid);
	if (slot)   /* whole-host scope alone: children need no byte */
		bf_join(child, slot);
	if (!(flags & BF_CLONE_THREAD)) {
		parents.update(&child, &tgid);
		/* control rules: a child joins its parent's inheriting pid sets */
		u32 k3 = BF_CFG_INHERIT;
		u32 *inherit = config.lookup(&k3);
		u32 *pbits = kpids.lookup(&tgid);
		if (inherit && pbits && (*pbits & *inherit)) {
			u32 cbits = *pbits & *inherit;
			kpids.update(&child, &cbits);
		}
	}
	struct bf_record *r = bf_start(bpf_ktime_get_ns(), call, BF_FORK);
	if (!r)
		return 0;
	r->hdr.ret = child;
	r->hdr.arg0 = flags;
	r->hdr.arg1 = child;
	bf_submit(r);
	return 0;
}

/* ---- exec ----
 * The record is built at entry (the old image's argv is gone at exit).  A
 * string that cannot be read there (a forked child has not yet touched the
 * page of its own string literals, and a BPF read cannot fault it in) is read
 * again once the exec has succeeded: the filename from sched_process_exec
 * (the kernel's copy), argv from the new image's stack at syscall exit.
 * Only what is still unreadable then is counted as lost. */
#define BF_REREAD_PATH 0x1
#define BF_REREAD_ARGV 0x2

/* argv[0..BF_ARGC_MAX) into data[off..]; returns the new end, sets argc and
 * the TRUNC bits; *unreadable when a string could not be read. */
static __always_inline u32 bf_read_argv(struct bf_record *r, u32 off,
					const char *const *argv, u8 *unreadable)
{
	u8 argc = 0;
	/* Few branches per iteration: the verifier walks each one 32 times. */
	for (int i = 0; i < BF_ARGC_MAX; i++) {
		const char *arg = NULL;
		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) != 0 || !arg)
			goto done;
		if (off > BF_DATA_MAX - BF_ARG_MAX)
			goto done;
		int n = bpf_probe_read_user_str(&r->data[off], BF_ARG_MAX, arg);
		if (n <= 0) {
			*unreadable = 1;
			goto done;
		}
		/* arg[n-1] is the NUL, unless the string went on past the buffer */
		char next = 0;
		bpf_probe_read_user(&next, 1, arg + n - 1);
		r->hdr.trunc |= next ? BF_TRUNC_ARG : 0;
		/* A no-op mask (off < 16384 always) that gives every path through
		 * the loop the same known range, so the verifier can prune them. */
		off = (off + n) & 0x3fff;
		argc++;
	}
	{
		const char *more = NULL;
		bpf_probe_read_user(&more, sizeof(more), &argv[BF_ARGC_MAX]);
		if (more)
			r->hdr.trunc |= BF_TRUNC_ARGC;
	}
done:
	r->hdr.argc = argc;
	return off;
}

static __always_inline int bf_exec_enter(u8 call, s32 dirfd, const char *path,
					 const char *const *argv, s64 flags)
{
	if (!bf_current())
		return 0;
	struct bf_record *r = bf_start(bpf_ktime_get_ns(), call, BF_EXEC);
	if (!r)
		return 0;
	r->hdr.dirfd = dirfd;
	r->hdr.arg0 = flags;
	u32 off = bf_read_str_or(r, 0, BF_PATH_MAX, path, BF_TRUNC_PATH, 0);
	r->hdr.path_len = off;
	u8 unreadable = 0;
	u32 end = bf_read_argv(r, off, argv, &unreadable);
	r->hdr.argv_len = end - off;
	r->hdr._pad = (off ? 0 : BF_REREAD_PATH) | (unreadable ? BF_REREAD_ARGV : 0);
	u32 tid = r->hdr.tid;
	if (execs.update(&tid, r) != 0)
		bf_lost(BF_LOSS_INFLIGHT, r->hdr.slot);
	return 0;
}

/* At syscall exit.  `stack`: the new image's initial stack pointer (argc,
 * then argv[]) when the exec succeeded into a 64-bit program, else 0. */
static __always_inline int bf_exec_exit(s64 ret, u64 stack)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct bf_record *r = execs.lookup(&tid);
	if (!r)
		return 0;
	r->hdr.ret = ret;
	/* A successful exec may have changed comm and, from a non-leader thread, tid. */
	r->hdr.tid = tid;
	bpf_get_current_comm(&r->hdr.comm, sizeof(r->hdr.comm));
	if (r->hdr._pad & BF_REREAD_PATH)
		bf_lost(BF_LOSS_READ, r->hdr.slot);  /* sched_process_exec did not see it */
	if (r->hdr._pad & BF_REREAD_ARGV) {
		u8 unreadable = 1;
		if (ret == 0 && stack) {
			unreadable = 0;
			u32 off = r->hdr.path_len & 0x1fff;
			r->hdr.trunc &= ~(BF_TRUNC_ARG | BF_TRUNC_ARGC);
			u32 end = bf_read_argv(r, off, (const char *const *)(stack + 8), &unreadable);
			r->hdr.argv_len = end - off;
		}
		if (unreadable)
			bf_lost(BF_LOSS_READ, r->hdr.slot);
	}
	r->hdr._pad = 0;
	bf_submit(r);
	execs.delete(&tid);
	return 0;
}

#ifdef BF_HAVE_execve
TRACEPOINT_PROBE(syscalls, sys_enter_execve)
{
	return bf_exec_enter(BF_SYS_EXECVE, AT_FDCWD, args->filename, args->argv, 0);
}
#endif
#ifdef BF_HAVE_execveat
TRACEPOINT_PROBE(syscalls, sys_enter_execveat)
{
	return bf_exec_enter(BF_SYS_EXECVEAT, args->fd, args->filename, args->argv, args->flags);
}
#endif

/* A non-leader thread that execs takes over the leader's tid: move its
 * pending record so the exit finds it, and its place in the traced set
 * (the leader's own exit has cleared that tid's byte). */
TRACEPOINT_PROBE(sched, sched_process_exec)
{
	u32 pid = args->pid, old = args->old_pid;
	struct bf_record *r = execs.lookup(&old);
	if (r && (r->hdr._pad & BF_REREAD_PATH)) {
		/* the kernel's copy of the filename; argv, which followed the
		 * empty path, is read again from the new stack at exit */
		u16 loc = args->data_loc_filename & 0xffff;
		int n = bpf_probe_read_kernel_str(&r->data[0], BF_PATH_MAX, (char *)args + loc);
		if (n > 0) {
			r->hdr.path_len = n;
			r->hdr.argv_len = 0;
			r->hdr.argc = 0;
			r->hdr._pad = BF_REREAD_ARGV;
		}
	}
	if (pid == old)
		return 0;
	u8 *was = bf_tid_byte(old);
	if (was && *was) {
		u8 slot = *was;
		*was = 0;
		bf_join(pid, slot);
	}
	if (!r)
		return 0;
	execs.update(&pid, r);
	execs.delete(&old);
	return 0;
}

/* ---- wait: timestamped at completion, where a branch joins ---- */
static __always_inline void bf_wait_exit(u64 id, u8 slot, u8 call, s64 ret, s64 which_pid,
					 void *uptr)
{
	struct bf_record *r = bf_start_as(id, slot, bpf_ktime_get_ns(), call, BF_WAIT);
	if (!r)
		return;
	r->hdr.arg0 = which_pid;
	r->hdr.arg1 = -1;
	r->hdr.ret = ret;
	if (call == BF_SYS_WAIT4) {
		int status = 0;
		if (ret > 0 && uptr && bpf_probe_read_user(&status, sizeof(status), uptr) == 0)
			r->hdr.arg1 = status;
	} else if (ret == 0 && uptr) {
		/* siginfo: si_code at 8, si_pid at 16, si_status at 24 */
		int info[7] = {};
		if (bpf_probe_read_user(info, sizeof(info), uptr) == 0) {
			int code = info[2], pid = info[4], st = info[6];
			r->hdr.ret = pid;
			if (code == 1)        /* CLD_EXITED */
				r->hdr.arg1 = (st & 0xff) << 8;
			else if (code == 2)   /* CLD_KILLED */
				r->hdr.arg1 = st & 0x7f;
			else if (code == 3)   /* CLD_DUMPED */
				r->hdr.arg1 = (st & 0x7f) | 0x80;
		}
	}
	bf_submit(r);
}

/* ---- exit ---- */
static __always_inline int bf_exit_code(int code)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32;
	if (!bf_wanted(tgid, (u32)id))
		return 0;
	s64 c = code & 0xff;
	exit_codes.update(&tgid, &c);
	return 0;
}

#ifdef BF_HAVE_exit_group
TRACEPOINT_PROBE(syscalls, sys_enter_exit_group) { return bf_exit_code(args->error_code); }
#endif
#ifdef BF_HAVE_exit
TRACEPOINT_PROBE(syscalls, sys_enter_exit) { return bf_exit_code(args->error_code); }
#endif

static __always_inline int bf_sig_fatal_by_default(int sig)
{
	/* SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH
	 * do not terminate by default. */
	return sig > 0 && sig < 65 && !(sig >= 17 && sig <= 23) && sig != 28;
}

/* The signal sent to a traced task, remembered by target pid: when it kills
 * the task, the kernel reports the delivery as SIGKILL (group exit). */
BPF_HASH(sent_sigs, u32, s64, BF_MAX_TASKS);

TRACEPOINT_PROBE(signal, signal_generate)
{
	u32 target = args->pid;
	int sig = args->sig;
	if (!bf_sig_fatal_by_default(sig))
		return 0;
	u8 *on = bf_tid_byte(target);
	if (!(on && *on) && !bf_system_wide(target))
		return 0;
	s64 s = sig;
	sent_sigs.update(&target, &s);
	return 0;
}

/* A signal delivered with its default action, which ends the process. */
TRACEPOINT_PROBE(signal, signal_deliver)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, tid = (u32)id;
	if (!bf_wanted(tgid, tid))
		return 0;
	if (args->sa_handler != 0) {
		/* handled: not what kills it */
		sent_sigs.delete(&tgid);
		sent_sigs.delete(&tid);
		return 0;
	}
	s64 sig = args->sig;
	if (!bf_sig_fatal_by_default(sig))
		return 0;
	if (sig == 9) {
		s64 *sent = sent_sigs.lookup(&tgid);
		if (!sent)
			sent = sent_sigs.lookup(&tid);
		if (sent)
			sig = *sent;
	}
	fatal_sigs.update(&tgid, &sig);
	return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, tid = (u32)id;
	if (!bf_wanted(tgid, tid))
		return 0;
	u8 slot = bf_slot(tid);   /* the exit record is its recording's */
	bf_leave(tid);
	execs.delete(&tid);
	forking.delete(&tid);
#ifdef BF_HAVE_GROUP_DEAD
	if (!args->group_dead)
		return 0;
	u8 trunc = 0;
#else
	/* Kernels without group_dead: the leader's exit stands for the
	 * process's, flagged as such. */
	if (tid != tgid)
		return 0;
	u8 trunc = BF_EXIT_THREAD;
#endif
	u32 zero = 0;
	u64 *ended = exits.lookup(&zero);
	if (ended)
		__sync_fetch_and_add(ended, 1);   /* its tgid may be reused from now on */
	struct bf_record *r = bf_start(bpf_ktime_get_ns(), BF_SYS_NONE, BF_EXIT);
	if (!r)
		return 0;
	r->hdr.slot = slot;
	r->hdr.trunc = trunc;
	s64 *code = exit_codes.lookup(&tgid);
	s64 *sig = fatal_sigs.lookup(&tgid);
	r->hdr.arg0 = code ? *code : -1;
	r->hdr.arg1 = sig ? *sig : 0;
	bf_submit(r);
	kpids.delete(&tgid);   /* control rules: pids are reused */
#ifdef BF_HAVE_GROUP_DEAD
	exit_codes.delete(&tgid);
	fatal_sigs.delete(&tgid);
	parents.delete(&tgid);
	sent_sigs.delete(&tgid);
#endif
	sent_sigs.delete(&tid);
	return 0;
}

/* ---- system call results: one program for all of them ---- */

/* A path call (open, stat, access, chdir families): its record is stamped
 * at completion, its path read once the kernel has faulted it in. */
static __always_inline int bf_path_exit(u64 id, u8 slot, u8 call, u8 kind, s64 ret, s32 dirfd,
					const char *path, s64 arg0, s64 arg1)
{
	struct bf_record *r = bf_start_as(id, slot, bpf_ktime_get_ns(), call, kind);
	if (!r)
		return 0;
	r->hdr.ret = ret;
	r->hdr.arg0 = arg0;
	r->hdr.arg1 = arg1;
	r->hdr.dirfd = dirfd;
	/* control rules first: a discarded record's path is never read */
	int focus = 0;
	if (bf_discarded(&r->hdr, &focus))
		return 0;
	if (path)
		r->hdr.path_len = bf_read_str(r, 0, BF_PATH_MAX, path, BF_TRUNC_PATH);
	bf_output(r, focus);
	return 0;
}

/* ---- network calls and the fd table ----
 * Recorded at syscall exit like the path calls.  A connected TCP socket's
 * 4-tuple is not in any argument: the kernel's sock:inet_sock_set_state
 * tracepoint carries it.  A connect is seen entering SYN_SENT in the
 * connecting task (its id, pid and comm kept by socket address), and
 * ESTABLISHED later, in whatever context the SYN-ACK arrives: that record
 * is written in the connecting task's name.  An accepted connection is
 * seen established (SYN_RECV -> ESTABLISHED) before any task accepts it:
 * its tuple waits in an LRU map keyed by the peer, where accept's exit
 * finds it from the peer address accept returns. */
#define BF_AF_INET 2
#define BF_AF_INET6 10
#define BF_TCP_ESTABLISHED 1
#define BF_TCP_SYN_SENT 2
#define BF_TCP_SYN_RECV 3
#define BF_TCP_CLOSE 7
#define BF_IPPROTO_TCP 6

struct bf_connecting {
	u64 pid_tgid;
	u64 id;
	u32 uid;
	u32 _pad;
	char comm[BF_COMM_LEN];
};
BPF_TABLE("lru_hash", u64, struct bf_connecting, connecting, 4096);
BPF_HASH(connect_ids, u32, u64, BF_MAX_TASKS);     /* tid -> id of its connect in progress */
/* Connection ids: this CPU's count << 16 | the CPU (no atomic that returns
 * its old value on every kernel's BPF). */
BPF_PERCPU_ARRAY(connect_seq, u64, 1);

struct bf_peer_key {
	u8 addr[16];
	u16 port;
	u16 family;
	u32 _pad;
};
BPF_TABLE("lru_hash", struct bf_peer_key, struct bf_tcp_tuple, accepted, 4096);

/* The address a call passed (len bytes at uaddr) as the record's path. */
static __always_inline void bf_read_addr(struct bf_record *r, const void *uaddr, u64 len)
{
	if (!uaddr || len == 0)
		return;
	if (len > BF_ADDR_MAX)
		len = BF_ADDR_MAX;
	len &= 0xff;
	if (bpf_probe_read_user(&r->data[0], len, uaddr) != 0) {
		bf_lost(BF_LOSS_READ, r->hdr.slot);
		return;
	}
	r->data[len & 0xff] = 0;
	r->hdr.path_len = len + 1;
}

static __always_inline void bf_put_tuple(struct bf_record *r, struct bf_tcp_tuple *t)
{
	u32 off = r->hdr.path_len & 0xff;
	__builtin_memcpy(&r->data[off], t, sizeof(*t));
	r->hdr.argv_len = sizeof(*t);
}

static __always_inline int bf_net_exit(u64 id, u8 slot, u8 call, s64 ret, s64 arg0, s64 arg1,
				       s32 dirfd, const void *uaddr, u64 len)
{
	struct bf_record *r = bf_start_as(id, slot, bpf_ktime_get_ns(), call, BF_NET);
	if (!r)
		return 0;
	r->hdr.ret = ret;
	r->hdr.arg0 = arg0;
	r->hdr.arg1 = arg1;
	r->hdr.dirfd = dirfd;
	int focus = 0;
	if (bf_discarded(&r->hdr, &focus))
		return 0;
	bf_read_addr(r, uaddr, len);
	bf_output(r, focus);
	return 0;
}

static __always_inline int bf_connect_exit(u64 id, u8 slot, s64 ret, s64 fd, const void *uaddr,
					   u64 len)
{
	u32 tid = (u32)id;
	u64 *pending = connect_ids.lookup(&tid);
	s64 cid = pending ? *pending : 0;
	if (pending)
		connect_ids.delete(&tid);
	return bf_net_exit(id, slot, BF_SYS_CONNECT, ret, fd, cid, AT_FDCWD, uaddr, len);
}

/* accept's peer address, and the tuple established for it if seen. */
static __always_inline int bf_accept_exit(u64 id, u8 slot, u8 call, s64 ret, s64 fd,
					  const void *uaddr, const int *ulen, s64 flags)
{
	struct bf_record *r = bf_start_as(id, slot, bpf_ktime_get_ns(), call, BF_NET);
	if (!r)
		return 0;
	r->hdr.ret = ret;
	r->hdr.arg0 = fd;
	r->hdr.arg1 = flags;
	int focus = 0;
	if (bf_discarded(&r->hdr, &focus))
		return 0;
	int len = 0;
	if (ret >= 0 && uaddr && ulen && bpf_probe_read_user(&len, sizeof(len), ulen) == 0 && len > 0)
		bf_read_addr(r, uaddr, len);
	u16 family = 0;
	if (r->hdr.path_len > 8)
		__builtin_memcpy(&family, &r->data[0], 2);
	if (family == BF_AF_INET || family == BF_AF_INET6) {
		struct bf_peer_key key = {};
		key.family = family;
		__builtin_memcpy(&key.port, &r->data[2], 2);
		key.port = (key.port >> 8) | (key.port << 8);
		if (family == BF_AF_INET)
			__builtin_memcpy(key.addr, &r->data[4], 4);
		else if (r->hdr.path_len > 24)
			__builtin_memcpy(key.addr, &r->data[8], 16);
		struct bf_tcp_tuple *t = accepted.lookup(&key);
		if (t) {
			bf_put_tuple(r, t);
			accepted.delete(&key);
		} else {
			bf_lost(BF_LOSS_TUPLE, r->hdr.slot);
		}
	}
	bf_output(r, focus);
	return 0;
}


/* A record of this call with no data. */
static __always_inline int bf_plain_exit(u64 id, u8 slot, u8 call, u8 kind, s64 ret, s64 arg0,
					 s64 arg1, s32 dirfd)
{
	struct bf_record *r = bf_start_as(id, slot, bpf_ktime_get_ns(), call, kind);
	if (!r)
		return 0;
	r->hdr.ret = ret;
	r->hdr.arg0 = arg0;
	r->hdr.arg1 = arg1;
	r->hdr.dirfd = dirfd;
	bf_submit(r);
	return 0;
}

/* pipe/pipe2 (BF_FD: the fds in arg0, arg1) and socketpair (BF_NET: the
 * fds as data, domain and type in arg0, arg1). */
static __always_inline int bf_fd_pair_exit(u64 id, u8 slot, u8 call, u8 kind, s64 ret,
					   const int *ufds, s64 a0, s64 a1, s32 dirfd)
{
	int fds[2] = {-1, -1};
	if (ret == 0 && ufds)
		bpf_probe_read_user(fds, sizeof(fds), ufds);
	if (kind == BF_FD)
		return bf_plain_exit(id, slot, call, kind, ret, fds[0], fds[1], dirfd);
	struct bf_record *r = bf_start_as(id, slot, bpf_ktime_get_ns(), call, kind);
	if (!r)
		return 0;
	r->hdr.ret = ret;
	r->hdr.arg0 = a0;
	r->hdr.arg1 = a1;
	r->hdr.dirfd = dirfd;
	__builtin_memcpy(&r->data[0], fds, sizeof(fds));
	r->data[8] = 0;
	r->hdr.path_len = 9;
	bf_submit(r);
	return 0;
}

#ifdef BF_HAVE_inet_sock_set_state
TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
	if (args->protocol != BF_IPPROTO_TCP)
		return 0;
	u64 sk = (u64)args->skaddr;
	int old = args->oldstate, new = args->newstate;
	if (new == BF_TCP_SYN_SENT) {
		/* in connect(), in the connecting task: its port is not chosen yet */
		u64 id = bpf_get_current_pid_tgid();
		if (!bf_wanted(id >> 32, (u32)id))
			return 0;
		u32 zero = 0;
		u64 *seq = connect_seq.lookup(&zero);
		if (!seq)
			return 0;
		*seq += 1;
		struct bf_connecting c = {};
		c.pid_tgid = id;
		c.uid = (u32)bpf_get_current_uid_gid();
		c.id = (*seq << 16) | (bpf_get_smp_processor_id() & 0xffff);
		bpf_get_current_comm(&c.comm, sizeof(c.comm));
		u32 tid = (u32)id;
		if (connecting.update(&sk, &c) != 0 || connect_ids.update(&tid, &c.id) != 0)
			bf_lost(BF_LOSS_TUPLE, bf_slot(tid));
		return 0;
	}
	if (new != BF_TCP_ESTABLISHED) {
		if (old == BF_TCP_SYN_SENT)
			connecting.delete(&sk);   /* refused, timed out, reset */
		return 0;
	}
	struct bf_tcp_tuple t = {};
	t.family = args->family;
	t.lport = args->sport;
	t.rport = args->dport;
	if (t.family == BF_AF_INET) {
		__builtin_memcpy(t.laddr, args->saddr, 4);
		__builtin_memcpy(t.raddr, args->daddr, 4);
	} else {
		__builtin_memcpy(t.laddr, args->saddr_v6, 16);
		__builtin_memcpy(t.raddr, args->daddr_v6, 16);
	}
	if (old == BF_TCP_SYN_RECV) {
		/* the server's end: kept for the accept that will take it */
		struct bf_peer_key key = {};
		__builtin_memcpy(key.addr, t.raddr, 16);
		key.port = t.rport;
		key.family = t.family;
		accepted.update(&key, &t);
		return 0;
	}
	if (old != BF_TCP_SYN_SENT)
		return 0;
	struct bf_connecting *c = connecting.lookup(&sk);
	if (!c)
		return 0;
	struct bf_record *r = bf_start(bpf_ktime_get_ns(), BF_SYS_TCP_CONNECTED, BF_NET);
	if (!r)
		return 0;
	r->hdr.pid = c->pid_tgid >> 32;
	r->hdr.tid = (u32)c->pid_tgid;
	r->hdr.ppid = bf_ppid(r->hdr.pid);
	r->hdr.uid = c->uid;
	__builtin_memcpy(r->hdr.comm, c->comm, BF_COMM_LEN);
	r->hdr.arg1 = c->id;
	bf_put_tuple(r, &t);
	connecting.delete(&sk);
	bf_submit(r);
	return 0;
}
#endif

/* A fork-family call in the parent: the child was recorded by
 * sched_process_fork; a failure has no such event and is recorded here. */
static __always_inline int bf_fork_exit(u64 id, u8 slot, u8 call, s64 ret, s64 flags)
{
	u32 tid = (u32)id;
	forking.delete(&tid);
	if (ret >= 0)
		return 0;
	struct bf_record *r = bf_start_as(id, slot, bpf_ktime_get_ns(), call, BF_FORK);
	if (!r)
		return 0;
	r->hdr.ret = ret;
	r->hdr.arg0 = flags;
	bf_submit(r);
	return 0;
}

#define O_FLAGS_CREAT (0100 | 01 | 01000)  /* O_CREAT|O_WRONLY|O_TRUNC */

/* Whether a 64-bit task's call came through the `syscall` instruction,
 * not through `int 0x80`, whose numbers are the 32-bit table's.  Without
 * FRED, `syscall` leaves its return address in cx, saved beside ip (the
 * kernel tests the same before it returns by SYSRET); `int 0x80` leaves
 * the caller's ecx there.  With FRED, cx is the caller's own and the saved
 * ss names the event.  The caller keeps a successful exec apart: its ip is
 * the new program's. */
static __always_inline int bf_native_call(const void *regs, const struct bf_regs *rg)
{
	if (rg->cx == rg->ip)
		return 1;
	u64 ss = 0;
	bpf_probe_read_kernel(&ss, sizeof(ss), (const char *)regs + BF_SS_OFFSET);
	return BF_FRED_TYPE(ss) == BF_FRED_SYSCALL_TYPE && BF_FRED_VECTOR(ss) == BF_FRED_SYSCALL_VECTOR;
}

/* The arguments are read from the registers the task entered the kernel
 * with (still saved at exit, the result aside).  Tasks in 32-bit mode use
 * another syscall table, and so do a 64-bit task's `int 0x80` calls; the
 * per-syscall tracepoints ignore both, and so does batchflow. */
RAW_TRACEPOINT_PROBE(sys_exit)
{
	u64 id = bpf_get_current_pid_tgid();
	int scope = bf_scope(id);   /* the only look at the traced set: its slot is kept */
	if (scope < 0)
		return 0;
	u8 slot = scope;
	struct bf_regs rg;
	if (bpf_probe_read_kernel(&rg, sizeof(rg), (char *)ctx->args[0] + BF_REGS_OFFSET) != 0)
		return 0;
	s64 ret = ctx->args[1];
	if ((rg.cs & 0xffff) != BF_USER_CS) {   /* FRED keeps other bits above */
		/* a 64-bit exec of a 32-bit program completes in 32-bit mode */
		if (rg.orig_ax == BF_NR_execve || rg.orig_ax == BF_NR_execveat)
			bf_exec_exit(ret, 0);   /* a 32-bit image: its argv[] is not ours to read */
		return 0;
	}
	if (rg.orig_ax != BF_NR_execve && rg.orig_ax != BF_NR_execveat &&
	    !bf_native_call((const void *)ctx->args[0], &rg))
		return 0;
	const char *p1 = (const char *)rg.di, *p2 = (const char *)rg.si;
	s32 at = (s32)rg.di;
	switch (rg.orig_ax) {
#ifdef BF_HAVE_open
	case BF_NR_open: return bf_path_exit(id, slot, BF_SYS_OPEN, BF_OPEN, ret, AT_FDCWD, p1, rg.si, rg.dx);
#endif
#ifdef BF_HAVE_openat
	case BF_NR_openat: return bf_path_exit(id, slot, BF_SYS_OPENAT, BF_OPEN, ret, at, p2, rg.dx, rg.r10);
#endif
#ifdef BF_HAVE_openat2
	case BF_NR_openat2: {
		/* struct open_how {u64 flags, mode, resolve} */
		u64 how[2] = {};
		bpf_probe_read_user(how, sizeof(how), (void *)rg.dx);
		return bf_path_exit(id, slot, BF_SYS_OPENAT2, BF_OPEN, ret, at, p2, how[0], how[1]);
	}
#endif
#ifdef BF_HAVE_creat
	case BF_NR_creat: return bf_path_exit(id, slot, BF_SYS_CREAT, BF_OPEN, ret, AT_FDCWD, p1, O_FLAGS_CREAT, rg.si);
#endif
#ifdef BF_HAVE_newstat
	case BF_NR_stat: return bf_path_exit(id, slot, BF_SYS_STAT, BF_STAT, ret, AT_FDCWD, p1, 0, 0);
#endif
#ifdef BF_HAVE_newlstat
	case BF_NR_lstat: return bf_path_exit(id, slot, BF_SYS_LSTAT, BF_STAT, ret, AT_FDCWD, p1, 0, 0);
#endif
#ifdef BF_HAVE_newfstatat
	case BF_NR_newfstatat: return bf_path_exit(id, slot, BF_SYS_FSTATAT, BF_STAT, ret, at, p2, rg.r10, 0);
#endif
#ifdef BF_HAVE_statx
	case BF_NR_statx: return bf_path_exit(id, slot, BF_SYS_STATX, BF_STAT, ret, at, p2, rg.dx, rg.r10);
#endif
#ifdef BF_HAVE_access
	case BF_NR_access: return bf_path_exit(id, slot, BF_SYS_ACCESS, BF_STAT, ret, AT_FDCWD, p1, rg.si, 0);
#endif
#ifdef BF_HAVE_faccessat
	case BF_NR_faccessat: return bf_path_exit(id, slot, BF_SYS_FACCESSAT, BF_STAT, ret, at, p2, rg.dx, 0);
#endif
#ifdef BF_HAVE_faccessat2
	case BF_NR_faccessat2: return bf_path_exit(id, slot, BF_SYS_FACCESSAT2, BF_STAT, ret, at, p2, rg.dx, rg.r10);
#endif
#ifdef BF_HAVE_chdir
	case BF_NR_chdir: return bf_path_exit(id, slot, BF_SYS_CHDIR, BF_CHDIR, ret, AT_FDCWD, p1, 0, 0);
#endif
#ifdef BF_HAVE_fchdir
	case BF_NR_fchdir: return bf_path_exit(id, slot, BF_SYS_FCHDIR, BF_CHDIR, ret, at, NULL, 0, 0);
#endif
#ifdef BF_HAVE_wait4
	case BF_NR_wait4: bf_wait_exit(id, slot, BF_SYS_WAIT4, ret, (s32)rg.di, (void *)rg.si); return 0;
#endif
#ifdef BF_HAVE_waitid
	case BF_NR_waitid:
		bf_wait_exit(id, slot, BF_SYS_WAITID, ret, ((s64)(s32)rg.di << 32) | (u32)rg.si, (void *)rg.dx);
		return 0;
#endif
#ifdef BF_HAVE_fork
	case BF_NR_fork: return bf_fork_exit(id, slot, BF_SYS_FORK, ret, BF_FLAGS_FORK);
#endif
#ifdef BF_HAVE_vfork
	case BF_NR_vfork: return bf_fork_exit(id, slot, BF_SYS_VFORK, ret, BF_FLAGS_VFORK);
#endif
#ifdef BF_HAVE_clone
	case BF_NR_clone: return bf_fork_exit(id, slot, BF_SYS_CLONE, ret, rg.di);
#endif
#ifdef BF_HAVE_clone3
	case BF_NR_clone3: {
		u64 flags = 0;
		bpf_probe_read_user(&flags, sizeof(flags), (void *)rg.di);
		return bf_fork_exit(id, slot, BF_SYS_CLONE3, ret, flags);
	}
#endif
#ifdef BF_HAVE_socket
	case BF_NR_socket: return bf_plain_exit(id, slot, BF_SYS_SOCKET, BF_NET, ret, (s32)rg.di, (s32)rg.si, (s32)rg.dx);
#endif
#ifdef BF_HAVE_socketpair
	case BF_NR_socketpair:
		return bf_fd_pair_exit(id, slot, BF_SYS_SOCKETPAIR, BF_NET, ret, (const int *)rg.r10,
				       (s32)rg.di, (s32)rg.si, (s32)rg.dx);
#endif
#ifdef BF_HAVE_connect
	case BF_NR_connect: return bf_connect_exit(id, slot, ret, (s32)rg.di, (const void *)rg.si, (u32)rg.dx);
#endif
#ifdef BF_HAVE_accept
	case BF_NR_accept:
		return bf_accept_exit(id, slot, BF_SYS_ACCEPT, ret, (s32)rg.di, (const void *)rg.si, (const int *)rg.dx, 0);
#endif
#ifdef BF_HAVE_accept4
	case BF_NR_accept4:
		return bf_accept_exit(id, slot, BF_SYS_ACCEPT4, ret, (s32)rg.di, (const void *)rg.si, (const int *)rg.dx,
				      (s32)rg.r10);
#endif
#ifdef BF_HAVE_bind
	case BF_NR_bind: return bf_net_exit(id, slot, BF_SYS_BIND, ret, (s32)rg.di, 0, AT_FDCWD, (const void *)rg.si, (u32)rg.dx);
#endif
#ifdef BF_HAVE_listen
	case BF_NR_listen: return bf_plain_exit(id, slot, BF_SYS_LISTEN, BF_NET, ret, (s32)rg.di, (s32)rg.si, AT_FDCWD);
#endif
#ifdef BF_HAVE_sendto
	case BF_NR_sendto:
		if (!rg.r8)
			return 0;     /* a connected socket's send: nothing new */
		return bf_net_exit(id, slot, BF_SYS_SENDTO, ret, (s32)rg.di, 0, AT_FDCWD, (const void *)rg.r8, (u32)rg.r9);
#endif
#ifdef BF_HAVE_close
	case BF_NR_close: return bf_plain_exit(id, slot, BF_SYS_CLOSE, BF_FD, ret, (s32)rg.di, 0, AT_FDCWD);
#endif
#ifdef BF_HAVE_dup
	case BF_NR_dup: return bf_plain_exit(id, slot, BF_SYS_DUP, BF_FD, ret, (s32)rg.di, 0, AT_FDCWD);
#endif
#ifdef BF_HAVE_dup2
	case BF_NR_dup2: return bf_plain_exit(id, slot, BF_SYS_DUP2, BF_FD, ret, (s32)rg.di, (s32)rg.si, AT_FDCWD);
#endif
#ifdef BF_HAVE_dup3
	case BF_NR_dup3: return bf_plain_exit(id, slot, BF_SYS_DUP3, BF_FD, ret, (s32)rg.di, (s32)rg.si, (s32)rg.dx);
#endif
#ifdef BF_HAVE_fcntl
	case BF_NR_fcntl:
		/* F_DUPFD 0, F_SETFD 2, F_DUPFD_CLOEXEC 1030: the rest leaves the table alone */
		if (rg.si != 0 && rg.si != 2 && rg.si != 1030)
			return 0;
		return bf_plain_exit(id, slot, BF_SYS_FCNTL, BF_FD, ret, (s32)rg.di, (s32)rg.si, (s32)rg.dx);
#endif
#ifdef BF_HAVE_pipe
	case BF_NR_pipe: return bf_fd_pair_exit(id, slot, BF_SYS_PIPE, BF_FD, ret, (const int *)rg.di, 0, 0, 0);
#endif
#ifdef BF_HAVE_pipe2
	case BF_NR_pipe2: return bf_fd_pair_exit(id, slot, BF_SYS_PIPE2, BF_FD, ret, (const int *)rg.di, 0, 0, (s32)rg.si);
#endif
	case BF_NR_execve:
	case BF_NR_execveat: {
		u64 sp = 0;
		bpf_probe_read_kernel(&sp, sizeof(sp), (char *)ctx->args[0] + BF_SP_OFFSET);
		return bf_exec_exit(ret, sp);
	}
	}
	return 0;
}
