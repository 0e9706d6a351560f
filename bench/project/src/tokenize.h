#ifndef TALLY_TOKENIZE_H
#define TALLY_TOKENIZE_H
#include <stddef.h>

/* Called once per word with its bytes (lowercased when asked), not NUL-terminated. */
typedef void (*word_fn)(const char *word, size_t len, void *ctx);

/* Splits TEXT into words: runs of letters, with single apostrophes kept
 * between letters ("don't" is one word).  Returns the number of words. */
size_t tokenize(const char *text, size_t len, int fold_case, word_fn fn, void *ctx);

#endif
