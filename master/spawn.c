/*
 * fork+exec of a helper program with an imsg channel on PROC_FD.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "pop3d.h"

extern const char	*libexec_dir;

/*
 * Returns the child's pid and in *fd the master's end of the channel,
 * or -1.  Every other descriptor of the master is close-on-exec, so the
 * child starts with stdio and its channel only.
 */
pid_t
spawn_helper(const char *prog, int *fd)
{
	char	 path[PATH_MAX];
	char	*argv[5];
	int	 sp[2], argc = 0;
	pid_t	 pid;

	if (snprintf(path, sizeof(path), "%s/%s", libexec_dir, prog) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	argv[argc++] = (char *)prog;
	if (debug)
		argv[argc++] = "-d";
	if (verbose)
		argv[argc++] = "-v";
	argv[argc] = NULL;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1)
		return (-1);
	switch (pid = fork()) {
	case -1:
		close(sp[0]);
		close(sp[1]);
		return (-1);
	case 0:
		/* Only async-signal-safe calls: the master has threads. */
		if (sp[1] == PROC_FD) {
			if (fcntl(PROC_FD, F_SETFD, 0) == -1)
				_exit(1);
		} else if (dup2(sp[1], PROC_FD) == -1)
			_exit(1);
		execv(path, argv);
		_exit(127);
	}
	close(sp[1]);
	if (fcntl(sp[0], F_SETFL, O_NONBLOCK) == -1)
		fatal("fcntl");
	*fd = sp[0];
	return (pid);
}
