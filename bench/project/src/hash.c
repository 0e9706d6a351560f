#include "hash.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

unsigned long hash_bytes(const char *s, size_t len)
{
	/* FNV-1a, 64 bit. */
	unsigned long h = 14695981039346656037UL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211UL;
	}
	return h;
}

void table_init(struct table *t)
{
	t->cap = 64;
	t->used = 0;
	t->slots = xmalloc(t->cap * sizeof *t->slots);
	memset(t->slots, 0, t->cap * sizeof *t->slots);
}

static struct entry *probe(struct entry *slots, size_t cap, const char *key, size_t len)
{
	size_t i = hash_bytes(key, len) & (cap - 1);
	while (slots[i].key && !(slots[i].len == len && memcmp(slots[i].key, key, len) == 0))
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static void grow(struct table *t)
{
	size_t cap = t->cap * 2;
	struct entry *slots = xmalloc(cap * sizeof *slots);
	memset(slots, 0, cap * sizeof *slots);
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].key)
			*probe(slots, cap, t->slots[i].key, t->slots[i].len) = t->slots[i];
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
}

struct entry *table_add(struct table *t, const char *key, size_t len, long delta)
{
	/* Keep the load under 3/4 so probing stays short. */
	if ((t->used + 1) * 4 > t->cap * 3)
		grow(t);
	struct entry *e = probe(t->slots, t->cap, key, len);
	if (!e->key) {
		e->key = xstrndup(key, len);
		e->len = len;
		e->count = 0;
		t->used++;
	}
	e->count += delta;
	return e;
}

struct entry *table_find(const struct table *t, const char *key, size_t len)
{
	struct entry *e = probe(t->slots, t->cap, key, len);
	return e->key ? e : NULL;
}

void table_free(struct table *t)
{
	for (size_t i = 0; i < t->cap; i++)
		free(t->slots[i].key);
	free(t->slots);
	t->slots = NULL;
	t->cap = t->used = 0;
}
