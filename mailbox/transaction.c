/*
 * The TRANSACTION state (RFC 1939): read commands under the autologout
 * timer, answer them, and enter the UPDATE state on QUIT.  Anything
 * else that ends the session (end of file, an error, the timer) leaves
 * the maildrop as it was.
 */

#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "mailbox.h"

#define INBUF_SIZE	4096

enum args {
	ARGS_NONE,
	ARGS_OPTIONAL,
	ARGS_ONE
};

struct cmd {
	const char	*name;
	enum args	 args;
	void		(*fn)(struct session *, const char *, size_t);
};

static void	 cmd_stat(struct session *, const char *, size_t);
static void	 cmd_list(struct session *, const char *, size_t);
static void	 cmd_retr(struct session *, const char *, size_t);
static void	 cmd_top(struct session *, const char *, size_t);
static void	 cmd_uidl(struct session *, const char *, size_t);
static void	 cmd_dele(struct session *, const char *, size_t);
static void	 cmd_rset(struct session *, const char *, size_t);
static void	 cmd_noop(struct session *, const char *, size_t);
static void	 cmd_capa(struct session *, const char *, size_t);
static void	 cmd_quit(struct session *, const char *, size_t);
static struct msg *msg_arg(struct session *, const char *, size_t, size_t *);
static struct msg *msg_live(struct session *, const char *, size_t,
		    size_t *);
static void	 totals(struct session *, size_t *, uint64_t *);
static void	 command(struct session *, const char *, size_t);
static void	 commands(struct session *);
static void	 input(struct session *);

static const struct cmd cmds[] = {
	{ "STAT", ARGS_NONE, cmd_stat },
	{ "LIST", ARGS_OPTIONAL, cmd_list },
	{ "RETR", ARGS_ONE, cmd_retr },
	{ "TOP", ARGS_ONE, cmd_top },
	{ "UIDL", ARGS_OPTIONAL, cmd_uidl },
	{ "DELE", ARGS_ONE, cmd_dele },
	{ "RSET", ARGS_NONE, cmd_rset },
	{ "NOOP", ARGS_NONE, cmd_noop },
	{ "CAPA", ARGS_NONE, cmd_capa },
	{ "QUIT", ARGS_NONE, cmd_quit }
};

/* Commands of the AUTHORIZATION state: known, but not here. */
static const char *const authcmds[] = {
	"USER", "PASS", "APOP", "AUTH", "STLS"
};

static unsigned char	 inbuf[INBUF_SIZE];
static size_t		 inlen;
static int		 discarding;	/* inside an over-long line */

/*
 * The message a number names: strict decimal, 1 to the message count.
 * Replies -ERR and returns NULL if there is none.
 */
static struct msg *
msg_arg(struct session *s, const char *arg, size_t len, size_t *nump)
{
	size_t	 i, n = 0;

	for (i = 0; i < len; i++) {
		if (arg[i] < '0' || arg[i] > '9') {
			if (i > 0 && arg[i] == ' ')
				out_printf("-ERR Too many arguments.\r\n");
			else
				out_printf("-ERR Invalid message number.\r\n");
			return (NULL);
		}
		/* Past the count it is out of range; stop before overflow. */
		if (n <= s->nmsgs)
			n = n * 10 + (arg[i] - '0');
	}
	if (len == 0) {
		out_printf("-ERR Invalid message number.\r\n");
		return (NULL);
	}
	if (n == 0 || n > s->nmsgs) {
		out_printf("-ERR No such message.\r\n");
		return (NULL);
	}
	*nump = n;
	return (&s->msgs[n - 1]);
}

/* As msg_arg(), and a message marked deleted is no message. */
static struct msg *
msg_live(struct session *s, const char *arg, size_t len, size_t *nump)
{
	struct msg	*m;

	if ((m = msg_arg(s, arg, len, nump)) == NULL)
		return (NULL);
	if (m->flags & MSG_DELETED) {
		out_printf("-ERR No such message.\r\n");
		return (NULL);
	}
	return (m);
}

static void
totals(struct session *s, size_t *count, uint64_t *octets)
{
	size_t	 i;

	*count = 0;
	*octets = 0;
	for (i = 0; i < s->nmsgs; i++) {
		if (s->msgs[i].flags & MSG_DELETED)
			continue;
		(*count)++;
		*octets += s->msgs[i].size;
	}
}

static void
cmd_stat(struct session *s, const char *arg, size_t len)
{
	size_t		 count;
	uint64_t	 octets;

	totals(s, &count, &octets);
	out_printf("+OK %zu %llu\r\n", count, (unsigned long long)octets);
}

static void
cmd_list(struct session *s, const char *arg, size_t len)
{
	struct msg	*m;
	size_t		 count, i, n;
	uint64_t	 octets;

	if (arg != NULL) {
		if ((m = msg_live(s, arg, len, &n)) == NULL)
			return;
		out_printf("+OK %zu %llu\r\n", n, (unsigned long long)m->size);
		return;
	}
	totals(s, &count, &octets);
	out_printf("+OK %zu messages (%llu octets)\r\n", count,
	    (unsigned long long)octets);
	for (i = 0; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		if (!(m->flags & MSG_DELETED))
			out_printf("%zu %llu\r\n", i + 1,
			    (unsigned long long)m->size);
	}
	out_printf(".\r\n");
}

static void
cmd_retr(struct session *s, const char *arg, size_t len)
{
	struct msg	*m;
	size_t		 n;

	if ((m = msg_live(s, arg, len, &n)) != NULL)
		message_send(s, m, n, 0, 0);
}

/*
 * TOP msg n: the header and n lines of the body.  A line count past
 * any message's length means the whole message.
 */
static void
cmd_top(struct session *s, const char *arg, size_t len)
{
	struct msg	*m;
	const char	*sp, *p;
	size_t		 n;
	uint64_t	 lines = 0;

	if ((sp = memchr(arg, ' ', len)) == NULL) {
		out_printf("-ERR Missing line count.\r\n");
		return;
	}
	for (p = sp + 1; p < arg + len; p++) {
		if (*p < '0' || *p > '9') {
			if (p > sp + 1 && *p == ' ')
				out_printf("-ERR Too many arguments.\r\n");
			else
				out_printf("-ERR Invalid line count.\r\n");
			return;
		}
		if (lines < UINT64_MAX / 10 - 1)
			lines = lines * 10 + (*p - '0');
	}
	if (p == sp + 1) {
		out_printf("-ERR Invalid line count.\r\n");
		return;
	}
	if ((m = msg_live(s, arg, sp - arg, &n)) != NULL)
		message_send(s, m, n, 1, lines);
}

/* Unique-ids, RFC 1939: stable across sessions, 0x21 to 0x7e. */
static void
cmd_uidl(struct session *s, const char *arg, size_t len)
{
	struct msg	*m;
	size_t		 i, n;

	if (arg != NULL) {
		if ((m = msg_live(s, arg, len, &n)) != NULL)
			out_printf("+OK %zu %s\r\n", n, m->uidl);
		return;
	}
	out_printf("+OK Unique-ID listing follows\r\n");
	for (i = 0; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		if (!(m->flags & MSG_DELETED))
			out_printf("%zu %s\r\n", i + 1, m->uidl);
	}
	out_printf(".\r\n");
}

static void
cmd_dele(struct session *s, const char *arg, size_t len)
{
	struct msg	*m;
	size_t		 n;

	if ((m = msg_arg(s, arg, len, &n)) == NULL)
		return;
	if (m->flags & MSG_DELETED) {
		out_printf("-ERR Message %zu already deleted.\r\n", n);
		return;
	}
	m->flags |= MSG_DELETED;
	out_printf("+OK Message %zu deleted.\r\n", n);
}

static void
cmd_rset(struct session *s, const char *arg, size_t len)
{
	size_t	 i;

	for (i = 0; i < s->nmsgs; i++)
		s->msgs[i].flags &= ~MSG_DELETED;
	out_printf("+OK\r\n");
}

static void
cmd_noop(struct session *s, const char *arg, size_t len)
{
	out_printf("+OK\r\n");
}

/* USER, SASL and STLS belong to the AUTHORIZATION state only. */
static void
cmd_capa(struct session *s, const char *arg, size_t len)
{
	out_printf("+OK Capability list follows\r\n"
	    "TOP\r\n"
	    "UIDL\r\n"
	    "RESP-CODES\r\n"
	    "PIPELINING\r\n");
	/* The operator may keep the software's name to themselves. */
	if (s->implementation)
		out_printf("IMPLEMENTATION pop3d\r\n");
	out_printf(".\r\n");
}

/*
 * The UPDATE state, then the reply: RFC 1939 wants the messages gone
 * before the +OK.  A Maildir may lose some of the deleted messages and
 * keep others; an mbox is rewritten as one step, so all or none.
 */
static void
cmd_quit(struct session *s, const char *arg, size_t len)
{
	size_t	 i;
	int	 marked = 0;

	for (i = 0; i < s->nmsgs; i++)
		if (s->msgs[i].flags & MSG_DELETED)
			marked++;
	if (marked == 0)
		out_printf("+OK Bye, 0 messages deleted.\r\n");
	else if (s->type == MAILDROP_MBOX) {
		switch (mbox_update(s)) {
		case 0:
			out_printf("+OK Bye, %u messages deleted.\r\n",
			    s->deleted);
			break;
		case -1:
			out_printf("-ERR [SYS/TEMP] Mailbox not updated, no "
			    "message deleted.\r\n");
			break;
		default:
			out_printf("-ERR [SYS/TEMP] Deleted messages go at "
			    "the next login.\r\n");
			break;
		}
	} else {
		if (maildir_update(s) == -1)
			out_printf("-ERR [SYS/TEMP] Some deleted messages not "
			    "removed.\r\n");
		else
			out_printf("+OK Bye, %u messages deleted.\r\n",
			    s->deleted);
	}
	/* The reply leaves from session_end(), the maildrop let go. */
	session_end(s, "quit");
}

static void
command(struct session *s, const char *line, size_t len)
{
	const struct cmd	*c = NULL;
	const char		*arg = NULL;
	size_t			 i, kwlen, arglen = 0;

	for (kwlen = 0; kwlen < len && line[kwlen] != ' '; kwlen++)
		;
	if (kwlen < len) {
		arg = line + kwlen + 1;
		arglen = len - kwlen - 1;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strlen(cmds[i].name) == kwlen &&
		    strncasecmp(cmds[i].name, line, kwlen) == 0) {
			c = &cmds[i];
			break;
		}
	}
	if (c == NULL) {
		for (i = 0; i < sizeof(authcmds) / sizeof(authcmds[0]); i++) {
			if (strlen(authcmds[i]) == kwlen &&
			    strncasecmp(authcmds[i], line, kwlen) == 0) {
				out_printf("-ERR Already logged in.\r\n");
				return;
			}
		}
		out_printf("-ERR Unknown command.\r\n");
		return;
	}
	log_debug("command %s", c->name);
	if (c->args == ARGS_NONE && arg != NULL) {
		out_printf("-ERR %s takes no arguments.\r\n", c->name);
		return;
	}
	if (c->args == ARGS_ONE && arg == NULL) {
		out_printf("-ERR Missing message number.\r\n");
		return;
	}
	c->fn(s, arg, arglen);
}

/*
 * Answer every complete line in the buffer.  A line is at most
 * MAILBOX_LINEMAX octets with its CRLF (RFC 2449); a longer one is
 * answered once and skipped up to its LF.
 */
static void
commands(struct session *s)
{
	unsigned char	*p, *lf;
	size_t		 off = 0, len;

	while (off < inlen) {
		p = inbuf + off;
		if ((lf = memchr(p, '\n', inlen - off)) == NULL) {
			if (discarding)
				off = inlen;
			else if (inlen - off >= MAILBOX_LINEMAX) {
				/* Even with its LF still to come, too long. */
				out_printf("-ERR Line too long.\r\n");
				discarding = 1;
				off = inlen;
			}
			break;
		}
		len = lf - p + 1;
		off += len;
		if (discarding) {
			discarding = 0;
			continue;
		}
		if (len > MAILBOX_LINEMAX) {
			out_printf("-ERR Line too long.\r\n");
			continue;
		}
		len--;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		command(s, (const char *)p, len);
	}
	inlen -= off;
	memmove(inbuf, inbuf + off, inlen);
}

/* Wait for client bytes no longer than the autologout timer. */
static void
input(struct session *s)
{
	struct pollfd	 pfd;
	ssize_t		 n;
	int		 ms;

	ms = s->timeout > INT_MAX / 1000 ? INT_MAX : s->timeout * 1000;
	for (;;) {
		if (mailbox_stopping) {
			out_printf("-ERR [SYS/TEMP] Server shutting down.\r\n");
			out_flush();
			session_end(s, "shutdown");
		}
		pfd.fd = s->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		switch (poll(&pfd, 1, ms)) {
		case -1:
			if (errno == EINTR)
				continue;
			log_warn("poll");
			session_end(s, "poll error");
		case 0:
			/* RFC 1939: a timeout must not enter UPDATE. */
			out_printf("-ERR Autologout: idle for too long.\r\n");
			out_flush();
			session_end(s, "autologout");
		default:
			break;
		}
		if ((n = read(s->fd, inbuf + inlen,
		    sizeof(inbuf) - inlen)) == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			log_debug("client read: %s", strerror(errno));
			session_end(s, "connection error");
		}
		if (n == 0)
			session_end(s, "disconnected");
		inlen += n;
		return;
	}
}

void
transaction_run(struct session *s)
{
	for (;;) {
		commands(s);
		out_flush();
		input(s);
	}
}
