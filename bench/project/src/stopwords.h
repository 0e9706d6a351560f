#ifndef TALLY_STOPWORDS_H
#define TALLY_STOPWORDS_H
#include "hash.h"

/* Fills SET with the built-in English stop words. */
void stopwords_builtin(struct table *set);
/* Adds the words of PATH (one or more per line) to SET. */
void stopwords_load(struct table *set, const char *path);
int stopwords_has(const struct table *set, const char *word, size_t len);

#endif
