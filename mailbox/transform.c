/*
 * The byte transform between a Maildir file and a RETR reply.  Pure:
 * no I/O, no logging, so the unit test links it alone.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mailbox.h"

#define PUT(c) do {				\
	if (out != NULL)			\
		out[o] = (c);			\
	o++;					\
} while (0)

void
xform_init(struct xform *x, int stuff)
{
	x->stuff = stuff;
	x->cr = 0;
	x->bol = 1;
	x->empty = 1;
	x->size = 0;
}

/*
 * Writes at most 2 * len octets to out.  The octets between two LFs are
 * copied in one piece: only a line's first octet and its end need care.
 */
size_t
xform_chunk(struct xform *x, const unsigned char *in, size_t len,
    unsigned char *out)
{
	const unsigned char	*p = in, *end = in + len, *lf;
	size_t			 n, o = 0, dots = 0;

	while (p < end) {
		if (x->bol && x->stuff && *p == '.') {
			PUT('.');
			dots++;
		}
		lf = memchr(p, '\n', end - p);
		n = (lf != NULL ? lf : end) - p;
		if (n > 0) {
			if (out != NULL)
				memcpy(out + o, p, n);
			o += n;
			x->cr = p[n - 1] == '\r';
			x->bol = 0;
		}
		if (lf == NULL)
			break;
		/* The CR may have ended the previous chunk. */
		if (!x->cr)
			PUT('\r');
		PUT('\n');
		x->cr = 0;
		x->bol = 1;
		p = lf + 1;
	}
	if (len > 0)
		x->empty = 0;
	x->size += o - dots;
	return (o);
}

/*
 * xform_chunk's size and state without its output: only an LF not
 * after a CR grows the message, so memchr(3) finds all there is to
 * count.  A new message is read just for its size.
 */
size_t
xform_count(struct xform *x, const unsigned char *in, size_t len)
{
	const unsigned char	*p = in, *end = in + len, *lf;
	size_t			 o = len;

	if (len == 0)
		return (0);
	while ((lf = memchr(p, '\n', end - p)) != NULL) {
		/* At the chunk's start, the CR is the previous chunk's. */
		if (lf == in ? !x->cr : lf[-1] != '\r')
			o++;
		p = lf + 1;
	}
	x->cr = end[-1] == '\r';
	x->bol = end[-1] == '\n';
	x->empty = 0;
	x->size += o;
	return (o);
}

size_t
xform_finish(struct xform *x, unsigned char *out)
{
	size_t	 o = 0;

	if (x->empty || x->bol)
		return (0);
	if (!x->cr)
		PUT('\r');
	PUT('\n');
	x->cr = 0;
	x->bol = 1;
	x->size += o;
	return (o);
}
