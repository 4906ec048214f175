/*
 * The AUTHORIZATION state (RFC 1939 section 4): greeting, CAPA,
 * USER/PASS and QUIT.  Credentials go to the master; the mailbox
 * process answers the PASS that succeeds.
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

static void	 authorization_line(struct conn *, char *, size_t);
static void	 cmd_capa(struct conn *, char *);
static void	 cmd_user(struct conn *, char *);
static void	 cmd_pass(struct conn *, char *);
static void	 cmd_quit(struct conn *, char *);
static int	 login_allowed(struct conn *);

static const struct {
	const char	*name;
	void		(*fn)(struct conn *, char *);
} commands[] = {
	{ "CAPA",	cmd_capa },
	{ "USER",	cmd_user },
	{ "PASS",	cmd_pass },
	{ "QUIT",	cmd_quit },
};

void
authorization_greet(struct conn *c)
{
	conn_reply(c, "+OK pop3d ready.\r\n");
}

/* Take complete lines from the input until one needs the master. */
void
authorization_input(struct conn *c)
{
	char	*nl;
	size_t	 linelen;

	while (c->state == CONN_AUTHORIZATION && c->in.len > 0) {
		nl = memchr(c->in.data, '\n', c->in.len);
		if (c->skipline) {
			iobuf_consume(&c->in, nl == NULL ? c->in.len :
			    (size_t)(nl - c->in.data) + 1);
			if (nl != NULL)
				c->skipline = 0;
			continue;
		}
		if (nl == NULL) {
			if (c->in.len > LINE_MAX_PREAUTH + 1) {
				conn_reply(c, "-ERR Line too long.\r\n");
				c->skipline = 1;
				continue;
			}
			return;		/* wait for the rest */
		}
		linelen = nl - c->in.data;
		if (linelen > 0 && c->in.data[linelen - 1] == '\r')
			linelen--;
		if (linelen > LINE_MAX_PREAUTH)
			conn_reply(c, "-ERR Line too long.\r\n");
		else {
			c->in.data[linelen] = '\0';
			authorization_line(c, c->in.data, linelen);
		}
		/* Wipes the line: it may have held a password. */
		iobuf_consume(&c->in, (size_t)(nl - c->in.data) + 1);
	}
}

static void
authorization_line(struct conn *c, char *line, size_t len)
{
	char	*args;
	size_t	 i;

	if (memchr(line, '\0', len) != NULL) {
		conn_reply(c, "-ERR Invalid characters in command.\r\n");
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

static int
login_allowed(struct conn *c)
{
	return (c->tls != NULL);
}

static void
cmd_capa(struct conn *c, char *args)
{
	if (args != NULL) {
		conn_reply(c, "-ERR CAPA takes no arguments.\r\n");
		return;
	}
	conn_reply(c, "+OK Capability list follows.\r\n");
	if (login_allowed(c))
		conn_reply(c, "USER\r\n");
	conn_reply(c, "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
	    "IMPLEMENTATION pop3d\r\n.\r\n");
}

static void
cmd_user(struct conn *c, char *args)
{
	size_t	 i, len;

	if (!login_allowed(c)) {
		conn_reply(c, "-ERR [AUTH] Login needs TLS.\r\n");
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
	struct auth_request	 req;

	if (c->user[0] == '\0') {
		conn_reply(c, "-ERR Send USER first.\r\n");
		return;
	}
	/* RFC 1939: the whole rest of the line, spaces included. */
	if (args == NULL || *args == '\0' || strlen(args) >= sizeof(req.pass)) {
		conn_reply(c, "-ERR Usage: PASS password\r\n");
		return;
	}
	memset(&req, 0, sizeof(req));
	req.conn = c->id;
	req.flags = c->tls != NULL ? AUTH_REQ_TLS : 0;
	strlcpy(req.user, c->user, sizeof(req.user));
	strlcpy(req.pass, args, sizeof(req.pass));
	strlcpy(req.peer, c->peer, sizeof(req.peer));
	if (master_compose(IMSG_AUTH_REQUEST, -1, &req, sizeof(req)) == -1) {
		log_warn("%u: master_compose", c->id);
		conn_reply(c, "-ERR [SYS/TEMP] Try again later.\r\n");
	} else
		c->state = CONN_AUTHWAIT;
	explicit_bzero(&req, sizeof(req));
}

static void
cmd_quit(struct conn *c, char *args)
{
	conn_reply(c, "+OK Bye.\r\n");
	c->state = CONN_CLOSING;
}

void
authorization_result(struct conn *c, uint32_t status, int fd)
{
	switch (status) {
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
		log_debug("%u: %s: user %s: authentication failed", c->id,
		    c->peer, c->user);
		conn_reply(c, "-ERR [AUTH] Invalid user name or password.\r\n");
		c->state = CONN_AUTHORIZATION;
		break;
	default:
		if (fd != -1)
			close(fd);
		conn_reply(c, "-ERR [SYS/TEMP] Try again later.\r\n");
		c->state = CONN_AUTHORIZATION;
		break;
	}
	if (c->state == CONN_AUTHORIZATION)
		explicit_bzero(c->user, sizeof(c->user));
	conn_pump(c);
}
