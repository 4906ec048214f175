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
#include <unistd.h>

#include <event.h>

#include "addr.h"
#include "imsg.h"
#include "log.h"
#include "master.h"
#include "pop3d.h"

#define PKI_FILE_MAX		(28 * 1024)	/* cert + key fit one imsg */
#define SHUTDOWN_GRACE		10		/* seconds for children */

struct pop3d_conf	*conf;
struct userdb		*userdb;
int			 debug;
int			 verbose;
const char		*libexec_dir = LIBEXECDIR;
char			*client_ca;
size_t			 client_ca_len;

static int		 stopping;
static struct event	 ev_sigterm, ev_sigint, ev_sighup, ev_sigchld;
static struct event	 ev_grace;

static void	 usage(void);
static void	 check_chroot(const char *);
static void	 load_pki(void);
static char	*read_file(const char *, size_t *);
static void	 bind_listeners(void);
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
	const char	*conffile = POP3D_CONF;
	struct passwd	*pw;
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

	if ((conf = parse_config(conffile)) == NULL)
		exit(1);
	if (noaction) {
		fprintf(stderr, "configuration OK\n");
		exit(0);
	}
	if (geteuid() != 0)
		fatalx("need root privileges");
	if ((pw = getpwnam(conf->user)) == NULL)
		fatalx("unknown user %s", conf->user);
	if (pw->pw_uid == 0)
		fatalx("user %s must not be root", conf->user);
	check_chroot(conf->chroot);
	if ((userdb = users_load(conf->users_file)) == NULL)
		fatalx("cannot load users from %s", conf->users_file);
	load_pki();
	bind_listeners();

	log_init(debug, LOG_MAIL);
	log_procinit("master");
	if (!debug && daemon(0, 0) == -1)
		fatal("daemon");
	log_info("starting, %zu users", users_count(userdb));

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
	login_procs_start(pw->pw_uid, pw->pw_gid);

	event_dispatch();
	log_info("exiting");
	return (0);
}

/*
 * The login processes' root: a directory only root can change, or an
 * attacker in a login process could find something placed there.
 */
static void
check_chroot(const char *dir)
{
	struct stat	 st;

	if (stat(dir, &st) == -1)
		fatal("chroot %s", dir);
	if (!S_ISDIR(st.st_mode))
		fatalx("chroot %s: not a directory", dir);
	if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		fatalx("chroot %s: must be owned by root and not writable "
		    "by others", dir);
}

static void
load_pki(void)
{
	struct pki	*pki;

	TAILQ_FOREACH(pki, &conf->pkis, entry) {
		if ((pki->cert = read_file(pki->cert_file,
		    &pki->certlen)) == NULL)
			fatalx("pki %s: cannot load certificate", pki->name);
		if ((pki->key = read_file(pki->key_file,
		    &pki->keylen)) == NULL)
			fatalx("pki %s: cannot load key", pki->name);
	}
	if (conf->tls_client_ca[0] != '\0' &&
	    (client_ca = read_file(conf->tls_client_ca, &client_ca_len)) ==
	    NULL)
		fatalx("cannot load tls client ca");
}

static char *
read_file(const char *path, size_t *lenp)
{
	struct stat	 st;
	char		*buf;
	ssize_t		 n;
	size_t		 len = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("%s", path);
		return (NULL);
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > PKI_FILE_MAX) {
		log_warnx("%s: not a regular file of at most %d bytes", path,
		    PKI_FILE_MAX);
		close(fd);
		return (NULL);
	}
	if ((buf = calloc(1, st.st_size + 1)) == NULL)
		fatal("read_file");
	while (len < (size_t)st.st_size &&
	    (n = read(fd, buf + len, st.st_size - len)) > 0)
		len += n;
	close(fd);
	if (len != (size_t)st.st_size) {
		log_warnx("%s: short read", path);
		freezero(buf, st.st_size + 1);
		return (NULL);
	}
	*lenp = len;
	return (buf);
}

static void
bind_listeners(void)
{
	struct listener	*l;
	char		 name[POP3D_ADDRLEN];
	int		 on = 1;

	TAILQ_FOREACH(l, &conf->listeners, entry) {
		addr_string((struct sockaddr *)&l->ss, l->sslen, name,
		    sizeof(name));
		if ((l->fd = socket(l->ss.ss_family,
		    SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
			fatal("socket for %s", name);
		if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &on,
		    sizeof(on)) == -1)
			fatal("SO_REUSEADDR");
		if (l->ss.ss_family == AF_INET6 &&
		    setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
		    sizeof(on)) == -1)
			fatal("IPV6_V6ONLY");
		if (bind(l->fd, (struct sockaddr *)&l->ss, l->sslen) == -1)
			fatal("bind %s", name);
		if (listen(l->fd, SOMAXCONN) == -1)
			fatal("listen %s", name);
		log_debug("listening on %s", name);
	}
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
		log_warnx("SIGHUP: reload is not supported yet; restart "
		    "pop3d to apply a new configuration");
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
	struct listener	*l;

	if (stopping)
		return;
	stopping = 1;
	log_info("shutting down");
	TAILQ_FOREACH(l, &conf->listeners, entry) {
		close(l->fd);
		l->fd = -1;
	}
	login_procs_stop();
	sessions_stop();
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
