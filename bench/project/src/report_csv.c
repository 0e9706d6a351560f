#include "report.h"

#include <string.h>

/* RFC 4180: quote a field holding a comma, quote or line break; double the quotes. */
static void csv_field(FILE *out, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

void report_csv(FILE *out, const struct report *r)
{
	fputs("rank,word,count\n", out);
	for (size_t i = 0; i < r->ntop; i++) {
		fprintf(out, "%zu,", i + 1);
		csv_field(out, r->top[i]->key);
		fprintf(out, ",%ld\n", r->top[i]->count);
	}
}
