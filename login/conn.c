/*
 * Client connections of the login process: accept, TLS handshake,
 * non-blocking reads and writes through libtls, and teardown.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "login.h"

#define ACCEPT_BATCH		32

static TAILQ_HEAD(, conn)	conns = TAILQ_HEAD_INITIALIZER(conns);
static int			nconns;
static uint32_t			conn_nextid = 1;

static void	 conn_event(int, short, void *);
static void	 conn_timeout(int, short, void *);
static int	 conn_limited(const char *);
static int	 conn_reading(struct conn *);
static void	 conn_arm(struct conn *);
static int	 conn_handshake(struct conn *);
static int	 conn_fill(struct conn *);
static int	 conn_flush(struct conn *);

/* Only once per login: a list is enough. */
struct conn *
conn_find(uint32_t id)
{
	struct conn	*c;

	TAILQ_FOREACH(c, &conns, entry)
		if (c->id == id)
			return (c);
	return (NULL);
}

/* A cap per process and per client address on descriptors held. */
static int
conn_limited(const char *host)
{
	struct conn	*c;
	uint32_t	 n = 0;

	if ((uint32_t)nconns >= lconf.max_conns)
		return (1);
	TAILQ_FOREACH(c, &conns, entry)
		if (strcmp(c->host, host) == 0 &&
		    ++n >= lconf.max_conns_per_ip)
			return (1);
	return (0);
}

void
conn_accept(int lfd, short events, void *arg)
{
	struct listener		*l = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct timeval		 tv;
	struct conn		*c;
	char			 peer[POP3D_ADDRLEN], host[POP3D_ADDRLEN];
	int			 one = 1;
	int			 fd, i;

	for (i = 0; i < ACCEPT_BATCH; i++) {
		sslen = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &sslen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Let sessions end before trying again. */
				log_warn("accept on %s", l->addr);
				event_del(&l->ev);
				tv.tv_sec = 1;
				tv.tv_usec = 0;
				evtimer_add(&l->pause, &tv);
			} else if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept on %s", l->addr);
			return;
		}
		addr_string((struct sockaddr *)&ss, sslen, peer,
		    sizeof(peer));
		addr_host(peer, host, sizeof(host));
		if (conn_limited(host)) {
			log_warnx("%s: connection refused: too many", peer);
			close(fd);
			continue;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL ||
		    iobuf_init(&c->in, PREAUTH_BUFSIZE) == -1 ||
		    iobuf_init(&c->out, PREAUTH_BUFSIZE) == -1) {
			log_warn("conn_accept");
			if (c != NULL) {
				iobuf_free(&c->in);
				free(c);
			}
			close(fd);
			continue;
		}
		/* Replies are whole lines: no waiting for the peer's ACK. */
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one)) == -1)
			log_warn("TCP_NODELAY");
		/* 2^32 connections before an id comes back. */
		if ((c->id = conn_nextid++) == 0)
			c->id = conn_nextid++;
		c->fd = fd;
		c->l = l;
		c->mfd = -1;
		strlcpy(c->peer, peer, sizeof(c->peer));
		strlcpy(c->host, host, sizeof(c->host));
		TAILQ_INSERT_TAIL(&conns, c, entry);
		nconns++;

		evtimer_set(&c->timer, conn_timeout, c);
		tv.tv_sec = lconf.timeout;
		tv.tv_usec = 0;
		evtimer_add(&c->timer, &tv);
		event_set(&c->ev, fd, EV_READ, conn_event, c);
		evtimer_set(&c->delay, authorization_delayed, c);

		log_info("%u: connection from %s on %s", c->id, c->peer,
		    l->addr);
		if (l->flags & LISTEN_TLS) {
			if (tls_accept_socket(l->pki->tls, &c->tls, fd) == -1) {
				log_warnx("%u: tls_accept_socket: %s", c->id,
				    tls_error(l->pki->tls));
				conn_close(c);
				continue;
			}
			c->state = CONN_HANDSHAKE;
		} else {
			/* Plain, or TLS later by STLS. */
			c->state = CONN_AUTHORIZATION;
			authorization_greet(c);
		}
		conn_pump(c);
	}
}

void
conn_accept_resume(int fd, short events, void *arg)
{
	struct listener	*l = arg;

	event_add(&l->ev, NULL);
}

static void
conn_timeout(int fd, short events, void *arg)
{
	struct conn	*c = arg;

	log_info("%u: %s: login timeout", c->id, c->peer);
	if (c->state == CONN_AUTHORIZATION) {
		conn_reply(c, "-ERR Timeout; closing.\r\n");
		c->state = CONN_CLOSING;
		conn_pump(c);
	} else
		conn_close(c);
}

static void
conn_event(int fd, short events, void *arg)
{
	conn_pump(arg);
}

/*
 * Move everything that can move without blocking, then wait for the
 * events the stalled operations asked for.  libtls may need a readable
 * socket to write and a writable one to read, hence rwant and wwant.
 */
void
conn_pump(struct conn *c)
{
	size_t	 got;
	int	 burst;

 again:
	if (c->state == CONN_HANDSHAKE) {
		switch (conn_handshake(c)) {
		case -1:
			conn_close(c);
			return;
		case 0:
			conn_arm(c);
			return;
		}
		c->state = CONN_AUTHORIZATION;
		/* After STLS the greeting was given in the clear. */
		if (c->l->flags & LISTEN_TLS)
			authorization_greet(c);
	}
	if (conn_reading(c) && !c->client_eof && conn_fill(c) == -1) {
		conn_close(c);
		return;
	}
	if (c->state == CONN_AUTHORIZATION)
		authorization_input(c);
	/*
	 * A RETR fills the relay buffer many times over: keep moving it
	 * while the client takes it all, a few times before the others.
	 */
	for (burst = 0;; burst++) {
		got = c->state == CONN_RELAY ? relay_pump(c) : 0;
		if (conn_flush(c) == -1) {
			conn_close(c);
			return;
		}
		if (got == 0 || c->out.len > 0 || burst == RELAY_BURST)
			break;
	}
	if (c->state == CONN_STLS && c->out.len == 0) {
		if (stls_start(c) == -1) {
			conn_close(c);
			return;
		}
		goto again;
	}
	/* Waiting credentials and the relay still owe the client answers. */
	if (c->client_eof && (c->state == CONN_AUTHORIZATION ||
	    c->state == CONN_CLOSING)) {
		conn_close(c);
		return;
	}
	if (c->state == CONN_CLOSING && c->out.len == 0) {
		/* Best effort close_notify; a stuck peer is not waited for. */
		if (c->tls != NULL)
			tls_close(c->tls);
		conn_close(c);
		return;
	}
	conn_arm(c);
}

/*
 * Not while STLS' reply goes out: the bytes after it are the client's
 * TLS handshake, and not while closing.
 */
static int
conn_reading(struct conn *c)
{
	return (c->state == CONN_AUTHORIZATION ||
	    c->state == CONN_AUTHWAIT || c->state == CONN_RELAY);
}

static void
conn_arm(struct conn *c)
{
	short	 ev = 0;

	if (c->state == CONN_HANDSHAKE)
		ev = c->rwant;
	else {
		if (conn_reading(c) && !c->client_eof &&
		    iobuf_room(&c->in) > 0)
			ev |= c->rwant;
		if (c->out.len > 0)
			ev |= c->wwant;
	}
	event_del(&c->ev);
	if (ev != 0) {
		event_set(&c->ev, c->fd, ev, conn_event, c);
		event_add(&c->ev, NULL);
	}
	if (c->state == CONN_RELAY)
		relay_arm(c);
}

/* 1 done, 0 in progress, -1 failed. */
static int
conn_handshake(struct conn *c)
{
	switch (tls_handshake(c->tls)) {
	case 0:
		log_info("%u: %s: %s %s", c->id, c->peer,
		    tls_conn_version(c->tls), tls_conn_cipher(c->tls));
		c->rwant = EV_READ;
		c->wwant = EV_WRITE;
		c->tls_done = 1;
		sasl_identity(c);
		return (1);
	case TLS_WANT_POLLIN:
		c->rwant = EV_READ;
		return (0);
	case TLS_WANT_POLLOUT:
		c->rwant = EV_WRITE;
		return (0);
	default:
		log_info("%u: %s: TLS handshake failed: %s", c->id, c->peer,
		    tls_error(c->tls));
		return (-1);
	}
}

/* Read what the client has sent, as far as the buffer allows. */
static int
conn_fill(struct conn *c)
{
	ssize_t	 n;

	while (iobuf_room(&c->in) > 0) {
		if (c->tls != NULL) {
			n = tls_read(c->tls, c->in.data + c->in.len,
			    iobuf_room(&c->in));
			if (n == TLS_WANT_POLLIN) {
				c->rwant = EV_READ;
				return (0);
			}
			if (n == TLS_WANT_POLLOUT) {
				c->rwant = EV_WRITE;
				return (0);
			}
			if (n == -1) {
				log_debug("%u: tls_read: %s", c->id,
				    tls_error(c->tls));
				return (-1);
			}
		} else {
			n = read(c->fd, c->in.data + c->in.len,
			    iobuf_room(&c->in));
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR) {
					c->rwant = EV_READ;
					return (0);
				}
				return (-1);
			}
		}
		if (n == 0) {
			c->client_eof = 1;
			return (0);
		}
		c->in.len += n;
	}
	return (0);
}

static int
conn_flush(struct conn *c)
{
	ssize_t	 n;

	while (c->out.len > 0) {
		if (c->tls != NULL) {
			n = tls_write(c->tls, c->out.data, c->out.len);
			if (n == TLS_WANT_POLLIN) {
				c->wwant = EV_READ;
				return (0);
			}
			if (n == TLS_WANT_POLLOUT) {
				c->wwant = EV_WRITE;
				return (0);
			}
			if (n == -1) {
				log_debug("%u: tls_write: %s", c->id,
				    tls_error(c->tls));
				return (-1);
			}
		} else {
			n = write(c->fd, c->out.data, c->out.len);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR) {
					c->wwant = EV_WRITE;
					return (0);
				}
				return (-1);
			}
		}
		iobuf_consume(&c->out, n);
	}
	return (0);
}

/* Queue a reply; the caller pumps.  -1 if the client is not reading. */
int
conn_reply(struct conn *c, const char *s)
{
	size_t	 len = strlen(s);

	if (iobuf_room(&c->out) < len &&
	    iobuf_resize(&c->out, c->out.len + len) == -1)
		return (-1);
	return (iobuf_append(&c->out, s, len));
}

void
conn_close(struct conn *c)
{
	log_debug("%u: closed", c->id);
	TAILQ_REMOVE(&conns, c, entry);
	event_del(&c->ev);
	evtimer_del(&c->timer);
	evtimer_del(&c->delay);
	relay_close(c);
	if (c->tls != NULL)
		tls_free(c->tls);
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	iobuf_free(&c->in);
	iobuf_free(&c->out);
	explicit_bzero(c, sizeof(*c));
	free(c);
	if (--nconns == 0 && draining)
		exit(0);
}

int
conn_count(void)
{
	return (nconns);
}

void
conn_closeall(void)
{
	struct conn	*c;

	while ((c = TAILQ_FIRST(&conns)) != NULL)
		conn_close(c);
}
