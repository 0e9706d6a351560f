/*
 * opener.c - opens and stats each path given on the command line, in order
 * (`-C DIR` changes directory first).  Exits 0.  Static: no loader opens.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct stat st;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-C") == 0 && i + 1 < argc) {
			if (chdir(argv[++i]) != 0)
				return 1;
			continue;
		}
		int fd = open(argv[i], O_RDONLY);
		if (fd >= 0)
			close(fd);
		stat(argv[i], &st);
	}
	return 0;
}
