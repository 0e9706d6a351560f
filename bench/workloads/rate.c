/*
 * rate RATE SECONDS PATH [WORKERS]: stat(PATH) at RATE calls per second in
 * total for SECONDS, split over WORKERS forked processes (default 1).
 *
 * Used to find the highest event rate a tracer keeps without loss.  Each
 * worker paces itself against the clock (clock_gettime is a vDSO call, not
 * a system call, so pacing adds no traced events) and sleeps when ahead.
 * A rate the machine cannot reach is run flat out; the rate achieved is
 * what is printed, on stdout, as "STATS NANOSECONDS" (all workers).
 * RATE 0 means flat out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One worker: returns the number of successful stats, or -1. */
static long work(double rate, double seconds, const char *path)
{
	struct stat st;
	long done = 0;
	long long t0 = now_ns();
	long long end = t0 + (long long)(seconds * 1e9);

	for (;;) {
		long long t = now_ns();
		if (t >= end)
			break;
		if (rate > 0) {
			long target = (long)((t - t0) * rate / 1e9);
			if (done >= target) {
				/* Ahead of schedule: sleep until the next batch is due. */
				long long due = t0 + (long long)((done + BATCH) * 1e9 / rate);
				long long wait = due - t;
				if (wait > 0) {
					struct timespec ts = {wait / 1000000000LL, wait % 1000000000LL};
					nanosleep(&ts, NULL);
				}
				continue;
			}
		}
		for (int i = 0; i < BATCH; i++) {
			if (stat(path, &st) != 0) {
				perror(path);
				return -1;
			}
		}
		done += BATCH;
	}
	return done;
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: rate RATE SECONDS PATH [WORKERS]\n");
		return 2;
	}
	double rate = atof(argv[1]);
	double seconds = atof(argv[2]);
	const char *path = argv[3];
	int workers = argc == 5 ? atoi(argv[4]) : 1;
	int fds[2];

	if (workers < 1 || pipe(fds) != 0) {
		fprintf(stderr, "rate: bad WORKERS or pipe failed\n");
		return 2;
	}
	long long t0 = now_ns();
	for (int w = 0; w < workers; w++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			long done = work(rate / workers, seconds, path);
			if (write(fds[1], &done, sizeof done) != sizeof done)
				_exit(1);
			_exit(done < 0);
		}
	}
	close(fds[1]);
	long total = 0, done;
	int failed = 0;
	for (int w = 0; w < workers; w++) {
		if (read(fds[0], &done, sizeof done) != sizeof done || done < 0)
			failed = 1;
		else
			total += done;
	}
	for (int w = 0; w < workers; w++) {
		int status;
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	}
	long long elapsed = now_ns() - t0;
	printf("%ld %lld\n", total, elapsed);
	return failed;
}
