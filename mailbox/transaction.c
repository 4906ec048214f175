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
static void	 cmd_dele(struct session *, const char *, size_t);
static void	 cmd_rset(struct session *, const char *, size_t);
static void	 cmd_noop(struct session *, const char *, size_t);
static void	 cmd_capa(struct session *, const char *, size_t);
static void	 cmd_quit(struct session *, const char *, size_t);
static struct msg *msg_arg(struct session *, const char *, size_t, size_t *);
static void	 totals(struct session *, size_t *, uint64_t *);
static void	 command(struct session *, const char *, size_t);
static void	 commands(struct session *);
static void	 input(struct session *);

static const struct cmd cmds[] = {
	{ "STAT", ARGS_NONE, cmd_stat },
	{ "LIST", ARGS_OPTIONAL, cmd_list },
	{ "RETR", ARGS_ONE, cmd_retr },
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
		if ((m = msg_arg(s, arg, len, &n)) == NULL)
			return;
		if (m->flags & MSG_DELETED) {
			out_printf("-ERR No such message.\r\n");
			return;
		}
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

/* Streamed in chunks: a message is never held in memory whole. */
static void
cmd_retr(struct session *s, const char *arg, size_t len)
{
	static unsigned char	 in[MAILBOX_CHUNK];
	static unsigned char	 out[XFORM_OUTLEN(MAILBOX_CHUNK)];
	struct xform		 x;
	struct msg		*m;
	ssize_t			 r;
	size_t			 n;
	int			 fd;

	if ((m = msg_arg(s, arg, len, &n)) == NULL)
		return;
	if (m->flags & MSG_DELETED) {
		out_printf("-ERR No such message.\r\n");
		return;
	}
	if ((fd = maildir_open(m)) == -1) {
		if (errno == ENOENT) {
			log_warnx("message %zu (cur/%s) is gone", n,
			    safename(m->name));
			out_printf("-ERR [SYS/TEMP] Message no longer "
			    "exists.\r\n");
		} else {
			log_warn("open cur/%s", safename(m->name));
			out_printf("-ERR [SYS/TEMP] Cannot read message."
			    "\r\n");
		}
		return;
	}

	out_printf("+OK %llu octets\r\n", (unsigned long long)m->size);
	xform_init(&x, 1);
	for (;;) {
		if ((r = read(fd, in, sizeof(in))) == -1) {
			if (errno == EINTR)
				continue;
			/* The client has a part: a cut connection says so. */
			log_warn("read cur/%s", safename(m->name));
			close(fd);
			session_end(s, "message read error");
		}
		if (r == 0)
			break;
		out_write(out, xform_chunk(&x, in, r, out));
	}
	close(fd);
	out_write(out, xform_finish(&x, out));
	out_write(".\r\n", 3);
	if (x.size != m->size)
		log_warnx("cur/%s changed: %llu octets sent, %llu announced",
		    safename(m->name), (unsigned long long)x.size,
		    (unsigned long long)m->size);
	s->retrieved++;
	log_debug("retrieved message %zu, %llu octets", n,
	    (unsigned long long)x.size);
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

/* USER is not valid after login; TOP and UIDL are not served yet. */
static void
cmd_capa(struct session *s, const char *arg, size_t len)
{
	out_printf("+OK Capability list follows\r\n"
	    "RESP-CODES\r\n"
	    "PIPELINING\r\n"
	    "IMPLEMENTATION pop3d\r\n"
	    ".\r\n");
}

/*
 * The UPDATE state.  Each file goes before its row: a crash between
 * the two leaves a row without a file, which the next scan drops, so a
 * message is never lost or shown twice.
 */
static void
cmd_quit(struct session *s, const char *arg, size_t len)
{
	struct msg	*m;
	size_t		 i;
	uint32_t	 removed = 0, failed = 0;

	for (i = 0; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		if (!(m->flags & MSG_DELETED))
			continue;
		if (maildir_unlink(m) == -1) {
			failed++;
			continue;
		}
		m->flags |= MSG_REMOVED;
		removed++;
	}
	/* The files are gone; stale rows go at the next scan. */
	if (removed > 0 && index_remove(s) == -1)
		log_warnx("index rows of deleted messages left for the "
		    "next session");
	s->deleted = removed;
	if (failed > 0) {
		log_warnx("%u deleted messages not removed", failed);
		out_printf("-ERR [SYS/TEMP] Some deleted messages not "
		    "removed.\r\n");
	} else
		out_printf("+OK Bye, %u messages deleted.\r\n", removed);
	out_flush();
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
