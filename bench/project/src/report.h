#ifndef TALLY_REPORT_H
#define TALLY_REPORT_H
#include <stdio.h>
#include "hash.h"
#include "stats.h"

/* Everything a report shows: the top entries and the totals. */
struct report {
	const struct entry **top;
	size_t ntop;
	size_t distinct;
	const struct stats *stats;
	int with_summary;
};

void report_text(FILE *out, const struct report *r);
void report_csv(FILE *out, const struct report *r);
void report_json(FILE *out, const struct report *r);

#endif
