/*
 * Buffered replies to the client.  The buffer is flushed when it fills
 * and when the reader runs out of complete commands, so the answers to
 * pipelined commands leave in one write.  A failed write (the client is
 * gone, or stopped reading for longer than SO_SNDTIMEO) ends the session
 * without the UPDATE state.
 */

#include <sys/types.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mailbox.h"

static struct session	*out_session;
static unsigned char	 out_buf[MAILBOX_CHUNK];
static size_t		 out_len;
static uint64_t		 out_sent;

static void	 out_send(const unsigned char *, size_t);

void
out_init(struct session *s)
{
	out_session = s;
	out_len = 0;
	out_sent = 0;
}

static void
out_send(const unsigned char *p, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(out_session->fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				log_debug("client write timed out");
			else
				log_debug("client write: %s", strerror(errno));
			out_len = 0;
			session_end(out_session, "write error");
		}
		p += n;
		len -= n;
		out_sent += n;
	}
}

void
out_write(const void *data, size_t len)
{
	const unsigned char	*p = data;
	size_t			 n;

	while (len > 0) {
		if (out_len == sizeof(out_buf)) {
			out_send(out_buf, out_len);
			out_len = 0;
		}
		n = sizeof(out_buf) - out_len;
		if (n > len)
			n = len;
		memcpy(out_buf + out_len, p, n);
		out_len += n;
		p += n;
		len -= n;
	}
}

void
out_printf(const char *fmt, ...)
{
	char	 line[512];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Replies are short and built here; a cut one would be a bug. */
	if (n < 0 || (size_t)n >= sizeof(line))
		fatalx("reply too long");
	out_write(line, n);
}

void
out_flush(void)
{
	size_t	 len = out_len;

	out_len = 0;
	if (len > 0)
		out_send(out_buf, len);
}

uint64_t
out_bytes(void)
{
	return (out_sent);
}
