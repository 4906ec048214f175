/*
 * pop3d: the master process.  It reads the configuration, binds the
 * listeners, loads key material, checks passwords and supervises the
 * login and mailbox processes.  It never reads a byte from a client.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event.h>

#include "addr.h"
#include "imsg.h"
#include "log.h"
#include "master.h"
#include "pop3d.h"
#include "sandbox.h"

#define PKI_FILE_MAX		(28 * 1024)	/* cert + key fit one imsg */
#define SHUTDOWN_GRACE		10		/* seconds for children */

int			 debug;
int			 verbose;
const char		*libexec_dir = LIBEXECDIR;
const char		*conffile = POP3D_CONF;
struct ctl_stats	 stats;

static int		 stopping;
static struct event	 ev_sigterm, ev_sigint, ev_sighup, ev_sigchld;
static struct event	 ev_grace;

static void	 usage(void);
static void	 sig_handler(int, short, void *);
static void	 reap_children(void);
static void	 shutdown_start(void);
static void	 shutdown_check(void);
static void	 shutdown_grace(int, short, void *);

static void
usage(void)
{
	extern char	*__progname;

	fprintf(stderr, "usage: %s [-dnv] [-D macro=value] [-f file] "
	    "[-x libexecdir]\n", __progname);
	exit(1);
}

int
main(int argc, char *argv[])
{
	int		 ch, noaction = 0;

	log_init(1, LOG_MAIL);	/* stderr until we know better */
	while ((ch = getopt(argc, argv, "dD:f:nvx:")) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'D':
			if (cmdline_symset(optarg) < 0)
				fatalx("could not parse macro definition %s",
				    optarg);
			break;
		case 'f':
			conffile = optarg;
			break;
		case 'n':
			noaction = 1;
			break;
		case 'v':
			verbose++;
			break;
		case 'x':
			libexec_dir = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	if (argc != 0)
		usage();
	log_setverbose(verbose);

	if (noaction) {
		if ((conf = parse_config(conffile)) == NULL)
			exit(1);
		fprintf(stderr, "configuration OK\n");
		exit(0);
	}
	if (geteuid() != 0)
		fatalx("need root privileges");
	if (config_init(conffile) == -1)
		exit(1);

	log_init(debug, LOG_MAIL);
	log_procinit("master");
	if (!debug && daemon(0, 0) == -1)
		fatal("daemon");
	stats.started = time(NULL);
	log_info("starting");

	event_init();
	signal(SIGPIPE, SIG_IGN);
	signal_set(&ev_sigterm, SIGTERM, sig_handler, NULL);
	signal_set(&ev_sigint, SIGINT, sig_handler, NULL);
	signal_set(&ev_sighup, SIGHUP, sig_handler, NULL);
	signal_set(&ev_sigchld, SIGCHLD, sig_handler, NULL);
	signal_add(&ev_sigterm, NULL);
	signal_add(&ev_sigint, NULL);
	signal_add(&ev_sighup, NULL);
	signal_add(&ev_sigchld, NULL);

	auth_init();
	auth_cache_init();
	control_init();
	sandbox_master();
	login_procs_start(conf->login_uid, conf->login_gid);

	event_dispatch();
	log_info("exiting");
	return (0);
}

static void
sig_handler(int sig, short events, void *arg)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		shutdown_start();
		break;
	case SIGHUP:
		log_info("SIGHUP: reloading %s", conffile);
		config_reload();
		break;
	case SIGCHLD:
		reap_children();
		break;
	}
}

static void
reap_children(void)
{
	pid_t	 pid;
	int	 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (!login_procs_reaped(pid, status) &&
		    !session_reaped(pid, status))
			log_warnx("reaped unknown child %d", pid);
	}
	if (stopping)
		shutdown_check();
}

/* Stop accepting, let the children finish, then leave. */
static void
shutdown_start(void)
{
	struct timeval	 tv = { SHUTDOWN_GRACE, 0 };

	if (stopping)
		return;
	stopping = 1;
	log_info("shutting down");
	config_close_listeners();
	login_procs_stop();
	sessions_stop();
	control_close();
	evtimer_set(&ev_grace, shutdown_grace, NULL);
	evtimer_add(&ev_grace, &tv);
	shutdown_check();
}

static void
shutdown_check(void)
{
	if (login_procs_running() == 0 && sessions_count() == 0)
		event_loopexit(NULL);
}

static void
shutdown_grace(int fd, short events, void *arg)
{
	log_warnx("children still running after %d seconds; leaving them",
	    SHUTDOWN_GRACE);
	event_loopexit(NULL);
}
