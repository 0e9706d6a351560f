/*
 * arch_x86_64.h - what the kernel side reads of an x86-64 system call at
 * raw_syscalls:sys_exit: its number and arguments, from the registers saved
 * on entry (struct pt_regs), and the syscall numbers it records.
 *
 * Both are user-visible ABI: the pt_regs layout is the one ptrace exposes,
 * the numbers are arch/x86/entry/syscalls/syscall_64.tbl.  Kept here rather
 * than taken from kernel headers so the program compiles the same against
 * any headers (bcc may be given another kernel's).
 */
#ifndef BATCHFLOW_ARCH_X86_64_H
#define BATCHFLOW_ARCH_X86_64_H

/* struct pt_regs from r10 (offset 56) to cs (offset 136): one read of what
 * every recorded call needs (sp, at 152, is read apart, by exec alone). */
#define BF_REGS_OFFSET 56
#define BF_SP_OFFSET 152
struct bf_regs {
	u64 r10;      /* 4th argument */
	u64 r9;
	u64 r8;
	u64 ax;       /* the result, at exit */
	u64 cx;
	u64 dx;       /* 3rd */
	u64 si;       /* 2nd */
	u64 di;       /* 1st */
	u64 orig_ax;  /* the syscall number */
	u64 ip;
	u64 cs;       /* low 16 bits: BF_USER_CS in 64-bit mode (FRED uses the rest) */
	/* then flags, and sp at BF_SP_OFFSET: after a successful exec, the
	 * new stack (argc, argv[]) */
};
#define BF_USER_CS 0x33   /* __USER_CS; 32-bit tasks run with 0x23 */

/* How a 64-bit task entered: with FRED, the saved ss (at BF_SS_OFFSET)
 * carries the event above its selector, its vector in bits 32-39 and its
 * type in bits 48-51; `syscall` is type 7 (other), vector 1.  Without FRED
 * those bits are 0. */
#define BF_SS_OFFSET 160
#define BF_FRED_VECTOR(ss) (((ss) >> 32) & 0xff)
#define BF_FRED_TYPE(ss) (((ss) >> 48) & 0xf)
#define BF_FRED_SYSCALL_TYPE 7
#define BF_FRED_SYSCALL_VECTOR 1

#define BF_NR_open         2
#define BF_NR_close        3
#define BF_NR_pipe        22
#define BF_NR_dup         32
#define BF_NR_dup2        33
#define BF_NR_socket      41
#define BF_NR_connect     42
#define BF_NR_accept      43
#define BF_NR_sendto      44
#define BF_NR_bind        49
#define BF_NR_listen      50
#define BF_NR_socketpair  53
#define BF_NR_fcntl       72
#define BF_NR_accept4    288
#define BF_NR_dup3       292
#define BF_NR_pipe2      293
#define BF_NR_stat         4
#define BF_NR_lstat        6
#define BF_NR_access      21
#define BF_NR_clone       56
#define BF_NR_fork        57
#define BF_NR_vfork       58
#define BF_NR_execve      59
#define BF_NR_wait4       61
#define BF_NR_chdir       80
#define BF_NR_fchdir      81
#define BF_NR_creat       85
#define BF_NR_waitid     247
#define BF_NR_openat     257
#define BF_NR_newfstatat 262
#define BF_NR_faccessat  269
#define BF_NR_execveat   322
#define BF_NR_statx      332
#define BF_NR_clone3     435
#define BF_NR_openat2    437
#define BF_NR_faccessat2 439

#endif
