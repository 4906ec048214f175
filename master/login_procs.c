/*
 * The pool of login processes: start them with their configuration,
 * take their credentials, answer them, and restart one that dies.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "imsgev.h"
#include "log.h"
#include "master.h"
#include "pop3d.h"

#define RESTART_DELAY		1	/* seconds, against a crash loop */
#define EARLY_DEATH		2	/* seconds: died during set-up */
#define EARLY_DEATHS_MAX	3	/* in a row, then give up */

struct login_proc {
	TAILQ_ENTRY(login_proc)	 entry;
	pid_t			 pid;		/* 0 when not running */
	time_t			 started;
	int			 early_deaths;
	int			 draining;	/* of an older configuration */
	struct imsgev		 iev;
	int			 connected;	/* iev is open */
	struct event		 restart;
};

static TAILQ_HEAD(, login_proc)	 procs = TAILQ_HEAD_INITIALIZER(procs);
static int			 stopping;
static uid_t			 login_uid;
static gid_t			 login_gid;

static void	 login_spawn(struct login_proc *);
static void	 login_configure(struct login_proc *);
static void	 login_dispatch(int, short, void *);
static void	 login_drop(struct login_proc *, const char *);
static void	 login_restart(int, short, void *);
static struct login_proc *login_find(pid_t);

/* A pool for the current configuration. */
void
login_procs_start(uid_t uid, gid_t gid)
{
	struct login_proc	*p;
	int			 i;

	login_uid = uid;
	login_gid = gid;
	for (i = 0; i < conf->login_procs; i++) {
		if ((p = calloc(1, sizeof(*p))) == NULL)
			fatal("login_procs_start");
		evtimer_set(&p->restart, login_restart, p);
		TAILQ_INSERT_TAIL(&procs, p, entry);
		login_spawn(p);
	}
}

/*
 * After a reload: the running processes stop accepting and leave once
 * their connections are done; a new pool serves the new configuration.
 */
void
login_procs_reload(uid_t uid, gid_t gid)
{
	struct login_proc	*p;

	TAILQ_FOREACH(p, &procs, entry) {
		if (p->draining)
			continue;
		p->draining = 1;
		evtimer_del(&p->restart);
		if (p->connected)
			imsgev_compose(&p->iev, IMSG_LOGIN_DRAIN, 0, 0, -1,
			    NULL, 0);
	}
	login_procs_start(uid, gid);
}

static struct login_proc *
login_find(pid_t pid)
{
	struct login_proc	*p;

	TAILQ_FOREACH(p, &procs, entry)
		if (p->pid == pid && pid > 0)
			return (p);
	return (NULL);
}

static void
login_spawn(struct login_proc *p)
{
	struct timeval	 tv = { RESTART_DELAY, 0 };
	int		 fd;

	if ((p->pid = spawn_helper(LOGIN_PROG, &fd)) == -1) {
		log_warn("spawn %s", LOGIN_PROG);
		p->pid = 0;
		evtimer_add(&p->restart, &tv);
		return;
	}
	if (imsgev_init(&p->iev, fd, p, login_dispatch) == -1)
		fatal("imsgev_init");
	p->connected = 1;
	p->started = time(NULL);
	login_configure(p);
	log_debug("login process %d started", p->pid);
}

static void
login_restart(int fd, short events, void *arg)
{
	if (!stopping)
		login_spawn(arg);
}

/* Verbosity for the running processes; new ones get it at start. */
void
login_procs_verbose(int v)
{
	struct login_proc	*p;
	uint32_t		 verb = v;

	TAILQ_FOREACH(p, &procs, entry)
		if (p->connected)
			imsgev_compose(&p->iev, IMSG_LOGIN_VERBOSE, 0, 0, -1,
			    &verb, sizeof(verb));
}

/* Everything a login process needs, sent before it drops root. */
static void
login_configure(struct login_proc *p)
{
	struct login_conf	 lc;
	struct login_pki	 lp;
	struct login_listener	 ll;
	struct listener		*l;
	struct pki		*pki;
	char			*buf;
	size_t			 len;
	int			 fd;

	memset(&lc, 0, sizeof(lc));
	lc.uid = login_uid;
	lc.gid = login_gid;
	lc.verbose = verbose;
	lc.timeout = conf->login_timeout;
	lc.cleartext_auth = conf->cleartext_auth;
	lc.show_implementation = conf->show_implementation;
	lc.max_auth_failures = conf->max_auth_failures;
	/* Sessions count in the master; this bounds descriptors here. */
	lc.max_conns = conf->max_sessions + conf->max_sessions_per_ip;
	lc.max_conns_per_ip = conf->max_sessions_per_ip;
	strlcpy(lc.chroot, conf->chroot, sizeof(lc.chroot));
	strlcpy(lc.tls_protocols, conf->tls_protocols,
	    sizeof(lc.tls_protocols));
	strlcpy(lc.tls_ciphers, conf->tls_ciphers, sizeof(lc.tls_ciphers));
	strlcpy(lc.tls_curves, conf->tls_curves, sizeof(lc.tls_curves));
	imsgev_compose(&p->iev, IMSG_LOGIN_CONF, 0, 0, -1, &lc, sizeof(lc));
	if (client_ca != NULL && imsgev_compose(&p->iev, IMSG_LOGIN_CA, 0, 0,
	    -1, client_ca, client_ca_len) == -1)
		fatal("tls client ca: too large to pass on");

	TAILQ_FOREACH(pki, &conf->pkis, entry) {
		memset(&lp, 0, sizeof(lp));
		strlcpy(lp.name, pki->name, sizeof(lp.name));
		lp.certlen = pki->certlen;
		lp.keylen = pki->keylen;
		len = sizeof(lp) + pki->certlen + pki->keylen;
		if ((buf = malloc(len)) == NULL)
			fatal("login_configure");
		memcpy(buf, &lp, sizeof(lp));
		memcpy(buf + sizeof(lp), pki->cert, pki->certlen);
		memcpy(buf + sizeof(lp) + pki->certlen, pki->key, pki->keylen);
		if (imsgev_compose(&p->iev, IMSG_LOGIN_PKI, 0, 0, -1, buf,
		    len) == -1)
			fatal("pki %s: too large to pass on", pki->name);
		freezero(buf, len);
	}

	TAILQ_FOREACH(l, &conf->listeners, entry) {
		memset(&ll, 0, sizeof(ll));
		ll.flags = l->flags;
		strlcpy(ll.pki, l->pki, sizeof(ll.pki));
		addr_string((struct sockaddr *)&l->ss, l->sslen, ll.addr,
		    sizeof(ll.addr));
		/*
		 * The imsg layer closes what it sends; keep ours.  Close on
		 * exec: the next login process must not inherit this copy.
		 */
		if ((fd = fcntl(l->fd, F_DUPFD_CLOEXEC, 0)) == -1)
			fatal("dup");
		imsgev_compose(&p->iev, IMSG_LOGIN_LISTENER, 0, 0, fd, &ll,
		    sizeof(ll));
	}
	imsgev_compose(&p->iev, IMSG_LOGIN_READY, 0, 0, -1, NULL, 0);
}

static void
login_dispatch(int fd, short events, void *arg)
{
	struct login_proc	*p = arg;
	struct auth_request	 req;
	struct imsg		 imsg;
	ssize_t			 n;

	if (imsgev_io(&p->iev, events) == -1) {
		login_drop(p, "channel closed");
		return;
	}
	for (;;) {
		if ((n = imsg_get(&p->iev.ibuf, &imsg)) == -1) {
			login_drop(p, "malformed message");
			return;
		}
		if (n == 0)
			break;
		if (imsg.fd != -1) {
			/* A login process never sends descriptors. */
			close(imsg.fd);
			imsg_free(&imsg);
			login_drop(p, "unexpected descriptor");
			return;
		}
		switch (imsg.hdr.type) {
		case IMSG_AUTH_REQUEST:
			if (imsg_datalen(&imsg) != sizeof(req)) {
				imsg_free(&imsg);
				login_drop(p, "bad IMSG_AUTH_REQUEST size");
				return;
			}
			memcpy(&req, imsg.data, sizeof(req));
			explicit_bzero(imsg.data, sizeof(req));
			imsg_free(&imsg);
			auth_submit(p->pid, &req);
			explicit_bzero(&req, sizeof(req));
			break;
		default:
			log_warnx("login process %d: unexpected imsg %u",
			    p->pid, imsg.hdr.type);
			imsg_free(&imsg);
			login_drop(p, "unexpected message");
			return;
		}
	}
	/* Descriptors no message claimed: a login process sends none. */
	if (!TAILQ_EMPTY(&p->iev.ibuf.fds)) {
		login_drop(p, "unexpected descriptor");
		return;
	}
	imsgev_add(&p->iev);
}

/* A login process misbehaved or left: cut it off; SIGCHLD restarts it. */
static void
login_drop(struct login_proc *p, const char *why)
{
	if (!stopping && !p->draining)
		log_warnx("login process %d: %s", p->pid, why);
	if (p->connected) {
		imsgev_close(&p->iev);
		p->connected = 0;
	}
	if (p->pid > 0)
		kill(p->pid, SIGTERM);
}

void
login_reply(pid_t pid, uint32_t conn, enum auth_status status,
    uint32_t delay_ms, int fd)
{
	struct auth_result	 ar;
	struct login_proc	*p;

	if ((p = login_find(pid)) == NULL || !p->connected) {
		/* That login process, and the client with it, is gone. */
		if (fd != -1)
			close(fd);
		return;
	}
	memset(&ar, 0, sizeof(ar));
	ar.conn = conn;
	ar.status = status;
	ar.delay_ms = delay_ms;
	if (imsgev_compose(&p->iev, IMSG_AUTH_RESULT, 0, 0, fd, &ar,
	    sizeof(ar)) == -1) {
		log_warn("login_reply");
		if (fd != -1)
			close(fd);
	}
}

/* 1 if pid was one of ours. */
int
login_procs_reaped(pid_t pid, int status)
{
	struct timeval		 tv = { RESTART_DELAY, 0 };
	struct login_proc	*p;

	if ((p = login_find(pid)) == NULL)
		return (0);
	if (p->connected) {
		imsgev_close(&p->iev);
		p->connected = 0;
	}
	p->pid = 0;
	if (p->draining) {
		log_debug("login process %d of the old configuration done",
		    pid);
		TAILQ_REMOVE(&procs, p, entry);
		free(p);
		return (1);
	}
	if (!stopping) {
		if (WIFSIGNALED(status))
			log_warnx("login process %d died of signal %d", pid,
			    WTERMSIG(status));
		else
			log_warnx("login process %d exited with %d", pid,
			    WEXITSTATUS(status));
	}
	/* A set-up that keeps failing (bad TLS settings) won't heal. */
	if (time(NULL) - p->started < EARLY_DEATH && !WIFSIGNALED(status)) {
		if (++p->early_deaths >= EARLY_DEATHS_MAX && !stopping)
			fatalx("login processes fail during set-up; see the "
			    "messages above");
	} else
		p->early_deaths = 0;
	if (!stopping)
		evtimer_add(&p->restart, &tv);
	return (1);
}

void
login_procs_stop(void)
{
	struct login_proc	*p;

	stopping = 1;
	TAILQ_FOREACH(p, &procs, entry) {
		evtimer_del(&p->restart);
		if (p->pid > 0)
			kill(p->pid, SIGTERM);
	}
}

int
login_procs_running(void)
{
	struct login_proc	*p;
	int			 n = 0;

	TAILQ_FOREACH(p, &procs, entry)
		if (p->pid > 0)
			n++;
	return (n);
}
