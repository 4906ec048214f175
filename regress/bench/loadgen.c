/*
 * loadgen: the POP3S load generator of make bench.  One process, one
 * libevent loop, many non-blocking libtls client sessions; every reply
 * is checked and every mismatch counted as an error.
 *
 *	loadgen login [opts]	connect, TLS, AUTH PLAIN, STAT, QUIT
 *	loadgen retr [opts]	log in, LIST, RETR of every message, QUIT
 *	loadgen uidl [opts]	log in, UIDL, QUIT: times login and listing
 *	loadgen idle [opts]	hold -n authenticated sessions open
 *	loadgen crypt [-t s] hash password	crypt(3) checks per second
 *	loadgen hash cost password		a bcrypt ($2b$) hash
 *
 * Options: -p port (the address is always 127.0.0.1), -u user (with
 * -U n: users userN for N in 1..n, one session per user at a time),
 * -w password, -c concurrent sessions, -n sessions at most, -t seconds
 * to start sessions for, -T seconds a session may take, -e the message
 * count STAT, LIST and UIDL must show, -P commands in flight for RETR,
 * -W warm-up sessions not counted, -l a label for the result line,
 * -C ca-file to verify the server's certificate (default: unchecked,
 * as the handshake's signature is still verified).
 *
 * Each scenario prints one line on stdout, "result scenario=... key=value
 * ...", and exits 1 if any session failed.  idle prints "ready ..." once
 * its sessions are up, then waits for a line (or end of file) on its
 * standard input if that is a pipe, socket or terminal, or -t seconds,
 * before it logs them out.
 */

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#ifndef __OpenBSD__
#include <crypt.h>
#endif
#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tls.h>
#include <unistd.h>

#define HOST		"127.0.0.1"
#define SNI		"localhost"
#define RBUF_SMALL	(16 * 1024)
#define RBUF_LARGE	(256 * 1024)
#define WBUF_SIZE	4096
#define MAX_ERRLOG	10
#define MAX_ERRORS	1000	/* then start no more sessions */
#define UIDL_MAXLEN	70

enum scenario {
	SC_LOGIN,
	SC_RETR,
	SC_UIDL,
	SC_IDLE
};

enum state {
	S_CONNECT,
	S_HANDSHAKE,
	S_GREETING,
	S_AUTH,
	S_STAT,
	S_LIST,		/* the +OK line of LIST */
	S_LISTBODY,
	S_RETR,
	S_RETRBODY,
	S_UIDL,
	S_UIDLBODY,
	S_IDLE,
	S_QUIT,
	S_DONE
};

static const char *const state_names[] = {
	"connect", "handshake", "greeting", "auth", "stat", "list",
	"list-body", "retr", "retr-body", "uidl", "uidl-body", "idle",
	"quit", "done"
};

struct sess {
	int			 fd;
	int			 slot;		/* user number - 1, or -1 */
	struct tls		*tls;
	struct event		 ev;
	struct event		 tmo;
	int			 ev_set;
	enum state		 state;
	int			 warm;		/* warm-up: not counted */
	char			 user[128];
	unsigned char		*rbuf;
	size_t			 rcap, roff, rlen;
	char			 wbuf[WBUF_SIZE];
	size_t			 woff, wlen;
	double			 t_start, t_greet, t_auth, t_authok, t_end;
	double			 t_list;	/* LIST sent */
	/* LIST, RETR */
	uint64_t		*sizes;
	size_t			 nsizes, capsizes;
	size_t			 next_retr;	/* next RETR to send, 0-based */
	size_t			 cur_retr;	/* RETR being read */
	uint64_t		 octets;	/* of the current RETR */
	uint64_t		 total;		/* this session's RETR octets */
	/* UIDL */
	char			**uids;
	size_t			 nuids, capuids;
};

/* Settings. */
static enum scenario	 scenario;
static const char	*scname;
static int		 port;
static const char	*user = "bench";
static int		 nusers;		/* 0: user as it is */
static const char	*password = "benchpw";
static int		 conc = 1;
static long		 maxsess = 1000000;
static double		 duration = 10;
static double		 sess_timeout = 60;
static long		 expect = -1;
static int		 depth = 1;
static long		 warmup;
static const char	*label = "server";
static const char	*cafile;

/* State. */
static struct tls_config *tlscfg;
static struct event	 stop_ev, stdin_ev, hold_ev;
static double		 t0, t_first, t_last;
static double		 deadline;
static long		 started, completed, failed, inflight, warm_done;
static long		 errlogged;
static int		 starting_done;	/* no more sessions to start */
static unsigned char	*slots_busy;
static int		 next_slot;
static struct rusage	 ru0;
static int		 aborted;

/* Results. */
static double		*lat, *lat_hs, *lat_auth;
static size_t		 nlat, caplat;
static uint64_t		 total_octets;
static double		 total_xfer;	/* seconds of LIST..last RETR */
static long		 total_msgs;
static double		 uidl_login_ms = -1, uidl_list_ms = -1;
static long		 uidl_count = -1;

/* idle */
static struct sess	**idlers;
static long		 nidle, capidle, nup;	/* nup: idle, alive */
static int		 released;
static double		 t_ready;

static void	 usage(void) __attribute__((__noreturn__));
static double	 now(void);
static void	 sess_start(void);
static void	 sess_step(struct sess *);
static void	 sess_fail(struct sess *, const char *, ...)
		    __attribute__((__format__(printf, 2, 3)));
static void	 sess_free(struct sess *);
static void	 sess_finish(struct sess *);
static void	 maybe_start(void);
static void	 maybe_done(void);
static int	 parse(struct sess *);
static int	 queue(struct sess *, const char *, ...)
		    __attribute__((__format__(printf, 2, 3)));

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen login|retr|uidl|idle -p port [-u user] [-U n]\n"
	    "\t[-w password] [-c conc] [-n max] [-t seconds] [-T timeout]\n"
	    "\t[-e count] [-P depth] [-W warmup] [-l label] [-C cafile]\n"
	    "       loadgen crypt [-t seconds] hash password\n"
	    "       loadgen hash cost password\n");
	exit(2);
}

static double
now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

static void
errlog(const char *fmt, ...)
{
	va_list	 ap;

	if (errlogged++ >= MAX_ERRLOG)
		return;
	fprintf(stderr, "loadgen: %s: ", label);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---------------------------------------------------------------- */

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
b64(const unsigned char *in, size_t len, char *out)
{
	size_t	 i;
	uint32_t v;

	for (i = 0; i + 2 < len; i += 3) {
		v = in[i] << 16 | in[i + 1] << 8 | in[i + 2];
		*out++ = b64chars[v >> 18 & 63];
		*out++ = b64chars[v >> 12 & 63];
		*out++ = b64chars[v >> 6 & 63];
		*out++ = b64chars[v & 63];
	}
	if (len - i == 1) {
		v = in[i] << 16;
		*out++ = b64chars[v >> 18 & 63];
		*out++ = b64chars[v >> 12 & 63];
		*out++ = '=';
		*out++ = '=';
	} else if (len - i == 2) {
		v = in[i] << 16 | in[i + 1] << 8;
		*out++ = b64chars[v >> 18 & 63];
		*out++ = b64chars[v >> 12 & 63];
		*out++ = b64chars[v >> 6 & 63];
		*out++ = '=';
	}
	*out = '\0';
}

static int
queue(struct sess *s, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (s->woff == s->wlen)
		s->woff = s->wlen = 0;
	va_start(ap, fmt);
	n = vsnprintf(s->wbuf + s->wlen, sizeof(s->wbuf) - s->wlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(s->wbuf) - s->wlen)
		return (-1);
	s->wlen += n;
	return (0);
}

static int
queue_auth(struct sess *s)
{
	unsigned char	 raw[300];
	char		 enc[420];
	size_t		 ul = strlen(s->user), pl = strlen(password);

	if (ul + pl + 2 > sizeof(raw))
		return (-1);
	raw[0] = '\0';
	memcpy(raw + 1, s->user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, password, pl);
	b64(raw, ul + pl + 2, enc);
	explicit_bzero(raw, sizeof(raw));
	s->t_auth = now();
	return (queue(s, "AUTH PLAIN %s\r\n", enc));
}

/* ---------------------------------------------------------------- */

static void
oom(void)
{
	perror("loadgen: out of memory");
	exit(1);
}

static void	sess_cb(int, short, void *);

static void
arm_io(struct sess *s, short what)
{
	if (s->ev_set)
		event_del(&s->ev);
	event_set(&s->ev, s->fd, what, sess_cb, s);
	event_add(&s->ev, NULL);
	s->ev_set = 1;
}

static void
sess_cb(int fd, short what, void *arg)
{
	sess_step(arg);
}

static void
sess_timeout_cb(int fd, short what, void *arg)
{
	struct sess	*s = arg;

	sess_fail(s, "timed out after %.0fs", sess_timeout);
}

static int
take_slot(void)
{
	int	 i, n;

	if (nusers == 0)
		return (-1);
	for (i = 0; i < nusers; i++) {
		n = (next_slot + i) % nusers;
		if (!slots_busy[n]) {
			slots_busy[n] = 1;
			next_slot = (n + 1) % nusers;
			return (n);
		}
	}
	return (-2);
}

static void
sess_start(void)
{
	struct sockaddr_in	 sin;
	struct timeval		 tv;
	struct sess		*s;
	int			 one = 1, slot;

	if ((slot = take_slot()) == -2) {
		errlog("more sessions than users");
		failed++;
		starting_done = 1;
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		oom();
	s->slot = slot;
	if (slot >= 0)
		snprintf(s->user, sizeof(s->user), "%s%d", user, slot + 1);
	else
		snprintf(s->user, sizeof(s->user), "%s", user);
	s->rcap = (scenario == SC_RETR || scenario == SC_UIDL) ?
	    RBUF_LARGE : RBUF_SMALL;
	if ((s->rbuf = malloc(s->rcap)) == NULL)
		oom();
	s->warm = started < warmup;
	started++;
	inflight++;
	s->t_start = now();
	if (t_first == 0)
		t_first = s->t_start;
	evtimer_set(&s->tmo, sess_timeout_cb, s);
	tv.tv_sec = (time_t)sess_timeout;
	tv.tv_usec = (suseconds_t)((sess_timeout - tv.tv_sec) * 1e6);
	evtimer_add(&s->tmo, &tv);

	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd == -1) {
		s->state = S_CONNECT;
		sess_fail(s, "socket: %s", strerror(errno));
		return;
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	inet_pton(AF_INET, HOST, &sin.sin_addr);
	s->state = S_CONNECT;
	if (connect(s->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 &&
	    errno != EINPROGRESS) {
		sess_fail(s, "connect: %s", strerror(errno));
		return;
	}
	arm_io(s, EV_WRITE);
}

static void
sess_free(struct sess *s)
{
	size_t	 i;

	if (s->tls != NULL) {
		if (s->state == S_DONE)
			(void)tls_close(s->tls);
		tls_free(s->tls);
	}
	if (s->fd != -1)
		close(s->fd);
	if (s->ev_set)
		event_del(&s->ev);
	evtimer_del(&s->tmo);
	if (s->slot >= 0)
		slots_busy[s->slot] = 0;
	for (i = 0; i < s->nuids; i++)
		free(s->uids[i]);
	free(s->uids);
	free(s->sizes);
	free(s->rbuf);
	free(s);
}

static void
sess_fail(struct sess *s, const char *fmt, ...)
{
	char	 msg[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errlog("%s: %s: %s", s->user, state_names[s->state], msg);
	failed++;
	inflight--;
	if (s->state == S_IDLE || scenario == SC_IDLE) {
		long	 i;

		for (i = 0; i < nidle; i++)
			if (idlers[i] == s) {
				idlers[i] = NULL;
				nup--;
			}
	}
	sess_free(s);
	t_last = now();
	maybe_start();
	maybe_done();
}

static void
record(double total, double hs, double auth)
{
	double	*a, *b, *c;
	size_t	 n;

	if (nlat == caplat) {
		n = caplat ? caplat * 2 : 1024;
		if ((a = realloc(lat, n * sizeof(*a))) == NULL)
			goto fail;
		lat = a;
		if ((b = realloc(lat_hs, n * sizeof(*b))) == NULL)
			goto fail;
		lat_hs = b;
		if ((c = realloc(lat_auth, n * sizeof(*c))) == NULL)
			goto fail;
		lat_auth = c;
		caplat = n;
	}
	lat[nlat] = total;
	lat_hs[nlat] = hs;
	lat_auth[nlat] = auth;
	nlat++;
	return;
 fail:
	perror("loadgen: realloc");
	exit(1);
}

/* A session that ended as it should. */
static void
sess_finish(struct sess *s)
{
	s->t_end = now();
	inflight--;
	if (s->warm)
		warm_done++;
	else {
		completed++;
		t_last = s->t_end;
		record(s->t_end - s->t_start, s->t_greet - s->t_start,
		    s->t_authok - s->t_auth);
	}
	sess_free(s);
	maybe_start();
	maybe_done();
}

static void
maybe_start(void)
{
	if (aborted)
		return;
	if (scenario == SC_IDLE) {
		while (!starting_done && inflight < nup + conc &&
		    started < maxsess)
			sess_start();
		if (started >= maxsess)
			starting_done = 1;
		return;
	}
	while (!starting_done && inflight < conc) {
		/* At least one measured session, however short -t is. */
		if (started >= maxsess + warmup || failed >= MAX_ERRORS ||
		    (started > warmup && now() >= deadline)) {
			starting_done = 1;
			break;
		}
		if (started == warmup && warmup > 0 && inflight > 0)
			break;	/* warm-up first, then the clock */
		if (started == warmup) {
			t0 = now();
			deadline = t0 + duration;
			t_first = 0;
			getrusage(RUSAGE_SELF, &ru0);
		}
		sess_start();
	}
}

static void
release_idle(void)
{
	long		 i;
	struct sess	*s;

	if (released)
		return;
	released = 1;
	for (i = 0; i < nidle; i++) {
		if ((s = idlers[i]) == NULL)
			continue;
		idlers[i] = NULL;
		if (queue(s, "QUIT\r\n") == -1) {
			sess_fail(s, "queue");
			continue;
		}
		s->state = S_QUIT;
		sess_step(s);
	}
	maybe_done();
}

static void
stdin_cb(int fd, short what, void *arg)
{
	char	 buf[256];

	/* Any line, or the end of the input, ends the hold. */
	(void)read(0, buf, sizeof(buf));
	event_del(&stdin_ev);
	release_idle();
}

static void
hold_cb(int fd, short what, void *arg)
{
	release_idle();
}

static void
maybe_done(void)
{
	struct timeval	 tv;
	struct stat	 sb;

	if (scenario == SC_IDLE && !released) {
		if (!starting_done || inflight != nup || t_ready != 0)
			return;
		/* Every session is up, or failed: report and hold. */
		t_ready = now();
		printf("ready scenario=idle label=%s sessions=%ld errors=%ld "
		    "seconds=%.3f\n", label, nup, failed, t_ready - t0);
		fflush(stdout);
		/* A file or /dev/null cannot be polled: -t alone ends it. */
		if (fstat(0, &sb) == 0 && (S_ISFIFO(sb.st_mode) ||
		    S_ISSOCK(sb.st_mode) || isatty(0))) {
			event_set(&stdin_ev, 0, EV_READ, stdin_cb, NULL);
			event_add(&stdin_ev, NULL);
		}
		evtimer_set(&hold_ev, hold_cb, NULL);
		tv.tv_sec = (time_t)duration;
		tv.tv_usec = 0;
		evtimer_add(&hold_ev, &tv);
		return;
	}
	if (starting_done && inflight == 0)
		event_loopbreak();
}

/* ---------------------------------------------------------------- */

/*
 * One complete line at roff, or NULL: *len with its CRLF.  A line that
 * fills the whole buffer is an error (-1 in *len).
 */
static char *
getline_(struct sess *s, size_t *len)
{
	unsigned char	*p, *nl;

	p = s->rbuf + s->roff;
	nl = memchr(p, '\n', s->rlen - s->roff);
	if (nl == NULL) {
		*len = (s->roff == 0 && s->rlen == s->rcap) ? (size_t)-1 : 0;
		return (NULL);
	}
	*len = nl - p + 1;
	s->roff += *len;
	return ((char *)p);
}

static int
is_ok(const char *line, size_t len)
{
	return (len >= 5 && memcmp(line, "+OK", 3) == 0 &&
	    (line[3] == ' ' || line[3] == '\r') &&
	    line[len - 2] == '\r');
}

static void
show(const char *line, size_t len, char *buf, size_t bufsz)
{
	size_t	 i, n = 0;

	for (i = 0; i < len && n + 1 < bufsz && i < 120; i++)
		buf[n++] = (line[i] >= 0x20 && line[i] < 0x7f) ? line[i] : '.';
	buf[n] = '\0';
}

static int
bad(struct sess *s, const char *what, const char *line, size_t len)
{
	char	 buf[128];

	show(line, len, buf, sizeof(buf));
	sess_fail(s, "%s: \"%s\"", what, buf);
	return (-1);
}

/* "+OK n m" of STAT. */
static int
check_stat(struct sess *s, const char *line, size_t len)
{
	char		 buf[128];
	long long	 n, m;

	show(line, len, buf, sizeof(buf));
	if (sscanf(buf, "+OK %lld %lld", &n, &m) != 2 || n < 0 || m < 0)
		return (-1);
	if (expect >= 0 && n != expect)
		return (-1);
	return (0);
}

static int
start_retrs(struct sess *s)
{
	while (s->next_retr < s->nsizes &&
	    s->next_retr - s->cur_retr < (size_t)depth) {
		if (queue(s, "RETR %zu\r\n", s->next_retr + 1) == -1)
			break;
		s->next_retr++;
	}
	return (0);
}

static int
add_size(struct sess *s, uint64_t size)
{
	uint64_t	*tmp;
	size_t		 n;

	if (s->nsizes == s->capsizes) {
		n = s->capsizes ? s->capsizes * 2 : 1024;
		if ((tmp = realloc(s->sizes, n * sizeof(*tmp))) == NULL)
			return (-1);
		s->sizes = tmp;
		s->capsizes = n;
	}
	s->sizes[s->nsizes++] = size;
	return (0);
}

static int
add_uid(struct sess *s, const char *uid, size_t len)
{
	char	**tmp;
	size_t	 n;

	if (s->nuids == s->capuids) {
		n = s->capuids ? s->capuids * 2 : 1024;
		if ((tmp = realloc(s->uids, n * sizeof(*tmp))) == NULL)
			return (-1);
		s->uids = tmp;
		s->capuids = n;
	}
	if ((s->uids[s->nuids] = strndup(uid, len)) == NULL)
		return (-1);
	s->nuids++;
	return (0);
}

static int
cmpstr(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/* The session is logged in: what the scenario does next. */
static int
after_login(struct sess *s)
{
	switch (scenario) {
	case SC_LOGIN:
	case SC_IDLE:
		s->state = S_STAT;
		return (queue(s, "STAT\r\n"));
	case SC_RETR:
		s->state = S_LIST;
		s->t_list = now();
		return (queue(s, "LIST\r\n"));
	case SC_UIDL:
		s->state = S_UIDL;
		return (queue(s, "UIDL\r\n"));
	}
	return (-1);
}

/* A RETR's body: count the octets of the message, dot-unstuffed. */
static int
retr_body(struct sess *s)
{
	unsigned char	*p, *end, *nl;
	size_t		 len;

	p = s->rbuf + s->roff;
	end = s->rbuf + s->rlen;
	while (p < end) {
		if ((nl = memchr(p, '\n', end - p)) == NULL)
			break;
		len = nl - p + 1;
		if (len < 2 || nl[-1] != '\r') {
			s->roff = p - s->rbuf;
			return (bad(s, "line without CRLF", (char *)p, len));
		}
		if (p[0] == '.') {
			if (len == 3) {
				p = nl + 1;
				s->roff = p - s->rbuf;
				if (s->octets != s->sizes[s->cur_retr]) {
					sess_fail(s, "RETR %zu: %" PRIu64
					    " octets, LIST said %" PRIu64,
					    s->cur_retr + 1, s->octets,
					    s->sizes[s->cur_retr]);
					return (-1);
				}
				s->total += s->octets;
				s->octets = 0;
				s->cur_retr++;
				if (s->cur_retr == s->nsizes) {
					if (!s->warm) {
						total_octets += s->total;
						total_msgs += s->nsizes;
						total_xfer += now() - s->t_list;
					}
					s->state = S_QUIT;
					return (queue(s, "QUIT\r\n") == -1 ?
					    -1 : 1);
				}
				s->state = S_RETR;
				start_retrs(s);
				return (1);
			}
			len--;	/* the stuffed dot */
		}
		s->octets += len;
		p = nl + 1;
	}
	s->roff = p - s->rbuf;
	if (s->roff == 0 && s->rlen == s->rcap)
		return (bad(s, "line too long", (char *)p, 40));
	return (0);
}

/*
 * Take what complete lines the buffer holds: 1 if something moved, 0 if
 * more input is needed, -1 after sess_fail().
 */
static int
parse(struct sess *s)
{
	char		*line;
	size_t		 len, i;
	unsigned long long n, sz;
	char		 buf[160];

	if (s->state == S_RETRBODY)
		return (retr_body(s));
	if ((line = getline_(s, &len)) == NULL) {
		if (len == (size_t)-1)
			return (bad(s, "line too long",
			    (char *)s->rbuf, 40));
		return (0);
	}
	switch (s->state) {
	case S_GREETING:
		if (!is_ok(line, len))
			return (bad(s, "greeting", line, len));
		s->t_greet = now();
		if (queue_auth(s) == -1)
			return (bad(s, "user name too long", "", 0));
		s->state = S_AUTH;
		return (1);
	case S_AUTH:
		if (!is_ok(line, len))
			return (bad(s, "AUTH PLAIN", line, len));
		s->t_authok = now();
		if (after_login(s) == -1)
			return (bad(s, "queue", "", 0));
		return (1);
	case S_STAT:
		if (!is_ok(line, len) || check_stat(s, line, len) == -1)
			return (bad(s, "STAT", line, len));
		if (scenario == SC_IDLE) {
			s->state = S_IDLE;
			if (nidle == capidle) {
				struct sess	**tmp;
				long		  nc = capidle ? capidle * 2 : 256;

				if ((tmp = realloc(idlers,
				    nc * sizeof(*tmp))) == NULL)
					return (bad(s, "realloc", "", 0));
				idlers = tmp;
				capidle = nc;
			}
			idlers[nidle++] = s;
			nup++;
			evtimer_del(&s->tmo);
			maybe_start();
			maybe_done();
			return (1);
		}
		s->state = S_QUIT;
		return (queue(s, "QUIT\r\n") == -1 ? -1 : 1);
	case S_LIST:
		if (!is_ok(line, len))
			return (bad(s, "LIST", line, len));
		s->state = S_LISTBODY;
		return (1);
	case S_LISTBODY:
		if (len == 3 && line[0] == '.') {
			if (expect >= 0 && s->nsizes != (size_t)expect) {
				sess_fail(s, "LIST: %zu messages, not %ld",
				    s->nsizes, expect);
				return (-1);
			}
			if (s->nsizes == 0) {
				s->state = S_QUIT;
				return (queue(s, "QUIT\r\n") == -1 ? -1 : 1);
			}
			s->state = S_RETR;
			start_retrs(s);
			return (1);
		}
		show(line, len, buf, sizeof(buf));
		if (line[len - 2] != '\r' ||
		    sscanf(buf, "%llu %llu", &n, &sz) != 2 ||
		    n != s->nsizes + 1 || add_size(s, sz) == -1)
			return (bad(s, "LIST line", line, len));
		return (1);
	case S_RETR:
		if (!is_ok(line, len))
			return (bad(s, "RETR", line, len));
		s->state = S_RETRBODY;
		s->octets = 0;
		return (1);
	case S_UIDL:
		if (!is_ok(line, len))
			return (bad(s, "UIDL", line, len));
		s->state = S_UIDLBODY;
		return (1);
	case S_UIDLBODY:
		if (len == 3 && line[0] == '.') {
			s->t_end = now();
			if (expect >= 0 && s->nuids != (size_t)expect) {
				sess_fail(s, "UIDL: %zu messages, not %ld",
				    s->nuids, expect);
				return (-1);
			}
			qsort(s->uids, s->nuids, sizeof(*s->uids), cmpstr);
			for (i = 1; i < s->nuids; i++)
				if (strcmp(s->uids[i - 1], s->uids[i]) == 0) {
					sess_fail(s, "UIDL: %s twice",
					    s->uids[i]);
					return (-1);
				}
			if (!s->warm) {
				uidl_login_ms = (s->t_authok - s->t_auth) * 1e3;
				uidl_list_ms = (s->t_end - s->t_authok) * 1e3;
				uidl_count = s->nuids;
			}
			s->state = S_QUIT;
			return (queue(s, "QUIT\r\n") == -1 ? -1 : 1);
		}
		{
			char	*sp, *end = line + len - 2;

			if (line[len - 2] != '\r')
				return (bad(s, "UIDL line", line, len));
			n = strtoull(line, &sp, 10);
			if (sp == line || *sp != ' ' ||
			    n != s->nuids + 1 || end - sp - 1 < 1 ||
			    end - sp - 1 > UIDL_MAXLEN)
				return (bad(s, "UIDL line", line, len));
			for (i = 1; sp + i < end; i++)
				if (sp[i] < 0x21 || sp[i] > 0x7e)
					return (bad(s, "UIDL line", line,
					    len));
			if (add_uid(s, sp + 1, end - sp - 1) == -1)
				return (bad(s, "strndup", "", 0));
		}
		return (1);
	case S_IDLE:
		return (bad(s, "unexpected while idle", line, len));
	case S_QUIT:
		if (!is_ok(line, len))
			return (bad(s, "QUIT", line, len));
		s->state = S_DONE;
		return (1);
	default:
		return (bad(s, "unexpected", line, len));
	}
}

/* Drive the session as far as it goes without blocking. */
static void
sess_step(struct sess *s)
{
	ssize_t		 n;
	socklen_t	 sl;
	int		 r, e;

	for (;;) {
		switch (s->state) {
		case S_CONNECT:
			sl = sizeof(e);
			if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e,
			    &sl) == -1)
				e = errno;
			if (e == EINPROGRESS) {
				arm_io(s, EV_WRITE);
				return;
			}
			if (e != 0) {
				sess_fail(s, "connect: %s", strerror(e));
				return;
			}
			if ((s->tls = tls_client()) == NULL ||
			    tls_configure(s->tls, tlscfg) == -1 ||
			    tls_connect_socket(s->tls, s->fd, SNI) == -1) {
				sess_fail(s, "tls_connect_socket: %s",
				    s->tls ? tls_error(s->tls) : "no memory");
				return;
			}
			s->state = S_HANDSHAKE;
			continue;
		case S_HANDSHAKE:
			r = tls_handshake(s->tls);
			if (r == TLS_WANT_POLLIN || r == TLS_WANT_POLLOUT) {
				arm_io(s, r == TLS_WANT_POLLIN ?
				    EV_READ : EV_WRITE);
				return;
			}
			if (r == -1) {
				sess_fail(s, "%s", tls_error(s->tls));
				return;
			}
			s->state = S_GREETING;
			continue;
		case S_DONE:
			sess_finish(s);
			return;
		default:
			break;
		}

		/* Commands out first. */
		while (s->woff < s->wlen) {
			n = tls_write(s->tls, s->wbuf + s->woff,
			    s->wlen - s->woff);
			if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
				arm_io(s, n == TLS_WANT_POLLIN ?
				    EV_READ : EV_WRITE);
				return;
			}
			if (n == -1) {
				sess_fail(s, "tls_write: %s",
				    tls_error(s->tls));
				return;
			}
			s->woff += n;
		}

		if ((r = parse(s)) == -1)
			return;
		if (r == 1)
			continue;
		if (s->state == S_IDLE && released)
			continue;

		/* Need input. */
		if (s->roff > 0 && (s->roff == s->rlen ||
		    s->rcap - s->rlen < s->rcap / 4)) {
			memmove(s->rbuf, s->rbuf + s->roff, s->rlen - s->roff);
			s->rlen -= s->roff;
			s->roff = 0;
		}
		n = tls_read(s->tls, s->rbuf + s->rlen, s->rcap - s->rlen);
		if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
			arm_io(s, n == TLS_WANT_POLLIN ? EV_READ : EV_WRITE);
			return;
		}
		if (n == -1) {
			sess_fail(s, "tls_read: %s", tls_error(s->tls));
			return;
		}
		if (n == 0) {
			sess_fail(s, "connection closed");
			return;
		}
		s->rlen += n;
	}
}

/* ---------------------------------------------------------------- */

static int
cmpd(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return (x < y ? -1 : x > y);
}

static double
pct(double *v, size_t n, double p)
{
	size_t	 i;

	if (n == 0)
		return (-1);
	i = (size_t)(p * (n - 1) + 0.5);
	return (v[i]);
}

static void
stop_cb(int fd, short what, void *arg)
{
	errlog("gave up: sessions still running at the time limit");
	aborted = 1;
	failed += inflight;
	event_loopbreak();
}

static double
cpu_since(const struct rusage *a)
{
	struct rusage	 b;

	getrusage(RUSAGE_SELF, &b);
	return ((b.ru_utime.tv_sec - a->ru_utime.tv_sec) +
	    (b.ru_utime.tv_usec - a->ru_utime.tv_usec) / 1e6 +
	    (b.ru_stime.tv_sec - a->ru_stime.tv_sec) +
	    (b.ru_stime.tv_usec - a->ru_stime.tv_usec) / 1e6);
}

static void
report(void)
{
	double	 secs, cpu;

	secs = (t_last > t0 ? t_last : now()) - t0;
	cpu = cpu_since(&ru0);
	printf("result scenario=%s label=%s", scname, label);
	switch (scenario) {
	case SC_LOGIN:
		qsort(lat, nlat, sizeof(*lat), cmpd);
		qsort(lat_hs, nlat, sizeof(*lat_hs), cmpd);
		qsort(lat_auth, nlat, sizeof(*lat_auth), cmpd);
		printf(" conc=%d sessions=%ld errors=%ld seconds=%.3f "
		    "rate=%.2f p50_ms=%.2f p99_ms=%.2f tls_p50_ms=%.2f "
		    "auth_p50_ms=%.2f auth_p99_ms=%.2f",
		    conc, completed, failed, secs,
		    secs > 0 ? completed / secs : 0,
		    pct(lat, nlat, .5) * 1e3, pct(lat, nlat, .99) * 1e3,
		    pct(lat_hs, nlat, .5) * 1e3,
		    pct(lat_auth, nlat, .5) * 1e3,
		    pct(lat_auth, nlat, .99) * 1e3);
		break;
	case SC_RETR:
		printf(" conc=%d sessions=%ld errors=%ld messages=%ld "
		    "octets=%" PRIu64 " seconds=%.3f mbps=%.2f", conc,
		    completed, failed, total_msgs, total_octets, total_xfer,
		    total_xfer > 0 ? total_octets / total_xfer / 1e6 : 0);
		break;
	case SC_UIDL:
		printf(" sessions=%ld errors=%ld messages=%ld login_ms=%.1f "
		    "uidl_ms=%.1f total_ms=%.1f", completed, failed,
		    uidl_count, uidl_login_ms, uidl_list_ms,
		    uidl_login_ms + uidl_list_ms);
		break;
	case SC_IDLE:
		printf(" sessions=%ld errors=%ld", completed, failed);
		break;
	}
	printf(" client_cpu_s=%.2f client_cpu_pct=%.0f\n", cpu,
	    secs > 0 ? 100 * cpu / secs : 0);
	fflush(stdout);
}

/* ---------------------------------------------------------------- */

#ifdef __OpenBSD__
static int
check(const char *hash, const char *pass)
{
	return (crypt_checkpass(pass, hash) == 0);
}

static int
newhash(long cost, const char *pass, char *out, size_t len)
{
	char	 pref[32];

	snprintf(pref, sizeof(pref), "bcrypt,%ld", cost);
	return (crypt_newhash(pass, pref, out, len));
}
#else
static int
check(const char *hash, const char *pass)
{
	static struct crypt_data	 cd;
	const char			*h;

	h = crypt_rn(pass, hash, &cd, sizeof(cd));
	return (h != NULL && strcmp(h, hash) == 0);
}

static int
newhash(long cost, const char *pass, char *out, size_t len)
{
	static struct crypt_data	 cd;
	char				 setting[CRYPT_GENSALT_OUTPUT_SIZE];
	const char			*h;

	if (crypt_gensalt_rn("$2b$", cost, NULL, 0, setting,
	    sizeof(setting)) == NULL)
		return (-1);
	if ((h = crypt_rn(pass, setting, &cd, sizeof(cd))) == NULL ||
	    h[0] == '*' || strlen(h) >= len)
		return (-1);
	memcpy(out, h, strlen(h) + 1);
	return (0);
}
#endif

/* One core's password checks per second, for the ceilings. */
static int
do_crypt(int argc, char *argv[])
{
	double	 start, t;
	long	 n = 0;

	if (argc != 2)
		usage();
	start = now();
	do {
		if (!check(argv[0], argv[1])) {
			fprintf(stderr, "loadgen: crypt: no match\n");
			return (1);
		}
		n++;
	} while ((t = now() - start) < duration);
	printf("result scenario=crypt checks=%ld seconds=%.3f rate=%.2f "
	    "ms_per_check=%.2f\n", n, t, n / t, 1e3 * t / n);
	return (0);
}

static int
do_hash(int argc, char *argv[])
{
	char	 hash[128];
	long	 cost;

	if (argc != 2)
		usage();
	cost = strtol(argv[0], NULL, 10);
	if (cost < 4 || cost > 31)
		usage();
	if (newhash(cost, argv[1], hash, sizeof(hash)) == -1) {
		perror("loadgen: hash");
		return (1);
	}
	printf("%s\n", hash);
	return (0);
}

int
main(int argc, char *argv[])
{
	struct timeval	 tv;
	const char	*errstr = NULL;
	char		*ep;
	int		 ch;

	if (argc < 2)
		usage();
	scname = argv[1];
	if (strcmp(scname, "login") == 0)
		scenario = SC_LOGIN;
	else if (strcmp(scname, "retr") == 0)
		scenario = SC_RETR;
	else if (strcmp(scname, "uidl") == 0)
		scenario = SC_UIDL;
	else if (strcmp(scname, "idle") == 0)
		scenario = SC_IDLE;
	else if (strcmp(scname, "crypt") != 0 && strcmp(scname, "hash") != 0)
		usage();
	argc--;
	argv++;
	while ((ch = getopt(argc, argv, "C:c:e:l:n:P:p:T:t:U:u:W:w:")) != -1) {
		errno = 0;
		switch (ch) {
		case 'C':
			cafile = optarg;
			break;
		case 'c':
			conc = strtol(optarg, &ep, 10);
			if (*ep || conc < 1 || conc > 10000)
				errstr = "-c";
			break;
		case 'e':
			expect = strtol(optarg, &ep, 10);
			if (*ep || expect < 0)
				errstr = "-e";
			break;
		case 'l':
			label = optarg;
			break;
		case 'n':
			maxsess = strtol(optarg, &ep, 10);
			if (*ep || maxsess < 1)
				errstr = "-n";
			break;
		case 'P':
			depth = strtol(optarg, &ep, 10);
			if (*ep || depth < 1 || depth > 100)
				errstr = "-P";
			break;
		case 'p':
			port = strtol(optarg, &ep, 10);
			if (*ep || port < 1 || port > 65535)
				errstr = "-p";
			break;
		case 'T':
			sess_timeout = strtod(optarg, &ep);
			if (*ep || sess_timeout <= 0 || sess_timeout > 3600)
				errstr = "-T";
			break;
		case 't':
			duration = strtod(optarg, &ep);
			if (*ep || duration < 0 || duration > 3600)
				errstr = "-t";
			break;
		case 'U':
			nusers = strtol(optarg, &ep, 10);
			if (*ep || nusers < 1 || nusers > 1000000)
				errstr = "-U";
			break;
		case 'u':
			user = optarg;
			break;
		case 'W':
			warmup = strtol(optarg, &ep, 10);
			if (*ep || warmup < 0)
				errstr = "-W";
			break;
		case 'w':
			password = optarg;
			break;
		default:
			usage();
		}
		if (errstr != NULL) {
			fprintf(stderr, "loadgen: bad %s %s\n", errstr, optarg);
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (strcmp(scname, "crypt") == 0)
		return (do_crypt(argc, argv));
	if (strcmp(scname, "hash") == 0)
		return (do_hash(argc, argv));
	if (argc != 0 || port == 0)
		usage();
	if (strlen(user) > 100)
		usage();

	signal(SIGPIPE, SIG_IGN);
	if (nusers > 0 && (slots_busy = calloc(nusers, 1)) == NULL)
		return (1);
	if (scenario == SC_IDLE && nusers > 0 && maxsess > nusers) {
		fprintf(stderr, "loadgen: idle: -n above -U\n");
		return (2);
	}
	if (scenario == SC_UIDL && maxsess == 1000000)
		maxsess = 1;

	if ((tlscfg = tls_config_new()) == NULL)
		return (1);
	if (cafile != NULL) {
		if (tls_config_set_ca_file(tlscfg, cafile) == -1) {
			fprintf(stderr, "loadgen: %s: %s\n", cafile,
			    tls_config_error(tlscfg));
			return (1);
		}
	} else {
		tls_config_insecure_noverifycert(tlscfg);
		tls_config_insecure_noverifyname(tlscfg);
	}
	event_init();

	/* A hard limit on the whole run. */
	evtimer_set(&stop_ev, stop_cb, NULL);
	tv.tv_sec = (time_t)(duration + sess_timeout + 30);
	if (scenario == SC_IDLE)
		tv.tv_sec += (time_t)(sess_timeout * 2);
	tv.tv_usec = 0;
	evtimer_add(&stop_ev, &tv);

	t0 = now();
	deadline = t0 + duration;
	getrusage(RUSAGE_SELF, &ru0);
	maybe_start();
	maybe_done();
	/* A loop break before the loop runs would be forgotten. */
	if (inflight > 0)
		event_dispatch();

	if (scenario == SC_IDLE) {
		/* Only the sessions that were up count. */
		t_last = now();
	}
	report();
	return (failed > 0 || completed == 0);
}
