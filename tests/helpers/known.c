/*
 * known.c - a program whose system calls are known exactly, for the
 * recording tests.  Built statically so no dynamic loader adds opens.
 *
 *   known DIR OPENS MISSES STATS STATMISSES CHILDREN EXITCODE
 *
 * In DIR (which holds a file named "exists"), it opens "exists" OPENS times,
 * "missing-K" MISSES times (ENOENT), stats "exists" STATS times and
 * "nothere-K" STATMISSES times; then starts a thread that opens "thread";
 * then forks CHILDREN children in turn, each of which execs this program as
 * `known child DIR K`, creates DIR/child-K and exits with status K + 1 --
 * except child 0 when CHILDREN > 1, which is killed by SIGTERM -- and waits
 * for each with waitpid; finally one vfork child execs a missing program
 * (ENOENT) and _exits 127, and the program exits with EXITCODE.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char path[4096];

static const char *at(const char *dir, const char *name, int k)
{
	if (k >= 0)
		snprintf(path, sizeof(path), "%s/%s-%d", dir, name, k);
	else
		snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static void *thread_main(void *dir)
{
	int fd = open(at(dir, "thread", -1), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int child(const char *dir, int k)
{
	int fd = open(at(dir, "child", k), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0)
		close(fd);
	if (k == 0 && getenv("KNOWN_KILL_FIRST"))
		raise(SIGTERM);
	return k + 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "child") == 0)
		return child(argv[2], atoi(argv[3]));
	if (argc != 8) {
		fprintf(stderr, "usage: known DIR OPENS MISSES STATS STATMISSES CHILDREN EXITCODE\n");
		return 2;
	}
	const char *dir = argv[1];
	int opens = atoi(argv[2]), misses = atoi(argv[3]), stats = atoi(argv[4]);
	int statmisses = atoi(argv[5]), children = atoi(argv[6]), code = atoi(argv[7]);
	struct stat st;

	for (int i = 0; i < opens; i++) {
		int fd = open(at(dir, "exists", -1), O_RDONLY);
		if (fd < 0)
			return 3;
		close(fd);
	}
	for (int i = 0; i < misses; i++)
		if (open(at(dir, "missing", i), O_RDONLY) >= 0 || errno != ENOENT)
			return 4;
	for (int i = 0; i < stats; i++)
		if (stat(at(dir, "exists", -1), &st) != 0)
			return 5;
	for (int i = 0; i < statmisses; i++)
		if (stat(at(dir, "nothere", i), &st) == 0)
			return 6;

	pthread_t t;
	if (pthread_create(&t, NULL, thread_main, (void *)dir) != 0)
		return 7;
	pthread_join(t, NULL);

	if (children > 1)
		setenv("KNOWN_KILL_FIRST", "1", 1);
	for (int k = 0; k < children; k++) {
		pid_t pid = fork();
		if (pid < 0)
			return 8;
		if (pid == 0) {
			char num[16];
			snprintf(num, sizeof(num), "%d", k);
			execl("/proc/self/exe", "known", "child", dir, num, (char *)NULL);
			_exit(126);
		}
		int status;
		if (waitpid(pid, &status, 0) != pid)
			return 9;
	}

	pid_t v = vfork();
	if (v == 0) {
		execl(at(dir, "no-such-program", -1), "no-such-program", (char *)NULL);
		_exit(127);
	}
	int status;
	waitpid(v, &status, 0);
	return code;
}
