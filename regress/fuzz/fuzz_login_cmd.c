/*
 * Fuzz target: the AUTHORIZATION state of the login process, the real
 * login/authorization.c, sasl.c and stls.c (and base64.c, plain.c) on
 * what a client sends, with the connection layer of conn.c and the
 * master replaced below: conn_reply() queues as conn.c does, the
 * "master" answers each request at once (AUTH_OK for the password
 * "secret", AUTH_TLS_REQUIRED for the user "tlsonly" without TLS,
 * AUTH_TEMPFAIL for the user "tempfail", AUTH_OK without its descriptor
 * for the password "nofd", AUTH_FAIL else), and an STLS handshake always
 * succeeds.
 *
 * Input: two octets of settings, then the client's bytes.
 *	octet 0: bit 0-1 listener (0 plain, 1 starttls, 2 or 3 tls),
 *		 bit 2 cleartext-auth yes, bit 3 a verified client
 *		 certificate for "alice", bit 4 implementation no,
 *		 bit 5-6 max-auth-failures - 1
 *	octet 1: the client's bytes arrive in reads of this many + 1
 *
 * Checked: replies are whole CRLF lines; credentials reach the master
 * only as a well-formed request, never a password without TLS unless
 * cleartext-auth allows it, EXTERNAL only for the certificate's user;
 * nothing read before STLS survives it, not a USER either; the
 * connection closes after max-auth-failures failures; the input buffer
 * stays within its size and the loop always makes progress.
 */

#include <sys/types.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <tls.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "../../login/login.h"

/* What login.c holds. */
struct login_conf	 lconf;
int			 client_ca;
int			 draining;

static struct auth_request	 last_req;
static int			 have_req;
static struct tls		*dummy_tls;	/* never used for I/O */

/* ------------------------------------------------ conn.c, login.c, relay.c */

int
conn_reply(struct conn *c, const char *s)
{
	size_t	 len = strlen(s);

	FUZZ_ASSERT(len >= 2 && s[len - 2] == '\r' && s[len - 1] == '\n');
	if (iobuf_room(&c->out) < len &&
	    iobuf_resize(&c->out, c->out.len + len) == -1)
		return (-1);
	return (iobuf_append(&c->out, s, len));
}

void
conn_pump(struct conn *c)
{
}

void
relay_start(struct conn *c, int fd)
{
	FUZZ_ASSERT(fd != -1);
	close(fd);
	c->state = CONN_RELAY;
}

int
master_compose(uint32_t type, int fd, const void *data, size_t len)
{
	FUZZ_ASSERT(type == IMSG_AUTH_REQUEST);
	FUZZ_ASSERT(fd == -1);
	FUZZ_ASSERT(len == sizeof(last_req));
	FUZZ_ASSERT(!have_req);
	memcpy(&last_req, data, sizeof(last_req));
	have_req = 1;
	return (0);
}

/* ------------------------------------------------------------ checks */

static void
check_request(struct conn *c, const struct auth_request *r)
{
	size_t	 i, len;

	FUZZ_ASSERT(r->conn == c->id);
	FUZZ_ASSERT(r->failures == c->failures);
	FUZZ_ASSERT(memchr(r->user, '\0', sizeof(r->user)) != NULL);
	FUZZ_ASSERT(memchr(r->pass, '\0', sizeof(r->pass)) != NULL);
	FUZZ_ASSERT(memchr(r->peer, '\0', sizeof(r->peer)) != NULL);
	FUZZ_ASSERT(strcmp(r->peer, c->peer) == 0);
	FUZZ_ASSERT(((r->flags & AUTH_REQ_TLS) != 0) == (c->tls_done != 0));
	len = strlen(r->user);
	FUZZ_ASSERT(len > 0);
	for (i = 0; i < len; i++)
		FUZZ_ASSERT((unsigned char)r->user[i] > ' ' &&
		    r->user[i] != 0x7f);
	switch (r->mech) {
	case AUTH_MECH_PASSWORD:
		/* RFC 2595 privacy: no password in the clear unless asked. */
		FUZZ_ASSERT(c->tls_done || lconf.cleartext_auth);
		FUZZ_ASSERT(r->pass[0] != '\0');
		break;
	case AUTH_MECH_EXTERNAL:
		FUZZ_ASSERT(c->cert_user[0] != '\0');
		FUZZ_ASSERT(strcmp(r->user, c->cert_user) == 0);
		FUZZ_ASSERT(r->pass[0] == '\0');
		break;
	default:
		fuzz_fail("mech %u", r->mech);
	}
}

/* What went to the client: whole lines, every LF after a CR. */
static void
flush_out(struct conn *c)
{
	size_t	 i;

	if (c->out.len == 0)
		return;
	FUZZ_ASSERT(c->out.len >= 2 && c->out.data[c->out.len - 1] == '\n');
	for (i = 0; i < c->out.len; i++)
		if (c->out.data[i] == '\n')
			FUZZ_ASSERT(i > 0 && c->out.data[i - 1] == '\r');
	iobuf_consume(&c->out, c->out.len);
}

/* The master's verdict on last_req. */
static void
answer(struct conn *c)
{
	struct auth_result	 ar;
	int			 fd = -1;
	uint32_t		 failures = c->failures;

	check_request(c, &last_req);
	have_req = 0;
	memset(&ar, 0, sizeof(ar));
	ar.conn = last_req.conn;
	if (strcmp(last_req.user, "tlsonly") == 0 &&
	    !(last_req.flags & AUTH_REQ_TLS))
		ar.status = AUTH_TLS_REQUIRED;
	else if (strcmp(last_req.user, "tempfail") == 0)
		ar.status = AUTH_TEMPFAIL;
	else if (strcmp(last_req.pass, "nofd") == 0)
		ar.status = AUTH_OK;
	else if (strcmp(last_req.pass, "secret") == 0 ||
	    last_req.mech == AUTH_MECH_EXTERNAL) {
		ar.status = AUTH_OK;
		if ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1)
			abort();
	} else
		ar.status = AUTH_FAIL;
	explicit_bzero(&last_req, sizeof(last_req));
	authorization_result(c, &ar, fd);
	if (ar.status == AUTH_FAIL) {
		FUZZ_ASSERT(c->failures == failures + 1);
		if (c->failures >= lconf.max_auth_failures)
			FUZZ_ASSERT(c->state == CONN_CLOSING);
		else
			FUZZ_ASSERT(c->state == CONN_AUTHORIZATION);
	}
	if (ar.status == AUTH_OK)
		FUZZ_ASSERT(c->state == (fd != -1 ? CONN_RELAY :
		    CONN_AUTHORIZATION));
	else
		FUZZ_ASSERT(c->state == CONN_AUTHORIZATION ||
		    c->state == CONN_CLOSING);
	if (c->state == CONN_AUTHORIZATION)
		FUZZ_ASSERT(c->user[0] == '\0');
}

/* ------------------------------------------------------------ driver */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init(1, LOG_DAEMON);
	if ((dummy_tls = tls_server()) == NULL)
		abort();
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct listener	 l;
	struct conn	 c;
	size_t		 chunk, n, off, before, rounds = 0;
	enum conn_state	 state;

	if (len < 2)
		return (0);
	memset(&lconf, 0, sizeof(lconf));
	lconf.cleartext_auth = (data[0] & 0x04) != 0;
	lconf.show_implementation = (data[0] & 0x10) == 0;
	lconf.max_auth_failures = 1 + (data[0] >> 5 & 3);
	client_ca = (data[0] & 0x08) != 0;

	memset(&l, 0, sizeof(l));
	l.fd = -1;
	switch (data[0] & 3) {
	case 0:
		break;
	case 1:
		l.flags = LISTEN_STARTTLS;
		break;
	default:
		l.flags = LISTEN_TLS;
		break;
	}
	chunk = data[1] + 1;
	data += 2;
	len -= 2;

	memset(&c, 0, sizeof(c));
	c.id = 7;
	c.fd = -1;
	c.mfd = -1;
	c.l = &l;
	strlcpy(c.peer, "[192.0.2.1]:2110", sizeof(c.peer));
	if (iobuf_init(&c.in, PREAUTH_BUFSIZE) == -1 ||
	    iobuf_init(&c.out, PREAUTH_BUFSIZE) == -1)
		abort();
	if (l.flags & LISTEN_TLS) {
		c.tls = dummy_tls;
		c.tls_done = 1;
		if (client_ca)
			strlcpy(c.cert_user, "alice", sizeof(c.cert_user));
	}
	c.state = CONN_AUTHORIZATION;
	have_req = 0;
	authorization_greet(&c);

	off = 0;
	for (;;) {
		FUZZ_ASSERT(++rounds < 1000000);
		FUZZ_ASSERT(c.in.len <= c.in.size);
		flush_out(&c);
		state = c.state;
		if (state == CONN_AUTHWAIT) {
			FUZZ_ASSERT(have_req);
			answer(&c);
			continue;
		}
		FUZZ_ASSERT(!have_req);
		if (state == CONN_STLS) {
			/* Nothing from before the handshake survives it. */
			FUZZ_ASSERT(l.flags & LISTEN_STARTTLS);
			FUZZ_ASSERT(c.tls == NULL && !c.tls_done);
			FUZZ_ASSERT(c.in.len == 0 && c.user[0] == '\0');
			c.tls = dummy_tls;
			c.tls_done = 1;
			if (client_ca)
				strlcpy(c.cert_user, "alice",
				    sizeof(c.cert_user));
			c.state = CONN_AUTHORIZATION;
			continue;
		}
		if (state != CONN_AUTHORIZATION)
			break;		/* closing, or logged in */
		/* conn_fill(): what the client sent, as room allows. */
		n = len - off;
		if (n > chunk)
			n = chunk;
		if (n > iobuf_room(&c.in))
			n = iobuf_room(&c.in);
		if (n > 0) {
			iobuf_append(&c.in, data + off, n);
			off += n;
		}
		before = c.in.len;
		authorization_input(&c);
		/* The client is done and nothing more can move. */
		if (n == 0 && c.state == state && c.in.len == before &&
		    !have_req && c.out.len == 0)
			break;
	}
	flush_out(&c);
	iobuf_free(&c.in);
	iobuf_free(&c.out);
	return (0);
}
