#include "report.h"

static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\n': fputs("\\n", out); break;
		case '\t': fputs("\\t", out); break;
		default:
			if (*p < 0x20)
				fprintf(out, "\\u%04x", *p);
			else
				fputc(*p, out);
		}
	}
	fputc('"', out);
}

void report_json(FILE *out, const struct report *r)
{
	fputs("{\"top\": [", out);
	for (size_t i = 0; i < r->ntop; i++) {
		fputs(i ? ", {\"word\": " : "{\"word\": ", out);
		json_string(out, r->top[i]->key);
		fprintf(out, ", \"count\": %ld}", r->top[i]->count);
	}
	fputc(']', out);
	if (r->with_summary) {
		fprintf(out, ", \"words\": %ld, \"distinct\": %zu, \"skipped\": %ld, \"longest\": ",
			r->stats->words, r->distinct, r->stats->skipped);
		json_string(out, r->stats->longest ? r->stats->longest : "");
	}
	fputs("}\n", out);
}
