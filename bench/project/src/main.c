/* tally: count the words of text files and print the most frequent ones. */
#include "buf.h"
#include "fileio.h"
#include "hash.h"
#include "options.h"
#include "rank.h"
#include "report.h"
#include "stats.h"
#include "stopwords.h"
#include "tokenize.h"

#include <stdio.h>
#include <stdlib.h>

struct counter {
	const struct options *opt;
	struct table words;
	struct table stop;
	struct stats stats;
};

static void count_word(const char *word, size_t len, void *ctx)
{
	struct counter *c = ctx;
	if (len < c->opt->min_len || (!c->opt->no_stopwords && stopwords_has(&c->stop, word, len))) {
		c->stats.skipped++;
		return;
	}
	table_add(&c->words, word, len, 1);
	stats_word(&c->stats, word, len);
}

static void count_file(struct counter *c, const char *path)
{
	struct buf text;
	buf_init(&text);
	read_file(path, &text);
	tokenize(text.data, text.len, !c->opt->keep_case, count_word, c);
	buf_free(&text);
}

int main(int argc, char **argv)
{
	struct options opt;
	struct counter c = {.opt = &opt};

	parse_options(argc, argv, &opt);
	table_init(&c.words);
	table_init(&c.stop);
	stats_init(&c.stats);
	if (!opt.no_stopwords) {
		stopwords_builtin(&c.stop);
		if (opt.stopword_file)
			stopwords_load(&c.stop, opt.stopword_file);
	}
	if (opt.nfiles == 0)
		count_file(&c, "-");
	for (int i = 0; i < opt.nfiles; i++)
		count_file(&c, opt.files[i]);

	size_t n;
	const struct entry **ranked = rank_entries(&c.words, &n);
	struct report r = {
		.top = ranked,
		.ntop = opt.top && opt.top < n ? opt.top : n,
		.distinct = n,
		.stats = &c.stats,
		.with_summary = opt.summary,
	};
	switch (opt.format) {
	case FORMAT_TEXT: report_text(stdout, &r); break;
	case FORMAT_CSV: report_csv(stdout, &r); break;
	case FORMAT_JSON: report_json(stdout, &r); break;
	}
	free(ranked);
	table_free(&c.words);
	table_free(&c.stop);
	stats_free(&c.stats);
	return fflush(stdout) == 0 ? 0 : 1;
}
