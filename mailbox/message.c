/*
 * One message on the wire, for RETR and TOP.  It is read in chunks from
 * its Maildir file or from its range of the mbox file, and each chunk
 * goes through TOP's limit, the mbox unescape and the transform: a
 * message is never held in memory whole, whatever its size.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"
#include "mailbox.h"

/* A chunk after the mbox unescape, before the transform. */
#define MIDLEN		UNFROM_OUTLEN(MAILBOX_CHUNK)

struct source {
	int		 fd;
	int		 ranged;	/* mbox: pread(2) in [pos, end) */
	uint64_t	 pos;
	uint64_t	 end;
};

static int	 source_open(struct session *, struct msg *, size_t,
		    struct source *);
static ssize_t	 source_read(struct source *, unsigned char *, size_t);
static void	 source_close(struct source *);
static void	 maildir_recheck(struct msg *, int);

static int
source_open(struct session *s, struct msg *m, size_t n, struct source *src)
{
	if (s->type == MAILDROP_MBOX) {
		src->fd = s->mboxfd;
		src->ranged = 1;
		src->pos = m->start;
		src->end = m->end;
		return (0);
	}
	src->ranged = 0;
	src->pos = src->end = 0;
	if ((src->fd = maildir_open(m)) == -1) {
		if (errno == ENOENT) {
			log_warnx("message %zu (cur/%s) is gone", n,
			    safename(m->name));
			out_printf("-ERR [SYS/TEMP] Message no longer "
			    "exists.\r\n");
		} else {
			log_warn("open cur/%s", safename(m->name));
			out_printf("-ERR [SYS/TEMP] Cannot read message.\r\n");
		}
		return (-1);
	}
	maildir_recheck(m, src->fd);
	return (0);
}

/*
 * A Maildir file is never rewritten, but the index may be older than
 * the file (restored from a backup, say).  One fstat(2) tells, and then
 * the size is counted again: never announce a wrong one.  A row from
 * index version 1 has no file size: counted once, it has.
 */
static void
maildir_recheck(struct msg *m, int fd)
{
	struct stat	 sb;
	uint64_t	 size;
	int64_t		 fsize;

	if (fstat(fd, &sb) == -1 || sb.st_size == m->fsize)
		return;
	if (m->fsize != -1)
		log_warnx("cur/%s: %lld octets, the index said %lld; "
		    "counting again", safename(m->name),
		    (long long)sb.st_size, (long long)m->fsize);
	if (maildir_size(m, &size, &fsize) == -1) {
		log_warn("cur/%s", safename(m->name));
		return;
	}
	m->size = size;
	m->fsize = fsize;
	if (index_update_size(m) == -1)
		log_warnx("index: new size of cur/%s not kept",
		    safename(m->name));
}

static ssize_t
source_read(struct source *src, unsigned char *buf, size_t len)
{
	ssize_t	 n;

	for (;;) {
		if (!src->ranged)
			n = read(src->fd, buf, len);
		else {
			if (src->pos >= src->end)
				return (0);
			if (len > src->end - src->pos)
				len = src->end - src->pos;
			n = pread(src->fd, buf, len, (off_t)src->pos);
			if (n == 0) {
				/* Shorter than its index entry says. */
				errno = EIO;
				return (-1);
			}
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n > 0)
			src->pos += n;
		return (n);
	}
}

static void
source_close(struct source *src)
{
	if (!src->ranged)
		close(src->fd);
}

/* RETR n, or with top set TOP n lines. */
void
message_send(struct session *s, struct msg *m, size_t n, int top,
    uint64_t lines)
{
	static unsigned char	 in[MAILBOX_CHUNK];
	static unsigned char	 mid[MIDLEN];
	static unsigned char	 out[XFORM_OUTLEN(MIDLEN)];
	struct source		 src;
	struct toplimit		 t;
	struct unfrom		 u;
	struct xform		 x;
	const unsigned char	*p;
	ssize_t			 r;
	size_t			 k;
	int			 mbox = s->type == MAILDROP_MBOX;

	if (source_open(s, m, n, &src) == -1)
		return;
	if (top)
		out_printf("+OK Top of message %zu follows.\r\n", n);
	else
		out_printf("+OK %llu octets\r\n", (unsigned long long)m->size);

	top_init(&t, lines);
	unfrom_init(&u);
	xform_init(&x, 1);
	for (;;) {
		if ((r = source_read(&src, in, sizeof(in))) == -1) {
			/* The client has a part: a cut connection says so. */
			log_warn("message %zu: read", n);
			source_close(&src);
			session_end(s, "message read error");
		}
		if (r == 0)
			break;
		k = top ? top_chunk(&t, in, r) : (size_t)r;
		p = in;
		if (mbox) {
			k = unfrom_chunk(&u, in, k, mid);
			p = mid;
		}
		out_write(out, xform_chunk(&x, p, k, out));
		if (top && t.done)
			break;
	}
	source_close(&src);
	if (mbox) {
		k = unfrom_finish(&u, mid);
		out_write(out, xform_chunk(&x, mid, k, out));
	}
	out_write(out, xform_finish(&x, out));
	out_write(".\r\n", 3);
	if (top)
		return;
	if (x.size != m->size)
		log_warnx("message %zu changed: %llu octets sent, %llu "
		    "announced", n, (unsigned long long)x.size,
		    (unsigned long long)m->size);
	s->retrieved++;
	log_debug("retrieved message %zu, %llu octets", n,
	    (unsigned long long)x.size);
}
