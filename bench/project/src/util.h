#ifndef TALLY_UTIL_H
#define TALLY_UTIL_H
#include <stddef.h>

/* Allocation that cannot fail silently: out of memory ends the program. */
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrndup(const char *s, size_t n);
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif
