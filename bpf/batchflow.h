/*
 * batchflow.h - the event record shared by the kernel side (bpf/), the
 * ring-buffer consumer (ext/) and the Python decoder (agent/events.py).
 *
 * One record per traced system call or scheduler event, written to the
 * BPF ring buffer as a fixed 80-byte header followed by `size - 80` bytes
 * of variable data.  All integers are native-endian (the agent reads its
 * own host's records only).
 *
 *   off size field      meaning
 *     0    8 ts_ns      CLOCK_MONOTONIC time of the event (bpf_ktime_get_ns):
 *                       when a system call returned; an exec when it was
 *                       entered, a fork when the child was created.  The
 *                       run header carries one wall-clock anchor.
 *     8    4 pid        thread-group id (what userland calls the pid)
 *    12    4 tid        thread id
 *    16    4 ppid       parent's tgid as known to batchflow (0 = unknown;
 *                       the agent fills it from /proc or from fork records)
 *    20    4 uid        real uid
 *    24    8 ret        syscall return value: >= 0 result, < 0 is -errno
 *    32    8 arg0       kind-specific, see below
 *    40    8 arg1       kind-specific, see below
 *    48    4 dirfd      directory fd of *at() calls (AT_FDCWD = -100)
 *    52    2 size       total size of the record, header included
 *    54    1 kind       enum bf_kind
 *    55    1 call       enum bf_call: which system call produced it
 *    56    2 path_len   bytes of data[] holding the path, NUL included (0 = none)
 *    58    2 argv_len   bytes of data[] after the path holding argv strings,
 *                       each NUL-terminated
 *    60    1 argc       number of argv strings recorded
 *    61    1 trunc      BF_TRUNC_* bits: a string did not fit its bound
 *    62    1 slot       the recording the task belongs to: its byte in the
 *                       traced set (1..255; 0 = traced only because the
 *                       scope is the whole host).  The resident agent's C
 *                       consumer routes each record to its recording by it.
 *    63    1 _pad
 *    64   16 comm       task comm at the time of the event (NUL padded)
 *    80    - data       path bytes, then argv bytes
 *
 * Per kind:
 *   BF_OPEN  arg0 = open flags, arg1 = mode, ret = fd or -errno
 *   BF_STAT  arg0 = flags (AT_* / statx flags / access mode), ret = 0 or -errno
 *   BF_FORK  arg0 = clone flags (fork: SIGCHLD, vfork: CLONE_VM|CLONE_VFORK|SIGCHLD),
 *            arg1 = child tid, ret = child tid or -errno
 *   BF_EXEC  path = filename, argv = argv[0..argc), ret = 0 or -errno
 *   BF_EXIT  arg0 = exit code given to exit_group/exit (-1: not seen),
 *            arg1 = fatal signal (0: none); emitted when the last thread of
 *            the process leaves.  Kernels whose sched_process_exit lacks
 *            group_dead (6.1 has none): emitted when the leader leaves, with
 *            BF_EXIT_THREAD set in trunc
 *   BF_WAIT  arg0 = pid argument of wait4/waitid (idtype<<32|id for waitid),
 *            arg1 = wait status as wait4 stores it (-1: caller passed NULL),
 *            ret  = reaped pid, 0 (WNOHANG, nothing ready) or -errno
 *   BF_CHDIR path = new directory (fchdir: no path, dirfd = fd), ret = 0 or -errno
 *   BF_NET   network calls; the address, when the call names one, is the
 *            path: path_len = its length + 1 (a struct sockaddr, family
 *            first, as the call passed or returned it, at most BF_ADDR_MAX
 *            bytes, followed by a NUL that is not part of it).
 *              socket      arg0 = domain, arg1 = type (with SOCK_* flags),
 *                          dirfd = protocol, ret = fd
 *              socketpair  arg0 = domain, arg1 = type, dirfd = protocol,
 *                          ret = 0; the two fds: data = int[2] (path_len 9)
 *              connect     arg0 = fd, arg1 = connection id (0: none; a TCP
 *                          connect of a traced task gets one, see below),
 *                          path = the peer address, ret = 0 or -errno
 *                          (-EINPROGRESS for a non-blocking connect)
 *              accept(4)   arg0 = listening fd, arg1 = accept4 flags, ret =
 *                          new fd; path = the peer address (when the caller
 *                          asked for it); argv area = a struct bf_tcp_tuple
 *                          of the accepted connection when the kernel side
 *                          saw it established (argv_len 40, argc 0)
 *              bind        arg0 = fd, path = the local address
 *              listen      arg0 = fd, arg1 = backlog
 *              sendto      arg0 = fd, path = the destination; recorded only
 *                          when the call names one (unconnected UDP)
 *              tcp_connected  (call BF_SYS_TCP_CONNECTED, no system call:
 *                          sock:inet_sock_set_state SYN_SENT -> ESTABLISHED)
 *                          pid, tid, uid, comm of the task that connected;
 *                          arg1 = the connection id its connect record
 *                          carries; argv area = struct bf_tcp_tuple
 *   BF_FD    what changes a process's fd table, so that the agent can name
 *            the resource behind an fd-relative call
 *              close       arg0 = fd, ret
 *              dup         arg0 = old fd, ret = new fd
 *              dup2, dup3  arg0 = old fd, arg1 = new fd, dirfd = dup3 flags, ret
 *              fcntl       arg0 = fd, arg1 = cmd, dirfd = its int argument,
 *                          ret; only F_DUPFD, F_DUPFD_CLOEXEC and F_SETFD
 *              pipe, pipe2 arg0 = fd[0], arg1 = fd[1] (-1 on failure),
 *                          dirfd = pipe2 flags, ret
 */
#ifndef BATCHFLOW_H
#define BATCHFLOW_H

#define BF_HEADER_SIZE 80
#define BF_COMM_LEN 16
#define BF_PATH_MAX 4096      /* PATH_MAX: longer paths fail with ENAMETOOLONG */
#define BF_ARG_MAX 256        /* bound on one argv string */
#define BF_ARGC_MAX 32        /* bound on the number of argv strings kept */
#define BF_ARGV_MAX (BF_ARG_MAX * BF_ARGC_MAX)
#define BF_DATA_MAX (BF_PATH_MAX + BF_ARGV_MAX)

enum bf_kind {
	BF_OPEN = 1,
	BF_STAT = 2,
	BF_FORK = 3,
	BF_EXEC = 4,
	BF_EXIT = 5,
	BF_WAIT = 6,
	BF_CHDIR = 7,
	BF_NET = 8,
	BF_FD = 9,
	BF_KIND_MAX = 10,
};

enum bf_call {
	BF_SYS_NONE = 0,
	BF_SYS_OPEN, BF_SYS_OPENAT, BF_SYS_OPENAT2, BF_SYS_CREAT,
	BF_SYS_STAT, BF_SYS_LSTAT, BF_SYS_FSTATAT, BF_SYS_STATX,
	BF_SYS_ACCESS, BF_SYS_FACCESSAT, BF_SYS_FACCESSAT2,
	BF_SYS_FORK, BF_SYS_VFORK, BF_SYS_CLONE, BF_SYS_CLONE3,
	BF_SYS_EXECVE, BF_SYS_EXECVEAT,
	BF_SYS_EXIT, BF_SYS_EXIT_GROUP,
	BF_SYS_WAIT4, BF_SYS_WAITID,
	BF_SYS_CHDIR, BF_SYS_FCHDIR,
	BF_SYS_SOCKET, BF_SYS_SOCKETPAIR, BF_SYS_CONNECT, BF_SYS_ACCEPT, BF_SYS_ACCEPT4,
	BF_SYS_BIND, BF_SYS_LISTEN, BF_SYS_SENDTO, BF_SYS_TCP_CONNECTED,
	BF_SYS_CLOSE, BF_SYS_DUP, BF_SYS_DUP2, BF_SYS_DUP3, BF_SYS_FCNTL,
	BF_SYS_PIPE, BF_SYS_PIPE2,
	BF_SYS_MAX,
};

#define BF_TRUNC_PATH       0x01  /* path longer than BF_PATH_MAX - 1 */
#define BF_TRUNC_ARG        0x02  /* an argv string longer than BF_ARG_MAX - 1 */
#define BF_TRUNC_ARGC       0x04  /* more than BF_ARGC_MAX argv strings */
#define BF_EXIT_THREAD      0x80  /* BF_EXIT of the leader: kernel lacks group_dead */

/* clone flags (linux/sched.h), without pulling that header into the build */
#define BF_CLONE_VM     0x00000100
#define BF_CLONE_VFORK  0x00004000
#define BF_CLONE_THREAD 0x00010000
#define BF_FLAGS_FORK   17                                  /* fork(): SIGCHLD */
#define BF_FLAGS_VFORK  (BF_CLONE_VM | BF_CLONE_VFORK | 17)  /* vfork() */

/* The traced set (kernel side): one byte per possible tid (PID_MAX_LIMIT),
 * holding the task's recording slot (0 = not traced); a child inherits its
 * parent's.  The agent maps it and reads its size from the map. */
#define BF_TIDS_PER_SLOT 64
#define BF_TID_SLOTS 65536
/* Recording slots: the values a traced-set byte can hold. */
#define BF_SLOTS 256

#define BF_AT_FDCWD (-100)    /* dirfd of a path relative to the cwd */
#ifndef AT_FDCWD
#define AT_FDCWD BF_AT_FDCWD
#endif

struct bf_event {
	__u64 ts_ns;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__s64 ret;
	__s64 arg0;
	__s64 arg1;
	__s32 dirfd;
	__u16 size;
	__u8  kind;
	__u8  call;
	__u16 path_len;
	__u16 argv_len;
	__u8  argc;
	__u8  trunc;
	__u8  slot;
	__u8  _pad;
	char  comm[BF_COMM_LEN];
	/* char data[]: path_len bytes of path, then argv_len bytes of argv */
};

/* The largest record: what the kernel side builds in its per-CPU scratch. */
struct bf_record {
	struct bf_event hdr;
	char data[BF_DATA_MAX];
};

/* A TCP connection as the kernel's sock:inet_sock_set_state saw it
 * established, in the argv area of BF_NET records (40 bytes). */
#define BF_ADDR_MAX 128       /* sizeof(struct sockaddr_storage) */
struct bf_tcp_tuple {
	__u16 family;         /* AF_INET or AF_INET6 (v4-mapped addresses stay v6) */
	__u16 lport;          /* local port, host byte order */
	__u16 rport;          /* remote port, host byte order */
	__u16 _pad;
	__u8  laddr[16];      /* local address (AF_INET: the first 4 bytes) */
	__u8  raddr[16];      /* remote address */
};


/* Loss counters in the per-CPU array `losses`, one row of BF_LOSS_MAX per
 * recording slot (index slot * BF_LOSS_MAX + cause): a loss is charged to
 * the recording whose task or record it was. */
enum bf_loss {
	BF_LOSS_RINGBUF = 0,   /* ring buffer full: record dropped */
	BF_LOSS_INFLIGHT = 1,  /* exec map full: an execve's argv could not be kept */
	BF_LOSS_TRACED = 2,    /* a child could not join the traced set (tid out of range) */
	BF_LOSS_READ = 3,      /* a user string could not be read (record kept, path empty) */
	BF_LOSS_TUPLE = 4,     /* a TCP 4-tuple was not kept until its record: an accept
	                        * found none for its peer (evicted from the LRU, or
	                        * established before tracing began), or a connect's id
	                        * could not be kept (record kept, without the tuple) */
	BF_LOSS_MAX = 5,
};

/*
 * The agent's side of the kernel maps (written by agent/capture/loader.py
 * and agent/control/kernel.py, read by the kernel side).
 */

/* The `config` array, one u32 per slot. */
enum bf_config {
	BF_CFG_SCOPE = 0,      /* BF_SCOPE_* */
	BF_CFG_SELF = 1,       /* the agent's own tgid: never traced */
	BF_CFG_ACTIVE = 2,     /* control rules in force: bit per `krules` slot */
	BF_CFG_INHERIT = 3,    /* `krules` slots whose pid sets take in their members' children */
	BF_CFG_MAX = 4,
};

/* Scope modes (config[BF_CFG_SCOPE]). */
#define BF_SCOPE_TREE   0     /* tasks in `tids` and their descendants */
#define BF_SCOPE_SYSTEM 1     /* every task on the host */

/* Control rules the kernel decides: a DISCARD keeps matching records out
 * of the ring buffer, a FOCUS wakes the consumer at once.  A record
 * matches a slot when its time is in [lo, hi], its kind's bit is in
 * `kinds`, and each condition `flags` names holds: the pid set (bit `slot`
 * of kpids[tgid]), the uid, the comm (each possibly negated). */
#define BF_KRULES 16
#define BF_KR_DISCARD 1       /* bf_krule.type */
#define BF_KR_FOCUS 2
#define BF_KR_PIDS 0x01       /* bf_krule.flags */
#define BF_KR_UID 0x02
#define BF_KR_UID_NOT 0x04
#define BF_KR_COMM 0x08
#define BF_KR_COMM_NOT 0x10

struct bf_krule {
	__u64 lo;
	__u64 hi;
	__u32 kinds;          /* bit (1 << kind) */
	__u32 uid;
	__u8  type;           /* BF_KR_DISCARD or BF_KR_FOCUS */
	__u8  flags;          /* BF_KR_* */
	__u8  _pad[6];
	__u64 comm[2];        /* NUL padded, as bpf_get_current_comm leaves it */
};

#endif
