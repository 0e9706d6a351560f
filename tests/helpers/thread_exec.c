/*
 * thread_exec DIR: a thread other than the leader execs this program again
 * ("after DIR"), which then opens DIR/after-1 .. DIR/after-3 (missing:
 * ENOENT) and exits 0.  The kernel gives the exec'ing thread the leader's
 * tid: what it does after the exec must still be traced.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *dir;

static void *execer(void *arg)
{
	(void)arg;
	execl("/proc/self/exe", "thread_exec", "after", dir, (char *)NULL);
	return NULL;
}

int main(int argc, char **argv)
{
	char path[4096];
	if (argc == 3 && strcmp(argv[1], "after") == 0) {
		for (int i = 1; i <= 3; i++) {
			snprintf(path, sizeof(path), "%s/after-%d", argv[2], i);
			open(path, O_RDONLY);
		}
		return 0;
	}
	if (argc != 2)
		return 2;
	dir = argv[1];
	pthread_t t;
	if (pthread_create(&t, NULL, execer, NULL) != 0)
		return 1;
	pause();     /* ended by the exec of the other thread */
	return 1;
}
