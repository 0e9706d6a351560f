/*
 * timed OUT CMD [ARG...]: run CMD, write to OUT its wall time and the CPU time
 * (user + system) of its process tree, both in nanoseconds: "WALL CPU\n".
 *
 * The benchmark times the workload from inside the traced tree, so a
 * tracer's start-up (BPF compilation) and its work after the command ends
 * (draining, writing the graph) are not counted as slowdown of the job;
 * the runner reports those separately as the end-to-end time.
 * Exits with CMD's status (128+signal if it was killed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: timed OUT CMD [ARG...]\n");
		return 2;
	}
	/* Opened before timing starts: its open is outside the timed window. */
	FILE *out = fopen(argv[1], "w");
	if (!out) {
		perror(argv[1]);
		return 2;
	}
	long long t0 = now_ns();
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid) {
		perror("waitpid");
		return 2;
	}
	long long t1 = now_ns();
	/* Every process of the tree was reaped by the time CMD was, so the
	 * children's usage covers the tree (orphans reaped by init aside). */
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	long long cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
			(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
	fprintf(out, "%lld %lld\n", t1 - t0, cpu);
	if (fclose(out) != 0) {
		perror(argv[1]);
		return 2;
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
