/*
 * turtle.c - the Turtle writer's hot records, from raw record bytes to text.
 *
 * agent/graph/turtle.py's TurtleWriter is the reference: its fused loop
 * writes a successful or failed open/stat of a path it knows, by the main
 * thread of a process it knows, from cached text fragments, and follows a
 * close in the fd table.  This file does the same for the records whose
 * every fragment Python has handed over (bf_tw_set_*), and stops at the
 * first record it cannot write: Python decodes that one, runs it through
 * the reference, tells this state what it learnt, and calls again.  No
 * Turtle spelling is decided here beyond the event's skeleton; every
 * fragment is Python's text.  tests/test_turtle_native.py holds the two
 * to the same bytes.
 *
 * What changes here and Python must know (each process's last event and
 * fd table) is kept per process and handed back by bf_tw_sync_*, coalesced.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batchflow_ext.h"
#include "filter.h"

#define OUT_SOFT_MAX (1u << 20)   /* stop and let Python write the text out */

static inline size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* ---- one hash table: byte-string keys, chained ---- */

struct ent {
	struct ent *next;
	uint64_t hash;
	uint32_t klen, vlen;
	int64_t id;            /* paths: Python's ref id; fds: ref id or -1 (closed) */
	uint32_t bits;         /* open flags: BF_TW_*; known sets: BF_TW_KNOW_* */
	char data[];           /* key, then value text */
};

struct table {
	struct ent **b;
	size_t nb;             /* power of two, or 0 */
	size_t n;
};

static uint64_t hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull;          /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

static struct ent *tab_get(const struct table *t, const void *key, size_t klen)
{
	if (!t->nb)
		return NULL;
	uint64_t h = hash_bytes(key, klen);
	for (struct ent *e = t->b[h & (t->nb - 1)]; e; e = e->next)
		if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0)
			return e;
	return NULL;
}

static int tab_grow(struct table *t)
{
	size_t nb = t->nb ? t->nb * 2 : 64;
	struct ent **b = calloc(nb, sizeof(*b));
	if (!b)
		return -1;
	for (size_t i = 0; i < t->nb; i++) {
		struct ent *e = t->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
	return 0;
}

/* Adds or replaces key's entry (value text copied); NULL: no memory. */
static struct ent *tab_put(struct table *t, const void *key, size_t klen,
                           const char *val, size_t vlen)
{
	if (t->n >= t->nb && tab_grow(t) < 0)
		return NULL;
	uint64_t h = hash_bytes(key, klen);
	struct ent **pp = &t->b[h & (t->nb - 1)];
	for (struct ent *e = *pp; e; pp = &e->next, e = e->next)
		if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0) {
			if (e->vlen == vlen) {
				memcpy(e->data + klen, val, vlen);
				return e;
			}
			*pp = e->next;          /* another length: made anew below */
			free(e);
			t->n--;
			break;
		}
	struct ent *e = malloc(sizeof(*e) + klen + vlen);
	if (!e)
		return NULL;
	e->hash = h;
	e->klen = (uint32_t)klen;
	e->vlen = (uint32_t)vlen;
	e->id = 0;
	e->bits = 0;
	memcpy(e->data, key, klen);
	if (vlen)
		memcpy(e->data + klen, val, vlen);
	pp = &t->b[h & (t->nb - 1)];
	e->next = *pp;
	*pp = e;
	t->n++;
	return e;
}

static void tab_clear(struct table *t)
{
	for (size_t i = 0; i < t->nb; i++) {
		struct ent *e = t->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
		t->b[i] = NULL;
	}
	t->n = 0;
}

static void tab_free(struct table *t)
{
	tab_clear(t);
	free(t->b);
	t->b = NULL;
	t->nb = 0;
}

/* ---- the writer ---- */

struct proc {
	struct proc *next;     /* in its bucket */
	uint32_t pid;
	int dirty;             /* prev changed since the last bf_tw_sync_procs */
	uint64_t prev;         /* index of the main thread's last event */
	char *tag;             /* its Turtle name, "proc:..." */
	size_t tag_len;
	char *cwd;             /* NULL: not known (relative paths go to Python) */
	size_t cwd_len;
	struct table known;    /* path ids whose prov:used / wasGeneratedBy is written */
};

#define PROC_BUCKETS 1024

struct bf_tw {
	struct proc *procs[PROC_BUCKETS];
	uint32_t *dirty;       /* pids whose prev changed */
	size_t n_dirty, cap_dirty;
	struct table paths;    /* 'A' path | 'R' u32 cwd length, cwd, path -> ref fragment */
	struct table open_flags, stat_flags, ends;   /* int64 -> fragment */
	struct table fds;      /* u32 pid, i64 fd -> the last change (coalesced) */
	char *heads[2][256];   /* kind OPEN, STAT x call -> "a bf:... ; bf:call ..." */
	uint32_t head_len[2][256];
	char *out;
	size_t out_len, out_cap;
	char *key;             /* scratch for relative path keys */
	size_t key_cap;
};

int bf_tw_new(struct bf_tw **out)
{
	struct bf_tw *w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	*out = w;
	return 0;
}

static void proc_free(struct proc *p)
{
	free(p->tag);
	free(p->cwd);
	tab_free(&p->known);
	free(p);
}

void bf_tw_free(struct bf_tw *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < PROC_BUCKETS; i++) {
		struct proc *p = w->procs[i], *next;
		for (; p; p = next) {
			next = p->next;
			proc_free(p);
		}
	}
	tab_free(&w->paths);
	tab_free(&w->open_flags);
	tab_free(&w->stat_flags);
	tab_free(&w->ends);
	tab_free(&w->fds);
	for (int k = 0; k < 2; k++)
		for (int c = 0; c < 256; c++)
			free(w->heads[k][c]);
	free(w->dirty);
	free(w->out);
	free(w->key);
	free(w);
}

static struct proc *proc_get(const struct bf_tw *w, uint32_t pid)
{
	for (struct proc *p = w->procs[pid % PROC_BUCKETS]; p; p = p->next)
		if (p->pid == pid)
			return p;
	return NULL;
}

static char *dup_bytes(const char *s, size_t n)
{
	char *d = malloc(n ? n : 1);
	if (d && n)
		memcpy(d, s, n);
	return d;
}

int bf_tw_set_head(struct bf_tw *w, unsigned kind, unsigned call, const char *text, size_t len)
{
	if ((kind != BF_OPEN && kind != BF_STAT) || call > 255) {
		errno = EINVAL;
		return -1;
	}
	char *t = dup_bytes(text, len);
	if (!t)
		return -1;
	free(w->heads[kind - BF_OPEN][call]);
	w->heads[kind - BF_OPEN][call] = t;
	w->head_len[kind - BF_OPEN][call] = (uint32_t)len;
	return 0;
}

static int set_int_frag(struct table *t, int64_t key, const char *frag, size_t len,
                        uint32_t bits)
{
	struct ent *e = tab_put(t, &key, sizeof(key), frag, len);
	if (!e)
		return -1;
	e->bits = bits;
	return 0;
}

int bf_tw_set_open_flags(struct bf_tw *w, int64_t flags, const char *frag, size_t len,
                         uint32_t bits)
{
	return set_int_frag(&w->open_flags, flags, frag, len, bits);
}

int bf_tw_set_stat_flags(struct bf_tw *w, int64_t flags, const char *frag, size_t len)
{
	return set_int_frag(&w->stat_flags, flags, frag, len, 0);
}

int bf_tw_set_end(struct bf_tw *w, int64_t ret, const char *frag, size_t len)
{
	return set_int_frag(&w->ends, ret, frag, len, 0);
}

int bf_tw_set_path(struct bf_tw *w, const char *key, size_t klen, int64_t ref_id,
                   const char *frag, size_t len)
{
	struct ent *e = tab_put(&w->paths, key, klen, frag, len);
	if (!e)
		return -1;
	e->id = ref_id;
	return 0;
}

void bf_tw_clear_paths(struct bf_tw *w)
{
	tab_clear(&w->paths);
	/* the known sets name path ids, which are given anew */
	for (size_t i = 0; i < PROC_BUCKETS; i++)
		for (struct proc *p = w->procs[i]; p; p = p->next)
			tab_clear(&p->known);
}

int bf_tw_set_proc(struct bf_tw *w, uint32_t pid, const char *tag, size_t tag_len,
                   uint64_t prev, const char *cwd, int64_t cwd_len, int fresh)
{
	struct proc *p = proc_get(w, pid);
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return -1;
		p->pid = pid;
		p->next = w->procs[pid % PROC_BUCKETS];
		w->procs[pid % PROC_BUCKETS] = p;
	} else if (fresh) {
		tab_clear(&p->known);           /* another process under that pid */
	}
	if (!p->tag || p->tag_len != tag_len || memcmp(p->tag, tag, tag_len) != 0) {
		char *t = dup_bytes(tag, tag_len);
		if (!t)
			return -1;
		free(p->tag);
		p->tag = t;
		p->tag_len = tag_len;
	}
	char *c = NULL;
	if (cwd_len >= 0) {
		c = dup_bytes(cwd, (size_t)cwd_len);
		if (!c)
			return -1;
	}
	free(p->cwd);
	p->cwd = c;
	p->cwd_len = cwd_len >= 0 ? (size_t)cwd_len : 0;
	p->prev = prev;
	return 0;
}

int bf_tw_drop_proc(struct bf_tw *w, uint32_t pid)
{
	struct proc **pp = &w->procs[pid % PROC_BUCKETS];
	for (struct proc *p = *pp; p; pp = &p->next, p = p->next)
		if (p->pid == pid) {
			*pp = p->next;
			proc_free(p);
			return 0;
		}
	errno = ENOENT;
	return -1;
}

int bf_tw_know(struct bf_tw *w, uint32_t pid, int64_t ref_id, uint32_t bits)
{
	struct proc *p = proc_get(w, pid);
	if (!p) {
		errno = ENOENT;
		return -1;
	}
	struct ent *e = tab_get(&p->known, &ref_id, sizeof(ref_id));
	if (!e && !(e = tab_put(&p->known, &ref_id, sizeof(ref_id), NULL, 0)))
		return -1;
	e->bits |= bits;
	return 0;
}

/* ---- output ---- */

static int out_reserve(struct bf_tw *w, size_t more)
{
	if (w->out_len + more <= w->out_cap)
		return 0;
	size_t cap = w->out_cap ? w->out_cap : 65536;
	while (cap < w->out_len + more)
		cap *= 2;
	char *o = realloc(w->out, cap);
	if (!o)
		return -1;
	w->out = o;
	w->out_cap = cap;
	return 0;
}

static inline char *put(char *o, const char *s, size_t n)
{
	memcpy(o, s, n);
	return o + n;
}

#define PUT_LIT(o, s) put((o), (s), sizeof(s) - 1)

static char *put_u64(char *o, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*o++ = tmp[--n];
	return o;
}

static char *put_i64(char *o, int64_t v)
{
	if (v < 0) {
		*o++ = '-';
		return put_u64(o, (uint64_t)0 - (uint64_t)v);
	}
	return put_u64(o, (uint64_t)v);
}

const char *bf_tw_output(struct bf_tw *w, size_t *len)
{
	*len = w->out_len;
	return w->out;
}

void bf_tw_output_reset(struct bf_tw *w)
{
	w->out_len = 0;
}

/* ---- what Python must learn ---- */

static int mark_dirty(struct bf_tw *w, struct proc *p)
{
	if (p->dirty)
		return 0;
	if (w->n_dirty == w->cap_dirty) {
		size_t cap = w->cap_dirty ? w->cap_dirty * 2 : 64;
		uint32_t *d = realloc(w->dirty, cap * sizeof(*d));
		if (!d)
			return -1;
		w->dirty = d;
		w->cap_dirty = cap;
	}
	w->dirty[w->n_dirty++] = p->pid;
	p->dirty = 1;
	return 0;
}

static int fd_change(struct bf_tw *w, uint32_t pid, int64_t fd, int64_t ref_id, int cloexec)
{
	char key[12];
	memcpy(key, &pid, 4);
	memcpy(key + 4, &fd, 8);
	struct ent *e = tab_get(&w->fds, key, sizeof(key));
	if (!e && !(e = tab_put(&w->fds, key, sizeof(key), NULL, 0)))
		return -1;
	e->id = ref_id;
	e->bits = (uint32_t)cloexec;
	return 0;
}

long bf_tw_sync_fds(struct bf_tw *w, struct bf_tw_fd *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < w->fds.nb && n < max; i++) {
		struct ent *e;
		while ((e = w->fds.b[i]) && n < max) {
			memcpy(&out[n].pid, e->data, 4);
			memcpy(&out[n].fd, e->data + 4, 8);
			out[n].ref_id = e->id;
			out[n].cloexec = (int)e->bits;
			n++;
			w->fds.b[i] = e->next;
			w->fds.n--;
			free(e);
		}
	}
	return (long)n;
}

long bf_tw_sync_procs(struct bf_tw *w, struct bf_tw_prev *out, size_t max)
{
	size_t n = 0;
	while (w->n_dirty && n < max) {
		uint32_t pid = w->dirty[--w->n_dirty];
		struct proc *p = proc_get(w, pid);
		if (!p || !p->dirty)
			continue;
		p->dirty = 0;
		out[n].pid = pid;
		out[n].prev = p->prev;
		n++;
	}
	return (long)n;
}

/* ---- the loop ---- */

#define LOAD(dst, field) do { \
	_Static_assert(sizeof(dst) == sizeof(((struct bf_event *)0)->field), #field); \
	memcpy(&(dst), raw + offsetof(struct bf_event, field), sizeof(dst)); \
} while (0)

static const struct ent *int_frag(const struct table *t, int64_t key)
{
	return tab_get(t, &key, sizeof(key));
}

static int known(const struct proc *p, int64_t id, uint32_t bit)
{
	const struct ent *e = tab_get(&p->known, &id, sizeof(id));
	return e && (e->bits & bit);
}

/* The scratch for a path's key holds klen bytes. */
static int key_room(struct bf_tw *w, size_t klen)
{
	if (klen <= w->key_cap)
		return 0;
	char *k = realloc(w->key, klen * 2);
	if (!k)
		return -1;
	w->key = k;
	w->key_cap = klen * 2;
	return 0;
}

int bf_tw_feed(struct bf_tw *w, const char *buf, size_t len, struct bf_tw_run *run)
{
	size_t off = run->offset;
	uint64_t idx = run->idx;
	run->reason = BF_TW_END;
	run->records = run->opens = run->stats = run->closes = 0;
	while (off < len) {
		const char *raw = buf + off;
		uint64_t ts;
		uint32_t pid, tid;
		int64_t ret, arg0, arg1;
		int32_t dirfd;
		uint16_t size, path_len, argv_len;
		uint8_t kind, call, trunc;
		if (len - off < BF_HEADER_SIZE) {
			run->reason = BF_TW_OTHER;
			break;
		}
		LOAD(size, size);
		LOAD(path_len, path_len);
		LOAD(argv_len, argv_len);
		if (size != (size_t)BF_HEADER_SIZE + path_len + argv_len || size > len - off) {
			run->reason = BF_TW_OTHER;       /* damaged: Python's decoder says how */
			break;
		}
		if (w->out_len >= OUT_SOFT_MAX) {
			run->reason = BF_TW_FULL;
			break;
		}
		LOAD(ts, ts_ns);
		if (ts > run->deadline) {
			run->reason = BF_TW_OTHER;       /* held events are due first */
			break;
		}
		LOAD(pid, pid);
		struct proc *p = proc_get(w, pid);
		if (!p) {
			run->reason = BF_TW_OTHER;
			break;
		}
		LOAD(kind, kind);
		LOAD(call, call);
		LOAD(ret, ret);
		LOAD(arg0, arg0);
		if (kind == BF_FD && call == BF_SYS_CLOSE) {
			if ((ret == 0 || ret == -EINTR) && fd_change(w, pid, arg0, -1, 0) < 0)
				return -1;
			run->closes++;
			goto next;
		}
		if (kind != BF_OPEN && kind != BF_STAT) {
			run->reason = BF_TW_OTHER;
			break;
		}
		LOAD(tid, tid);
		LOAD(trunc, trunc);
		LOAD(dirfd, dirfd);
		if (tid != pid || trunc || path_len < 2 || (kind == BF_OPEN && call == BF_SYS_CREAT)) {
			run->reason = BF_TW_OTHER;
			break;
		}
		const char *path = raw + BF_HEADER_SIZE;
		size_t plen = path_len - 1u;
		const struct ent *ref;
		if (path[0] == '/') {
			/* the key is 'A' + path: the byte before the path is the
			 * header's last comm byte, so build it in the scratch */
			size_t klen = 1 + plen;
			if (key_room(w, klen) < 0)
				return -1;
			w->key[0] = 'A';
			memcpy(w->key + 1, path, plen);
			ref = tab_get(&w->paths, w->key, klen);
		} else if (dirfd == BF_AT_FDCWD && p->cwd) {
			uint32_t cl = (uint32_t)p->cwd_len;
			size_t klen = 5 + p->cwd_len + plen;
			if (key_room(w, klen) < 0)
				return -1;
			w->key[0] = 'R';
			memcpy(w->key + 1, &cl, 4);
			memcpy(w->key + 5, p->cwd, p->cwd_len);
			memcpy(w->key + 5 + p->cwd_len, path, plen);
			ref = tab_get(&w->paths, w->key, klen);
		} else {
			ref = NULL;
		}
		const struct ent *fl = int_frag(kind == BF_OPEN ? &w->open_flags : &w->stat_flags, arg0);
		const struct ent *end = int_frag(&w->ends, ret);
		const char *head = w->heads[kind - BF_OPEN][call];
		if (!ref || !fl || !end || !head) {
			run->reason = BF_TW_OTHER;
			break;
		}
		int opened = kind == BF_OPEN && ret >= 0;
		if (opened && (((fl->bits & BF_TW_READS) && !known(p, ref->id, BF_TW_KNOW_USED)) ||
		               ((fl->bits & BF_TW_WRITES) && !known(p, ref->id, BF_TW_KNOW_GENERATED)))) {
			run->reason = BF_TW_OTHER;       /* its prov:used / wasGeneratedBy: Python's */
			break;
		}
		LOAD(arg1, arg1);
		if (out_reserve(w, 200 + w->head_len[kind - BF_OPEN][call] + p->tag_len + ref->vlen +
		                fl->vlen + end->vlen) < 0)
			return -1;
		char *o = w->out + w->out_len;
		o = PUT_LIT(o, "ev:");
		o = put_u64(o, idx);
		*o++ = ' ';
		o = put(o, head, w->head_len[kind - BF_OPEN][call]);
		o = PUT_LIT(o, " ; bf:process ");
		o = put(o, p->tag, p->tag_len);
		o = PUT_LIT(o, " ; bf:ns ");
		o = put_u64(o, ts);
		o = PUT_LIT(o, " ; bf:follows ev:");
		o = put_u64(o, p->prev);
		o = put(o, ref->data + ref->klen, ref->vlen);
		o = put(o, fl->data + fl->klen, fl->vlen);
		if (kind == BF_OPEN && (fl->bits & BF_TW_MODE)) {
			o = PUT_LIT(o, " ; bf:mode ");
			o = put_i64(o, arg1);
		}
		o = put(o, end->data + end->klen, end->vlen);
		w->out_len = (size_t)(o - w->out);
		if (opened && fd_change(w, pid, ret, (fl->bits & BF_TW_TMPFILE) ? -1 : ref->id,
		                        (fl->bits & BF_TW_CLOEXEC) != 0) < 0)
			return -1;
		p->prev = idx++;
		if (mark_dirty(w, p) < 0)
			return -1;
		if (kind == BF_OPEN)
			run->opens++;
		else
			run->stats++;
next:
		run->last_ts = ts;
		run->records++;
		off += align8(size);
	}
	if (off > len)
		off = len;
	run->offset = off;
	run->idx = idx;
	run->fd_changes = w->fds.n;
	run->prev_changes = w->n_dirty;
	return 0;
}
