/*
 * The mbox file: its messages and their unique-ids.
 *
 * A message starts with a From_ line ("From sender date") at the start
 * of the file or after an empty line, and ends before the empty line
 * that precedes the next From_ line or the end of the file: the layout
 * mail.local(8) writes, and the only one that tells a From_ line from a
 * message line "From ..." that it did not escape.  Leading empty lines
 * are allowed; anything else before the first From_ line is not an
 * mbox, and the session is refused rather than guessed at.
 *
 * A message's unique-id is derived from its content: the first 128
 * bits of a SHA-256 of its From_ line, header and body, leaving out the
 * header fields mail readers rewrite in place (Status: and friends).
 * So the unique-ids do not depend on the index: a lost or damaged index
 * is rebuilt with the same ones.  The index keeps each unique-id with
 * the hash: two messages of one hash (a message delivered twice in one
 * second) get "-2", "-3" in file order, and keep them while they last.
 *
 * The index also keeps the offsets and the file's identity (device,
 * inode, size, mtime, ctime): a session on an unchanged mbox does not
 * read it.  Any change means one read of the whole file.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sha2.h>

#include "log.h"
#include "mailbox.h"

#define LOOK		16	/* octets seen at the start of a line */

enum line {
	LINE_FROM,		/* the From_ line */
	LINE_HEAD,		/* a header line, hashed */
	LINE_SKIP,		/* a header line left out of the hash */
	LINE_BODY
};

struct parse {
	struct session	*s;
	int		 fd;
	unsigned char	*buf;
	size_t		 len;		/* octets in buf */
	size_t		 pos;		/* next octet to look at */
	uint64_t	 base;		/* file offset of buf[0] */
	int		 eof;

	struct msg	*cur;		/* message being read */
	int		 inhead;	/* in the header */
	int		 skiphdr;	/* this field is left out of the hash */
	int		 prevempty;	/* the line before was empty */
	int		 held;		/* an empty line held back */
	unsigned char	 heldbuf[2];
	size_t		 heldlen;
	uint64_t	 heldoff;
	SHA2_CTX	 ctx;
	struct unfrom	 uf;
	struct xform	 x;
};

/* Header fields that mail readers rewrite in the mbox. */
static const char *const volatile_fields[] = {
	"Status:", "X-Status:", "X-Keywords:", "X-UID:", "X-IMAP:",
	"X-IMAPbase:", "Content-Length:", "Lines:"
};

static int	 parse_fill(struct parse *);
static int	 parse_begin(struct parse *);
static void	 parse_end(struct parse *, uint64_t);
static void	 parse_feed(struct parse *, const unsigned char *, size_t,
		    enum line);
static void	 parse_release(struct parse *);
static int	 parse_skipfield(const unsigned char *, size_t);
static int	 parse(struct session *);
static int	 rows_fit(struct session *);
static int	 assign_uidls(struct session *);
static int	 uidl_number(const char *);
static int	 cmp_msghash(const void *, const void *);
static int	 cmp_rowhash(const void *, const void *);
static int	 cmp_int(const void *, const void *);

/* The unique-id of a hash, the nth of that hash in the mbox (from 1). */
void
mbox_uidl(const unsigned char *hash, int n, char *buf, size_t len)
{
	size_t	 i, o = 0;

	for (i = 0; i < MBOX_HASHLEN && o + 3 <= len; i++, o += 2)
		snprintf(buf + o, len - o, "%02x", hash[i]);
	if (n > 1)
		snprintf(buf + o, len - o, "-%d", n);
}

/* Keep at least LOOK octets past pos in the buffer, unless at EOF. */
static int
parse_fill(struct parse *p)
{
	ssize_t	 n;

	if (p->pos > 0) {
		memmove(p->buf, p->buf + p->pos, p->len - p->pos);
		p->len -= p->pos;
		p->base += p->pos;
		p->pos = 0;
	}
	while (!p->eof && p->len < MAILBOX_CHUNK) {
		n = read(p->fd, p->buf + p->len, MAILBOX_CHUNK - p->len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_warn("mbox: read");
			return (-1);
		}
		if (n == 0)
			p->eof = 1;
		p->len += n;
		if (p->len - p->pos >= LOOK)
			break;
	}
	return (0);
}

static int
parse_begin(struct parse *p)
{
	if ((p->cur = msgs_add(p->s)) == NULL)
		return (-1);
	p->cur->off = p->base + p->pos;
	p->inhead = 1;
	p->skiphdr = 0;
	SHA256Init(&p->ctx);
	unfrom_init(&p->uf);
	xform_init(&p->x, 0);
	return (0);
}

static void
parse_end(struct parse *p, uint64_t end)
{
	static unsigned char	 tail[5];
	unsigned char		 digest[SHA256_DIGEST_LENGTH];
	size_t			 n;

	if (p->cur == NULL)
		return;
	n = unfrom_finish(&p->uf, tail);
	xform_chunk(&p->x, tail, n, NULL);
	xform_finish(&p->x, NULL);
	p->cur->size = p->x.size;
	p->cur->end = end;
	SHA256Final(digest, &p->ctx);
	memcpy(p->cur->hash, digest, MBOX_HASHLEN);
	p->cur = NULL;
}

/* Octets of the current message: counted as RETR sends them, hashed. */
static void
parse_feed(struct parse *p, const unsigned char *b, size_t n, enum line l)
{
	static unsigned char	 mid[UNFROM_OUTLEN(MAILBOX_CHUNK)];
	size_t			 k;

	if (l != LINE_SKIP)
		SHA256Update(&p->ctx, b, n);
	if (l == LINE_FROM)
		return;
	k = unfrom_chunk(&p->uf, b, n, mid);
	xform_chunk(&p->x, mid, k, NULL);
}

/* The empty line held back was no separator: it is the message's. */
static void
parse_release(struct parse *p)
{
	if (!p->held)
		return;
	p->held = 0;
	parse_feed(p, p->heldbuf, p->heldlen, LINE_HEAD);
	p->inhead = 0;
}

static int
parse_skipfield(const unsigned char *b, size_t n)
{
	size_t	 i, len;

	for (i = 0; i < sizeof(volatile_fields) /
	    sizeof(volatile_fields[0]); i++) {
		len = strlen(volatile_fields[i]);
		if (n >= len && strncasecmp((const char *)b,
		    volatile_fields[i], len) == 0)
			return (1);
	}
	return (0);
}

/* One read of the whole file, from the start. */
static int
parse(struct session *s)
{
	static unsigned char	 buf[MAILBOX_CHUNK];
	struct parse		 p;
	const unsigned char	*b, *nl;
	size_t			 avail, n;
	enum line		 l;

	memset(&p, 0, sizeof(p));
	p.s = s;
	p.fd = s->mboxfd;
	p.buf = buf;
	p.prevempty = 1;
	if (lseek(p.fd, 0, SEEK_SET) == -1) {
		log_warn("mbox: lseek");
		return (-1);
	}
	for (;;) {
		/* At the start of a line. */
		if (p.len - p.pos < LOOK && !p.eof && parse_fill(&p) == -1)
			return (-1);
		if (p.pos == p.len)
			break;
		b = p.buf + p.pos;
		avail = p.len - p.pos;
		if (p.prevempty && avail >= 5 && memcmp(b, "From ", 5) == 0) {
			parse_end(&p, p.held ? p.heldoff : p.base + p.pos);
			p.held = 0;
			if (parse_begin(&p) == -1)
				return (-1);
			l = LINE_FROM;
		} else {
			parse_release(&p);
			n = b[0] == '\n' ? 1 :
			    avail >= 2 && b[0] == '\r' && b[1] == '\n' ? 2 : 0;
			if (n > 0) {
				/* Maybe a separator: the next line tells. */
				if (p.cur != NULL) {
					memcpy(p.heldbuf, b, n);
					p.heldlen = n;
					p.heldoff = p.base + p.pos;
					p.held = 1;
				}
				p.pos += n;
				p.prevempty = 1;
				continue;
			}
			if (p.cur == NULL) {
				log_warnx("mbox: no From_ line at offset %llu"
				    ", not an mbox",
				    (unsigned long long)(p.base + p.pos));
				return (-1);
			}
			if (p.inhead && b[0] != ' ' && b[0] != '\t')
				p.skiphdr = parse_skipfield(b, avail);
			l = !p.inhead ? LINE_BODY :
			    p.skiphdr ? LINE_SKIP : LINE_HEAD;
		}
		/* The rest of the line, however long. */
		for (;;) {
			b = p.buf + p.pos;
			avail = p.len - p.pos;
			nl = memchr(b, '\n', avail);
			n = nl != NULL ? (size_t)(nl - b) + 1 : avail;
			parse_feed(&p, b, n, l);
			p.pos += n;
			if (nl != NULL || p.eof)
				break;
			if (parse_fill(&p) == -1)
				return (-1);
			if (p.pos == p.len)
				break;
		}
		if (l == LINE_FROM)
			p.cur->start = p.base + p.pos;
		p.prevempty = 0;
	}
	/* An empty line at the very end is the last separator. */
	parse_end(&p, p.held ? p.heldoff : p.base + p.pos);
	if ((int64_t)(p.base + p.pos) != s->mstate.size) {
		log_warnx("mbox: read %llu octets, expected %lld",
		    (unsigned long long)(p.base + p.pos),
		    (long long)s->mstate.size);
		return (-1);
	}
	return (0);
}

/* Rows of an unchanged file must still describe it. */
static int
rows_fit(struct session *s)
{
	struct msg	*m;
	uint64_t	 prev = 0;
	size_t		 i;

	for (i = 0; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		if (m->off < prev || m->start < m->off || m->end < m->start ||
		    m->end > (uint64_t)s->mstate.size)
			return (0);
		prev = m->end;
	}
	return (1);
}

/* n of a unique-id mbox_uidl() made, 0 if it is not one. */
static int
uidl_number(const char *uidl)
{
	const char	*errstr;
	size_t		 len = strlen(uidl);
	int		 n;

	if (len == 2 * MBOX_HASHLEN)
		return (1);
	if (len < 2 * MBOX_HASHLEN + 2 || uidl[2 * MBOX_HASHLEN] != '-')
		return (0);
	n = strtonum(uidl + 2 * MBOX_HASHLEN + 1, 2, INT_MAX, &errstr);
	return (errstr == NULL ? n : 0);
}

static int
cmp_int(const void *a, const void *b)
{
	int	 ia = *(const int *)a, ib = *(const int *)b;

	return (ia < ib ? -1 : ia > ib);
}

static int
cmp_msghash(const void *a, const void *b)
{
	const struct msg	*ma = *(struct msg *const *)a;
	const struct msg	*mb = *(struct msg *const *)b;
	int			 c;

	if ((c = memcmp(ma->hash, mb->hash, MBOX_HASHLEN)) != 0)
		return (c);
	return (ma->off < mb->off ? -1 : ma->off > mb->off);
}

static int
cmp_rowhash(const void *a, const void *b)
{
	const struct mboxrow	*ra = a, *rb = b;
	int			 c;

	if ((c = memcmp(ra->hash, rb->hash, MBOX_HASHLEN)) != 0)
		return (c);
	return (ra->id < rb->id ? -1 : ra->id > rb->id);
}

/*
 * Messages of one hash keep the unique-ids the index gave them, in
 * order; the rest get the smallest free one of their hash.  Unique-ids
 * of different hashes never clash: each starts with its own hash.
 */
static int
assign_uidls(struct session *s)
{
	struct mboxrow	*rows = NULL;
	struct msg	**v = NULL;
	char		 uidl[UIDL_MAX + 1];
	size_t		 nrows = 0, i, j, g, ge, r, re, u, nused, kept = 0;
	int		*used = NULL, rv, n;

	if ((rv = index_mbox_old(&rows, &nrows)) != IDX_OK)
		return (rv);
	rv = IDX_FAIL;
	if (s->nmsgs > 0 &&
	    ((v = reallocarray(NULL, s->nmsgs, sizeof(*v))) == NULL ||
	    (used = reallocarray(NULL, s->nmsgs, sizeof(*used))) == NULL)) {
		log_warn("mbox: reallocarray");
		goto done;
	}
	for (i = 0; i < s->nmsgs; i++)
		v[i] = &s->msgs[i];
	if (s->nmsgs > 0)
		qsort(v, s->nmsgs, sizeof(*v), cmp_msghash);
	if (nrows > 0)
		qsort(rows, nrows, sizeof(*rows), cmp_rowhash);

	for (g = r = 0; g < s->nmsgs; g = ge) {
		for (ge = g + 1; ge < s->nmsgs && memcmp(v[ge]->hash,
		    v[g]->hash, MBOX_HASHLEN) == 0; ge++)
			;
		while (r < nrows && memcmp(rows[r].hash, v[g]->hash,
		    MBOX_HASHLEN) < 0)
			r++;
		for (re = r; re < nrows && memcmp(rows[re].hash, v[g]->hash,
		    MBOX_HASHLEN) == 0; re++)
			;
		/* The first ones keep what they had. */
		for (i = g, j = r; i < ge && j < re; i++, j++) {
			v[i]->uidl = rows[j].uidl;
			kept++;
		}
		/* Newcomers: the lowest numbers no kept one uses. */
		for (nused = 0, j = g; j < i; j++)
			used[nused++] = uidl_number(v[j]->uidl);
		if (nused > 0)
			qsort(used, nused, sizeof(*used), cmp_int);
		for (n = 1, u = 0; i < ge; i++, n++) {
			for (;;) {
				while (u < nused && used[u] < n)
					u++;
				if (u == nused || used[u] != n)
					break;
				n++;
			}
			mbox_uidl(v[g]->hash, n, uidl, sizeof(uidl));
			if ((v[i]->uidl = arena_strdup(uidl)) == NULL) {
				log_warn("mbox: strdup");
				goto done;
			}
			v[i]->flags |= MSG_NEW;
		}
		r = re;
	}
	log_debug("mbox: %zu messages, %zu unique-ids kept", s->nmsgs, kept);
	rv = IDX_OK;
 done:
	free(rows);
	free(v);
	free(used);
	return (rv);
}

/*
 * The session's messages: from the index alone if the file is as the
 * index last saw it, else from one read of the file, with unique-ids
 * carried over from the index and the index rewritten.
 */
int
mbox_sync(struct session *s)
{
	struct filestate	 old;
	int			 rv;

	msgs_free(s);
	if (s->mboxfd == -1)
		return (IDX_OK);
	if (filestate(s->mboxfd, &s->mstate) == -1) {
		log_warn("mbox: fstat");
		return (IDX_FAIL);
	}
	if ((rv = index_mbox_state(&old)) != IDX_OK)
		return (rv);
	if (memcmp(&old, &s->mstate, sizeof(old)) == 0) {
		if ((rv = index_mbox_rows(s)) != IDX_OK)
			return (rv);
		if (rows_fit(s)) {
			log_debug("mbox: unchanged, %zu messages from the "
			    "index", s->nmsgs);
			return (IDX_OK);
		}
		log_warnx("mbox: index rows do not fit the file, reading it");
		msgs_free(s);
	}
	if (parse(s) == -1)
		return (IDX_FAIL);
	if ((rv = assign_uidls(s)) != IDX_OK ||
	    (rv = index_mbox_store(s, &s->mstate)) != IDX_OK)
		return (rv);
	return (IDX_OK);
}
