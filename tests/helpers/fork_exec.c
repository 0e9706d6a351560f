/*
 * fork_exec N: N times, fork a child that at once execs
 * /bin/true with argv ["true", "from-an-untouched-page"], and wait for it.
 *
 * The strings sit alone in page-aligned memory the parent never reads.  A
 * fork does not copy the page-table entries of file-backed pages, so in the
 * child they are not mapped when execve is entered: a BPF program cannot
 * read them there (it may not fault pages in).
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((aligned(4096))) static const char strings[4096] =
	"/bin/true\0true\0from-an-untouched-page";

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			const char *path = strings, *a0 = strings + 10, *a1 = strings + 15;
			execl(path, a0, a1, (char *)NULL);
			_exit(127);
		}
		int status;
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
			return 1;
	}
	return 0;
}
