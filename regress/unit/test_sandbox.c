/*
 * The system call sandboxes hold: a forbidden call ends the process,
 * opening a file or a socket fails, and the ordinary work goes on; the
 * mailbox process may start threads, never processes.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"

static int	 failed;

static void
check(const char *name, int ok)
{
	printf("%s: %s\n", ok ? "PASS" : "FAIL", name);
	if (!ok)
		failed = 1;
}

/* Run fn in a child under the sandbox; its wait(2) status. */
static int
in_child(void (*sandbox)(void), int (*fn)(void))
{
	pid_t	 pid;
	int	 status;

	fflush(stdout);
	if ((pid = fork()) == -1)
		return (-1);
	if (pid == 0) {
		sandbox();
		_exit(fn());
	}
	if (waitpid(pid, &status, 0) == -1)
		return (-1);
	return (status);
}

static int
do_exec(void)
{
	char	*argv[] = { "true", NULL };

	execv("/bin/true", argv);
	return (0);
}

static int
do_fork(void)
{
	return (fork() == -1 ? 0 : 3);
}

static int
do_open(void)
{
	return (open("/etc/passwd", O_RDONLY) == -1 && errno == EACCES ?
	    0 : 1);
}

static int
do_socket(void)
{
	return (socket(AF_INET, SOCK_STREAM, 0) == -1 && errno == EACCES ?
	    0 : 1);
}

static int
do_work(void)
{
	char	*p;

	/* Memory and writes stay allowed. */
	if ((p = malloc(1 << 20)) == NULL)
		return (1);
	memset(p, 1, 1 << 20);
	free(p);
	return (write(STDOUT_FILENO, "", 0) == 0 ? 0 : 1);
}

static void *
thread_work(void *arg)
{
	return (arg);
}

static int
do_thread(void)
{
	pthread_t	 t;
	void		*ret;
	int		 x;

	if (pthread_create(&t, NULL, thread_work, &x) != 0 ||
	    pthread_join(t, &ret) != 0)
		return (1);
	return (ret == &x ? 0 : 1);
}

static int
killed(int status)
{
	return (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS);
}

int
main(void)
{
	log_init(1, 0);

	check("login: execve kills", killed(in_child(sandbox_login,
	    do_exec)));
	check("login: fork kills", killed(in_child(sandbox_login,
	    do_fork)));
	check("login: open fails with EACCES", in_child(sandbox_login,
	    do_open) == 0);
	check("login: socket fails with EACCES", in_child(sandbox_login,
	    do_socket) == 0);
	check("login: ordinary work goes on", in_child(sandbox_login,
	    do_work) == 0);
	check("login: a thread kills", killed(in_child(sandbox_login,
	    do_thread)));
	check("mailbox: execve kills", killed(in_child(sandbox_mailbox,
	    do_exec)));
	check("mailbox: fork kills", killed(in_child(sandbox_mailbox,
	    do_fork)));
	check("mailbox: socket fails with EACCES", in_child(sandbox_mailbox,
	    do_socket) == 0);
	check("mailbox: ordinary work goes on", in_child(sandbox_mailbox,
	    do_work) == 0);
	check("mailbox: a thread starts and ends", in_child(sandbox_mailbox,
	    do_thread) == 0);
	return (failed);
}
