/*
 * After login: the login process keeps the TLS session and pumps
 * plaintext between it and the mailbox process' socketpair.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "log.h"
#include "login.h"

static void	 relay_event(int, short, void *);

void
relay_start(struct conn *c, int fd)
{
	evtimer_del(&c->timer);
	if (iobuf_resize(&c->in, RELAY_BUFSIZE) == -1 ||
	    iobuf_resize(&c->out, RELAY_BUFSIZE) == -1 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) == -1) {
		log_warn("%u: relay_start", c->id);
		close(fd);
		conn_reply(c, "-ERR [SYS/TEMP] Out of resources.\r\n");
		c->state = CONN_CLOSING;
		return;
	}
	c->mfd = fd;
	c->state = CONN_RELAY;
	event_set(&c->mev, fd, EV_READ, relay_event, c);
}

static void
relay_event(int fd, short events, void *arg)
{
	conn_pump(arg);
}

/* Octets read from the mailbox come back, for conn_pump's burst. */
size_t
relay_pump(struct conn *c)
{
	ssize_t	 n;
	size_t	 got = 0;

	/* Client to mailbox. */
	while (c->in.len > 0 && !c->mbox_wshut) {
		n = write(c->mfd, c->in.data, c->in.len);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			/* The mailbox left; still read its last words. */
			iobuf_consume(&c->in, c->in.len);
			c->mbox_wshut = 1;
			break;
		}
		iobuf_consume(&c->in, n);
	}
	/* A client that hung up after QUIT still gets its UPDATE. */
	if (c->client_eof && c->in.len == 0 && !c->mbox_wshut) {
		shutdown(c->mfd, SHUT_WR);
		c->mbox_wshut = 1;
	}

	/* Mailbox to client. */
	while (iobuf_room(&c->out) > 0) {
		n = read(c->mfd, c->out.data + c->out.len,
		    iobuf_room(&c->out));
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			c->mbox_eof = 1;
			break;
		}
		c->out.len += n;
		got += n;
	}
	if (c->mbox_eof) {
		relay_close(c);
		c->state = CONN_CLOSING;
	}
	return (got);
}

/* Called once the client side has moved too: room may have appeared. */
void
relay_arm(struct conn *c)
{
	short	 ev = 0;

	if (c->in.len > 0 && !c->mbox_wshut)
		ev |= EV_WRITE;
	if (iobuf_room(&c->out) > 0)
		ev |= EV_READ;
	event_del(&c->mev);
	if (ev != 0) {
		event_set(&c->mev, c->mfd, ev, relay_event, c);
		event_add(&c->mev, NULL);
	}
}

void
relay_close(struct conn *c)
{
	if (c->mfd == -1)
		return;
	event_del(&c->mev);
	close(c->mfd);
	c->mfd = -1;
}
