#include "rank.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static int by_count_then_word(const void *a, const void *b)
{
	const struct entry *x = *(const struct entry *const *)a;
	const struct entry *y = *(const struct entry *const *)b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->key, y->key, n);
	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

const struct entry **rank_entries(const struct table *t, size_t *n)
{
	const struct entry **out = xmalloc(t->used * sizeof *out);
	size_t k = 0;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].key)
			out[k++] = &t->slots[i];
	qsort(out, k, sizeof *out, by_count_then_word);
	*n = k;
	return out;
}
