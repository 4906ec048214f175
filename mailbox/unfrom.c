/*
 * The mbox ">From " unescape.  mail.local(8) writes a message line
 * "From " that starts the message or follows an empty line as ">From ",
 * so that it cannot pass for the next message's From_ line; this takes
 * the '>' away again.  Any other '>' is the sender's and stays.  Pure:
 * no I/O, so the unit test links it alone.
 */

#include <stddef.h>
#include <stdint.h>

#include "mailbox.h"

static const char	 from[] = "From ";

#define PUT(c) do {				\
	out[o++] = (c);				\
} while (0)

void
unfrom_init(struct unfrom *u)
{
	u->held = 0;
	u->matched = 0;
	/* The first line counts as following an empty one. */
	u->prevempty = 1;
	u->linelen = 0;
	u->cr = 0;
}

/* Give back a held '>' and what matched after it: no escape after all. */
static size_t
unfrom_release(struct unfrom *u, unsigned char *out)
{
	size_t	 o = 0;
	int	 i;

	PUT('>');
	for (i = 0; i < u->matched; i++)
		PUT(from[i]);
	u->held = 0;
	u->linelen = 2;
	u->cr = 0;
	return (o);
}

size_t
unfrom_chunk(struct unfrom *u, const unsigned char *in, size_t len,
    unsigned char *out)
{
	size_t		 i, k, o = 0;
	unsigned char	 c;

	for (i = 0; i < len; i++) {
		c = in[i];
		if (u->held) {
			if (c == (unsigned char)from[u->matched]) {
				if (++u->matched < (int)sizeof(from) - 1)
					continue;
				/* ">From ": the '>' was the escape. */
				for (k = 0; k < sizeof(from) - 1; k++)
					PUT(from[k]);
				u->held = 0;
				u->matched = 0;
				u->linelen = 2;
				continue;
			}
			o += unfrom_release(u, out + o);
			u->matched = 0;
		}
		if (c == '>' && u->linelen == 0 && u->prevempty) {
			u->held = 1;
			u->matched = 0;
			continue;
		}
		PUT(c);
		if (c == '\n') {
			u->prevempty = u->linelen == 0 ||
			    (u->linelen == 1 && u->cr);
			u->linelen = 0;
		} else if (u->linelen < 2)
			u->linelen++;
		u->cr = c == '\r';
	}
	return (o);
}

size_t
unfrom_finish(struct unfrom *u, unsigned char *out)
{
	size_t	 o = 0;

	if (u->held) {
		o = unfrom_release(u, out);
		u->matched = 0;
	}
	return (o);
}
