#ifndef TALLY_FILEIO_H
#define TALLY_FILEIO_H
#include "buf.h"

/* Appends the whole content of PATH ("-" is stdin) to OUT; dies on error. */
void read_file(const char *path, struct buf *out);

#endif
