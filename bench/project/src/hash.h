#ifndef TALLY_HASH_H
#define TALLY_HASH_H
#include <stddef.h>

struct entry {
	char *key;     /* owned, NUL-terminated */
	size_t len;
	long count;
};

/* String -> count, open addressing with linear probing. */
struct table {
	struct entry *slots;
	size_t cap;    /* a power of two */
	size_t used;
};

void table_init(struct table *t);
/* Adds DELTA to KEY's count, inserting it at 0 first; returns the entry. */
struct entry *table_add(struct table *t, const char *key, size_t len, long delta);
struct entry *table_find(const struct table *t, const char *key, size_t len);
void table_free(struct table *t);
unsigned long hash_bytes(const char *s, size_t len);

#endif
