/*
 * System call sandboxes of the login and mailbox processes.
 */

#include <sys/types.h>

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"

#ifdef __OpenBSD__

void
sandbox_master(void)
{
	/*
	 * Configuration and keys on reload, listeners, children, the
	 * control socket, passwords (getpw, the shadow database).
	 */
	if (pledge("stdio rpath wpath cpath inet unix dns getpw proc exec "
	    "id sendfd recvfd", NULL) == -1)
		fatal("pledge");
}

void
sandbox_login(void)
{
	/* Accept on the listeners, take socketpairs from the master. */
	if (pledge("stdio inet recvfd", NULL) == -1)
		fatal("pledge");
}

void
sandbox_mailbox(void)
{
	/* Inside the chroot: the maildrop, its index and its locks. */
	if (pledge("stdio rpath wpath cpath flock fattr", NULL) == -1)
		fatal("pledge");
}

#elif defined(__linux__)

#include <sys/prctl.h>
#include <sys/syscall.h>

#include <sched.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#if defined(__x86_64__)
#define SECCOMP_ARCH	AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH	AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define SECCOMP_ARCH	AUDIT_ARCH_I386
#endif

#define SC_LOAD(field)	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, \
			    offsetof(struct seccomp_data, field))
#define SC_ALLOW(name)	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_##name, 0, 1), \
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define SC_REFUSE(name)	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_##name, 0, 1), \
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES)
#define SC_NOTTY	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 1), \
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOTTY)
#define SC_HEAD		SC_LOAD(arch), \
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0), \
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS), \
			SC_LOAD(nr)
#define SC_TAIL		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS)

/* The low half of clone(2)'s flags, where CLONE_THREAD is. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SC_ARG0_LO	offsetof(struct seccomp_data, args[0])
#else
#define SC_ARG0_LO	(offsetof(struct seccomp_data, args[0]) + 4)
#endif

/*
 * Threads, never processes: clone(2) only with CLONE_THREAD.  The flags
 * of clone3(2) sit in memory a filter cannot read, so it is "missing",
 * and the C library falls back to clone(2).  The last of the filter: the
 * flags replace the system call number it tests.
 */
#define SC_THREADS_TAIL \
	SC_ALLOW(set_robust_list), SC_ALLOW(rseq), \
	SC_ALLOW(sched_getaffinity),	/* pthread_getattr_np(3) */ \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1), \
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS), \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3), \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SC_ARG0_LO), \
	BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1), \
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW), \
	SC_TAIL

/*
 * What every process of ours does: memory, time, signals, the log.
 * No ioctl(2): isatty(3) and the like learn there is no terminal.
 */
#define SC_COMMON \
	SC_NOTTY, \
	SC_ALLOW(read), SC_ALLOW(write), SC_ALLOW(readv), SC_ALLOW(writev), \
	SC_ALLOW(close), SC_ALLOW(fcntl), SC_ALLOW(sendmsg), \
	SC_ALLOW(recvmsg), SC_ALLOW(sendto), SC_ALLOW(brk), SC_ALLOW(mmap), \
	SC_ALLOW(munmap), SC_ALLOW(mremap), SC_ALLOW(madvise), \
	SC_ALLOW(mprotect), SC_ALLOW(futex), SC_ALLOW(getpid), \
	SC_ALLOW(gettid), SC_ALLOW(getuid), SC_ALLOW(geteuid), \
	SC_ALLOW(getgid), SC_ALLOW(getegid), SC_ALLOW(getrandom), \
	SC_ALLOW(clock_gettime), SC_ALLOW(gettimeofday), \
	SC_ALLOW(clock_nanosleep), SC_ALLOW(nanosleep), \
	SC_ALLOW(rt_sigaction), SC_ALLOW(rt_sigprocmask), \
	SC_ALLOW(rt_sigreturn), SC_ALLOW(restart_syscall), \
	SC_ALLOW(exit), SC_ALLOW(exit_group), SC_ALLOW(fstat), \
	SC_ALLOW(newfstatat), SC_ALLOW(lseek), SC_ALLOW(ppoll), \
	SC_ALLOW(pselect6), SC_ALLOW(sigaltstack), \
	SC_ALLOW(sysinfo)	/* qsort(3) asks it */

static const struct sock_filter login_filter[] = {
	SC_HEAD,
	SC_COMMON,
	SC_ALLOW(accept4),
	SC_ALLOW(shutdown),
	SC_ALLOW(getsockopt),
	SC_ALLOW(setsockopt),
	SC_ALLOW(recvfrom),
	SC_ALLOW(epoll_ctl),
	SC_ALLOW(epoll_pwait),
#ifdef __NR_epoll_wait
	SC_ALLOW(epoll_wait),
#endif
#ifdef __NR_poll
	SC_ALLOW(poll),
#endif
	/* No file, no new socket: the chroot is empty anyway. */
	SC_REFUSE(openat),
#ifdef __NR_open
	SC_REFUSE(open),
#endif
	SC_REFUSE(socket),
	SC_REFUSE(connect),
	SC_TAIL
};

static const struct sock_filter mailbox_filter[] = {
	SC_HEAD,
	SC_COMMON,
	SC_ALLOW(openat),
	SC_ALLOW(pread64),
	SC_ALLOW(pwrite64),
	SC_ALLOW(getdents64),
	SC_ALLOW(mkdirat),
	SC_ALLOW(unlinkat),
	SC_ALLOW(renameat),
#ifdef __NR_renameat2
	SC_ALLOW(renameat2),
#endif
	SC_ALLOW(linkat),
	SC_ALLOW(ftruncate),
	SC_ALLOW(fsync),
	SC_ALLOW(fdatasync),
	SC_ALLOW(flock),
	SC_ALLOW(fchmod),
	SC_ALLOW(fchown),
	SC_ALLOW(utimensat),
	SC_ALLOW(faccessat),
#ifdef __NR_faccessat2
	SC_ALLOW(faccessat2),
#endif
	SC_ALLOW(readlinkat),
	SC_ALLOW(getcwd),
	SC_ALLOW(statx),
	SC_ALLOW(shutdown),
	SC_ALLOW(wait4),	/* the mbox lock keeper */
#ifdef __NR_open
	SC_ALLOW(open),
	SC_ALLOW(stat),
	SC_ALLOW(lstat),
	SC_ALLOW(access),
	SC_ALLOW(mkdir),
	SC_ALLOW(unlink),
	SC_ALLOW(rename),
	SC_ALLOW(link),
	SC_ALLOW(readlink),
	SC_ALLOW(poll),
#endif
	SC_REFUSE(socket),
	SC_REFUSE(connect),
	SC_THREADS_TAIL		/* measure.c */
};

/*
 * The master's children inherit its filter until they install their
 * own, so it also allows what they do before that: exec, the dynamic
 * loader, the privilege drop, TLS and SQLite set-up, the mbox lock
 * keeper.  Left out is what none of them needs: ptrace, mount, module
 * loading, namespaces, bpf, kexec, reboot, clock setting and the like.
 */
static const struct sock_filter master_filter[] = {
	SC_HEAD,
	SC_COMMON,
	/* Processes and the privilege drop of the children. */
	SC_ALLOW(execve), SC_ALLOW(clone), SC_ALLOW(clone3),
	SC_ALLOW(wait4), SC_ALLOW(waitid), SC_ALLOW(kill),
	SC_ALLOW(set_tid_address), SC_ALLOW(set_robust_list),
	SC_ALLOW(rseq), SC_ALLOW(arch_prctl), SC_ALLOW(prctl),
	SC_ALLOW(seccomp), SC_ALLOW(prlimit64), SC_ALLOW(getrlimit),
	SC_ALLOW(setrlimit), SC_ALLOW(chroot), SC_ALLOW(chdir),
	SC_ALLOW(fchdir), SC_ALLOW(setuid), SC_ALLOW(setgid),
	SC_ALLOW(setresuid), SC_ALLOW(setresgid), SC_ALLOW(setgroups),
	SC_ALLOW(getresuid), SC_ALLOW(getresgid), SC_ALLOW(getgroups),
	SC_ALLOW(umask), SC_ALLOW(sched_getaffinity), SC_ALLOW(sched_yield),
	SC_ALLOW(uname),
	/* Sockets: listeners, socketpairs, the control socket, syslog. */
	SC_ALLOW(socket), SC_ALLOW(socketpair), SC_ALLOW(bind),
	SC_ALLOW(listen), SC_ALLOW(connect), SC_ALLOW(accept4),
	SC_ALLOW(setsockopt), SC_ALLOW(getsockopt), SC_ALLOW(getsockname),
	SC_ALLOW(getpeername), SC_ALLOW(shutdown), SC_ALLOW(recvfrom),
	SC_ALLOW(epoll_create1), SC_ALLOW(epoll_ctl), SC_ALLOW(epoll_pwait),
	SC_ALLOW(pipe2), SC_ALLOW(dup), SC_ALLOW(dup3), SC_ALLOW(close_range),
	/* Files: configuration, keys, users, maildrops, locks, index. */
	SC_ALLOW(openat), SC_ALLOW(pread64), SC_ALLOW(pwrite64),
	SC_ALLOW(getdents64), SC_ALLOW(mkdirat), SC_ALLOW(unlinkat),
	SC_ALLOW(renameat), SC_ALLOW(linkat), SC_ALLOW(ftruncate),
	SC_ALLOW(fsync), SC_ALLOW(fdatasync), SC_ALLOW(flock),
	SC_ALLOW(fchmod), SC_ALLOW(fchmodat), SC_ALLOW(fchown),
	SC_ALLOW(fchownat), SC_ALLOW(utimensat), SC_ALLOW(faccessat),
	SC_ALLOW(readlinkat), SC_ALLOW(getcwd), SC_ALLOW(statx),
#ifdef __NR_renameat2
	SC_ALLOW(renameat2),
#endif
#ifdef __NR_faccessat2
	SC_ALLOW(faccessat2),
#endif
#ifdef __NR_epoll_wait
	SC_ALLOW(epoll_wait),
#endif
#ifdef __NR_open
	SC_ALLOW(open), SC_ALLOW(stat), SC_ALLOW(lstat), SC_ALLOW(access),
	SC_ALLOW(mkdir), SC_ALLOW(unlink), SC_ALLOW(rename), SC_ALLOW(link),
	SC_ALLOW(readlink), SC_ALLOW(chmod), SC_ALLOW(poll), SC_ALLOW(dup2),
	SC_ALLOW(pipe), SC_ALLOW(fork), SC_ALLOW(vfork),
#endif
	SC_TAIL
};

static void
sandbox_install(const struct sock_filter *filter, size_t len)
{
	struct sock_fprog	 prog;

	prog.len = len;
	prog.filter = (struct sock_filter *)filter;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("PR_SET_NO_NEW_PRIVS");
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == -1)
		fatal("PR_SET_SECCOMP");
}

void
sandbox_master(void)
{
	sandbox_install(master_filter,
	    sizeof(master_filter) / sizeof(master_filter[0]));
}

void
sandbox_login(void)
{
	sandbox_install(login_filter,
	    sizeof(login_filter) / sizeof(login_filter[0]));
}

void
sandbox_mailbox(void)
{
	sandbox_install(mailbox_filter,
	    sizeof(mailbox_filter) / sizeof(mailbox_filter[0]));
}

#else

void
sandbox_master(void)
{
	log_warnx("no system call sandbox on this system");
}

void
sandbox_login(void)
{
	log_warnx("no system call sandbox on this system");
}

void
sandbox_mailbox(void)
{
	log_warnx("no system call sandbox on this system");
}

#endif
