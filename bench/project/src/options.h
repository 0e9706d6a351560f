#ifndef TALLY_OPTIONS_H
#define TALLY_OPTIONS_H
#include <stddef.h>

enum format { FORMAT_TEXT, FORMAT_CSV, FORMAT_JSON };

struct options {
	size_t top;             /* entries shown; 0 = all */
	size_t min_len;         /* shorter words are skipped */
	enum format format;
	int keep_case;
	int no_stopwords;
	int summary;
	const char *stopword_file;
	char **files;           /* the rest of argv; none means stdin */
	int nfiles;
};

/* Parses argv; prints usage and exits 2 on a bad option. */
void parse_options(int argc, char **argv, struct options *o);

#endif
