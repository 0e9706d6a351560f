#include "stopwords.h"
#include "buf.h"
#include "fileio.h"
#include "tokenize.h"

#include <string.h>

static const char *const builtin[] = {
	"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from",
	"had", "has", "have", "he", "her", "his", "i", "in", "is", "it", "its",
	"not", "of", "on", "or", "she", "so", "that", "the", "their", "them",
	"then", "there", "they", "this", "to", "was", "we", "were", "which",
	"will", "with", "you",
};

void stopwords_builtin(struct table *set)
{
	for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
		table_add(set, builtin[i], strlen(builtin[i]), 1);
}

static void add_word(const char *word, size_t len, void *ctx)
{
	table_add(ctx, word, len, 1);
}

void stopwords_load(struct table *set, const char *path)
{
	struct buf text;
	buf_init(&text);
	read_file(path, &text);
	tokenize(text.data, text.len, 1, add_word, set);
	buf_free(&text);
}

int stopwords_has(const struct table *set, const char *word, size_t len)
{
	return table_find(set, word, len) != NULL;
}
