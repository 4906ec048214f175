/*
 * The pool of login processes: start them with their configuration,
 * take their credentials, answer them, and restart one that dies.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
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
	pid_t			 pid;		/* 0 when not running */
	int			 slot;
	time_t			 started;
	int			 early_deaths;
	struct imsgev		 iev;
	int			 connected;	/* iev is open */
	struct event		 restart;
};

static struct login_proc	*procs;
static int			 nprocs;
static int			 stopping;
static uid_t			 login_uid;
static gid_t			 login_gid;

static void	 login_spawn(struct login_proc *);
static void	 login_configure(struct login_proc *);
static void	 login_dispatch(int, short, void *);
static void	 login_drop(struct login_proc *, const char *);
static void	 login_restart(int, short, void *);

void
login_procs_start(uid_t uid, gid_t gid)
{
	int	 i;

	login_uid = uid;
	login_gid = gid;
	nprocs = conf->login_procs;
	if ((procs = calloc(nprocs, sizeof(*procs))) == NULL)
		fatal("login_procs_start");
	for (i = 0; i < nprocs; i++) {
		procs[i].slot = i;
		evtimer_set(&procs[i].restart, login_restart, &procs[i]);
		login_spawn(&procs[i]);
	}
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
	log_debug("login process %d started in slot %d", p->pid, p->slot);
}

static void
login_restart(int fd, short events, void *arg)
{
	if (!stopping)
		login_spawn(arg);
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
		/* The imsg layer closes what it sends; keep ours. */
		if ((fd = dup(l->fd)) == -1)
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
			auth_submit(p->slot, p->pid, &req);
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
	imsgev_add(&p->iev);
}

/* A login process misbehaved or left: cut it off; SIGCHLD restarts it. */
static void
login_drop(struct login_proc *p, const char *why)
{
	if (!stopping)
		log_warnx("login process %d: %s", p->pid, why);
	if (p->connected) {
		imsgev_close(&p->iev);
		p->connected = 0;
	}
	if (p->pid > 0)
		kill(p->pid, SIGTERM);
}

void
login_reply(int slot, pid_t pid, uint32_t conn, enum auth_status status,
    uint32_t delay_ms, int fd)
{
	struct auth_result	 ar;
	struct login_proc	*p;

	if (slot < 0 || slot >= nprocs || procs[slot].pid != pid ||
	    !procs[slot].connected) {
		/* That login process, and the client with it, is gone. */
		if (fd != -1)
			close(fd);
		return;
	}
	p = &procs[slot];
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
	struct timeval	 tv = { RESTART_DELAY, 0 };
	int		 i;

	for (i = 0; i < nprocs; i++) {
		if (procs[i].pid != pid)
			continue;
		if (!stopping) {
			if (WIFSIGNALED(status))
				log_warnx("login process %d died of signal %d",
				    pid, WTERMSIG(status));
			else
				log_warnx("login process %d exited with %d",
				    pid, WEXITSTATUS(status));
		}
		if (procs[i].connected) {
			imsgev_close(&procs[i].iev);
			procs[i].connected = 0;
		}
		procs[i].pid = 0;
		/* A set-up that keeps failing (bad TLS settings) won't heal. */
		if (time(NULL) - procs[i].started < EARLY_DEATH &&
		    !WIFSIGNALED(status)) {
			if (++procs[i].early_deaths >= EARLY_DEATHS_MAX &&
			    !stopping)
				fatalx("login processes fail during set-up; "
				    "see the messages above");
		} else
			procs[i].early_deaths = 0;
		if (!stopping)
			evtimer_add(&procs[i].restart, &tv);
		return (1);
	}
	return (0);
}

void
login_procs_stop(void)
{
	int	 i;

	stopping = 1;
	for (i = 0; i < nprocs; i++) {
		evtimer_del(&procs[i].restart);
		if (procs[i].pid > 0)
			kill(procs[i].pid, SIGTERM);
	}
}

int
login_procs_running(void)
{
	int	 i, n = 0;

	for (i = 0; i < nprocs; i++)
		if (procs[i].pid > 0)
			n++;
	return (n);
}
