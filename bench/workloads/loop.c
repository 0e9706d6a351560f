/*
 * loop N PATH: N times stat(PATH), open(PATH, O_RDONLY), close.
 *
 * The worst case for a tracer: nothing but traced system calls, back to
 * back.  It counts what it did and prints the counts on stderr, so a
 * recording can be checked against exact numbers.  Any failed call is an
 * error (exit 1): the counts then would not mean what they say.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: loop N PATH\n");
		return 2;
	}
	long n = strtol(argv[1], NULL, 10);
	const char *path = argv[2];
	long stats = 0, opens = 0;
	struct stat st;

	for (long i = 0; i < n; i++) {
		if (stat(path, &st) != 0) {
			perror(path);
			return 1;
		}
		stats++;
		int fd = open(path, O_RDONLY);
		if (fd < 0) {
			perror(path);
			return 1;
		}
		opens++;
		close(fd);
	}
	fprintf(stderr, "loop: %ld stat %ld open\n", stats, opens);
	return 0;
}
