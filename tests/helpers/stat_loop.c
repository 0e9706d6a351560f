/*
 * stat_loop.c - stats PATH N times; with EVERY and US, sleeps US
 * microseconds after every EVERY stats (so a consumer that steers the
 * capture has the time to act while the loop still runs).  Exits 0.
 * Static: no loader, so the calls it makes are exactly these.
 *
 *   stat_loop PATH N [EVERY US]
 */
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

int main(int argc, char **argv)
{
	struct stat st;
	if (argc != 3 && argc != 5)
		return 2;
	long n = atol(argv[2]);
	long every = argc == 5 ? atol(argv[3]) : 0;
	long us = argc == 5 ? atol(argv[4]) : 0;
	struct timespec pause = { us / 1000000, (us % 1000000) * 1000 };
	for (long i = 1; i <= n; i++) {
		stat(argv[1], &st);
		if (every > 0 && i % every == 0)
			nanosleep(&pause, NULL);
	}
	return 0;
}
