/*
 * Fuzz target: mailbox/transform.c, the message-to-RETR transform.
 * The first input octets choose chunk boundaries, the rest is the
 * message.  Checked:
 *  - the output is RFC 1939's, octet by octet: a CR before each LF
 *    not after one, a "." before each line's leading ".", CRLF after
 *    a last line without one;
 *  - any chunking gives the same bytes as one chunk, each chunk within
 *    its 2 * len octets and the finish within 2 (exact-size buffers);
 *  - counting with out == NULL gives the same lengths;
 *  - the announced size equals the length of the unstuffed output, and
 *    unstuffing the wire output gives the unstuffed output;
 *  - every LF of the output follows a CR, a non-empty message ends with
 *    CRLF, an empty one gives nothing, and no line of the stuffed output
 *    is a lone "." that would end the multi-line reply early.
 */

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "../../mailbox/mailbox.h"

#define NSPLIT	8

struct result {
	unsigned char	*out;
	size_t		 len;
	uint64_t	 size;
};

/* Run the transform in the chunks that cuts[] (sorted) describe. */
static void
run(const uint8_t *in, size_t len, int stuff, const size_t *cuts,
    int ncuts, int count_only, struct result *r)
{
	struct xform	 x;
	unsigned char	*chunk;
	size_t		 from = 0, to, n;
	int		 i;

	if ((r->out = malloc(XFORM_OUTLEN(len))) == NULL)
		abort();
	r->len = 0;
	xform_init(&x, stuff);
	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : len;
		/* Exactly the documented room, so overflow is caught. */
		if ((chunk = malloc(2 * (to - from) + 1)) == NULL)
			abort();
		n = xform_chunk(&x, in + from, to - from,
		    count_only ? NULL : chunk);
		FUZZ_ASSERT(n <= 2 * (to - from));
		if (!count_only)
			memcpy(r->out + r->len, chunk, n);
		r->len += n;
		free(chunk);
		from = to;
	}
	if ((chunk = malloc(2)) == NULL)
		abort();
	n = xform_finish(&x, count_only ? NULL : chunk);
	FUZZ_ASSERT(n <= 2);
	if (!count_only)
		memcpy(r->out + r->len, chunk, n);
	r->len += n;
	free(chunk);
	FUZZ_ASSERT(r->len <= XFORM_OUTLEN(len));
	r->size = x.size;
}

/* The same, one octet at a time, as simply as it can be said. */
static void
reference(const uint8_t *in, size_t len, struct result *r)
{
	size_t	 i;
	int	 bol = 1;

	if ((r->out = malloc(XFORM_OUTLEN(len))) == NULL)
		abort();
	r->len = 0;
	for (i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			r->out[r->len++] = '\r';
		if (in[i] == '.' && bol)
			r->out[r->len++] = '.';
		r->out[r->len++] = in[i];
		bol = in[i] == '\n';
	}
	if (len > 0 && in[len - 1] != '\n') {
		if (in[len - 1] != '\r')
			r->out[r->len++] = '\r';
		r->out[r->len++] = '\n';
	}
}

static int
cmp_size(const void *a, const void *b)
{
	size_t	 x = *(const size_t *)a, y = *(const size_t *)b;

	return (x < y ? -1 : x > y);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct result	 wire, plain, one, count, ref;
	size_t		 cuts[NSPLIT], i, j;
	int		 ncuts, bol;
	const uint8_t	*msg;
	size_t		 msglen;

	if (len < 1)
		return (0);
	ncuts = data[0] % (NSPLIT + 1);
	if (len < 1 + (size_t)ncuts)
		return (0);
	msg = data + 1 + ncuts;
	msglen = len - 1 - ncuts;
	for (i = 0; i < (size_t)ncuts; i++)
		cuts[i] = msglen == 0 ? 0 : data[1 + i] % (msglen + 1);
	qsort(cuts, ncuts, sizeof(cuts[0]), cmp_size);

	run(msg, msglen, 1, cuts, ncuts, 0, &wire);
	run(msg, msglen, 1, NULL, 0, 0, &one);
	run(msg, msglen, 0, cuts, ncuts, 0, &plain);
	run(msg, msglen, 1, cuts, ncuts, 1, &count);
	reference(msg, msglen, &ref);

	FUZZ_ASSERT(wire.len == ref.len &&
	    memcmp(wire.out, ref.out, wire.len) == 0);

	/* Chunking and counting change nothing. */
	FUZZ_ASSERT(wire.len == one.len &&
	    memcmp(wire.out, one.out, wire.len) == 0);
	FUZZ_ASSERT(count.len == wire.len && count.size == wire.size);

	/* The announced size is the unstuffed output. */
	FUZZ_ASSERT(wire.size == plain.len && plain.size == plain.len);

	if (msglen == 0)
		FUZZ_ASSERT(wire.len == 0 && plain.len == 0);
	else
		FUZZ_ASSERT(wire.len >= 2 && wire.out[wire.len - 2] == '\r' &&
		    wire.out[wire.len - 1] == '\n');

	/* No bare LF; no lone "." line; unstuffing gives plain. */
	bol = 1;
	for (i = 0, j = 0; i < wire.len; i++) {
		if (wire.out[i] == '\n')
			FUZZ_ASSERT(i > 0 && wire.out[i - 1] == '\r');
		if (bol && wire.out[i] == '.') {
			FUZZ_ASSERT(!(i + 2 < wire.len &&
			    wire.out[i + 1] == '\r' &&
			    wire.out[i + 2] == '\n'));
			FUZZ_ASSERT(i + 1 < wire.len && wire.out[i + 1] == '.');
			i++;
		}
		FUZZ_ASSERT(j < plain.len && plain.out[j] == wire.out[i]);
		j++;
		bol = wire.out[i] == '\n';
	}
	FUZZ_ASSERT(j == plain.len);
	for (i = 0; i < plain.len; i++)
		if (plain.out[i] == '\n')
			FUZZ_ASSERT(i > 0 && plain.out[i - 1] == '\r');

	free(wire.out);
	free(plain.out);
	free(one.out);
	free(count.out);
	free(ref.out);
	return (0);
}
