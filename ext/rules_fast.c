/*
 * rules_fast.c - the rules' hot records, from raw record bytes, without
 * an Event, the interpreter or a Primitive.
 *
 * agent/rules/fast.py is the driver and agent/rules (through the graph's
 * interpreter) the reference.  A record is counted here when what it
 * changes is a count: a successful or failed open/stat of a path Python
 * already resolved, by the main thread of a process Python knows, that no
 * active rule needs to see one by one (hot-spot's probes once a path has
 * all its evidence; the reads of a path nobody wrote; the lookups of a
 * process with no pending miss), or a close.  What a rule must see one by
 * one is logged (a miss, a write...): Python builds its Primitive.  Rows
 * are logged too: records the interpreter must see whole (a fork, exec,
 * exit, wait or chdir of a process it knows; an open or stat of a path
 * this state has no key for; a forked child's first record), which Python
 * feeds through the interpreter and the rules in order, after the fd
 * changes made here before them; this file mirrors what later records
 * need of them (a child and its cwd, a new cwd, the open searches, a
 * path's probes and writer, an ended process) instead of stopping.  It
 * stops at anything else; Python handles that record, says what changed
 * (bf_rf_set_*), and calls again.  What happened here, Python learns
 * through bf_rf_sync_*: each process's last event index, its fd table
 * changes (in order, the last per fd between two rows), each path's
 * probes, last probe time and who probed (run-length), the log.
 * tests/test_rules_fast.py holds both to the same findings and state.
 */
#define _GNU_SOURCE                /* memrchr */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batchflow_ext.h"
#include "filter.h"           /* struct bf_event */

static inline size_t rf_align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Where a path's last component starts (what missing-dependency looks up). */
static size_t name_at(const char *path, size_t len)
{
	const char *slash = len ? memrchr(path, '/', len) : NULL;
	return slash ? (size_t)(slash - path) + 1 : 0;
}

static uint64_t rf_hash(const void *p, size_t n, uint64_t seed)
{
	/* FNV-1a, finished so that the low bits (the slot) depend on all */
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull ^ seed;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ull;
	h ^= h >> 31;
	h *= 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

/* ---- paths: key bytes -> (ref id, target id), open addressing ---- */

struct rf_path {
	uint64_t hash;
	char *key;             /* NULL: empty slot */
	uint32_t klen;
	int32_t ref, target;
	uint64_t run;          /* RF_UNLEARNT: the feed call that last met it */
	uint32_t rows;         /* RF_UNLEARNT: the rows of it in that call */
};

/* ---- processes, chained by pid ---- */

/* an fd whose file this state knows: opened by a record counted, logged
 * or rowed here (with a target), inherited by a fork row; what Python
 * changes otherwise (a stop) it forgets (bf_rf_forget_fds) */
struct rf_fdent {
	int32_t fd, target;
	uint32_t cloexec;
	uint32_t path_len;     /* RF_FD_NEW: the file's resolved path (its own copy) */
	char *path;
};

struct rf_proc {
	struct rf_proc *next;
	uint32_t pid;
	uint32_t flags;        /* BF_RF_P_*, and RF_DIRTY */
	uint64_t last;         /* index of its main thread's last event handled here */
	char *cwd;             /* NULL: unknown (relative paths go to Python) */
	size_t cwd_len;
	char *names;           /* missing-dependency's open searches: names, each NUL-ended */
	size_t names_len, names_cap;
	struct rf_fdent *fdt;  /* the fds known here (an fstat of one is a probe of its file) */
	size_t n_fdt, cap_fdt;
};

static void fdt_clear(struct rf_proc *p);

#define RF_DIRTY 0x100u
#define RF_NEW 0x200u          /* forked here: Python has not seen its first record yet */
#define PROC_BUCKETS 1024

/* ---- per target (a resolved path, as rules key it) ---- */

struct rf_target {
	uint64_t n;            /* hot-spot's probes of it so far */
	uint64_t pend;         /* of which Python has not heard */
	uint64_t last_ts;
	int64_t run_at;        /* its last entry in `runs`, or -1 */
	uint32_t flags;        /* BF_RF_T_*, and RF_DIRTY */
	uint32_t name_len;     /* its last component (what missing-dependency looks up) */
	char *name;
	char *path;            /* the resolved path (targets_by_path's key) */
	size_t path_len;
	uint64_t rowed;        /* the feed call that last logged a record of it */
};

/* fd changes keyed by (pid, fd), the last one kept */
struct rf_fdslot {
	uint64_t key;          /* pid << 32 | (uint32) fd, + 1; 0: empty */
	int64_t at;            /* index in fds */
};

struct bf_rf {
	unsigned rules;        /* BF_RF_MISSING ... */
	uint64_t track_from, min_n;
	struct rf_path *paths;
	size_t paths_cap, paths_n;
	struct rf_proc *procs[PROC_BUCKETS];
	uint32_t *dirty_procs;
	size_t n_dirty_procs, cap_dirty_procs;
	struct rf_target *targets;
	size_t n_targets;
	int32_t *dirty_targets;
	size_t n_dirty_targets, cap_dirty_targets;
	struct bf_rf_maker *runs;
	size_t n_runs, cap_runs;
	struct bf_rf_evidence *evidence;   /* probes of paths with fewer than min_n */
	size_t n_evidence, cap_evidence;
	struct bf_rf_logged *log;          /* records the rules must see, in order */
	size_t n_log, cap_log;
	struct bf_rf_fd *fds;
	size_t n_fds, cap_fds;
	struct rf_fdslot *fdslots;
	size_t fdslots_cap;
	/* open flags -> BF_RF_A_* + 1 (0: unknown), open addressing */
	int64_t *flag_keys;
	uint8_t *flag_vals;
	size_t flags_cap, flags_n;
	char *key;             /* scratch for a record's path key */
	size_t key_cap;
	char *norm;            /* scratch for a resolved path (and what it is made from) */
	size_t norm_cap;
	/* resolved path -> target id + 1 (0: empty), open addressing */
	int32_t *tslots;
	size_t tslots_cap, tslots_n;
	/* the pids of processes Python's interpreter adopted from their first
	 * record: a fork of one may keep that process (not make a new one, as
	 * a row assumes), so it is Python's */
	uint32_t *pids;        /* open addressing: 0 empty, PID_GONE a deleted one */
	size_t pids_cap, pids_used;
	uint64_t run_no;       /* feed calls so far */
	size_t fd_floor;       /* fd changes before it precede a row: not merged into */
};

#define PID_GONE UINT32_MAX

int bf_rf_new(struct bf_rf **out)
{
	struct bf_rf *rf = calloc(1, sizeof(*rf));
	if (!rf)
		return -1;
	*out = rf;
	return 0;
}

void bf_rf_clear_paths(struct bf_rf *rf)
{
	for (size_t i = 0; i < rf->paths_cap; i++) {
		free(rf->paths[i].key);
		rf->paths[i].key = NULL;
	}
	rf->paths_n = 0;
}

void bf_rf_free(struct bf_rf *rf)
{
	if (!rf)
		return;
	bf_rf_clear_paths(rf);
	free(rf->paths);
	for (size_t i = 0; i < PROC_BUCKETS; i++) {
		struct rf_proc *p = rf->procs[i], *next;
		for (; p; p = next) {
			next = p->next;
			free(p->cwd);
			free(p->names);
			fdt_clear(p);
			free(p->fdt);
			free(p);
		}
	}
	free(rf->dirty_procs);
	for (size_t i = 0; i < rf->n_targets; i++) {
		free(rf->targets[i].name);
		free(rf->targets[i].path);
	}
	free(rf->tslots);
	free(rf->pids);
	free(rf->norm);
	free(rf->targets);
	free(rf->log);
	free(rf->dirty_targets);
	free(rf->runs);
	free(rf->evidence);
	free(rf->fds);
	free(rf->fdslots);
	free(rf->flag_keys);
	free(rf->flag_vals);
	free(rf->key);
	free(rf);
}

void bf_rf_rules(struct bf_rf *rf, unsigned rules, uint64_t track_from, uint64_t min_n)
{
	rf->rules = rules;
	rf->track_from = track_from;
	rf->min_n = min_n;
}

/* Grows *arr (elements of `size` bytes) to hold `need`; -1: no memory. */
static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	void *a = realloc(*arr, c * size);
	if (!a)
		return -1;
	*arr = a;
	*cap = c;
	return 0;
}

/* ---- open flags ---- */

static int flags_grow(struct bf_rf *rf)
{
	size_t cap = rf->flags_cap ? rf->flags_cap * 2 : 64;
	int64_t *k = calloc(cap, sizeof(*k));
	uint8_t *v = calloc(cap, 1);
	if (!k || !v) {
		free(k);
		free(v);
		return -1;
	}
	for (size_t i = 0; i < rf->flags_cap; i++) {
		if (!rf->flag_vals[i])
			continue;
		size_t j = rf_hash(&rf->flag_keys[i], 8, 0) & (cap - 1);
		while (v[j])
			j = (j + 1) & (cap - 1);
		k[j] = rf->flag_keys[i];
		v[j] = rf->flag_vals[i];
	}
	free(rf->flag_keys);
	free(rf->flag_vals);
	rf->flag_keys = k;
	rf->flag_vals = v;
	rf->flags_cap = cap;
	return 0;
}

static unsigned flags_get(const struct bf_rf *rf, int64_t flags)
{
	if (!rf->flags_cap)
		return 0;
	size_t mask = rf->flags_cap - 1, j = rf_hash(&flags, 8, 0) & mask;
	for (; rf->flag_vals[j]; j = (j + 1) & mask)
		if (rf->flag_keys[j] == flags)
			return rf->flag_vals[j];
	return 0;
}

int bf_rf_set_flags(struct bf_rf *rf, int64_t flags, unsigned access)
{
	if (access > 0xfe) {
		errno = EINVAL;
		return -1;
	}
	if (2 * (rf->flags_n + 1) > rf->flags_cap && flags_grow(rf) < 0)
		return -1;
	size_t mask = rf->flags_cap - 1, j = rf_hash(&flags, 8, 0) & mask;
	for (; rf->flag_vals[j]; j = (j + 1) & mask)
		if (rf->flag_keys[j] == flags)
			break;
	if (!rf->flag_vals[j])
		rf->flags_n++;
	rf->flag_keys[j] = flags;
	rf->flag_vals[j] = (uint8_t)(access + 1);
	return 0;
}

/* ---- paths ---- */

static struct rf_path *path_slot(const struct bf_rf *rf, const char *key, size_t klen,
                                 uint64_t h)
{
	size_t mask = rf->paths_cap - 1;
	for (size_t j = h & mask;; j = (j + 1) & mask) {
		struct rf_path *s = &rf->paths[j];
		if (!s->key || (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0))
			return s;
	}
}

static int paths_grow(struct bf_rf *rf)
{
	size_t cap = rf->paths_cap ? rf->paths_cap * 2 : 1024;
	struct rf_path *old = rf->paths;
	size_t old_cap = rf->paths_cap;
	rf->paths = calloc(cap, sizeof(*rf->paths));
	if (!rf->paths) {
		rf->paths = old;
		return -1;
	}
	rf->paths_cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].key)
			*path_slot(rf, old[i].key, old[i].klen, old[i].hash) = old[i];
	free(old);
	return 0;
}

#define RF_UNLEARNT (-2)       /* rf_path.target: a row's key, Python not yet heard of */
#define RF_ROWS_PER_KEY 3      /* rows of one such key in a call, then a stop */

static int put_path(struct bf_rf *rf, const char *key, size_t klen, int32_t ref, int32_t target);

int bf_rf_set_path(struct bf_rf *rf, const char *key, size_t klen, int32_t ref, int32_t target)
{
	if (klen > UINT32_MAX || target < 0 || (size_t)target >= rf->n_targets) {
		errno = EINVAL;
		return -1;
	}
	return put_path(rf, key, klen, ref, target);
}

static int put_path(struct bf_rf *rf, const char *key, size_t klen, int32_t ref, int32_t target)
{
	if (2 * (rf->paths_n + 1) > rf->paths_cap && paths_grow(rf) < 0)
		return -1;
	uint64_t h = rf_hash(key, klen, 0);
	struct rf_path *s = path_slot(rf, key, klen, h);
	if (!s->key) {
		char *k = malloc(klen ? klen : 1);
		if (!k)
			return -1;
		memcpy(k, key, klen);
		s->key = k;
		s->klen = (uint32_t)klen;
		s->hash = h;
		rf->paths_n++;
	}
	if (s->run != rf->run_no)
		s->rows = 0;
	s->ref = ref;
	s->target = target;
	s->run = rf->run_no;
	s->rows++;
	return 0;
}

static const struct rf_path *path_get(const struct bf_rf *rf, const char *key, size_t klen)
{
	if (!rf->paths_n)
		return NULL;
	const struct rf_path *s = path_slot(rf, key, klen, rf_hash(key, klen, 0));
	return s->key ? s : NULL;
}

/* ---- targets ---- */

/* The slot of `path` in tslots: its target's, or the empty one it would take. */
static size_t tslot_of(const struct bf_rf *rf, const char *path, size_t len, uint64_t h)
{
	size_t mask = rf->tslots_cap - 1;
	for (size_t j = h & mask;; j = (j + 1) & mask) {
		int32_t id = rf->tslots[j];
		if (!id)
			return j;
		const struct rf_target *t = &rf->targets[id - 1];
		if (t->path_len == len && memcmp(t->path, path, len) == 0)
			return j;
	}
}

static int tslots_grow(struct bf_rf *rf)
{
	size_t cap = rf->tslots_cap ? rf->tslots_cap * 2 : 1024;
	int32_t *old = rf->tslots;
	size_t old_cap = rf->tslots_cap;
	rf->tslots = calloc(cap, sizeof(*rf->tslots));
	if (!rf->tslots) {
		rf->tslots = old;
		return -1;
	}
	rf->tslots_cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i]) {
			const struct rf_target *t = &rf->targets[old[i] - 1];
			rf->tslots[tslot_of(rf, t->path, t->path_len,
			                    rf_hash(t->path, t->path_len, 2))] = old[i];
		}
	free(old);
	return 0;
}

/* The target of a resolved path, or -1 (Python has none yet). */
static int32_t target_of_path(const struct bf_rf *rf, const char *path, size_t len)
{
	if (!rf->tslots_n)
		return -1;
	int32_t id = rf->tslots[tslot_of(rf, path, len, rf_hash(path, len, 2))];
	return id - 1;
}

int bf_rf_set_target(struct bf_rf *rf, int32_t target, uint64_t n, unsigned flags,
                     const char *path, size_t path_len)
{
	if (target < 0) {
		errno = EINVAL;
		return -1;
	}
	if ((size_t)target >= rf->n_targets) {
		size_t cap = rf->n_targets, need = (size_t)target + 1;
		if (grow((void **)&rf->targets, &cap, need, sizeof(*rf->targets)) < 0)
			return -1;
		memset(rf->targets + rf->n_targets, 0, (cap - rf->n_targets) * sizeof(*rf->targets));
		for (size_t i = rf->n_targets; i < cap; i++)
			rf->targets[i].run_at = -1;
		rf->n_targets = cap;
	}
	struct rf_target *t = &rf->targets[target];
	if (t->pend) {             /* Python must take the probes made here first */
		errno = EBUSY;
		return -1;
	}
	if (path && !t->path) {
		size_t from = name_at(path, path_len);
		char *name = malloc(path_len - from + 1);
		char *full = malloc(path_len ? path_len : 1);
		if (!name || !full || (2 * (rf->tslots_n + 1) > rf->tslots_cap &&
		                       tslots_grow(rf) < 0)) {
			free(name);
			free(full);
			return -1;
		}
		memcpy(name, path + from, path_len - from);
		memcpy(full, path, path_len);
		t->name = name;
		t->name_len = (uint32_t)(path_len - from);
		t->path = full;
		t->path_len = path_len;
		size_t j = tslot_of(rf, full, path_len, rf_hash(full, path_len, 2));
		if (!rf->tslots[j]) {
			rf->tslots[j] = target + 1;
			rf->tslots_n++;
		}
	}
	t->n = n;
	t->flags = (t->flags & RF_DIRTY) |
		(flags & (BF_RF_T_WRITTEN | BF_RF_T_TRACKED | BF_RF_T_WATCHED));
	return 0;
}

/* ---- processes ---- */

static struct rf_proc *proc_get(const struct bf_rf *rf, uint32_t pid)
{
	for (struct rf_proc *p = rf->procs[pid % PROC_BUCKETS]; p; p = p->next)
		if (p->pid == pid)
			return p;
	return NULL;
}

int bf_rf_set_proc(struct bf_rf *rf, uint32_t pid, const char *cwd, int64_t cwd_len,
                   const char *names, size_t names_len)
{
	struct rf_proc *p = proc_get(rf, pid);
	char *c = NULL;
	if (cwd_len >= 0) {
		c = malloc(cwd_len ? (size_t)cwd_len : 1);
		if (!c)
			return -1;
		memcpy(c, cwd, (size_t)cwd_len);
	}
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p) {
			free(c);
			return -1;
		}
		p->pid = pid;
		p->next = rf->procs[pid % PROC_BUCKETS];
		rf->procs[pid % PROC_BUCKETS] = p;
	}
	free(p->cwd);
	p->cwd = c;
	p->cwd_len = cwd_len >= 0 ? (size_t)cwd_len : 0;
	p->flags &= ~RF_NEW;       /* Python has seen its records: what it says is current */
	p->names_len = 0;
	if (names_len) {
		if (grow((void **)&p->names, &p->names_cap, names_len, 1) < 0)
			return -1;
		memcpy(p->names, names, names_len);
		p->names_len = names_len;
	}
	return 0;
}

/* The offset of `name` in p's open searches, or -1. */
static long pending_at(const struct rf_proc *p, const char *name, size_t len)
{
	for (size_t at = 0; at < p->names_len;) {
		size_t l = strlen(p->names + at);
		if (l == len && memcmp(p->names + at, name, len) == 0)
			return (long)at;
		at += l + 1;
	}
	return -1;
}

static int pending_add(struct rf_proc *p, const char *name, size_t len)
{
	if (pending_at(p, name, len) >= 0)
		return 0;
	if (grow((void **)&p->names, &p->names_cap, p->names_len + len + 1, 1) < 0)
		return -1;
	memcpy(p->names + p->names_len, name, len);
	p->names[p->names_len + len] = 0;
	p->names_len += len + 1;
	return 0;
}

static void pending_drop(struct rf_proc *p, long at, size_t len)
{
	memmove(p->names + at, p->names + at + len + 1, p->names_len - (size_t)at - len - 1);
	p->names_len -= len + 1;
}

int bf_rf_drop_proc(struct bf_rf *rf, uint32_t pid)
{
	struct rf_proc **pp = &rf->procs[pid % PROC_BUCKETS];
	for (struct rf_proc *p = *pp; p; pp = &p->next, p = p->next)
		if (p->pid == pid) {
			*pp = p->next;        /* (its last index: the process has ended) */
			free(p->cwd);
			free(p->names);
			fdt_clear(p);
			free(p->fdt);
			free(p);
			return 1;
		}
	return 0;
}

/* ---- the fds a process has that this state knows the file of ---- */

static struct rf_fdent *fdt_find(const struct rf_proc *p, int64_t fd)
{
	for (size_t i = 0; i < p->n_fdt; i++)
		if (p->fdt[i].fd == fd)
			return &p->fdt[i];
	return NULL;
}

static void fdt_drop(struct rf_proc *p, struct rf_fdent *e)
{
	free(e->path);
	*e = p->fdt[--p->n_fdt];
}

static void fdt_del(struct rf_proc *p, int64_t fd)
{
	struct rf_fdent *e = fdt_find(p, fd);
	if (e)
		fdt_drop(p, e);
}

static void fdt_clear(struct rf_proc *p)
{
	while (p->n_fdt)
		fdt_drop(p, &p->fdt[p->n_fdt - 1]);
}

#define RF_FD_NEW (-2)     /* rf_fdent.target: a path a row opened, no target yet */

/* fd now names `target` (-1: not a file this state knows; RF_FD_NEW: the
 * file at `path`, resolved) */
static int fdt_set(struct rf_proc *p, int64_t fd, int32_t target, int cloexec,
                   const char *path, size_t path_len)
{
	if (target == -1 || fd < 0 || fd > INT32_MAX) {
		fdt_del(p, fd);
		return 0;
	}
	char *copy = NULL;
	if (target == RF_FD_NEW) {
		copy = malloc(path_len ? path_len : 1);
		if (!copy)
			return -1;
		memcpy(copy, path, path_len);
	}
	struct rf_fdent *e = fdt_find(p, fd);
	if (!e) {
		if (grow((void **)&p->fdt, &p->cap_fdt, p->n_fdt + 1, sizeof(*p->fdt)) < 0) {
			free(copy);
			return -1;
		}
		e = &p->fdt[p->n_fdt++];
		e->fd = (int32_t)fd;
		e->path = NULL;
	}
	free(e->path);
	e->target = target;
	e->cloexec = cloexec != 0;
	e->path = copy;
	e->path_len = (uint32_t)path_len;
	return 0;
}

static void fdt_exec(struct rf_proc *p)
{
	for (size_t i = 0; i < p->n_fdt;)
		if (p->fdt[i].cloexec)
			fdt_drop(p, &p->fdt[i]);
		else
			i++;
}

int bf_rf_set_fd(struct bf_rf *rf, uint32_t pid, int64_t fd, int32_t target, int cloexec)
{
	struct rf_proc *p = proc_get(rf, pid);
	if (target < 0 || (size_t)target >= rf->n_targets) {
		errno = EINVAL;
		return -1;
	}
	return p ? fdt_set(p, fd, target, cloexec, NULL, 0) : 0;
}

int bf_rf_forget_fds(struct bf_rf *rf, uint32_t pid, int64_t fd)
{
	struct rf_proc *p = proc_get(rf, pid);
	if (p && fd < 0)
		fdt_clear(p);
	else if (p)
		fdt_del(p, fd);
	return 0;
}

/* ---- the pids Python holds a process of ---- */

static size_t pid_hash(uint32_t pid)
{
	uint64_t h = (uint64_t)pid * 0x9e3779b97f4a7c15ull;
	return (size_t)(h ^ (h >> 29));
}

static int pid_taken(const struct bf_rf *rf, uint32_t pid)
{
	if (!rf->pids_cap)
		return 0;
	size_t mask = rf->pids_cap - 1;
	for (size_t j = pid_hash(pid) & mask; rf->pids[j]; j = (j + 1) & mask)
		if (rf->pids[j] == pid)
			return 1;
	return 0;
}

static int pid_take(struct bf_rf *rf, uint32_t pid)
{
	if (pid_taken(rf, pid))
		return 0;
	if (2 * (rf->pids_used + 1) > rf->pids_cap) {      /* grown, and the deleted dropped */
		size_t live = 0;
		for (size_t i = 0; i < rf->pids_cap; i++)
			live += rf->pids[i] && rf->pids[i] != PID_GONE;
		size_t cap = 64;
		while (cap < 4 * (live + 1))
			cap *= 2;
		uint32_t *a = calloc(cap, sizeof(*a));
		if (!a)
			return -1;
		for (size_t i = 0; i < rf->pids_cap; i++) {
			uint32_t q = rf->pids[i];
			if (!q || q == PID_GONE)
				continue;
			size_t j = pid_hash(q) & (cap - 1);
			while (a[j])
				j = (j + 1) & (cap - 1);
			a[j] = q;
		}
		free(rf->pids);
		rf->pids = a;
		rf->pids_cap = cap;
		rf->pids_used = live;
	}
	size_t mask = rf->pids_cap - 1, j = pid_hash(pid) & mask;
	while (rf->pids[j] && rf->pids[j] != PID_GONE)
		j = (j + 1) & mask;
	if (!rf->pids[j])
		rf->pids_used++;
	rf->pids[j] = pid;
	return 0;
}

static void pid_free(struct bf_rf *rf, uint32_t pid)
{
	if (!rf->pids_cap)
		return;
	size_t mask = rf->pids_cap - 1;
	for (size_t j = pid_hash(pid) & mask; rf->pids[j]; j = (j + 1) & mask)
		if (rf->pids[j] == pid) {
			rf->pids[j] = PID_GONE;
			return;
		}
}

int bf_rf_pids(struct bf_rf *rf, const uint32_t *pids, size_t n, int taken)
{
	for (size_t i = 0; i < n; i++) {
		if (!pids[i] || pids[i] == PID_GONE)
			continue;     /* (never a child's pid) */
		if (!taken)
			pid_free(rf, pids[i]);
		else if (pid_take(rf, pids[i]) < 0)
			return -1;
	}
	return 0;
}

/* ---- what Python learns ---- */

static int note_proc(struct bf_rf *rf, struct rf_proc *p)
{
	if (p->flags & RF_DIRTY)
		return 0;
	if (grow((void **)&rf->dirty_procs, &rf->cap_dirty_procs, rf->n_dirty_procs + 1,
	         sizeof(*rf->dirty_procs)) < 0)
		return -1;
	rf->dirty_procs[rf->n_dirty_procs++] = p->pid;
	p->flags |= RF_DIRTY;
	return 0;
}

static void fdslots_put(struct bf_rf *rf, uint64_t key, int64_t at)
{
	size_t mask = rf->fdslots_cap - 1, j = rf_hash(&key, 8, 1) & mask;
	while (rf->fdslots[j].key && rf->fdslots[j].key != key)
		j = (j + 1) & mask;
	rf->fdslots[j].key = key;
	rf->fdslots[j].at = at;
}

static int note_fd(struct bf_rf *rf, uint32_t pid, int64_t fd, int32_t ref, int cloexec)
{
	uint64_t key = (((uint64_t)pid << 32) | (uint32_t)fd) + 1;   /* fd: an int (checked) */
	if (rf->fdslots_cap) {
		size_t mask = rf->fdslots_cap - 1;
		for (size_t j = rf_hash(&key, 8, 1) & mask; rf->fdslots[j].key; j = (j + 1) & mask)
			if (rf->fdslots[j].key == key) {
				if ((size_t)rf->fdslots[j].at < rf->fd_floor)
					break;    /* a row came between: a change of its own */
				struct bf_rf_fd *f = &rf->fds[rf->fdslots[j].at];
				f->ref = ref;
				f->cloexec = cloexec;
				return 0;
			}
	}
	if (grow((void **)&rf->fds, &rf->cap_fds, rf->n_fds + 1, sizeof(*rf->fds)) < 0)
		return -1;
	if (2 * (rf->n_fds + 1) > rf->fdslots_cap) {
		size_t cap = rf->fdslots_cap ? rf->fdslots_cap * 2 : 256;
		struct rf_fdslot *s = calloc(cap, sizeof(*s));
		if (!s)
			return -1;
		free(rf->fdslots);
		rf->fdslots = s;
		rf->fdslots_cap = cap;
		for (size_t i = 0; i < rf->n_fds; i++) {
			uint64_t k = (((uint64_t)rf->fds[i].pid << 32) | (uint32_t)rf->fds[i].fd) + 1;
			fdslots_put(rf, k, (int64_t)i);
		}
	}
	struct bf_rf_fd *f = &rf->fds[rf->n_fds];
	f->pid = pid;
	f->fd = fd;
	f->ref = ref;
	f->cloexec = cloexec;
	fdslots_put(rf, key, (int64_t)rf->n_fds);
	rf->n_fds++;
	return 0;
}

static int note_probe(struct bf_rf *rf, int32_t id, struct rf_target *t, uint64_t ts,
                      uint64_t maker, uint64_t idx)
{
	if (t->n < rf->min_n) {    /* one of its first probes: its evidence */
		if (grow((void **)&rf->evidence, &rf->cap_evidence, rf->n_evidence + 1,
		         sizeof(*rf->evidence)) < 0)
			return -1;
		rf->evidence[rf->n_evidence].target = id;
		rf->evidence[rf->n_evidence].idx = idx;
		rf->n_evidence++;
	}
	if (!(t->flags & RF_DIRTY)) {
		if (grow((void **)&rf->dirty_targets, &rf->cap_dirty_targets,
		         rf->n_dirty_targets + 1, sizeof(*rf->dirty_targets)) < 0)
			return -1;
		rf->dirty_targets[rf->n_dirty_targets++] = id;
		t->flags |= RF_DIRTY;
	}
	if (t->flags & BF_RF_T_TRACKED) {
		if (t->run_at >= 0 && rf->runs[t->run_at].maker == maker) {
			rf->runs[t->run_at].count++;
		} else {
			if (grow((void **)&rf->runs, &rf->cap_runs, rf->n_runs + 1,
			         sizeof(*rf->runs)) < 0)
				return -1;
			struct bf_rf_maker *m = &rf->runs[rf->n_runs];
			m->target = id;
			m->maker = maker;
			m->count = 1;
			t->run_at = (int64_t)rf->n_runs++;
		}
	}
	t->n++;
	t->pend++;
	t->last_ts = ts;
	return 0;
}

long bf_rf_sync_procs(struct bf_rf *rf, struct bf_rf_last *out, size_t max)
{
	size_t n = 0;
	while (rf->n_dirty_procs && n < max) {
		uint32_t pid = rf->dirty_procs[--rf->n_dirty_procs];
		struct rf_proc *p = proc_get(rf, pid);
		if (!p || !(p->flags & RF_DIRTY))
			continue;
		p->flags &= ~RF_DIRTY;
		out[n].pid = pid;
		out[n].last = p->last;
		n++;
	}
	return (long)n;
}

/* Moves up to `max` of the `*n` elements at the back of `arr` to `out`
 * (the newest: the order they are applied in does not matter); returns how many. */
static long take_back(void *out, void *arr, size_t *n, size_t max, size_t size)
{
	if (!*n || !max)
		return 0;          /* (no array yet: nothing to copy from) */
	size_t k = *n < max ? *n : max;
	memcpy(out, (char *)arr + (*n - k) * size, k * size);
	*n -= k;
	return (long)k;
}

static long take_front(void *out, void *arr, size_t *n, size_t max, size_t size);

long bf_rf_sync_fds(struct bf_rf *rf, struct bf_rf_fd *out, size_t max)
{
	/* in order: a row's (bf_rf_logged.fds) come before it, the others after */
	long n = take_front(out, rf->fds, &rf->n_fds, max, sizeof(*out));
	if (!n)
		return 0;
	rf->fd_floor = rf->fd_floor > (size_t)n ? rf->fd_floor - (size_t)n : 0;
	if (!rf->n_fds && rf->fdslots_cap)
		memset(rf->fdslots, 0, rf->fdslots_cap * sizeof(*rf->fdslots));
	else if (n) {              /* (a partial take: the rest keyed anew) */
		memset(rf->fdslots, 0, rf->fdslots_cap * sizeof(*rf->fdslots));
		for (size_t i = 0; i < rf->n_fds; i++) {
			uint64_t k = (((uint64_t)rf->fds[i].pid << 32) | (uint32_t)rf->fds[i].fd) + 1;
			fdslots_put(rf, k, (int64_t)i);
		}
	}
	return (long)n;
}

long bf_rf_sync_targets(struct bf_rf *rf, struct bf_rf_probes *out, size_t max)
{
	size_t n = 0;
	while (rf->n_dirty_targets && n < max) {
		int32_t id = rf->dirty_targets[--rf->n_dirty_targets];
		struct rf_target *t = &rf->targets[id];
		t->flags &= ~RF_DIRTY;
		out[n].target = id;
		out[n].count = t->pend;
		out[n].last_ts = t->last_ts;
		t->pend = 0;
		n++;
	}
	return (long)n;
}

/* Moves up to `max` of the `*n` elements at the front of `arr` to `out`,
 * keeping their order (a path's evidence, the log of records rules must
 * see); returns how many. */
static long take_front(void *out, void *arr, size_t *n, size_t max, size_t size)
{
	if (!*n || !max)
		return 0;          /* (no array yet: nothing to copy from) */
	size_t k = *n < max ? *n : max;
	memcpy(out, arr, k * size);
	memmove(arr, (char *)arr + k * size, (*n - k) * size);
	*n -= k;
	return (long)k;
}

long bf_rf_sync_log(struct bf_rf *rf, struct bf_rf_logged *out, size_t max)
{
	return take_front(out, rf->log, &rf->n_log, max, sizeof(*out));
}

long bf_rf_sync_evidence(struct bf_rf *rf, struct bf_rf_evidence *out, size_t max)
{
	return take_front(out, rf->evidence, &rf->n_evidence, max, sizeof(*out));
}

long bf_rf_sync_makers(struct bf_rf *rf, struct bf_rf_maker *out, size_t max)
{
	long n = take_back(out, rf->runs, &rf->n_runs, max, sizeof(*out));
	for (long i = 0; i < n; i++)     /* a taken run is not extended */
		if (rf->targets[out[i].target].run_at >= (int64_t)rf->n_runs)
			rf->targets[out[i].target].run_at = -1;
	return (long)n;
}

/* ---- the loop ---- */

/* Whether the record at `raw` (whole) goes to Python whatever Python
 * tells this state first: the driver hands such records to Python with
 * the one C stopped at, without asking again. */
static int surely_python(const struct bf_rf *rf, const char *raw);


#define LOAD(dst, field) do { \
	_Static_assert(sizeof(dst) == sizeof(((struct bf_event *)0)->field), #field); \
	memcpy(&(dst), raw + offsetof(struct bf_event, field), sizeof(dst)); \
} while (0)

static int key_room(struct bf_rf *rf, size_t klen)
{
	if (klen <= rf->key_cap)
		return 0;
	char *k = realloc(rf->key, klen * 2);
	if (!k)
		return -1;
	rf->key = k;
	rf->key_cap = klen * 2;
	return 0;
}

/* model.normalize of `path` (absolute) or of p's cwd + "/" + `path`: the
 * path the interpreter resolves it to, in rf->norm; its length, or -1. */
static long resolve(struct bf_rf *rf, const struct rf_proc *p, const char *path, size_t plen)
{
	size_t raw = path[0] == '/' ? plen : p->cwd_len + 1 + plen;
	if (2 * raw + 2 > rf->norm_cap) {
		char *a = realloc(rf->norm, 2 * raw + 2);
		if (!a)
			return -1;
		rf->norm = a;
		rf->norm_cap = 2 * raw + 2;
	}
	char *out = rf->norm, *src = rf->norm + raw + 1;
	if (path[0] == '/') {
		memcpy(src, path, plen);
	} else {
		memcpy(src, p->cwd, p->cwd_len);
		src[p->cwd_len] = '/';
		memcpy(src + p->cwd_len + 1, path, plen);
	}
	size_t n = 0;
	for (size_t i = 0; i < raw;) {     /* empty and "." components dropped, ".." kept */
		while (i < raw && src[i] == '/')
			i++;
		size_t from = i;
		while (i < raw && src[i] != '/')
			i++;
		if (i == from || (i - from == 1 && src[from] == '.'))
			continue;
		out[n++] = '/';
		memcpy(out + n, src + from, i - from);
		n += i - from;
	}
	if (!n)
		out[n++] = '/';
	return (long)n;
}

/* Logs the record at `off` (`size` bytes, aligned): rows next to each
 * other make one span, which Python decodes and feeds in one go. */
static int log_record(struct bf_rf *rf, size_t off, size_t size, uint64_t idx, int32_t target)
{
	if (target == BF_RF_ROW) {
		rf->fd_floor = rf->n_fds;   /* a later change of an fd is not the same change */
		struct bf_rf_logged *prev = rf->n_log ? &rf->log[rf->n_log - 1] : NULL;
		if (prev && prev->target == BF_RF_ROW && prev->end == off) {
			prev->end = off + size;   /* (no record between: no fd change either) */
			return 0;
		}
	}
	if (grow((void **)&rf->log, &rf->cap_log, rf->n_log + 1, sizeof(*rf->log)) < 0)
		return -1;
	struct bf_rf_logged *l = &rf->log[rf->n_log++];
	l->offset = off;
	l->idx = idx;
	l->target = target;
	l->fds = (uint32_t)rf->n_fds;
	l->end = off + size;
	return 0;
}

/* What Python's probe of target t (a logged record or a row: an open or
 * stat with result `ret`) does to t's state here: its writer, its count
 * and first counted prober (a new entry counts its probers from its second
 * probe), and that it was logged in this call. */
static void mirror_probe(const struct bf_rf *rf, struct rf_target *t, int64_t ret,
                         unsigned access, uint64_t run_no, int hot)
{
	if (ret >= 0 && (access & BF_RF_A_WRITES) && (t->flags & BF_RF_T_WATCHED))
		t->flags |= BF_RF_T_WRITTEN;
	t->rowed = run_no;
	if (hot) {
		if (t->n && !(t->flags & BF_RF_T_TRACKED) && t->n + 1 >= rf->track_from)
			t->flags |= BF_RF_T_TRACKED;
		t->n++;
	}
}

/* missing-dependency's open searches of p after a lookup of `name` that
 * returned `ret` (as MissingDependency._lookup leaves them). */
static int mirror_lookup(struct bf_rf *rf, struct rf_proc *p, int64_t ret,
                         const char *name, size_t name_len)
{
	if (!(rf->rules & BF_RF_MISSING))
		return 0;
	if (ret == -ENOENT)
		return name_len ? pending_add(p, name, name_len) : 0;
	long at;
	if (ret >= 0 && p->names_len && (at = pending_at(p, name, name_len)) >= 0)
		pending_drop(p, at, name_len);
	return 0;
}

int bf_rf_feed(struct bf_rf *rf, const char *buf, size_t len, struct bf_rf_run *run)
{
	size_t off = run->offset;
	uint64_t idx = run->idx, until_check = run->until_check;
	const unsigned rules = rf->rules;
	const int hot = (rules & BF_RF_HOTSPOT) != 0;
	const uint64_t run_no = ++rf->run_no;
	run->reason = BF_RF_END;
	run->opens = run->stats = run->closes = run->rows = 0;
	while (off < len) {
		const char *raw = buf + off;
		uint64_t ts;
		uint32_t pid, tid;
		int64_t ret, arg0;
		int32_t dirfd;
		uint16_t size, path_len, argv_len;
		uint8_t kind, call, trunc;
		if (len - off < BF_HEADER_SIZE)
			goto stop;
		LOAD(size, size);
		LOAD(path_len, path_len);
		LOAD(argv_len, argv_len);
		if (size != (size_t)BF_HEADER_SIZE + path_len + argv_len || size > len - off)
			goto stop;            /* damaged: Python's decoder says how */
		LOAD(ts, ts_ns);
		if (ts > run->deadline)
			goto stop;            /* held events are due first */
		LOAD(pid, pid);
		struct rf_proc *p = proc_get(rf, pid);
		if (!p)
			goto stop;
		LOAD(kind, kind);
		LOAD(call, call);
		LOAD(ret, ret);
		LOAD(arg0, arg0);
		if (kind == BF_FD && call == BF_SYS_CLOSE) {
			if (arg0 < INT32_MIN || arg0 > INT32_MAX || (p->flags & RF_NEW))
				goto stop;    /* not an fd, or its process's first record */
			if (ret == 0 || ret == -EINTR) {
				if (note_fd(rf, pid, arg0, -1, 0) < 0)
					return -1;
				fdt_del(p, arg0);
			}
			run->closes++;
			goto next;
		}
		LOAD(tid, tid);
		LOAD(trunc, trunc);
		if (tid != pid)
			goto stop;            /* a thread's: Python's */
		const char *path = raw + BF_HEADER_SIZE;
		size_t plen = path_len ? path_len - 1u : 0;
		/* Process events are rows: the interpreter and the rules see them
		 * in order (Python, from the log); here only what later records
		 * need is mirrored. */
		if (kind == BF_FORK) {
			if (ret > 0) {
				if ((arg0 & BF_CLONE_THREAD) || ret > (int64_t)PID_GONE - 1 ||
				    run->deadline != UINT64_MAX)
					goto stop;    /* a thread; a held process may be the child */
				uint32_t child = (uint32_t)ret;
				if (proc_get(rf, child) || pid_taken(rf, child))
					goto stop;    /* a live process's pid; an adopted one's */
				if (bf_rf_set_proc(rf, child, p->cwd, p->cwd ? (int64_t)p->cwd_len : -1,
				                   NULL, 0) < 0)
					return -1;
				struct rf_proc *c = proc_get(rf, child);
				c->flags |= RF_NEW;
				for (size_t i = 0; i < p->n_fdt; i++) {   /* it inherits the fds */
					const struct rf_fdent *e = &p->fdt[i];
					if (fdt_set(c, e->fd, e->target, (int)e->cloexec, e->path,
					            e->path_len) < 0)
						return -1;
				}
			}
			goto row;
		}
		if (kind == BF_EXEC) {
			if (trunc || path_len < 2)
				goto stop;
			if ((rules & BF_RF_MISSING) && (ret == -ENOENT || (ret >= 0 && p->names_len))) {
				LOAD(dirfd, dirfd);
				if (path[0] != '/' && (!p->cwd || dirfd != BF_AT_FDCWD))
					goto stop;    /* resolved against an fd: Python's */
				long n = resolve(rf, p, path, plen);
				if (n < 0)
					return -1;
				size_t from = name_at(rf->norm, (size_t)n);
				if (mirror_lookup(rf, p, ret, rf->norm + from, (size_t)n - from) < 0)
					return -1;
			}
			if (ret == 0)
				fdt_exec(p);  /* its close-on-exec fds are gone */
			goto row;
		}
		if (kind == BF_EXIT) {
			if (log_record(rf, off, rf_align8(size), idx++, BF_RF_ROW) < 0)
				return -1;
			run->rows++;
			bf_rf_drop_proc(rf, pid);     /* its records after this: Python's */
			goto next;
		}
		if (kind == BF_WAIT)
			goto row;
		if (kind == BF_CHDIR) {
			if (call != BF_SYS_CHDIR || trunc || path_len < 2)
				goto stop;    /* fchdir: the fd table's */
			if (ret == 0) {   /* the interpreter's new cwd: the path, resolved */
				LOAD(dirfd, dirfd);
				if (path[0] != '/' && (!p->cwd || dirfd != BF_AT_FDCWD))
					goto stop;
				long n = resolve(rf, p, path, plen);
				char *cwd = n < 0 ? NULL : malloc((size_t)n);
				if (!cwd)
					return -1;
				memcpy(cwd, rf->norm, (size_t)n);
				free(p->cwd);
				p->cwd = cwd;
				p->cwd_len = (size_t)n;
			}
			goto row;
		}
		if (kind != BF_OPEN && kind != BF_STAT)
			goto stop;
		/* The record's path: its target (-1: none yet), and the name a
		 * lookup of it is (missing-dependency's open searches). */
		int32_t id = -1;
		struct rf_target *t = NULL;
		const char *name = NULL;
		size_t name_len = 0, klen = 0;
		long n = 0;               /* the resolved path's length, in rf->norm */
		unsigned access = BF_RF_A_STAT;
		const struct rf_path *ps = NULL;
		if (kind == BF_STAT && path_len == 1 && !trunc && ret >= 0 &&
		    !(p->flags & RF_NEW)) {
			/* fstat (a stat of "" and AT_EMPTY_PATH): the interpreter
			 * probes the file the fd is open on, as far as its fd table
			 * knows; here, an fd this state knows the file of */
			LOAD(dirfd, dirfd);
			struct rf_fdent *e = fdt_find(p, dirfd);
			if (!e)
				goto stop;
			if (e->target == RF_FD_NEW) {
				int32_t now = target_of_path(rf, e->path, e->path_len);
				if (now < 0) {
					/* a file a row opened, still with no target here
					 * (so none of its probes counted here): a row too */
					size_t from = name_at(e->path, e->path_len);
					name = e->path + from;
					name_len = e->path_len - from;
					goto as_row;
				}
				free(e->path);     /* Python has a target of it now */
				e->path = NULL;
				e->target = now;
			}
			id = e->target;
			goto known;
		}
		if (trunc || path_len < 2 || (kind == BF_OPEN && call == BF_SYS_CREAT))
			goto stop;
		if (path[0] == '/') {
			klen = 1 + plen;
			if (key_room(rf, klen) < 0)
				return -1;
			rf->key[0] = 'A';
			memcpy(rf->key + 1, path, plen);
		} else {
			LOAD(dirfd, dirfd);
			if (dirfd != BF_AT_FDCWD || !p->cwd)
				goto stop;
			uint32_t cl = (uint32_t)p->cwd_len;
			klen = 5 + p->cwd_len + plen;
			if (key_room(rf, klen) < 0)
				return -1;
			rf->key[0] = 'R';
			memcpy(rf->key + 1, &cl, 4);
			memcpy(rf->key + 5, p->cwd, p->cwd_len);
			memcpy(rf->key + 5 + p->cwd_len, path, plen);
		}
		if (kind == BF_OPEN) {
			unsigned a = flags_get(rf, arg0);
			if (!a || ret > INT32_MAX)
				goto stop;
			access = a - 1;
		}
		ps = path_get(rf, rf->key, klen);
		if (ps && ps->target == RF_UNLEARNT) {
			/* a key rows had: met again in the same call, a row (a stat
			 * then an open of a new path) up to RF_ROWS_PER_KEY, then a
			 * stop (a loop of a new path: Python learns its key, and C
			 * counts the rest); in a later call, a row again (Python
			 * learns it from its second row: a path met once, a new
			 * object file, costs no key) */
			if (ps->run == run_no && ps->rows >= RF_ROWS_PER_KEY)
				goto stop;
			ps = NULL;
		}
		if (!ps) {
			/* A path Python has not resolved by this key: a row.  Its
			 * resolved path says which target it is, if any. */
			n = resolve(rf, p, path, plen);
			if (n < 0)
				return -1;
			id = target_of_path(rf, rf->norm, (size_t)n);
			size_t from = name_at(rf->norm, (size_t)n);
			name = rf->norm + from;
			name_len = (size_t)n - from;
			goto as_row;
		}
		id = ps->target;
		if (p->flags & RF_NEW)
			goto as_row;          /* a process's first record: the interpreter's */
known:
		t = &rf->targets[id];
		/* What a rule must see one by one is logged for Python: a miss
		 * (and the lookup that ends a search), a write, a read of a
		 * written path.  The rest only counts. */
		int logged = 0;
		if (rules & BF_RF_MISSING) {
			if (ret == -ENOENT)
				logged = 1;
			else if (ret >= 0 && p->names_len &&
			         pending_at(p, t->name, t->name_len) >= 0)
				logged = 1;
		}
		if (ret >= 0 && (((access & BF_RF_A_WRITES) &&
		                  (rules & (BF_RF_DATAFLOW | BF_RF_COLLISION))) ||
		                 ((access & BF_RF_A_READS) && (rules & BF_RF_DATAFLOW) &&
		                  (t->flags & BF_RF_T_WRITTEN))))
			logged = 1;
		if (hot) {
			if (until_check <= 1)
				goto stop;    /* its check is Python's */
			if (logged) {
				/* Python makes its probe: after those counted here,
				 * it would be out of order */
				if (t->pend)
					goto stop;
			} else if (!t->n || t->rowed == run_no ||
			           (!(t->flags & BF_RF_T_TRACKED) && t->n + 1 >= rf->track_from)) {
				/* its entry, its first counted prober; or a probe
				 * after one Python makes from this call's log (a count
				 * taken before that probe would be out of order): the
				 * interpreter's, in order */
				goto as_row;
			}
		}
		if (logged) {
			if (log_record(rf, off, rf_align8(size), idx, id) < 0 ||
			    mirror_lookup(rf, p, ret, t->name, t->name_len) < 0)
				return -1;
			mirror_probe(rf, t, ret, access, run_no, hot);
			if (hot)
				until_check--;
		} else if (hot) {
			if (note_probe(rf, id, t, ts, (uint64_t)pid << 3 | kind, idx) < 0)
				return -1;
			until_check--;
		}
		if (kind == BF_OPEN) {
			int tmp = (access & BF_RF_A_TMPFILE) != 0, cloexec = (access & BF_RF_A_CLOEXEC) != 0;
			if (ret >= 0 && (note_fd(rf, pid, ret, tmp ? -1 : ps->ref, cloexec) < 0 ||
			                 fdt_set(p, ret, tmp ? -1 : id, cloexec, NULL, 0) < 0))
				return -1;
			if (ts > run->max_open_ts)
				run->max_open_ts = ts;
			run->opens++;
		} else {
			run->stats++;
		}
		p->last = idx++;
		if (note_proc(rf, p) < 0)
			return -1;
		goto next;
as_row:
		/* An open or stat the interpreter takes as a row: what it does to
		 * the rules' state, mirrored (its probe, its lookup, its write). */
		if (id >= 0)
			t = &rf->targets[id];
		if (t) {
			name = t->name;
			name_len = t->name_len;
		}
		if (hot && (until_check <= 1 || (t && t->pend)))
			goto stop;    /* a check; or its probes here must reach Python first */
		if (mirror_lookup(rf, p, ret, name, name_len) < 0)
			return -1;
		if (t)
			mirror_probe(rf, t, ret, access, run_no, hot);
		if (hot)
			until_check--;
		if (kind == BF_OPEN && ret >= 0 &&
		    fdt_set(p, ret, (access & BF_RF_A_TMPFILE) ? -1 : t ? id : RF_FD_NEW,
		            (access & BF_RF_A_CLOEXEC) != 0, rf->norm, (size_t)n) < 0)
			return -1;
		/* a key Python has not learnt: its rows in this call counted */
		if (klen && !ps && put_path(rf, rf->key, klen, -1, RF_UNLEARNT) < 0)
			return -1;
row:
		/* the interpreter's, from the log, with the fd changes before it */
		if (log_record(rf, off, rf_align8(size), idx++, BF_RF_ROW) < 0)
			return -1;
		p->flags &= ~RF_NEW;
		run->rows++;
next:
		run->last_ts = ts;
		off += rf_align8(size);
		continue;
stop:
		run->reason = BF_RF_OTHER;
		break;
	}
	if (off > len)
		off = len;
	run->offset = off;
	size_t resume = off;
	while (resume < len) {     /* the records after this one that Python takes too */
		uint16_t size;
		if (len - resume < BF_HEADER_SIZE)
			break;
		memcpy(&size, buf + resume + offsetof(struct bf_event, size), sizeof(size));
		if (size < BF_HEADER_SIZE)
			break;            /* damaged: the decoder says how */
		resume += rf_align8(size);
		if (resume >= len || len - resume < BF_HEADER_SIZE ||
		    !surely_python(rf, buf + resume))
			break;
	}
	if (resume < off || resume > len || (off < len && resume == off))
		resume = len;
	run->resume = resume;
	run->pending_procs = rf->n_dirty_procs;
	run->pending_fds = rf->n_fds;
	run->pending_probes = rf->n_dirty_targets;
	run->pending_evidence = rf->n_evidence;
	run->pending_makers = rf->n_runs;
	run->pending_log = rf->n_log;
	run->idx = idx;
	run->until_check = until_check;
	return 0;
}

static int surely_python(const struct bf_rf *rf, const char *raw)
{
	(void)rf;   /* (static: the record alone says) */
	uint8_t kind, call;
	uint32_t pid, tid;
	LOAD(kind, kind);
	LOAD(call, call);
	if (kind == BF_FD)
		return call != BF_SYS_CLOSE;
	if (kind == BF_CHDIR)
		return call != BF_SYS_CHDIR;
	if (kind != BF_OPEN && kind != BF_STAT && kind != BF_FORK && kind != BF_EXEC &&
	    kind != BF_EXIT && kind != BF_WAIT)
		return 1;
	LOAD(pid, pid);
	LOAD(tid, tid);
	return tid != pid || (kind == BF_OPEN && call == BF_SYS_CREAT);
}
