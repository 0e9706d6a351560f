#include "stats.h"
#include "util.h"

#include <stdlib.h>

void stats_init(struct stats *s)
{
	s->words = s->skipped = 0;
	s->total_len = 0;
	s->longest = NULL;
	s->longest_len = 0;
}

void stats_word(struct stats *s, const char *word, size_t len)
{
	s->words++;
	s->total_len += len;
	if (len > s->longest_len) {
		free(s->longest);
		s->longest = xstrndup(word, len);
		s->longest_len = len;
	}
}

double stats_mean_len(const struct stats *s)
{
	return s->words ? (double)s->total_len / (double)s->words : 0.0;
}

void stats_free(struct stats *s)
{
	free(s->longest);
	s->longest = NULL;
}
