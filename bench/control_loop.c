/*
 * control_loop.c - the stat/open-heavy loop of bench/bench_control.py.
 *
 *   control_loop DIR N
 *
 * Waits for one line on stdin (so the agent can attach and install its
 * rules first), then does N x (stat, open, close) of DIR/exists and prints
 * the loop's own wall-clock and CPU time in ns: the agent's start-up and
 * shut-down are not in the figures, only what tracing costs the loop.  The
 * CPU time includes the BPF programs, which run in the loop's context.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: control_loop DIR N\n");
		return 2;
	}
	char path[4096], line[16];
	snprintf(path, sizeof(path), "%s/exists", argv[1]);
	long n = atol(argv[2]);
	if (!fgets(line, sizeof(line), stdin))
		return 3;
	struct timespec a, b, ca, cb;
	struct stat st;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		if (stat(path, &st) != 0)
			return 4;
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			return 5;
		close(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
	printf("%lld %lld\n",
	       (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec),
	       (long long)(cb.tv_sec - ca.tv_sec) * 1000000000LL + (cb.tv_nsec - ca.tv_nsec));
	return 0;
}
