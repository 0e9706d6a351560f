/*
 * statloop N PATH: N times stat(PATH), nothing else: the file path of the
 * kernel side alone (bench/bench_netfd.py compares it with and without the
 * network and fd-table programs compiled in).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: statloop N PATH\n");
		return 2;
	}
	long n = strtol(argv[1], NULL, 10);
	struct stat st;
	for (long i = 0; i < n; i++) {
		if (stat(argv[2], &st) != 0) {
			perror(argv[2]);
			return 1;
		}
	}
	fprintf(stderr, "statloop: %ld stat\n", n);
	return 0;
}
