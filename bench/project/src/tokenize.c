#include "tokenize.h"
#include "buf.h"
#include "utf8.h"

size_t tokenize(const char *text, size_t len, int fold_case, word_fn fn, void *ctx)
{
	const unsigned char *s = (const unsigned char *)text;
	struct buf word;
	size_t i = 0, count = 0;
	int pending_apostrophe = 0;

	buf_init(&word);
	while (i <= len) {
		size_t n = 1;
		uint32_t cp = i < len ? utf8_decode(s + i, len - i, &n) : 0;

		if (i < len && utf8_is_letter(cp)) {
			char enc[4];
			if (pending_apostrophe)
				buf_putc(&word, '\'');
			pending_apostrophe = 0;
			buf_append(&word, enc, utf8_encode(fold_case ? utf8_lower(cp) : cp, enc));
		} else if (i < len && cp == '\'' && word.len > 0 && !pending_apostrophe) {
			pending_apostrophe = 1;
		} else {
			if (word.len > 0) {
				fn(word.data, word.len, ctx);
				count++;
				buf_clear(&word);
			}
			pending_apostrophe = 0;
		}
		i += n;
	}
	buf_free(&word);
	return count;
}
