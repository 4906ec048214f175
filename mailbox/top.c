/*
 * Where TOP n k stops (RFC 1939): the header, the empty line that ends
 * it, then k lines of the body.  A line ends at LF; an empty line is LF
 * or CRLF alone.  A message without an empty line is all header.  Pure:
 * no I/O, so the unit test links it alone.
 */

#include <stddef.h>
#include <stdint.h>

#include "mailbox.h"

void
top_init(struct toplimit *t, uint64_t lines)
{
	t->lines = lines;
	t->body = 0;
	t->linelen = 0;
	t->done = 0;
}

size_t
top_chunk(struct toplimit *t, const unsigned char *in, size_t len)
{
	size_t	 i;

	if (t->done)
		return (0);
	for (i = 0; i < len; i++) {
		if (in[i] != '\n') {
			/* CR alone still leaves a line empty. */
			if (t->linelen == 0)
				t->linelen = in[i] == '\r' ? 1 : 2;
			else
				t->linelen = 2;
			continue;
		}
		if (!t->body) {
			if (t->linelen < 2)
				t->body = 1;
			t->linelen = 0;
			if (t->body && t->lines == 0) {
				t->done = 1;
				return (i + 1);
			}
			continue;
		}
		t->linelen = 0;
		if (--t->lines == 0) {
			t->done = 1;
			return (i + 1);
		}
	}
	return (len);
}
