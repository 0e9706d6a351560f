#include "options.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: tally [-n TOP] [-m MINLEN] [-f text|csv|json] [-c] [-a] [-s FILE] [-S] [FILE...]\n"
	"  -n TOP     show the TOP most frequent words (default 10, 0 = all)\n"
	"  -m MINLEN  skip words shorter than MINLEN characters' bytes (default 1)\n"
	"  -f FORMAT  text (default), csv or json\n"
	"  -c         keep case (default: fold to lower case)\n"
	"  -a         count stop words too\n"
	"  -s FILE    more stop words, from FILE\n"
	"  -S         print a summary line\n";

static size_t parse_size(const char *s, char opt)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 0)
		die("-%c: not a count: %s", opt, s);
	return (size_t)v;
}

void parse_options(int argc, char **argv, struct options *o)
{
	int c;
	memset(o, 0, sizeof *o);
	o->top = 10;
	o->min_len = 1;
	while ((c = getopt(argc, argv, "n:m:f:cas:Sh")) != -1) {
		switch (c) {
		case 'n': o->top = parse_size(optarg, 'n'); break;
		case 'm': o->min_len = parse_size(optarg, 'm'); break;
		case 'f':
			if (strcmp(optarg, "text") == 0)
				o->format = FORMAT_TEXT;
			else if (strcmp(optarg, "csv") == 0)
				o->format = FORMAT_CSV;
			else if (strcmp(optarg, "json") == 0)
				o->format = FORMAT_JSON;
			else
				die("-f: unknown format: %s", optarg);
			break;
		case 'c': o->keep_case = 1; break;
		case 'a': o->no_stopwords = 1; break;
		case 's': o->stopword_file = optarg; break;
		case 'S': o->summary = 1; break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			fputs(usage, stderr);
			exit(2);
		}
	}
	o->files = argv + optind;
	o->nfiles = argc - optind;
}
