#include "fileio.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void read_file(const char *path, struct buf *out)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f)
		die("%s: %s", path, strerror(errno));
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(out, chunk, n);
	if (ferror(f))
		die("%s: read error", path);
	if (f != stdin)
		fclose(f);
}
