/*
 * filter.c - DISCARD / FOCUS / RULE_ON between the ring buffer and the batch.
 *
 * The semantics are those of agent/control/reference.py, which is the
 * specification: read its docstring first.  The property tests feed both
 * the same records and operations and compare every output byte.
 *
 * Conditions arrive as the bytecode of agent/conditions/language.py:
 *
 *   "BFC1" u32 n_nodes  u32 n_vals  u32 n_str
 *   n_nodes x { u8 op, u8 flags, u16 pad, u32 a, u32 b }   node 0 is the root
 *   n_vals  x u32                                           pid/tid/uid values
 *   n_str   bytes                                           comm/path strings
 *
 * Every index is checked when a program is loaded, and a child must come
 * after its parent, so evaluation needs no further checks and terminates.
 * Per-event work is here, in C; Python only parses and routes messages.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batchflow_ext.h"
#include "filter.h"

static inline size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* ---- records ---- */

struct rec {
	const char *raw;
	size_t size;
	uint64_t ts;
	uint32_t pid, tid, uid;
	int64_t ret, arg0;
	uint8_t kind, trunc;
	const char *comm;      /* up to comm_len bytes, no NUL */
	size_t comm_len;
	const char *path;      /* NULL: no path */
	size_t path_len;       /* without the NUL */
	int valid;
};

/* One field of the raw record into `dst`, which must be the field's size. */
#define LOAD(dst, field) do { \
	_Static_assert(sizeof(dst) == sizeof(((struct bf_event *)0)->field), #field); \
	memcpy(&(dst), raw + offsetof(struct bf_event, field), sizeof(dst)); \
} while (0)

static void rec_parse(struct rec *r, const char *raw, size_t size)
{
	memset(r, 0, sizeof(*r));
	r->raw = raw;
	r->size = size;
	if (size < BF_HEADER_SIZE)
		return;
	uint16_t rsize, path_len, argv_len;
	LOAD(r->ts, ts_ns);
	LOAD(r->pid, pid);
	LOAD(r->tid, tid);
	LOAD(r->uid, uid);
	LOAD(r->ret, ret);
	LOAD(r->arg0, arg0);
	LOAD(rsize, size);
	LOAD(r->kind, kind);
	LOAD(path_len, path_len);
	LOAD(argv_len, argv_len);
	LOAD(r->trunc, trunc);
	if (rsize != size || (size_t)BF_HEADER_SIZE + path_len + argv_len != size)
		return;
	if (path_len && raw[BF_HEADER_SIZE + path_len - 1] != 0)
		return;
	r->comm = raw + offsetof(struct bf_event, comm);
	const char *nul = memchr(r->comm, 0, BF_COMM_LEN);
	r->comm_len = nul ? (size_t)(nul - r->comm) : BF_COMM_LEN;
	if (path_len) {
		r->path = raw + BF_HEADER_SIZE;
		r->path_len = path_len - 1u;
	}
	r->valid = 1;
}

/* ---- pid sets: open addressing, 0 empty, ~0 deleted ---- */

#define SET_EMPTY 0u
#define SET_GONE 0xffffffffu

struct pidset {
	uint32_t *slot;
	uint32_t cap;          /* power of two, or 0 */
	uint32_t used;         /* live + deleted slots */
	uint32_t live;
	int desc;
};

static inline uint32_t hash32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

static int set_has(const struct pidset *s, uint32_t v)
{
	if (!s->cap)
		return 0;
	uint32_t m = s->cap - 1;
	for (uint32_t i = hash32(v) & m;; i = (i + 1) & m) {
		if (s->slot[i] == v)
			return 1;
		if (s->slot[i] == SET_EMPTY)
			return 0;
	}
}

static int set_rehash(struct pidset *s, uint32_t cap)
{
	uint32_t *n = calloc(cap, sizeof(*n));
	if (!n)
		return -1;
	for (uint32_t i = 0; i < s->cap; i++) {
		uint32_t v = s->slot[i];
		if (v == SET_EMPTY || v == SET_GONE)
			continue;
		uint32_t j = hash32(v) & (cap - 1);
		while (n[j] != SET_EMPTY)
			j = (j + 1) & (cap - 1);
		n[j] = v;
	}
	free(s->slot);
	s->slot = n;
	s->cap = cap;
	s->used = s->live;
	return 0;
}

/* Returns 1 added, 0 present, -1 no memory, -2 full (PIDSET_MAX). */
static int set_add(struct pidset *s, uint32_t v)
{
	if (v == SET_EMPTY || v == SET_GONE)
		return 0;
	if (set_has(s, v))
		return 0;
	if (s->live >= BF_PIDSET_MAX)
		return -2;
	if ((uint64_t)(s->used + 1) * 2 > s->cap) {
		uint32_t cap = s->cap ? s->cap : 16;
		while ((uint64_t)(s->live + 1) * 2 > cap)
			cap *= 2;
		if (set_rehash(s, cap) < 0)
			return -1;
	}
	uint32_t m = s->cap - 1;
	uint32_t i = hash32(v) & m;
	while (s->slot[i] != SET_EMPTY && s->slot[i] != SET_GONE)
		i = (i + 1) & m;
	if (s->slot[i] == SET_EMPTY)
		s->used++;
	s->slot[i] = v;
	s->live++;
	return 1;
}

static void set_del(struct pidset *s, uint32_t v)
{
	if (!s->cap)
		return;
	uint32_t m = s->cap - 1;
	for (uint32_t i = hash32(v) & m;; i = (i + 1) & m) {
		if (s->slot[i] == v) {
			s->slot[i] = SET_GONE;
			s->live--;
			return;
		}
		if (s->slot[i] == SET_EMPTY)
			return;
	}
}

/* ---- programs ---- */

struct node {
	uint8_t op, flags;
	uint16_t pad;
	uint32_t a, b;
};

struct prog {
	struct node *nodes;
	uint32_t n_nodes;
	uint32_t *vals;
	uint32_t n_vals;
	char *str;
	uint32_t n_str;
	struct pidset *sets;   /* one per OP_PID node, indexed by set_of[node] */
	uint32_t *set_of;
	uint32_t n_sets;
};

static void prog_free(struct prog *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; i < p->n_sets; i++)
		free(p->sets[i].slot);
	free(p->sets);
	free(p->set_of);
	free(p->nodes);
	free(p->vals);
	free(p->str);
	free(p);
}

static int range_ok(uint32_t off, uint32_t len, uint32_t total)
{
	return off <= total && len <= total - off;
}

/* One pass: every leaf's ranges are inside the program, every child comes
 * after its parent (so evaluation terminates, at most BFF_MAX_NODES deep),
 * and every node but the root has exactly one parent (a tree, not a DAG
 * whose evaluation could blow up). */
static int prog_check(const struct prog *p)
{
	uint16_t parents[BFF_MAX_NODES] = {0};
	for (uint32_t i = 0; i < p->n_nodes; i++) {
		const struct node *n = &p->nodes[i];
		switch (n->op) {
		case BFF_OP_TRUE: case BFF_OP_FALSE: case BFF_OP_RES_OK: case BFF_OP_RES_ERR:
		case BFF_OP_RES_ERRNO: case BFF_OP_KIND:
			break;
		case BFF_OP_AND: case BFF_OP_OR:
			if (n->b <= i || n->b >= p->n_nodes)
				return -1;
			parents[n->b]++;
			/* fall through */
		case BFF_OP_NOT:
			if (n->a <= i || n->a >= p->n_nodes)
				return -1;
			parents[n->a]++;
			break;
		case BFF_OP_PID: case BFF_OP_TID: case BFF_OP_UID:
			if (!range_ok(n->a, n->b, p->n_vals) || n->b == 0)
				return -1;
			break;
		case BFF_OP_COMM:
			if (!range_ok(n->a, n->b, p->n_str) || n->b > 16)
				return -1;
			break;
		case BFF_OP_PATH_EQ: case BFF_OP_PATH_PREFIX: case BFF_OP_PATH_GLOB:
			if (!range_ok(n->a, n->b, p->n_str))
				return -1;
			break;
		default:
			return -1;
		}
	}
	for (uint32_t i = 1; i < p->n_nodes; i++)
		if (parents[i] != 1)
			return -1;
	return 0;
}

static struct prog *prog_load(const char *buf, size_t len)
{
	uint32_t hdr[4];
	if (!buf || len < sizeof(hdr)) {
		errno = EINVAL;
		return NULL;
	}
	memcpy(hdr, buf, sizeof(hdr));
	if (memcmp(buf, "BFC1", 4) != 0 || hdr[1] == 0 || hdr[1] > BFF_MAX_NODES ||
	    hdr[2] > BFF_MAX_VALUES || hdr[3] > BFF_MAX_STRINGS ||
	    len != sizeof(hdr) + (size_t)hdr[1] * sizeof(struct node) +
		   (size_t)hdr[2] * 4 + hdr[3]) {
		errno = EINVAL;
		return NULL;
	}
	struct prog *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->n_nodes = hdr[1];
	p->n_vals = hdr[2];
	p->n_str = hdr[3];
	p->nodes = malloc(p->n_nodes * sizeof(struct node));
	p->vals = malloc(p->n_vals ? p->n_vals * 4 : 1);
	p->str = malloc(p->n_str ? p->n_str : 1);
	p->set_of = calloc(p->n_nodes, sizeof(uint32_t));
	if (!p->nodes || !p->vals || !p->str || !p->set_of)
		goto nomem;
	const char *q = buf + sizeof(hdr);
	memcpy(p->nodes, q, p->n_nodes * sizeof(struct node));
	q += p->n_nodes * sizeof(struct node);
	if (p->n_vals)
		memcpy(p->vals, q, p->n_vals * 4);
	q += p->n_vals * 4;
	if (p->n_str)
		memcpy(p->str, q, p->n_str);
	if (prog_check(p) < 0) {
		prog_free(p);
		errno = EINVAL;
		return NULL;
	}
	for (uint32_t i = 0; i < p->n_nodes; i++)
		if (p->nodes[i].op == BFF_OP_PID)
			p->n_sets++;
	if (p->n_sets) {
		p->sets = calloc(p->n_sets, sizeof(struct pidset));
		if (!p->sets)
			goto nomem;
		uint32_t k = 0;
		for (uint32_t i = 0; i < p->n_nodes; i++) {
			const struct node *n = &p->nodes[i];
			if (n->op != BFF_OP_PID)
				continue;
			p->set_of[i] = k;
			struct pidset *s = &p->sets[k++];
			s->desc = n->flags & BFF_FLAG_DESC;
			for (uint32_t j = 0; j < n->b; j++)
				if (set_add(s, p->vals[n->a + j]) == -1)
					goto nomem;
		}
	}
	return p;
nomem:
	prog_free(p);
	errno = ENOMEM;
	return NULL;
}

static int vals_has(const struct prog *p, const struct node *n, uint32_t v)
{
	for (uint32_t j = 0; j < n->b; j++)
		if (p->vals[n->a + j] == v)
			return 1;
	return 0;
}

/* The glob of agent/conditions/language.py (see agent/conditions/evaluate.py). */
static int glob_one(const unsigned char *pat, size_t plen, size_t p, unsigned char ch,
		    size_t *next)
{
	unsigned char c = pat[p];
	if (c == '?') {
		*next = p + 1;
		return 1;
	}
	if (c == '\\' && p + 1 < plen) {
		*next = p + 2;
		return pat[p + 1] == ch;
	}
	if (c == '[') {
		size_t q = p + 1;
		int neg = q < plen && (pat[q] == '!' || pat[q] == '^');
		if (neg)
			q++;
		size_t start = q;
		int hit = 0;
		while (q < plen && (pat[q] != ']' || q == start)) {
			unsigned char lo = pat[q], hi;
			if (q + 2 < plen && pat[q + 1] == '-' && pat[q + 2] != ']') {
				hi = pat[q + 2];
				q += 3;
			} else {
				hi = lo;
				q += 1;
			}
			if (lo <= ch && ch <= hi)
				hit = 1;
		}
		if (q >= plen) {
			*next = p + 1;
			return ch == '[';
		}
		*next = q + 1;
		return hit != neg;
	}
	*next = p + 1;
	return c == ch;
}

static int glob_match(const unsigned char *pat, size_t plen, const unsigned char *s, size_t n)
{
	size_t p = 0, i = 0, star_p = 0, star_i = 0;
	int star = 0;
	while (i < n) {
		if (p < plen) {
			if (pat[p] == '*') {
				star = 1;
				star_p = p;
				star_i = i;
				p++;
				continue;
			}
			size_t next;
			if (glob_one(pat, plen, p, s[i], &next)) {
				p = next;
				i++;
				continue;
			}
		}
		if (!star)
			return 0;
		p = star_p + 1;
		i = ++star_i;
	}
	while (p < plen && pat[p] == '*')
		p++;
	return p == plen;
}

static int eval(const struct prog *p, uint32_t i, const struct rec *r)
{
	const struct node *n = &p->nodes[i];
	switch (n->op) {
	case BFF_OP_TRUE:
		return 1;
	case BFF_OP_FALSE:
		return 0;
	case BFF_OP_AND:
		return eval(p, n->a, r) && eval(p, n->b, r);
	case BFF_OP_OR:
		return eval(p, n->a, r) || eval(p, n->b, r);
	case BFF_OP_NOT:
		return !eval(p, n->a, r);
	case BFF_OP_PID:
		return set_has(&p->sets[p->set_of[i]], r->pid);
	case BFF_OP_TID:
		return vals_has(p, n, r->tid);
	case BFF_OP_UID:
		return vals_has(p, n, r->uid);
	case BFF_OP_COMM:
		return r->comm_len == n->b && memcmp(r->comm, p->str + n->a, n->b) == 0;
	case BFF_OP_KIND:
		return r->kind < 32 && ((n->a >> r->kind) & 1u);
	case BFF_OP_PATH_EQ:
		return r->path && r->path_len == n->b && memcmp(r->path, p->str + n->a, n->b) == 0;
	case BFF_OP_PATH_PREFIX:
		return r->path && r->path_len >= n->b && memcmp(r->path, p->str + n->a, n->b) == 0;
	case BFF_OP_PATH_GLOB:
		return r->path && glob_match((const unsigned char *)p->str + n->a, n->b,
					     (const unsigned char *)r->path, r->path_len);
	case BFF_OP_RES_OK:
		return r->ret >= 0;
	case BFF_OP_RES_ERR:
		return r->ret < 0;
	case BFF_OP_RES_ERRNO:
		return r->ret == -(int64_t)n->a;
	}
	return 0;
}

/* ---- rules and the filter ---- */

struct pending {
	uint64_t count, lo, hi;
};

static void pend_add(struct pending *p, uint64_t ts)
{
	if (!p->count || ts < p->lo)
		p->lo = ts;
	if (!p->count || ts > p->hi)
		p->hi = ts;
	p->count++;
}

#define PEND_DISCARD 0
#define PEND_HELD 1
#define PEND_OVERFLOW 2

struct rule {
	uint32_t id;
	int type;
	uint64_t lo, hi, hold_ns;
	struct prog *prog;
	struct pending pend[3];
};

struct held {
	char *rec;
	size_t size;
	uint64_t ts, deadline;
	uint32_t rule;
	int due;
};

struct bf_filter {
	char *batch;
	size_t cap, len;
	struct rule **rules;           /* sorted by id */
	size_t n_rules;
	struct held *hold;
	size_t n_hold, hold_cap;
	size_t held_bytes;
	size_t hold_count_max, hold_bytes_max;
	struct bf_filter_report *retired;
	size_t n_retired, retired_cap;
	struct pending trunc;
	uint64_t malformed;            /* not yet reported */
	uint64_t wm;
	int wm_set;
	int urgent;
	struct bf_filter_stats st;
};

static void rule_free(struct rule *r)
{
	if (r) {
		prog_free(r->prog);
		free(r);
	}
}

int bf_filter_new(size_t batch_bytes, size_t hold_count, size_t hold_bytes,
		  struct bf_filter **out)
{
	if (!out || batch_bytes < BFF_MIN_BATCH) {
		errno = EINVAL;
		return -1;
	}
	struct bf_filter *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->batch = malloc(batch_bytes);
	f->rules = calloc(BF_FILTER_MAX_RULES, sizeof(*f->rules));
	if (!f->batch || !f->rules) {
		bf_filter_free(f);
		errno = ENOMEM;
		return -1;
	}
	f->cap = batch_bytes;
	f->hold_count_max = hold_count;
	f->hold_bytes_max = hold_bytes;
	*out = f;
	return 0;
}

void bf_filter_free(struct bf_filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_rules; i++)
		rule_free(f->rules[i]);
	for (size_t i = 0; i < f->n_hold; i++)
		free(f->hold[i].rec);
	free(f->hold);
	free(f->retired);
	free(f->rules);
	free(f->batch);
	free(f);
}

static struct rule *find_rule(struct bf_filter *f, uint32_t id, size_t *at)
{
	size_t lo = 0, hi = f->n_rules;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (f->rules[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (at)
		*at = lo;
	return lo < f->n_rules && f->rules[lo]->id == id ? f->rules[lo] : NULL;
}

static int rule_matches(const struct rule *ru, const struct rec *r)
{
	return ru->lo <= r->ts && r->ts <= ru->hi && eval(ru->prog, 0, r);
}

/* Pid sets follow forks and exits, after the record's own verdict. */
static void track(struct bf_filter *f, struct rule **rules, size_t n, const struct rec *r)
{
	if (!r->valid)
		return;
	if (r->kind == BF_FORK) {
		if (r->ret <= 0 || r->ret > 0x7fffffff || (r->arg0 & BF_CLONE_THREAD))
			return;
		uint32_t child = (uint32_t)r->ret;
		for (size_t k = 0; k < n; k++) {
			struct prog *p = rules[k]->prog;
			for (uint32_t s = 0; s < p->n_sets; s++) {
				struct pidset *set = &p->sets[s];
				if (set->desc && set_has(set, r->pid) && set_add(set, child) < 0)
					f->st.set_full++;
			}
		}
	} else if (r->kind == BF_EXIT) {   /* one per process (see reference.py) */
		for (size_t k = 0; k < n; k++) {
			struct prog *p = rules[k]->prog;
			for (uint32_t s = 0; s < p->n_sets; s++)
				set_del(&p->sets[s], r->pid);
		}
	}
}

static void append(struct bf_filter *f, const char *raw, size_t size)
{
	size_t need = align8(size);
	memcpy(f->batch + f->len, raw, size);
	memset(f->batch + f->len + size, 0, need - size);
	f->len += need;
	f->st.kept++;
	struct rec r;
	rec_parse(&r, raw, size);
	if (r.valid && (r.trunc & BFF_TRUNC_MASK)) {
		pend_add(&f->trunc, r.ts);
		f->st.truncated++;
	}
}

static void catch_up(struct bf_filter *f, struct rule *ru)
{
	struct rule *one[1] = { ru };
	/* the batch, compacted in place */
	size_t rd = 0, wr = 0;
	while (rd < f->len) {
		uint16_t size;
		memcpy(&size, f->batch + rd + offsetof(struct bf_event, size), sizeof(size));
		size_t step = align8(size);
		struct rec r;
		rec_parse(&r, f->batch + rd, size);
		if (r.valid && ru->type == BF_RULE_DISCARD && rule_matches(ru, &r)) {
			pend_add(&ru->pend[PEND_DISCARD], r.ts);
			f->st.dropped++;
		} else {
			if (wr != rd)
				memmove(f->batch + wr, f->batch + rd, step);
			wr += step;
		}
		track(f, one, 1, &r);     /* reads only the scalar fields */
		rd += step;
	}
	f->len = wr;
	/* the hold queue */
	size_t k = 0;
	for (size_t i = 0; i < f->n_hold; i++) {
		struct held *h = &f->hold[i];
		struct rec r;
		rec_parse(&r, h->rec, h->size);
		int hit = rule_matches(ru, &r);
		track(f, one, 1, &r);
		if (hit && ru->type == BF_RULE_DISCARD) {
			pend_add(&ru->pend[PEND_DISCARD], r.ts);
			f->st.dropped++;
			f->held_bytes -= align8(h->size);
			free(h->rec);
			continue;
		}
		if (hit && ru->type == BF_RULE_FOCUS) {
			h->due = 1;
			f->urgent = 1;
		}
		f->hold[k++] = *h;
	}
	f->n_hold = k;
}

int bf_filter_add(struct bf_filter *f, uint32_t id, int type, uint64_t lo, uint64_t hi,
		  uint64_t hold_ns, const char *prog, size_t prog_len)
{
	if (!f || id == 0 || lo > hi ||
	    (type != BF_RULE_DISCARD && type != BF_RULE_FOCUS && type != BF_RULE_ON)) {
		errno = EINVAL;
		return -1;
	}
	size_t at;
	if (find_rule(f, id, &at)) {
		errno = EEXIST;
		return -1;
	}
	if (f->n_rules >= BF_FILTER_MAX_RULES) {
		errno = ENOSPC;
		return -1;
	}
	struct rule *ru = calloc(1, sizeof(*ru));
	if (!ru)
		return -1;
	ru->prog = prog_load(prog, prog_len);
	if (!ru->prog) {
		int saved = errno;
		free(ru);
		errno = saved;
		return -1;
	}
	ru->id = id;
	ru->type = type;
	ru->lo = lo;
	ru->hi = hi;
	ru->hold_ns = hold_ns;
	memmove(&f->rules[at + 1], &f->rules[at], (f->n_rules - at) * sizeof(*f->rules));
	f->rules[at] = ru;
	f->n_rules++;
	catch_up(f, ru);
	return 0;
}

static int retire(struct bf_filter *f, uint32_t what, uint32_t rule, const struct pending *p)
{
	if (f->n_retired == f->retired_cap) {
		size_t cap = f->retired_cap ? f->retired_cap * 2 : 16;
		void *n = realloc(f->retired, cap * sizeof(*f->retired));
		if (!n)
			return -1;
		f->retired = n;
		f->retired_cap = cap;
	}
	struct bf_filter_report *o = &f->retired[f->n_retired++];
	o->what = what;
	o->rule = rule;
	o->count = p->count;
	o->ts_lo = p->lo;
	o->ts_hi = p->hi;
	return 0;
}

int bf_filter_remove(struct bf_filter *f, uint32_t id)
{
	size_t at;
	struct rule *ru = find_rule(f, id, &at);
	if (!ru) {
		errno = ENOENT;
		return -1;
	}
	/* room for its reports first, so a failure changes nothing */
	size_t need = 0;
	for (int w = 0; w < 3; w++)
		need += ru->pend[w].count != 0;
	while (f->retired_cap - f->n_retired < need) {
		size_t cap = f->retired_cap ? f->retired_cap * 2 : 16;
		void *n = realloc(f->retired, cap * sizeof(*f->retired));
		if (!n)
			return -1;
		f->retired = n;
		f->retired_cap = cap;
	}
	static const uint32_t what[3] = { BF_REPORT_DISCARD, BF_REPORT_HELD, BF_REPORT_OVERFLOW };
	for (int w = 0; w < 3; w++)
		if (ru->pend[w].count)
			retire(f, what[w], id, &ru->pend[w]);
	memmove(&f->rules[at], &f->rules[at + 1], (f->n_rules - at - 1) * sizeof(*f->rules));
	f->n_rules--;
	for (size_t i = 0; i < f->n_hold; i++)
		if (f->hold[i].rule == id)
			f->hold[i].due = 1;
	rule_free(ru);
	return 0;
}

static void overflowed(struct bf_filter *f, uint32_t rule, const char *raw, size_t size,
		       uint64_t ts)
{
	append(f, raw, size);
	f->st.overflow++;
	struct rule *ru = find_rule(f, rule, NULL);
	if (ru)
		pend_add(&ru->pend[PEND_OVERFLOW], ts);
}

int bf_filter_offer(struct bf_filter *f, const char *raw, size_t size)
{
	size_t sz = align8(size);
	struct rec r;
	rec_parse(&r, raw, size);
	if (!r.valid) {
		/* Not an event: it cannot go into a batch others walk by size. */
		f->st.seen++;
		f->st.malformed++;
		f->malformed++;
		return BF_V_DROP;
	}
	/* the verdict, without side effects */
	struct rule *drop = NULL, *focus = NULL, *hold = NULL;
	for (size_t k = 0; k < f->n_rules; k++) {
		struct rule *ru = f->rules[k];
		if (!rule_matches(ru, &r))
			continue;
		if (ru->type == BF_RULE_DISCARD) {
			drop = ru;
			break;
		}
		if (ru->type == BF_RULE_FOCUS) {
			if (!focus)
				focus = ru;
		} else if (!hold) {
			hold = ru;
		}
	}
	int v = drop ? BF_V_DROP : focus ? BF_V_URGENT : hold ? BF_V_HOLD : BF_V_KEEP;
	size_t need = 0, evict = 0;
	int alone = 0;
	if (v == BF_V_KEEP || v == BF_V_URGENT) {
		need = sz;
	} else if (v == BF_V_HOLD) {
		size_t count = f->n_hold, bytes = f->held_bytes;
		while (evict < count && (count - evict + 1 > f->hold_count_max ||
					 bytes + sz > f->hold_bytes_max)) {
			bytes -= align8(f->hold[evict].size);
			need += align8(f->hold[evict].size);
			evict++;
		}
		if (count - evict + 1 > f->hold_count_max || bytes + sz > f->hold_bytes_max) {
			alone = 1;
			need += sz;
		}
	}
	if (f->len + need > f->cap)
		return BF_V_FULL;
	if (v == BF_V_HOLD && !alone && f->n_hold - evict >= f->hold_cap) {
		/* make room in the queue's array before anything changes */
		size_t cap = f->hold_cap ? f->hold_cap * 2 : 64;
		void *n = realloc(f->hold, cap * sizeof(*f->hold));
		if (!n) {
			errno = ENOMEM;
			return -1;
		}
		f->hold = n;
		f->hold_cap = cap;
	}
	char *copy = NULL;
	if (v == BF_V_HOLD && !alone) {
		copy = malloc(size);
		if (!copy) {
			errno = ENOMEM;
			return -1;
		}
	}
	f->st.seen++;
	if (f->wm_set && r.ts <= f->wm)
		f->st.late++;
	switch (v) {
	case BF_V_DROP:
		pend_add(&drop->pend[PEND_DISCARD], r.ts);
		f->st.dropped++;
		break;
	case BF_V_URGENT:
		f->st.focused++;
		f->urgent = 1;
		/* fall through */
	case BF_V_KEEP:
		append(f, raw, size);
		break;
	case BF_V_HOLD:
		for (size_t i = 0; i < evict; i++) {
			struct held *h = &f->hold[i];
			overflowed(f, h->rule, h->rec, h->size, h->ts);
			f->held_bytes -= align8(h->size);
			free(h->rec);
		}
		if (evict) {
			memmove(f->hold, f->hold + evict, (f->n_hold - evict) * sizeof(*f->hold));
			f->n_hold -= evict;
		}
		if (alone) {
			overflowed(f, hold->id, raw, size, r.ts);
		} else {
			memcpy(copy, raw, size);
			struct held *h = &f->hold[f->n_hold++];
			h->rec = copy;
			h->size = size;
			h->ts = r.ts;
			h->deadline = r.ts > UINT64_MAX - hold->hold_ns ? UINT64_MAX
								       : r.ts + hold->hold_ns;
			h->rule = hold->id;
			h->due = 0;
			f->held_bytes += sz;
			f->st.held++;
			pend_add(&hold->pend[PEND_HELD], r.ts);
		}
		break;
	}
	track(f, f->rules, f->n_rules, &r);
	return v;
}

long bf_filter_offer_batch(struct bf_filter *f, const char *buf, size_t len, size_t *used)
{
	size_t off = 0;
	long n = 0;
	while (off + BF_HEADER_SIZE <= len) {
		uint16_t size;
		memcpy(&size, buf + off + offsetof(struct bf_event, size), sizeof(size));
		if (size < BF_HEADER_SIZE || off + size > len) {
			errno = EINVAL;       /* not a batch of records */
			*used = off;
			return -1;
		}
		int v = bf_filter_offer(f, buf + off, size);
		if (v < 0 || v == BF_V_FULL) {
			*used = off;
			return v < 0 ? -1 : n;
		}
		off += align8(size);
		n++;
	}
	*used = off;
	return n;
}

long bf_filter_release(struct bf_filter *f, uint64_t now)
{
	size_t k = 0;
	long remaining = 0;
	int blocked = 0;
	for (size_t i = 0; i < f->n_hold; i++) {
		struct held *h = &f->hold[i];
		int gone = find_rule(f, h->rule, NULL) == NULL;
		int due = h->due || gone || now >= h->deadline;
		if (due && !blocked && f->len + align8(h->size) <= f->cap) {
			append(f, h->rec, h->size);
			f->held_bytes -= align8(h->size);
			if (h->due || gone)
				f->st.released++;
			else
				f->st.expired++;
			free(h->rec);
			continue;
		}
		if (due) {
			blocked = 1;
			remaining++;
		}
		f->hold[k++] = *h;
	}
	f->n_hold = k;
	return remaining;
}

const char *bf_filter_batch(struct bf_filter *f, size_t *len)
{
	*len = f->len;
	return f->batch;
}

void bf_filter_reset(struct bf_filter *f)
{
	f->len = 0;
}

int bf_filter_urgent(struct bf_filter *f)
{
	int u = f->urgent;
	f->urgent = 0;
	return u;
}

uint64_t bf_filter_watermark(struct bf_filter *f, uint64_t upto)
{
	uint64_t w = upto;
	for (size_t i = 0; i < f->n_hold; i++) {
		uint64_t ts = f->hold[i].ts;
		uint64_t before = ts ? ts - 1 : 0;
		if (before < w)
			w = before;
	}
	if (w < f->wm)
		w = f->wm;
	f->wm = w;
	f->wm_set = 1;
	return w;
}

static int emit(struct bf_filter_report *out, size_t max, size_t *n, uint32_t what,
		uint32_t rule, struct pending *p)
{
	if (*n >= max)
		return 0;
	out[*n].what = what;
	out[*n].rule = rule;
	out[*n].count = p->count;
	out[*n].ts_lo = p->lo;
	out[*n].ts_hi = p->hi;
	(*n)++;
	memset(p, 0, sizeof(*p));
	return 1;
}

long bf_filter_reports(struct bf_filter *f, struct bf_filter_report *out, size_t max)
{
	size_t n = 0;
	size_t r = 0;
	while (r < f->n_retired && n < max)
		out[n++] = f->retired[r++];
	if (r) {
		memmove(f->retired, f->retired + r, (f->n_retired - r) * sizeof(*f->retired));
		f->n_retired -= r;
	}
	static const uint32_t what[3] = { BF_REPORT_DISCARD, BF_REPORT_HELD, BF_REPORT_OVERFLOW };
	for (size_t k = 0; k < f->n_rules; k++)
		for (int w = 0; w < 3; w++)
			if (f->rules[k]->pend[w].count &&
			    !emit(out, max, &n, what[w], f->rules[k]->id, &f->rules[k]->pend[w]))
				return (long)n;
	if (f->trunc.count && !emit(out, max, &n, BF_REPORT_TRUNCATED, 0, &f->trunc))
		return (long)n;
	if (f->malformed && n < max) {
		struct pending p = { f->malformed, 0, 0 };
		emit(out, max, &n, BF_REPORT_MALFORMED, 0, &p);
		f->malformed = 0;
	}
	return (long)n;
}

void bf_filter_stats(struct bf_filter *f, struct bf_filter_stats *out)
{
	*out = f->st;
	out->held_now = f->n_hold;
	out->held_bytes = f->held_bytes;
	out->watermark = f->wm;
	out->rules = f->n_rules;
}
