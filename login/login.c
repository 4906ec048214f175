/*
 * pop3d-login: takes its listeners and key material from the master,
 * locks itself into an empty chroot as an unprivileged user and then
 * serves many client connections at once.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/resource.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <tls.h>
#include <unistd.h>

#include "imsg.h"
#include "imsgev.h"
#include "log.h"
#include "login.h"
#include "privdrop.h"
#include "sandbox.h"
#include "proto.h"

struct login_conf	 lconf;
int			 client_ca;
int			 draining;	/* exit with the last connection */

static struct imsgev	 master_iev;
static char		*ca_pem;	/* until tls_setup */
static size_t		 ca_len;
static TAILQ_HEAD(, pki_ctx) pkis = TAILQ_HEAD_INITIALIZER(pkis);
static TAILQ_HEAD(, listener) listeners = TAILQ_HEAD_INITIALIZER(listeners);

/* Key material waits here between its imsg and privdrop. */
struct pki_bytes {
	TAILQ_ENTRY(pki_bytes)	 entry;
	struct pki_ctx		*pki;
	char			*cert;
	size_t			 certlen;
	char			*key;
	size_t			 keylen;
};
static TAILQ_HEAD(, pki_bytes) pki_bytes = TAILQ_HEAD_INITIALIZER(pki_bytes);

static void	 usage(void);
static void	 config_receive(int);
static void	 config_pki(struct imsg *);
static void	 config_listener(struct imsg *);
static void	 tls_setup(void);
static void	 master_dispatch(int, short, void *);
static void	 login_drain(void);
static void	 sig_handler(int, short, void *);
static int	 strfits(const char *, size_t);
static void	 raise_fd_limit(void);

static void
usage(void)
{
	fprintf(stderr, "usage: pop3d-login [-dv]\n");
	exit(1);
}

int
main(int argc, char *argv[])
{
	struct event	 ev_sigterm, ev_sigint, ev_sighup;
	struct listener	*l;
	int		 ch, debug = 0, verbose = 0;

	while ((ch = getopt(argc, argv, "dv")) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	log_init(debug, LOG_MAIL);
	log_setverbose(verbose);
	log_procinit("login");

	if (geteuid() != 0)
		fatalx("must be started as root by pop3d");
	if (fcntl(PROC_FD, F_GETFD) == -1)
		fatalx("no channel to the master; pop3d starts this program");

	/* Before the chroot: libtls may read its configuration. */
	if (tls_init() == -1)
		fatalx("tls_init");

	config_receive(PROC_FD);
	raise_fd_limit();
	privdrop(lconf.chroot, lconf.uid, lconf.gid);
	tls_setup();

	event_init();
	signal(SIGPIPE, SIG_IGN);
	signal_set(&ev_sigterm, SIGTERM, sig_handler, NULL);
	signal_set(&ev_sigint, SIGINT, sig_handler, NULL);
	signal_set(&ev_sighup, SIGHUP, sig_handler, NULL);
	signal_add(&ev_sigterm, NULL);
	signal_add(&ev_sigint, NULL);
	signal_add(&ev_sighup, NULL);

	if (imsgev_init(&master_iev, PROC_FD, NULL, master_dispatch) == -1)
		fatal("imsgev_init");
	imsgev_add(&master_iev);

	TAILQ_FOREACH(l, &listeners, entry) {
		event_set(&l->ev, l->fd, EV_READ | EV_PERSIST, conn_accept, l);
		event_add(&l->ev, NULL);
		evtimer_set(&l->pause, conn_accept_resume, l);
	}
	log_debug("ready, uid %u, root %s", (unsigned)lconf.uid, lconf.chroot);
	sandbox_login();

	event_dispatch();
	return (0);
}

/* Blocking: the master sends the whole configuration at once. */
static void
config_receive(int fd)
{
	struct imsgbuf	 ibuf;
	struct imsg	 imsg;
	ssize_t		 n;
	int		 have_conf = 0;

	if (imsg_init(&ibuf, fd) == -1)
		fatal("imsg_init");
	for (;;) {
		if ((n = imsg_get(&ibuf, &imsg)) == -1)
			fatalx("bad configuration message");
		if (n == 0) {
			if ((n = imsg_read(&ibuf)) == -1) {
				if (errno == EINTR || errno == EAGAIN)
					continue;
				fatal("imsg_read");
			}
			if (n == 0)
				fatalx("master went away during setup");
			continue;
		}
		switch (imsg.hdr.type) {
		case IMSG_LOGIN_CONF:
			if (imsg_datalen(&imsg) != sizeof(lconf))
				fatalx("bad IMSG_LOGIN_CONF size");
			memcpy(&lconf, imsg.data, sizeof(lconf));
			if (!strfits(lconf.chroot, sizeof(lconf.chroot)) ||
			    !strfits(lconf.tls_protocols,
			    sizeof(lconf.tls_protocols)) ||
			    !strfits(lconf.tls_ciphers,
			    sizeof(lconf.tls_ciphers)) ||
			    !strfits(lconf.tls_curves,
			    sizeof(lconf.tls_curves)))
				fatalx("bad IMSG_LOGIN_CONF");
			log_setverbose(lconf.verbose);
			have_conf = 1;
			break;
		case IMSG_LOGIN_CA:
			if (ca_pem != NULL || imsg_datalen(&imsg) == 0)
				fatalx("bad IMSG_LOGIN_CA");
			ca_len = imsg_datalen(&imsg);
			if ((ca_pem = malloc(ca_len)) == NULL)
				fatal("ca");
			memcpy(ca_pem, imsg.data, ca_len);
			break;
		case IMSG_LOGIN_PKI:
			config_pki(&imsg);
			break;
		case IMSG_LOGIN_LISTENER:
			config_listener(&imsg);
			break;
		case IMSG_LOGIN_READY:
			imsg_free(&imsg);
			if (!have_conf || TAILQ_EMPTY(&listeners))
				fatalx("incomplete configuration");
			/* Keep unread messages: none are expected yet. */
			imsg_clear(&ibuf);
			return;
		default:
			fatalx("unexpected imsg %u during setup", imsg.hdr.type);
		}
		imsg_free(&imsg);
	}
}

static void
config_pki(struct imsg *imsg)
{
	struct login_pki	 lp;
	struct pki_bytes	*pb;
	struct pki_ctx		*pki;
	size_t			 len = imsg_datalen(imsg);
	char			*p = imsg->data;

	if (len < sizeof(lp))
		fatalx("bad IMSG_LOGIN_PKI size");
	memcpy(&lp, p, sizeof(lp));
	if (!strfits(lp.name, sizeof(lp.name)) ||
	    len != sizeof(lp) + (size_t)lp.certlen + lp.keylen)
		fatalx("bad IMSG_LOGIN_PKI");
	if ((pki = calloc(1, sizeof(*pki))) == NULL ||
	    (pb = calloc(1, sizeof(*pb))) == NULL ||
	    (pb->cert = malloc(lp.certlen + 1)) == NULL ||
	    (pb->key = malloc(lp.keylen + 1)) == NULL)
		fatal("config_pki");
	strlcpy(pki->name, lp.name, sizeof(pki->name));
	memcpy(pb->cert, p + sizeof(lp), lp.certlen);
	memcpy(pb->key, p + sizeof(lp) + lp.certlen, lp.keylen);
	pb->certlen = lp.certlen;
	pb->keylen = lp.keylen;
	pb->pki = pki;
	explicit_bzero(p + sizeof(lp), lp.certlen + lp.keylen);
	TAILQ_INSERT_TAIL(&pkis, pki, entry);
	TAILQ_INSERT_TAIL(&pki_bytes, pb, entry);
}

static void
config_listener(struct imsg *imsg)
{
	struct login_listener	 ll;
	struct listener		*l;
	struct pki_ctx		*pki;

	if (imsg_datalen(imsg) != sizeof(ll) || imsg->fd == -1)
		fatalx("bad IMSG_LOGIN_LISTENER");
	memcpy(&ll, imsg->data, sizeof(ll));
	if (!strfits(ll.pki, sizeof(ll.pki)) ||
	    !strfits(ll.addr, sizeof(ll.addr)))
		fatalx("bad IMSG_LOGIN_LISTENER strings");
	TAILQ_FOREACH(pki, &pkis, entry)
		if (strcmp(pki->name, ll.pki) == 0)
			break;
	if ((ll.flags & (LISTEN_TLS | LISTEN_STARTTLS)) && pki == NULL)
		fatalx("listener %s: unknown pki %s", ll.addr, ll.pki);
	if ((l = calloc(1, sizeof(*l))) == NULL)
		fatal("config_listener");
	l->id = ll.id;
	l->flags = ll.flags;
	l->fd = imsg->fd;
	l->pki = pki;
	strlcpy(l->addr, ll.addr, sizeof(l->addr));
	if (fcntl(l->fd, F_SETFL, O_NONBLOCK) == -1)
		fatal("fcntl listener");
	TAILQ_INSERT_TAIL(&listeners, l, entry);
}

/* Turn the received key material into libtls server contexts. */
static void
tls_setup(void)
{
	struct pki_bytes	*pb;
	struct tls_config	*cfg;
	uint32_t		 protocols;

	if (tls_config_parse_protocols(&protocols, lconf.tls_protocols) == -1)
		fatalx("tls protocols \"%s\": invalid", lconf.tls_protocols);
	while ((pb = TAILQ_FIRST(&pki_bytes)) != NULL) {
		TAILQ_REMOVE(&pki_bytes, pb, entry);
		if ((cfg = tls_config_new()) == NULL)
			fatal("tls_config_new");
		if (tls_config_set_protocols(cfg, protocols) == -1)
			fatalx("tls protocols: %s", tls_config_error(cfg));
		if (tls_config_set_ciphers(cfg, lconf.tls_ciphers) == -1)
			fatalx("tls ciphers \"%s\": %s", lconf.tls_ciphers,
			    tls_config_error(cfg));
		if (tls_config_set_ecdhecurves(cfg, lconf.tls_curves) == -1)
			fatalx("tls curves \"%s\": %s", lconf.tls_curves,
			    tls_config_error(cfg));
		if (ca_pem != NULL) {
			if (tls_config_set_ca_mem(cfg, (const uint8_t *)ca_pem,
			    ca_len) == -1)
				fatalx("tls client ca: %s",
				    tls_config_error(cfg));
			/* Password logins stay open to clients without one. */
			tls_config_verify_client_optional(cfg);
			client_ca = 1;
		}
		if (tls_config_set_keypair_mem(cfg,
		    (const uint8_t *)pb->cert, pb->certlen,
		    (const uint8_t *)pb->key, pb->keylen) == -1)
			fatalx("pki %s: %s", pb->pki->name,
			    tls_config_error(cfg));
		if ((pb->pki->tls = tls_server()) == NULL)
			fatal("tls_server");
		if (tls_configure(pb->pki->tls, cfg) == -1)
			fatalx("pki %s: %s", pb->pki->name,
			    tls_error(pb->pki->tls));
		tls_config_clear_keys(cfg);
		tls_config_free(cfg);
		freezero(pb->key, pb->keylen + 1);
		free(pb->cert);
		free(pb);
	}
	free(ca_pem);
	ca_pem = NULL;
}

int
master_compose(uint32_t type, int fd, const void *data, size_t len)
{
	return (imsgev_compose(&master_iev, type, 0, 0, fd, data, len));
}

static void
master_dispatch(int fd, short events, void *arg)
{
	struct imsg		 imsg;
	struct auth_result	 ar;
	struct conn		*c;
	ssize_t			 n;

	if (imsgev_io(&master_iev, events) == -1)
		fatalx("master went away");
	for (;;) {
		if ((n = imsg_get(&master_iev.ibuf, &imsg)) == -1)
			fatalx("bad message from the master");
		if (n == 0)
			break;
		switch (imsg.hdr.type) {
		case IMSG_AUTH_RESULT:
			if (imsg_datalen(&imsg) != sizeof(ar))
				fatalx("bad IMSG_AUTH_RESULT size");
			memcpy(&ar, imsg.data, sizeof(ar));
			if ((c = conn_find(ar.conn)) == NULL ||
			    c->state != CONN_AUTHWAIT) {
				/* The client left while we waited. */
				if (imsg.fd != -1)
					close(imsg.fd);
				break;
			}
			authorization_result(c, &ar, imsg.fd);
			break;
		case IMSG_LOGIN_DRAIN:
			login_drain();
			break;
		case IMSG_LOGIN_VERBOSE:
			if (imsg_datalen(&imsg) != sizeof(uint32_t))
				fatalx("bad IMSG_LOGIN_VERBOSE size");
			log_setverbose(*(uint32_t *)imsg.data);
			break;
		default:
			fatalx("unexpected imsg %u", imsg.hdr.type);
		}
		imsg_free(&imsg);
	}
	imsgev_add(&master_iev);
}

/* A reload replaced us: finish the connections we have, take no more. */
static void
login_drain(void)
{
	struct listener	*l;

	TAILQ_FOREACH(l, &listeners, entry) {
		event_del(&l->ev);
		evtimer_del(&l->pause);
		close(l->fd);
		l->fd = -1;
	}
	draining = 1;
	log_debug("draining");
	if (conn_count() == 0)
		exit(0);
}

static void
sig_handler(int sig, short events, void *arg)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		conn_closeall();
		exit(0);
	case SIGHUP:
		/* The master restarts us for a reload; nothing to do. */
		break;
	}
}

/* Each session holds two descriptors here: the client and the relay. */
static void
raise_fd_limit(void)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		fatal("getrlimit");
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		fatal("setrlimit");
}

static int
strfits(const char *s, size_t size)
{
	return (memchr(s, '\0', size) != NULL);
}
