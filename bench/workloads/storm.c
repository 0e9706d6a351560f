/*
 * storm N [PROGRAM]: N times fork, exec PROGRAM (default /bin/true), wait.
 *
 * Process lifecycle at the highest rate one driver can produce; the driver
 * itself makes no other traced call in the loop.  Prints the number of
 * children reaped; exits 1 if any child failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: storm N [PROGRAM]\n");
		return 2;
	}
	long n = strtol(argv[1], NULL, 10);
	const char *prog = argc == 3 ? argv[2] : "/bin/true";
	long reaped = 0, failed = 0;

	for (long i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			execl(prog, prog, (char *)NULL);
			_exit(127);
		}
		int status;
		if (waitpid(pid, &status, 0) != pid) {
			perror("waitpid");
			return 1;
		}
		reaped++;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	fprintf(stderr, "storm: %ld reaped %ld failed\n", reaped, failed);
	return failed ? 1 : 0;
}
