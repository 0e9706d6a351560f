#ifndef TALLY_BUF_H
#define TALLY_BUF_H
#include <stddef.h>

/* A growable byte buffer; `data` is always NUL-terminated. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};

void buf_init(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_putc(struct buf *b, char c);
void buf_clear(struct buf *b);
void buf_free(struct buf *b);

#endif
