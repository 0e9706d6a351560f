#ifndef TALLY_STATS_H
#define TALLY_STATS_H
#include <stddef.h>

struct stats {
	long words;        /* words counted (stop words and short words excluded) */
	long skipped;      /* words dropped as stop words or too short */
	size_t total_len;  /* bytes in counted words, for the mean length */
	char *longest;     /* first longest counted word (owned) */
	size_t longest_len;
};

void stats_init(struct stats *s);
void stats_word(struct stats *s, const char *word, size_t len);
double stats_mean_len(const struct stats *s);
void stats_free(struct stats *s);

#endif
