/*
 * STLS (RFC 2595 section 4): the switch from plaintext to TLS on a
 * starttls port.  Nothing from before the handshake survives it: not
 * what the client pipelined after STLS (command injection), not a USER.
 */

#include <sys/types.h>

#include <string.h>
#include <tls.h>

#include "log.h"
#include "login.h"

void
cmd_stls(struct conn *c, char *args)
{
	if (args != NULL) {
		conn_reply(c, "-ERR STLS takes no arguments.\r\n");
		return;
	}
	if (c->tls != NULL) {
		conn_reply(c, "-ERR Command not permitted when TLS active.\r\n");
		return;
	}
	if (!(c->l->flags & LISTEN_STARTTLS)) {
		conn_reply(c, "-ERR STLS not available.\r\n");
		return;
	}
	conn_reply(c, "+OK Begin TLS negotiation.\r\n");
	/* The STLS line and everything after it in the buffer. */
	iobuf_consume(&c->in, c->in.len);
	explicit_bzero(c->user, sizeof(c->user));
	c->state = CONN_STLS;
}

/* The +OK is out: start the handshake on the same socket. */
int
stls_start(struct conn *c)
{
	if (tls_accept_socket(c->l->pki->tls, &c->tls, c->fd) == -1) {
		log_warnx("%u: tls_accept_socket: %s", c->id,
		    tls_error(c->l->pki->tls));
		return (-1);
	}
	c->state = CONN_HANDSHAKE;
	c->rwant = EV_READ;
	return (0);
}
