/*
 * The AUTHORIZATION state (RFC 1939 section 4): greeting, CAPA,
 * USER/PASS and QUIT, the failure policy, and the hand-off of
 * credentials to the master.  The mailbox process answers the login
 * that succeeds.  STLS and AUTH have files of their own.
 */

#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "login.h"

#define MSG_NEED_TLS	"-ERR [AUTH] Login requires TLS (use STLS).\r\n"

static void	 authorization_line(struct conn *, char *, size_t);
static void	 cmd_capa(struct conn *, char *);
static void	 cmd_user(struct conn *, char *);
static void	 cmd_pass(struct conn *, char *);
static void	 cmd_quit(struct conn *, char *);
static void	 authorization_failed(struct conn *);

static const struct {
	const char	*name;
	void		(*fn)(struct conn *, char *);
} commands[] = {
	{ "AUTH",	cmd_auth },
	{ "CAPA",	cmd_capa },
	{ "PASS",	cmd_pass },
	{ "QUIT",	cmd_quit },
	{ "STLS",	cmd_stls },
	{ "USER",	cmd_user },
};

void
authorization_greet(struct conn *c)
{
	conn_reply(c, "+OK pop3d ready.\r\n");
}

/* Take complete lines from the input until one needs to wait. */
void
authorization_input(struct conn *c)
{
	char	*nl;
	size_t	 linelen, max;

	while (c->state == CONN_AUTHORIZATION && c->in.len > 0) {
		nl = memchr(c->in.data, '\n', c->in.len);
		if (c->skipline) {
			iobuf_consume(&c->in, nl == NULL ? c->in.len :
			    (size_t)(nl - c->in.data) + 1);
			if (nl != NULL)
				c->skipline = 0;
			continue;
		}
		/* Room for a full PLAIN response; RFC 2449's 255 else. */
		max = c->sasl_wait || (c->in.len >= 5 &&
		    strncasecmp(c->in.data, "AUTH ", 5) == 0) ?
		    LINE_MAX_SASL : LINE_MAX_PREAUTH;
		if (nl == NULL) {
			if (c->in.len > max + 1) {
				conn_reply(c, "-ERR Line too long.\r\n");
				c->sasl_wait = SASL_NONE;
				c->skipline = 1;
				continue;
			}
			return;		/* wait for the rest */
		}
		linelen = nl - c->in.data;
		if (linelen > 0 && c->in.data[linelen - 1] == '\r')
			linelen--;
		if (linelen > max) {
			conn_reply(c, "-ERR Line too long.\r\n");
			c->sasl_wait = SASL_NONE;
		} else {
			c->in.data[linelen] = '\0';
			authorization_line(c, c->in.data, linelen);
		}
		/* Wipes the line: it may have held a password. */
		if (c->state != CONN_STLS)
			iobuf_consume(&c->in, (size_t)(nl - c->in.data) + 1);
	}
}

static void
authorization_line(struct conn *c, char *line, size_t len)
{
	char	*args;
	size_t	 i;

	if (memchr(line, '\0', len) != NULL) {
		c->sasl_wait = SASL_NONE;
		conn_reply(c, "-ERR Invalid characters in command.\r\n");
		return;
	}
	if (c->sasl_wait) {
		sasl_response(c, line);
		return;
	}
	if ((args = strchr(line, ' ')) != NULL)
		*args++ = '\0';
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcasecmp(line, commands[i].name) == 0) {
			commands[i].fn(c, args);
			return;
		}
	}
	conn_reply(c, "-ERR Unknown command in AUTHORIZATION state.\r\n");
}

/* RFC 2595 privacy mode: no password without TLS unless allowed. */
int
login_allowed(struct conn *c)
{
	return (c->tls_done || lconf.cleartext_auth);
}

/* Tell the truth about this connection, as RFC 2449 asks. */
static void
cmd_capa(struct conn *c, char *args)
{
	if (args != NULL) {
		conn_reply(c, "-ERR CAPA takes no arguments.\r\n");
		return;
	}
	conn_reply(c, "+OK Capability list follows.\r\n"
	    "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
	if ((c->l->flags & LISTEN_STARTTLS) && c->tls == NULL)
		conn_reply(c, "STLS\r\n");
	if (login_allowed(c)) {
		conn_reply(c, "USER\r\n");
		conn_reply(c, c->cert_user[0] != '\0' ?
		    "SASL PLAIN EXTERNAL\r\n" : "SASL PLAIN\r\n");
	}
	if (lconf.show_implementation)
		conn_reply(c, "IMPLEMENTATION pop3d\r\n");
	conn_reply(c, ".\r\n");
}

static void
cmd_user(struct conn *c, char *args)
{
	size_t	 i, len;

	if (!login_allowed(c)) {
		conn_reply(c, MSG_NEED_TLS);
		return;
	}
	if (args == NULL || (len = strlen(args)) == 0 ||
	    len >= sizeof(c->user)) {
		conn_reply(c, "-ERR Usage: USER name\r\n");
		return;
	}
	for (i = 0; i < len; i++) {
		if (iscntrl((unsigned char)args[i]) || args[i] == ' ') {
			conn_reply(c, "-ERR Invalid user name.\r\n");
			return;
		}
	}
	strlcpy(c->user, args, sizeof(c->user));
	conn_reply(c, "+OK Send your password.\r\n");
}

static void
cmd_pass(struct conn *c, char *args)
{
	if (!login_allowed(c)) {
		conn_reply(c, MSG_NEED_TLS);
		return;
	}
	if (c->user[0] == '\0') {
		conn_reply(c, "-ERR Send USER first.\r\n");
		return;
	}
	/* RFC 1939: the whole rest of the line, spaces included. */
	if (args == NULL || *args == '\0' || strlen(args) >= POP3D_PASSLEN) {
		conn_reply(c, "-ERR Usage: PASS password\r\n");
		return;
	}
	authorization_submit(c, c->user, args, AUTH_MECH_PASSWORD);
}

static void
cmd_quit(struct conn *c, char *args)
{
	conn_reply(c, "+OK Bye.\r\n");
	c->state = CONN_CLOSING;
}

/* Credentials to the master; the connection waits for its verdict. */
void
authorization_submit(struct conn *c, const char *user, const char *pass,
    enum auth_mech mech)
{
	struct auth_request	 req;

	memset(&req, 0, sizeof(req));
	req.conn = c->id;
	req.flags = c->tls_done ? AUTH_REQ_TLS : 0;
	req.mech = mech;
	req.failures = c->failures;
	strlcpy(req.user, user, sizeof(req.user));
	strlcpy(req.pass, pass, sizeof(req.pass));
	strlcpy(req.peer, c->peer, sizeof(req.peer));
	strlcpy(c->user, user, sizeof(c->user));
	if (master_compose(IMSG_AUTH_REQUEST, -1, &req, sizeof(req)) == -1) {
		log_warn("%u: master_compose", c->id);
		conn_reply(c, "-ERR [SYS/TEMP] Try again later.\r\n");
	} else
		c->state = CONN_AUTHWAIT;
	explicit_bzero(&req, sizeof(req));
}

void
authorization_result(struct conn *c, const struct auth_result *ar, int fd)
{
	struct timeval	 tv;

	if (ar->status != AUTH_OK && fd != -1) {
		close(fd);
		fd = -1;
	}
	switch (ar->status) {
	case AUTH_OK:
		if (fd == -1) {
			conn_reply(c, "-ERR [SYS/TEMP] Try again later.\r\n");
			c->state = CONN_AUTHORIZATION;
			break;
		}
		log_debug("%u: %s: user %s logged in", c->id, c->peer,
		    c->user);
		relay_start(c, fd);
		break;
	case AUTH_FAIL:
		c->failures++;
		if (ar->delay_ms > 0) {
			/* Stay in AUTHWAIT: nothing else is answered. */
			tv.tv_sec = ar->delay_ms / 1000;
			tv.tv_usec = ar->delay_ms % 1000 * 1000;
			evtimer_add(&c->delay, &tv);
			return;
		}
		authorization_failed(c);
		break;
	case AUTH_BUSY:
		conn_reply(c, "-ERR [SYS/TEMP] Too many sessions; try again "
		    "later.\r\n");
		c->state = CONN_AUTHORIZATION;
		break;
	case AUTH_TLS_REQUIRED:
		conn_reply(c, "-ERR [AUTH] This account requires TLS.\r\n");
		c->state = CONN_AUTHORIZATION;
		break;
	default:
		conn_reply(c, "-ERR [SYS/TEMP] Try again later.\r\n");
		c->state = CONN_AUTHORIZATION;
		break;
	}
	if (c->state == CONN_AUTHORIZATION)
		explicit_bzero(c->user, sizeof(c->user));
	conn_pump(c);
}

void
authorization_delayed(int fd, short events, void *arg)
{
	struct conn	*c = arg;

	authorization_failed(c);
	conn_pump(c);
}

static void
authorization_failed(struct conn *c)
{
	log_debug("%u: %s: user %s: authentication failed", c->id,
	    c->peer, c->user);
	explicit_bzero(c->user, sizeof(c->user));
	if (c->failures >= lconf.max_auth_failures) {
		conn_reply(c, "-ERR [AUTH] Too many failed logins; "
		    "closing.\r\n");
		c->state = CONN_CLOSING;
		return;
	}
	conn_reply(c, "-ERR [AUTH] Invalid user name or password.\r\n");
	c->state = CONN_AUTHORIZATION;
}
