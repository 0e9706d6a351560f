"""open(2) flags as records carry them (the kernel's asm-generic values,
which x86-64, arm64 and riscv share; userland's O_LARGEFILE is 0 on x86-64
but the kernel's is not).  The one table of them: the strace parser reads
names with it, the graph and the comparisons test bits with it."""
from __future__ import annotations

OPEN_FLAGS = {
    "O_RDONLY": 0o0, "O_WRONLY": 0o1, "O_RDWR": 0o2, "O_ACCMODE": 0o3,
    "O_CREAT": 0o100, "O_EXCL": 0o200, "O_NOCTTY": 0o400, "O_TRUNC": 0o1000,
    "O_APPEND": 0o2000, "O_NONBLOCK": 0o4000, "O_NDELAY": 0o4000, "O_DSYNC": 0o10000,
    "FASYNC": 0o20000, "O_ASYNC": 0o20000, "O_DIRECT": 0o40000, "O_LARGEFILE": 0o100000,
    "O_DIRECTORY": 0o200000, "O_NOFOLLOW": 0o400000, "O_NOATIME": 0o1000000,
    "O_CLOEXEC": 0o2000000, "__O_SYNC": 0o4000000, "O_SYNC": 0o4010000,
    "O_PATH": 0o10000000, "__O_TMPFILE": 0o20000000, "O_TMPFILE": 0o20200000,
}

O_RDONLY = OPEN_FLAGS["O_RDONLY"]
O_WRONLY = OPEN_FLAGS["O_WRONLY"]
O_RDWR = OPEN_FLAGS["O_RDWR"]
O_ACCMODE = OPEN_FLAGS["O_ACCMODE"]
O_CREAT = OPEN_FLAGS["O_CREAT"]
O_TRUNC = OPEN_FLAGS["O_TRUNC"]
O_CLOEXEC = OPEN_FLAGS["O_CLOEXEC"]
O_PATH = OPEN_FLAGS["O_PATH"]
O_TMPFILE = OPEN_FLAGS["O_TMPFILE"]
O_TMPFILE_BIT = OPEN_FLAGS["__O_TMPFILE"]   # the bit O_TMPFILE adds to O_DIRECTORY

# creat(path, mode) is open(path, O_CREAT|O_WRONLY|O_TRUNC, mode).
CREAT_FLAGS = O_CREAT | O_WRONLY | O_TRUNC
