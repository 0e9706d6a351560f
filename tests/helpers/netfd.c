/* netfd.c - known network calls and fd-table changes, for the kernel side's
 * exact-count tests and the fd resolution tests.
 *
 * usage: netfd DIR
 *   TCP on 127.0.0.1: listen; a blocking connect, accepted with the peer's
 *   address; a non-blocking connect (EINPROGRESS), accepted without it.
 *   UDP: one sendto with a destination, one send on a connected socket.
 *   UNIX: DIR/sock bound, listened, connected, accepted; an abstract name bound.
 *   fds: open DIR/file, fstat it, dup2 it to 10, close the original, fstat 10,
 *   fcntl(10, F_DUPFD_CLOEXEC, 20), fstat 20, openat(DIR fd, "file"), a pipe
 *   (fstat of its read end), a child that fstats the inherited 10.
 * Prints "ok" and exits 0, or names the failing step and exits 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "netfd: %s: %s\n", what, strerror(errno));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: netfd DIR\n");
		return 2;
	}
	const char *dir = argv[1];
	char path[4096];
	struct stat st;

	/* TCP */
	int lsn = socket(AF_INET, SOCK_STREAM, 0);
	must(lsn >= 0, "socket");
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	must(bind(lsn, (struct sockaddr *)&a, sizeof(a)) == 0, "bind");
	socklen_t alen = sizeof(a);
	must(getsockname(lsn, (struct sockaddr *)&a, &alen) == 0, "getsockname");
	must(listen(lsn, 8) == 0, "listen");
	int c1 = socket(AF_INET, SOCK_STREAM, 0);
	must(connect(c1, (struct sockaddr *)&a, sizeof(a)) == 0, "connect");
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	int s1 = accept4(lsn, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
	must(s1 >= 0, "accept4");
	int c2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int r = connect(c2, (struct sockaddr *)&a, sizeof(a));
	must(r == 0 || errno == EINPROGRESS, "non-blocking connect");
	struct pollfd pfd = {.fd = c2, .events = POLLOUT};
	must(poll(&pfd, 1, 5000) == 1, "poll");
	int s2 = accept(lsn, NULL, NULL);
	must(s2 >= 0, "accept");

	/* UDP */
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(9),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	must(sendto(u, "x", 1, 0, (struct sockaddr *)&d, sizeof(d)) == 1, "sendto");
	must(connect(u, (struct sockaddr *)&d, sizeof(d)) == 0, "udp connect");
	must(send(u, "y", 1, 0) == 1 || errno == ECONNREFUSED, "send");

	/* UNIX */
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof(un.sun_path), "%s/sock", dir);
	int ul = socket(AF_UNIX, SOCK_STREAM, 0);
	must(bind(ul, (struct sockaddr *)&un, sizeof(un)) == 0, "unix bind");
	must(listen(ul, 1) == 0, "unix listen");
	int uc = socket(AF_UNIX, SOCK_STREAM, 0);
	must(connect(uc, (struct sockaddr *)&un, sizeof(un)) == 0, "unix connect");
	int us = accept(ul, NULL, NULL);
	must(us >= 0, "unix accept");
	struct sockaddr_un ab = {.sun_family = AF_UNIX};
	memcpy(ab.sun_path, "\0batchflow-netfd", 16);
	int ua = socket(AF_UNIX, SOCK_DGRAM, 0);
	must(bind(ua, (struct sockaddr *)&ab, sizeof(sa_family_t) + 16) == 0, "abstract bind");

	/* the fd table */
	snprintf(path, sizeof(path), "%s/file", dir);
	int f = open(path, O_RDONLY);
	must(f >= 0, "open");
	must(fstat(f, &st) == 0, "fstat");
	must(dup2(f, 10) == 10, "dup2");
	must(close(f) == 0, "close");
	must(fstat(10, &st) == 0, "fstat 10");
	must(fcntl(10, F_DUPFD_CLOEXEC, 20) == 20, "fcntl");
	must(fstat(20, &st) == 0, "fstat 20");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	must(dfd >= 0, "open dir");
	int g = openat(dfd, "file", O_RDONLY);
	must(g >= 0, "openat");
	int p[2];
	must(pipe(p) == 0, "pipe");
	must(fstat(p[0], &st) == 0, "fstat pipe");
	pid_t child = fork();
	must(child >= 0, "fork");
	if (child == 0)
		_exit(fstat(10, &st) == 0 ? 0 : 1);
	int status;
	must(waitpid(child, &status, 0) == child && status == 0, "child");
	printf("ok\n");
	return 0;
}
