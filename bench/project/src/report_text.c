#include "report.h"

void report_text(FILE *out, const struct report *r)
{
	size_t width = 4;
	for (size_t i = 0; i < r->ntop; i++)
		if (r->top[i]->len > width)
			width = r->top[i]->len;
	for (size_t i = 0; i < r->ntop; i++)
		fprintf(out, "%-*s %ld\n", (int)width, r->top[i]->key, r->top[i]->count);
	if (r->with_summary)
		fprintf(out, "-- %ld words, %zu distinct, %ld skipped, mean length %.2f, longest \"%s\"\n",
			r->stats->words, r->distinct, r->stats->skipped, stats_mean_len(r->stats),
			r->stats->longest ? r->stats->longest : "");
}
