#ifndef TALLY_UTF8_H
#define TALLY_UTF8_H
#include <stddef.h>
#include <stdint.h>

#define UTF8_INVALID 0xFFFD

/* Decodes one code point at S (N bytes left); stores its length in *LEN.
 * Malformed input yields UTF8_INVALID with *LEN = 1, so decoding always moves on. */
uint32_t utf8_decode(const unsigned char *s, size_t n, size_t *len);
/* Encodes CP into OUT (4 bytes room); returns the number of bytes written. */
size_t utf8_encode(uint32_t cp, char *out);
/* Letters of ASCII and Latin-1 Supplement, plus the apostrophe inside words. */
int utf8_is_letter(uint32_t cp);
uint32_t utf8_lower(uint32_t cp);

#endif
