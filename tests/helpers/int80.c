/* A 64-bit process that makes 32-bit system calls with `int 0x80`, with
 * rdi and rsi pointing at a path: read against the 64-bit table, i386
 * write (4) would be stat(rdi), i386 close (6) lstat(rdi), i386 dup (41)
 * socket.  Then the same path stat'ed the 64-bit way, once.
 * Exits 0 only when the three 32-bit calls did what the 32-bit table says
 * (write's count, EBADF twice): they ran, and as 32-bit calls. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static long int80(long nr, long b, long c, long d, const char *path)
{
	long r;
	__asm__ volatile("int $0x80"
			 : "=a"(r)
			 : "a"(nr), "b"(b), "c"(c), "d"(d), "D"(path), "S"(path)
			 : "memory");
	return r;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "/etc/hostname";
	static char msg[] = "int80\n";   /* static: below 4 GiB in a static binary */
	long w = int80(4, 1, (long)msg, strlen(msg), path);   /* i386 write */
	long c = int80(6, -1, 0, 0, path);                     /* i386 close(-1) */
	long d = int80(41, -1, 0, 0, path);                    /* i386 dup(-1) */
	struct stat st;
	stat(path, &st);
	printf("%ld %ld %ld\n", w, c, d);
	return w == (long)strlen(msg) && c == -9 && d == -9 ? 0 : 3;
}
