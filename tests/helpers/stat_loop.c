/*
 * stat_loop.c - stats PATH N times, then each OTHER path once.  Exits 0.
 * Static: no loader opens, so the calls it makes are exactly these.
 *
 *   stat_loop PATH N [OTHER...]
 */
#include <stdlib.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	struct stat st;
	if (argc < 3)
		return 2;
	long n = atol(argv[2]);
	for (long i = 0; i < n; i++)
		stat(argv[1], &st);
	for (int i = 3; i < argc; i++)
		stat(argv[i], &st);
	return 0;
}
