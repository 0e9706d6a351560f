#ifndef TALLY_RANK_H
#define TALLY_RANK_H
#include "hash.h"

/* The table's entries, most frequent first, ties in byte order of the word.
 * Returns an array of *N pointers into the table (the caller frees the array). */
const struct entry **rank_entries(const struct table *t, size_t *n);

#endif
