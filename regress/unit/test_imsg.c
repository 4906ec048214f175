/*
 * Unit tests for common/imsg.c and common/imsgev.c.
 * Prints "PASS: name" or "FAIL: name (reason)" per case; exits 1 if any
 * case failed.
 */

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"
#include "imsgev.h"

#define MAXDATA		(IMSG_MAXSIZE - IMSG_HEADER_SIZE)
#define EV_NMSG		1000
#define LEAK_ROUNDS	200

static int	 failures;
static char	 reason[256];

static const char *
why(const char *fmt, ...)
    __attribute__((__format__ (printf, 1, 2)));

/* Format a failure reason into a static buffer. */
static const char *
why(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return (reason);
}

static void
run(const char *name, const char *(*fn)(void))
{
	const char	*r;

	if ((r = fn()) == NULL)
		printf("PASS: %s\n", name);
	else {
		printf("FAIL: %s (%s)\n", name, r);
		failures++;
	}
	fflush(stdout);
}

static unsigned char
pattern(uint32_t seq, size_t i)
{
	return ((seq * 31 + i * 7 + 1) & 0xff);
}

static void
fill(unsigned char *p, size_t len, uint32_t seq)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		p[i] = pattern(seq, i);
}

static int
check(const unsigned char *p, size_t len, uint32_t seq)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (p[i] != pattern(seq, i))
			return (-1);
	return (0);
}

static int
setnonblock(int fd)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return (-1);
	return (fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

static int
mkpair(int sv[2], int nonblock)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return (-1);
	if (nonblock && (setnonblock(sv[0]) == -1 ||
	    setnonblock(sv[1]) == -1)) {
		close(sv[0]);
		close(sv[1]);
		return (-1);
	}
	return (0);
}

/* Open descriptors of this process. */
static int
count_fds(void)
{
#ifdef __OpenBSD__
	return (getdtablecount());
#else
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return (n - 1);		/* the directory's own */
#endif
}

static int
fd_is_closed(int fd)
{
	return (fcntl(fd, F_GETFD) == -1 && errno == EBADF);
}

/* A non-blocking pipe read end: 0 at EOF, i.e. every writer closed. */
static ssize_t
read_nb(int fd, void *buf, size_t len)
{
	if (setnonblock(fd) == -1)
		return (-1);
	return (read(fd, buf, len));
}

/* Take one message from a blocking imsgbuf, reading as needed. */
static int
recv_one(struct imsgbuf *ib, struct imsg *imsg)
{
	ssize_t	 n;

	for (;;) {
		if ((n = imsg_get(ib, imsg)) == -1)
			return (-1);
		if (n > 0)
			return (0);
		if ((n = imsg_read(ib)) == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return (-1);
	}
}

static const char *
test_roundtrip(void)
{
	static const size_t	 sizes[] = { 0, 1, 2, 19, 20, 100, 1000,
	    4096, 12345, MAXDATA - 1, MAXDATA, 0, 7, MAXDATA };
	const size_t		 nsizes = sizeof(sizes) / sizeof(sizes[0]);
	struct imsgbuf		 a, b;
	struct imsg		 imsg;
	struct pollfd		 pfd;
	unsigned char		*buf;
	const char		*r = NULL;
	size_t			 got = 0, i;
	ssize_t			 n;
	int			 sv[2];

	if (mkpair(sv, 1) == -1)
		return (why("socketpair: %s", strerror(errno)));
	if ((buf = malloc(MAXDATA)) == NULL)
		return (why("malloc"));
	if (imsg_init(&a, sv[0]) == -1 || imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));

	for (i = 0; i < nsizes; i++) {
		fill(buf, sizes[i], i);
		if (imsg_compose(&a, 100 + i, i * 7, i + 1, -1, buf,
		    sizes[i]) != 1) {
			r = why("imsg_compose %zu: %s", sizes[i],
			    strerror(errno));
			goto done;
		}
	}
	if (a.w.queued != nsizes) {
		r = why("queued %u, want %zu", a.w.queued, nsizes);
		goto done;
	}

	/* Both ends non-blocking: alternate writing and reading. */
	while (got < nsizes) {
		if (a.w.queued > 0 && msgbuf_write(&a.w) != 1) {
			r = why("msgbuf_write: %s", strerror(errno));
			goto done;
		}
		if ((n = imsg_read(&b)) == 0) {
			r = why("imsg_read: unexpected EOF");
			goto done;
		}
		if (n == -1 && errno != EAGAIN && errno != EINTR) {
			r = why("imsg_read: %s", strerror(errno));
			goto done;
		}
		while ((n = imsg_get(&b, &imsg)) != 0) {
			if (n == -1) {
				r = why("imsg_get: %s", strerror(errno));
				goto done;
			}
			if (got >= nsizes) {
				r = why("more messages than sent");
				imsg_free(&imsg);
				goto done;
			}
			if (imsg.hdr.type != 100 + got ||
			    imsg.hdr.peerid != got * 7 ||
			    imsg.hdr.pid != got + 1 ||
			    imsg.hdr.flags != 0 || imsg.fd != -1 ||
			    (size_t)n != IMSG_HEADER_SIZE + sizes[got] ||
			    imsg.hdr.len != n ||
			    imsg_datalen(&imsg) != sizes[got]) {
				r = why("message %zu: bad header", got);
				imsg_free(&imsg);
				goto done;
			}
			if (sizes[got] == 0 && imsg.data != NULL) {
				r = why("message %zu: data not NULL", got);
				imsg_free(&imsg);
				goto done;
			}
			if (sizes[got] > 0 && (imsg.data == NULL ||
			    check(imsg.data, sizes[got], got) == -1)) {
				r = why("message %zu: bad data", got);
				imsg_free(&imsg);
				goto done;
			}
			imsg_free(&imsg);
			got++;
		}
		if (got < nsizes && a.w.queued == 0) {
			pfd.fd = sv[1];
			pfd.events = POLLIN;
			if (poll(&pfd, 1, 5000) == 0) {
				r = why("timeout after %zu messages", got);
				goto done;
			}
		}
	}
	if (b.rlen != 0)
		r = why("%zu bytes left over", b.rlen);
 done:
	imsg_clear(&a);
	imsg_clear(&b);
	close(sv[0]);
	close(sv[1]);
	free(buf);
	return (r);
}

static const char *
test_default_pid(void)
{
	struct imsgbuf	 a, b;
	struct imsg	 imsg;
	const char	*r = NULL;
	int		 sv[2];

	if (mkpair(sv, 0) == -1)
		return (why("socketpair: %s", strerror(errno)));
	if (imsg_init(&a, sv[0]) == -1 || imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));
	if (imsg_compose(&a, 1, 0, 0, -1, NULL, 0) != 1 ||
	    imsg_flush(&a) == -1 || recv_one(&b, &imsg) == -1)
		r = why("exchange: %s", strerror(errno));
	else {
		if (imsg.hdr.pid != (uint32_t)getpid())
			r = why("pid %u, want %d", imsg.hdr.pid, (int)getpid());
		imsg_free(&imsg);
	}
	imsg_clear(&a);
	imsg_clear(&b);
	close(sv[0]);
	close(sv[1]);
	return (r);
}

static const char *
test_too_large(void)
{
	struct imsgbuf	 a;
	unsigned char	*buf;
	const char	*r = NULL;
	int		 sv[2];

	if (mkpair(sv, 0) == -1)
		return (why("socketpair: %s", strerror(errno)));
	if ((buf = calloc(1, MAXDATA + 1)) == NULL)
		return (why("calloc"));
	if (imsg_init(&a, sv[0]) == -1)
		return (why("imsg_init: %s", strerror(errno)));

	errno = 0;
	if (imsg_compose(&a, 1, 0, 0, -1, buf, MAXDATA + 1) != -1 ||
	    errno != ERANGE)
		r = why("MAXDATA + 1 not refused with ERANGE");
	else if ((errno = 0) == 0 &&
	    (imsg_compose(&a, 1, 0, 0, -1, buf, SIZE_MAX) != -1 ||
	    errno != ERANGE))
		r = why("SIZE_MAX not refused with ERANGE");
	else if (a.w.queued != 0)
		r = why("refused message was queued");
	else if (imsg_compose(&a, 1, 0, 0, -1, buf, MAXDATA) != 1 ||
	    a.w.queued != 1)
		r = why("MAXDATA refused: %s", strerror(errno));

	imsg_clear(&a);
	close(sv[0]);
	close(sv[1]);
	free(buf);
	return (r);
}

static const char *
test_fd_passing(void)
{
	struct imsgbuf	 a, b;
	struct imsg	 imsg;
	const char	*r = NULL;
	char		 buf[16];
	int		 sv[2], p[2];

	if (mkpair(sv, 0) == -1 || pipe(p) == -1)
		return (why("socketpair/pipe: %s", strerror(errno)));
	if (imsg_init(&a, sv[0]) == -1 || imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));

	if (imsg_compose(&a, 42, 1, 0, p[1], "x", 1) != 1 ||
	    imsg_flush(&a) == -1) {
		r = why("send: %s", strerror(errno));
		goto done;
	}
	/* Check before receiving: the number could be reused. */
	if (!fd_is_closed(p[1])) {
		r = why("sent fd still open in the sender");
		goto done;
	}
	if (recv_one(&b, &imsg) == -1) {
		r = why("receive: %s", strerror(errno));
		goto done;
	}
	if (imsg.hdr.type != 42 || !(imsg.hdr.flags & IMSGF_HASFD) ||
	    imsg.fd == -1)
		r = why("no fd attached (fd %d, flags %#x)", imsg.fd,
		    imsg.hdr.flags);
#ifdef MSG_CMSG_CLOEXEC
	else if (!(fcntl(imsg.fd, F_GETFD) & FD_CLOEXEC))
		r = why("received fd not close-on-exec");
#endif
	else if (write(imsg.fd, "hello", 5) != 5)
		r = why("write through received fd: %s", strerror(errno));
	if (imsg.fd != -1)
		close(imsg.fd);
	imsg_free(&imsg);
	if (r != NULL)
		goto done;

	memset(buf, 0, sizeof(buf));
	if (read_nb(p[0], buf, sizeof(buf)) != 5 || memcmp(buf, "hello", 5))
		r = why("pipe did not carry the bytes");
	else if (read_nb(p[0], buf, sizeof(buf)) != 0)
		r = why("a copy of the write end is still open");
 done:
	imsg_clear(&a);
	imsg_clear(&b);
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	return (r);
}

/* Messages with and without fds in one flush keep their pairing. */
static const char *
test_fd_order(void)
{
	struct imsgbuf	 a, b;
	struct imsg	 imsg;
	const char	*r = NULL;
	char		 buf[16];
	int		 sv[2], p1[2], p2[2], i;
	/* fd index per message: -1 none, else which pipe */
	static const int plan[] = { -1, 0, -1, -1, 1, -1 };
	const int	 nplan = sizeof(plan) / sizeof(plan[0]);
	int		*pipes[2];

	if (mkpair(sv, 0) == -1 || pipe(p1) == -1 || pipe(p2) == -1)
		return (why("socketpair/pipe: %s", strerror(errno)));
	if (imsg_init(&a, sv[0]) == -1 || imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));
	pipes[0] = p1;
	pipes[1] = p2;

	for (i = 0; i < nplan; i++)
		if (imsg_compose(&a, i, 0, 0,
		    plan[i] == -1 ? -1 : pipes[plan[i]][1], "data", 4) != 1) {
			r = why("compose: %s", strerror(errno));
			goto done;
		}
	if (imsg_flush(&a) == -1) {
		r = why("flush: %s", strerror(errno));
		goto done;
	}
	for (i = 0; i < nplan && r == NULL; i++) {
		if (recv_one(&b, &imsg) == -1) {
			r = why("receive %d: %s", i, strerror(errno));
			break;
		}
		if (imsg.hdr.type != (uint32_t)i)
			r = why("message %u where %d expected",
			    imsg.hdr.type, i);
		else if (plan[i] == -1 && imsg.fd != -1)
			r = why("message %d has an fd", i);
		else if (plan[i] != -1 && imsg.fd == -1)
			r = why("message %d has no fd", i);
		else if (plan[i] != -1 &&
		    write(imsg.fd, plan[i] == 0 ? "one" : "two", 3) != 3)
			r = why("write: %s", strerror(errno));
		if (imsg.fd != -1)
			close(imsg.fd);
		imsg_free(&imsg);
	}
	if (r != NULL)
		goto done;
	memset(buf, 0, sizeof(buf));
	if (read_nb(p1[0], buf, sizeof(buf)) != 3 || memcmp(buf, "one", 3))
		r = why("first fd is not the first pipe");
	else if (read_nb(p2[0], buf, sizeof(buf)) != 3 ||
	    memcmp(buf, "two", 3))
		r = why("second fd is not the second pipe");
	else if (read_nb(p1[0], buf, 1) != 0 || read_nb(p2[0], buf, 1) != 0)
		r = why("a write end leaked");
 done:
	imsg_clear(&a);
	imsg_clear(&b);
	close(sv[0]);
	close(sv[1]);
	close(p1[0]);
	close(p2[0]);
	return (r);
}

static void
mkhdr(unsigned char *p, uint32_t type, uint32_t len)
{
	struct imsg_hdr	 hdr;

	memset(&hdr, 0, sizeof(hdr));
	hdr.type = type;
	hdr.len = len;
	hdr.peerid = 9;
	hdr.pid = 1;
	memcpy(p, &hdr, sizeof(hdr));
}

static const char *
test_partial_read(void)
{
	struct imsgbuf	 b;
	struct imsg	 imsg;
	unsigned char	 raw[2 * IMSG_HEADER_SIZE + 10];
	const size_t	 len1 = IMSG_HEADER_SIZE + 10;
	const char	*r = NULL;
	size_t		 i;
	ssize_t		 n;
	int		 sv[2];

	if (mkpair(sv, 0) == -1)
		return (why("socketpair: %s", strerror(errno)));
	if (imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));

	mkhdr(raw, 5, len1);
	fill(raw + IMSG_HEADER_SIZE, 10, 5);
	mkhdr(raw + len1, 6, IMSG_HEADER_SIZE);

	for (i = 0; i < sizeof(raw) && r == NULL; i++) {
		if (write(sv[0], raw + i, 1) != 1) {
			r = why("write: %s", strerror(errno));
			break;
		}
		if ((n = imsg_read(&b)) != 1) {
			r = why("imsg_read returned %zd at byte %zu", n, i);
			break;
		}
		n = imsg_get(&b, &imsg);
		if (i + 1 == len1) {
			if (n != (ssize_t)len1 || imsg.hdr.type != 5 ||
			    imsg_datalen(&imsg) != 10 ||
			    check(imsg.data, 10, 5) == -1)
				r = why("first message wrong (%zd)", n);
			if (n > 0)
				imsg_free(&imsg);
		} else if (i + 1 == sizeof(raw)) {
			if (n != (ssize_t)IMSG_HEADER_SIZE ||
			    imsg.hdr.type != 6 || imsg.data != NULL)
				r = why("second message wrong (%zd)", n);
			if (n > 0)
				imsg_free(&imsg);
		} else if (n != 0) {
			r = why("imsg_get returned %zd at byte %zu", n, i);
			if (n > 0)
				imsg_free(&imsg);
		}
	}
	if (r == NULL && b.rlen != 0)
		r = why("%zu bytes left over", b.rlen);
	imsg_clear(&b);
	close(sv[0]);
	close(sv[1]);
	return (r);
}

/* A header claiming len is refused by imsg_get. */
static const char *
malformed(uint32_t len)
{
	struct imsgbuf	 b;
	struct imsg	 imsg;
	unsigned char	 raw[IMSG_HEADER_SIZE];
	const char	*r = NULL;
	ssize_t		 n;
	int		 sv[2];

	if (mkpair(sv, 0) == -1)
		return (why("socketpair: %s", strerror(errno)));
	if (imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));
	mkhdr(raw, 1, len);
	if (write(sv[0], raw, sizeof(raw)) != sizeof(raw))
		r = why("write: %s", strerror(errno));
	else if (imsg_read(&b) != sizeof(raw))
		r = why("imsg_read: %s", strerror(errno));
	else if ((n = imsg_get(&b, &imsg)) != -1) {
		r = why("imsg_get returned %zd for len %u", n, len);
		if (n > 0)
			imsg_free(&imsg);
	}
	imsg_clear(&b);
	close(sv[0]);
	close(sv[1]);
	return (r);
}

static const char *
test_malformed_short(void)
{
	const char	*r;

	if ((r = malformed(0)) != NULL)
		return (r);
	return (malformed(IMSG_HEADER_SIZE - 1));
}

static const char *
test_malformed_long(void)
{
	struct imsgbuf	 b;
	struct imsg	 imsg;
	unsigned char	 raw[IMSG_HEADER_SIZE];
	const char	*r;
	int		 sv[2];

	if ((r = malformed(IMSG_MAXSIZE + 1)) != NULL ||
	    (r = malformed(UINT32_MAX)) != NULL)
		return (r);

	/* The largest legal length only waits for more bytes. */
	if (mkpair(sv, 0) == -1)
		return (why("socketpair: %s", strerror(errno)));
	if (imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));
	mkhdr(raw, 1, IMSG_MAXSIZE);
	if (write(sv[0], raw, sizeof(raw)) != sizeof(raw) ||
	    imsg_read(&b) != sizeof(raw))
		r = why("write/read: %s", strerror(errno));
	else if (imsg_get(&b, &imsg) != 0)
		r = why("len IMSG_MAXSIZE not accepted as incomplete");
	imsg_clear(&b);
	close(sv[0]);
	close(sv[1]);
	return (r);
}

static const char *
test_peer_close_read(void)
{
	struct imsgbuf	 a, b;
	struct imsg	 imsg;
	const char	*r = NULL;
	ssize_t		 n;
	int		 sv[2];

	if (mkpair(sv, 0) == -1)
		return (why("socketpair: %s", strerror(errno)));
	if (imsg_init(&a, sv[0]) == -1 || imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));
	/* A last message, then the close. */
	if (imsg_compose(&a, 3, 0, 0, -1, "bye", 3) != 1 ||
	    imsg_flush(&a) == -1)
		r = why("send: %s", strerror(errno));
	imsg_clear(&a);
	close(sv[0]);
	if (r == NULL && recv_one(&b, &imsg) == -1)
		r = why("last message lost");
	else if (r == NULL) {
		imsg_free(&imsg);
		if ((n = imsg_read(&b)) != 0)
			r = why("imsg_read returned %zd, want 0", n);
	}
	imsg_clear(&b);
	close(sv[1]);
	return (r);
}

static const char *
test_peer_close_write(void)
{
	struct imsgbuf	 a;
	const char	*r = NULL;
	int		 sv[2], rv;

	/* SIGPIPE would kill us: the point is that it is never raised. */
	signal(SIGPIPE, SIG_DFL);
	if (mkpair(sv, 0) == -1)
		return (why("socketpair: %s", strerror(errno)));
	if (imsg_init(&a, sv[0]) == -1)
		return (why("imsg_init: %s", strerror(errno)));
	close(sv[1]);
	if (imsg_compose(&a, 1, 0, 0, -1, "x", 1) != 1)
		r = why("compose: %s", strerror(errno));
	else if ((rv = msgbuf_write(&a.w)) != 0)
		r = why("msgbuf_write returned %d, want 0", rv);
	else if (imsg_flush(&a) != -1)
		r = why("imsg_flush did not fail");
	imsg_clear(&a);
	close(sv[0]);
	return (r);
}

/* A child drains a pipe while we flush a non-blocking socket. */
static const char *
test_flush_nonblocking(void)
{
	struct imsgbuf	 a, b;
	struct imsg	 imsg;
	unsigned char	*buf;
	const char	*r = NULL;
	const int	 nmsg = 40;
	pid_t		 pid;
	int		 sv[2], i, status, bad = 0;

	if (mkpair(sv, 0) == -1)
		return (why("socketpair: %s", strerror(errno)));
	if (setnonblock(sv[0]) == -1)
		return (why("O_NONBLOCK: %s", strerror(errno)));
	if ((buf = malloc(MAXDATA)) == NULL)
		return (why("malloc"));
	fflush(stdout);
	switch ((pid = fork())) {
	case -1:
		free(buf);
		return (why("fork: %s", strerror(errno)));
	case 0:
		close(sv[0]);
		if (imsg_init(&b, sv[1]) == -1)
			_exit(2);
		for (i = 0; i < nmsg && !bad; i++) {
			if (recv_one(&b, &imsg) == -1 ||
			    imsg.hdr.type != (uint32_t)i ||
			    imsg_datalen(&imsg) != MAXDATA ||
			    check(imsg.data, MAXDATA, i) == -1)
				bad = 1;
			else
				imsg_free(&imsg);
		}
		imsg_clear(&b);
		close(sv[1]);
		free(buf);
		_exit(bad);
	default:
		break;
	}
	close(sv[1]);
	if (imsg_init(&a, sv[0]) == -1) {
		r = why("imsg_init: %s", strerror(errno));
		goto done;
	}
	for (i = 0; i < nmsg; i++) {
		fill(buf, MAXDATA, i);
		if (imsg_compose(&a, i, 0, 0, -1, buf, MAXDATA) != 1) {
			r = why("compose: %s", strerror(errno));
			break;
		}
	}
	/* Megabytes: far more than the socket buffer holds. */
	if (r == NULL && imsg_flush(&a) == -1)
		r = why("imsg_flush: %s", strerror(errno));
	imsg_clear(&a);
 done:
	close(sv[0]);
	free(buf);
	if (waitpid(pid, &status, 0) == -1)
		return (r != NULL ? r : why("waitpid: %s", strerror(errno)));
	if (r == NULL && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
		r = why("receiver saw bad messages (status %d)", status);
	return (r);
}

/* Two imsgevs on one event loop blasting messages at each other. */
struct peer {
	struct imsgev	 iev;
	uint32_t	 received;
};

static struct peer	 peers[2];
static struct event	 ev_timer;
static const char	*ev_failure;

static void
ev_shutdown(const char *failure)
{
	if (ev_failure == NULL)
		ev_failure = failure;
	imsgev_close(&peers[0].iev);
	imsgev_close(&peers[1].iev);
	evtimer_del(&ev_timer);
}

static void
ev_timeout(int fd, short events, void *arg)
{
	ev_shutdown(why("timeout: received %u and %u", peers[0].received,
	    peers[1].received));
}

static size_t
ev_size(uint32_t seq)
{
	return ((seq * 97) % 3000);
}

static void
ev_handler(int fd, short events, void *arg)
{
	struct peer	*p = arg;
	struct imsg	 imsg;
	ssize_t		 n;
	size_t		 len;

	if (imsgev_io(&p->iev, events) == -1) {
		ev_shutdown(why("imsgev_io: %s", strerror(errno)));
		return;
	}
	while ((n = imsg_get(&p->iev.ibuf, &imsg)) != 0) {
		if (n == -1) {
			ev_shutdown(why("imsg_get: %s", strerror(errno)));
			return;
		}
		len = ev_size(p->received);
		if (imsg.hdr.peerid != p->received ||
		    imsg_datalen(&imsg) != len ||
		    (len > 0 && check(imsg.data, len, p->received) == -1)) {
			imsg_free(&imsg);
			ev_shutdown(why("message %u out of order or damaged",
			    p->received));
			return;
		}
		imsg_free(&imsg);
		p->received++;
	}
	if (peers[0].received == EV_NMSG && peers[1].received == EV_NMSG &&
	    peers[0].iev.ibuf.w.queued == 0 &&
	    peers[1].iev.ibuf.w.queued == 0) {
		ev_shutdown(NULL);
		return;
	}
	imsgev_add(&p->iev);
}

static const char *
test_imsgev(void)
{
	struct event_base	*base;
	struct timeval		 tv = { 20, 0 };
	unsigned char		*buf;
	uint32_t		 seq;
	int			 sv[2], i;

	if (mkpair(sv, 1) == -1)
		return (why("socketpair: %s", strerror(errno)));
	if ((buf = malloc(3000)) == NULL)
		return (why("malloc"));
	if ((base = event_init()) == NULL)
		return (why("event_init"));
	ev_failure = NULL;
	for (i = 0; i < 2; i++) {
		memset(&peers[i], 0, sizeof(peers[i]));
		if (imsgev_init(&peers[i].iev, sv[i], &peers[i],
		    ev_handler) == -1)
			return (why("imsgev_init: %s", strerror(errno)));
	}
	for (seq = 0; seq < EV_NMSG; seq++) {
		fill(buf, ev_size(seq), seq);
		for (i = 0; i < 2; i++)
			if (imsgev_compose(&peers[i].iev, 1, seq, 0, -1, buf,
			    ev_size(seq)) != 1) {
				ev_shutdown(why("compose: %s",
				    strerror(errno)));
				goto done;
			}
	}
	evtimer_set(&ev_timer, ev_timeout, NULL);
	evtimer_add(&ev_timer, &tv);
	event_dispatch();
	if (ev_failure == NULL && (peers[0].received != EV_NMSG ||
	    peers[1].received != EV_NMSG))
		ev_failure = why("loop ended early: %u and %u",
		    peers[0].received, peers[1].received);
 done:
	event_base_free(base);
	free(buf);
	return (ev_failure);
}

static const char *
test_clear_queued(void)
{
	struct imsgbuf	 a;
	const char	*r = NULL;
	char		 c;
	int		 sv[2], p[2];

	if (mkpair(sv, 0) == -1 || pipe(p) == -1)
		return (why("socketpair/pipe: %s", strerror(errno)));
	if (imsg_init(&a, sv[0]) == -1)
		return (why("imsg_init: %s", strerror(errno)));
	if (imsg_compose(&a, 1, 0, 0, p[1], NULL, 0) != 1)
		r = why("compose: %s", strerror(errno));
	imsg_clear(&a);
	if (r == NULL && !fd_is_closed(p[1]))
		r = why("queued fd still open after imsg_clear");
	else if (r == NULL && read_nb(p[0], &c, 1) != 0)
		r = why("write end still open somewhere");
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	return (r);
}

static const char *
test_clear_received(void)
{
	struct imsgbuf	 a, b;
	const char	*r = NULL;
	char		 c;
	int		 sv[2], p[2], before;

	before = count_fds();
	if (mkpair(sv, 0) == -1 || pipe(p) == -1)
		return (why("socketpair/pipe: %s", strerror(errno)));
	if (imsg_init(&a, sv[0]) == -1 || imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));
	if (imsg_compose(&a, 1, 0, 0, p[1], NULL, 0) != 1 ||
	    imsg_flush(&a) == -1)
		r = why("send: %s", strerror(errno));
	/* Read but never imsg_get: the fd waits in the queue. */
	else if (imsg_read(&b) <= 0)
		r = why("imsg_read: %s", strerror(errno));
	else if (TAILQ_EMPTY(&b.fds))
		r = why("no fd queued");
	imsg_clear(&a);
	imsg_clear(&b);
	if (r == NULL && read_nb(p[0], &c, 1) != 0)
		r = why("received fd still open after imsg_clear");
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	if (r == NULL && count_fds() != before)
		r = why("fd count %d, was %d", count_fds(), before);
	return (r);
}

static const char *
test_fd_leak(void)
{
	struct imsgbuf	 a, b;
	struct imsg	 imsg;
	const char	*r = NULL;
	char		 c;
	int		 sv[2], p[2], i, before, after;

	if (mkpair(sv, 0) == -1)
		return (why("socketpair: %s", strerror(errno)));
	if (imsg_init(&a, sv[0]) == -1 || imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));
	before = count_fds();
	for (i = 0; i < LEAK_ROUNDS && r == NULL; i++) {
		if (pipe(p) == -1) {
			r = why("pipe: %s", strerror(errno));
			break;
		}
		if (imsg_compose(&a, 1, i, 0, p[1], &i, sizeof(i)) != 1 ||
		    imsg_flush(&a) == -1 || recv_one(&b, &imsg) == -1) {
			r = why("round %d: %s", i, strerror(errno));
			close(p[0]);
			break;
		}
		if (imsg.fd == -1 || write(imsg.fd, "z", 1) != 1 ||
		    read(p[0], &c, 1) != 1 || c != 'z')
			r = why("round %d: fd did not work", i);
		if (imsg.fd != -1)
			close(imsg.fd);
		imsg_free(&imsg);
		close(p[0]);
	}
	after = count_fds();
	if (r == NULL && after != before)
		r = why("fd count %d, was %d", after, before);
	imsg_clear(&a);
	imsg_clear(&b);
	close(sv[0]);
	close(sv[1]);
	return (r);
}

/* Highest open descriptor, or -1. */
static int
max_fd(void)
{
	int	 fd, max = -1;

	for (fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			max = fd;
	return (max);
}

/* With few descriptors left, imsg_read waits instead of reading. */
static const char *
test_fd_exhaustion(void)
{
	struct imsgbuf	 a, b;
	struct imsg	 imsg;
	struct rlimit	 orig, lim;
	const char	*r = NULL;
	char		 c;
	int		 sv[2], p[2], *dups = NULL, ndups = 0, i;
	ssize_t		 n;

	if (getrlimit(RLIMIT_NOFILE, &orig) == -1)
		return (why("getrlimit: %s", strerror(errno)));
	if (mkpair(sv, 1) == -1 || pipe(p) == -1)
		return (why("socketpair/pipe: %s", strerror(errno)));
	if (imsg_init(&a, sv[0]) == -1 || imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));
	if (imsg_compose(&a, 1, 0, 0, p[1], "fd", 2) != 1 ||
	    imsg_flush(&a) == -1) {
		r = why("send: %s", strerror(errno));
		goto done;
	}

	lim = orig;
	lim.rlim_cur = max_fd() + 1 + 16;
	if ((dups = calloc(lim.rlim_cur, sizeof(*dups))) == NULL) {
		r = why("calloc");
		goto done;
	}
	if (setrlimit(RLIMIT_NOFILE, &lim) == -1) {
		r = why("setrlimit: %s", strerror(errno));
		goto done;
	}
	/* Fill the table, then leave fewer free than imsg_read wants. */
	while (ndups < (int)lim.rlim_cur &&
	    (dups[ndups] = dup(sv[0])) != -1)
		ndups++;
	if (ndups == (int)lim.rlim_cur || errno != EMFILE)
		r = why("could not fill the descriptor table: %s",
		    strerror(errno));
	for (i = 0; i < 3 && ndups > 0; i++)
		close(dups[--ndups]);
	errno = 0;
	if (r == NULL && ((n = imsg_read(&b)) != -1 || errno != EAGAIN))
		r = why("imsg_read returned %zd (%s), want EAGAIN", n,
		    strerror(errno));
	while (ndups > 0)
		close(dups[--ndups]);
	if (setrlimit(RLIMIT_NOFILE, &orig) == -1 && r == NULL)
		r = why("setrlimit restore: %s", strerror(errno));
	if (r != NULL)
		goto done;

	/* Nothing was lost: the message and its fd come through now. */
	if ((n = imsg_read(&b)) <= 0)
		r = why("imsg_read after: %s", strerror(errno));
	else if (imsg_get(&b, &imsg) <= 0)
		r = why("imsg_get after: no message");
	else {
		if (imsg.fd == -1 || write(imsg.fd, "k", 1) != 1 ||
		    read(p[0], &c, 1) != 1 || c != 'k')
			r = why("fd did not survive the wait");
		if (imsg.fd != -1)
			close(imsg.fd);
		imsg_free(&imsg);
	}
 done:
	imsg_clear(&a);
	imsg_clear(&b);
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	free(dups);
	return (r);
}

/* More fds than fit in the control buffer: all closed, read fails. */
static const char *
test_cmsg_truncated(void)
{
	struct imsgbuf	 b;
	struct msghdr	 msg;
	struct iovec	 iov;
	struct cmsghdr	*cmsg;
	union {
		struct cmsghdr	 hdr;
		unsigned char	 buf[CMSG_SPACE(3 * sizeof(int))];
	} cmsgbuf;
	unsigned char	 raw[IMSG_HEADER_SIZE];
	struct imsg_hdr	 hdr;
	const char	*r = NULL;
	char		 c;
	int		 sv[2], p[3][2], wfds[3], i, before;
	ssize_t		 n;

	before = count_fds();
	if (mkpair(sv, 0) == -1)
		return (why("socketpair: %s", strerror(errno)));
	for (i = 0; i < 3; i++) {
		if (pipe(p[i]) == -1)
			return (why("pipe: %s", strerror(errno)));
		wfds[i] = p[i][1];
	}
	if (imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));

	memset(&hdr, 0, sizeof(hdr));
	hdr.type = 1;
	hdr.len = IMSG_HEADER_SIZE;
	hdr.flags = IMSGF_HASFD;
	memcpy(raw, &hdr, sizeof(hdr));
	memset(&msg, 0, sizeof(msg));
	memset(&cmsgbuf, 0, sizeof(cmsgbuf));
	iov.iov_base = raw;
	iov.iov_len = sizeof(raw);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_len = CMSG_LEN(sizeof(wfds));
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	memcpy(CMSG_DATA(cmsg), wfds, sizeof(wfds));
	if (sendmsg(sv[0], &msg, 0) != sizeof(raw)) {
		r = why("sendmsg: %s", strerror(errno));
		goto done;
	}
	for (i = 0; i < 3; i++) {
		close(p[i][1]);
		p[i][1] = -1;
	}

	errno = 0;
	if ((n = imsg_read(&b)) != -1)
		r = why("imsg_read returned %zd, want -1", n);
	for (i = 0; i < 3 && r == NULL; i++)
		if (read_nb(p[i][0], &c, 1) != 0)
			r = why("fd %d leaked", i);
 done:
	imsg_clear(&b);
	close(sv[0]);
	close(sv[1]);
	for (i = 0; i < 3; i++) {
		close(p[i][0]);
		if (p[i][1] != -1)
			close(p[i][1]);
	}
	if (r == NULL && count_fds() != before)
		r = why("fd count %d, was %d", count_fds(), before);
	return (r);
}

/* A peer sending fds nobody claims is cut off at IMSG_MAXFDS. */
static const char *
test_fd_queue_bound(void)
{
	struct imsgbuf	 a, b;
	const char	*r = NULL;
	char		 c;
	int		 sv[2], p[2], fd, i, before;
	ssize_t		 n;

	before = count_fds();
	if (mkpair(sv, 0) == -1 || pipe(p) == -1)
		return (why("socketpair/pipe: %s", strerror(errno)));
	if (imsg_init(&a, sv[0]) == -1 || imsg_init(&b, sv[1]) == -1)
		return (why("imsg_init: %s", strerror(errno)));
	for (i = 0; i <= IMSG_MAXFDS; i++) {
		if ((fd = dup(p[1])) == -1 ||
		    imsg_compose(&a, 1, i, 0, fd, NULL, 0) != 1) {
			r = why("compose: %s", strerror(errno));
			goto done;
		}
	}
	close(p[1]);
	if (imsg_flush(&a) == -1) {
		r = why("flush: %s", strerror(errno));
		goto done;
	}
	/* One fd arrives per read; never claimed with imsg_get. */
	for (i = 0; i < IMSG_MAXFDS; i++)
		if ((n = imsg_read(&b)) <= 0) {
			r = why("read %d: %zd: %s", i, n, strerror(errno));
			goto done;
		}
	errno = 0;
	if ((n = imsg_read(&b)) != -1 || errno != ENOBUFS)
		r = why("read past the bound returned %zd (%s)", n,
		    strerror(errno));
 done:
	imsg_clear(&a);
	imsg_clear(&b);
	if (r == NULL && read_nb(p[0], &c, 1) != 0)
		r = why("an fd leaked");
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	if (r == NULL && count_fds() != before)
		r = why("fd count %d, was %d", count_fds(), before);
	return (r);
}

int
main(void)
{
	run("roundtrip_sizes", test_roundtrip);
	run("default_pid", test_default_pid);
	run("compose_too_large", test_too_large);
	run("fd_passing", test_fd_passing);
	run("fd_order_two_fds_one_flush", test_fd_order);
	run("partial_read_byte_by_byte", test_partial_read);
	run("malformed_len_short", test_malformed_short);
	run("malformed_len_long", test_malformed_long);
	run("peer_close_read_eof", test_peer_close_read);
	run("peer_close_write_no_sigpipe", test_peer_close_write);
	run("flush_nonblocking", test_flush_nonblocking);
	run("imsgev_1000_messages", test_imsgev);
	run("clear_closes_queued_fds", test_clear_queued);
	run("clear_closes_received_fds", test_clear_received);
	run("fd_count_stable_200_rounds", test_fd_leak);
	run("fd_exhaustion_eagain", test_fd_exhaustion);
	run("cmsg_truncated_fds_closed", test_cmsg_truncated);
	run("fd_queue_bound", test_fd_queue_bound);
	return (failures == 0 ? 0 : 1);
}
