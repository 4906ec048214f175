/*
 * Unit tests of mailbox/transform.c: LF to CRLF, dot-stuffing, the
 * finishing CRLF and the announced size, under every chunking.
 * Prints "PASS: name" or "FAIL: name (reason)" per case.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mailbox/mailbox.h"

#define GUARD		16
#define GUARDBYTE	0xa5

struct tcase {
	const char	*name;
	const char	*in;
	size_t		 inlen;
	const char	*wire;		/* dot-stuffed */
	size_t		 wirelen;
	const char	*plain;		/* not stuffed; as long as the size */
	size_t		 plainlen;
};

#define S(s)	s, sizeof(s) - 1

static const struct tcase cases[] = {
	{ "empty", S(""), S(""), S("") },
	{ "no-newline", S("a"), S("a\r\n"), S("a\r\n") },
	{ "lf", S("a\n"), S("a\r\n"), S("a\r\n") },
	{ "crlf", S("a\r\n"), S("a\r\n"), S("a\r\n") },
	{ "trailing-cr", S("a\r"), S("a\r\n"), S("a\r\n") },
	{ "only-lf", S("\n"), S("\r\n"), S("\r\n") },
	{ "only-cr", S("\r"), S("\r\n"), S("\r\n") },
	{ "two-cr", S("\r\r"), S("\r\r\n"), S("\r\r\n") },
	{ "empty-lines", S("\n\n"), S("\r\n\r\n"), S("\r\n\r\n") },
	{ "dot-line", S(".\n"), S("..\r\n"), S(".\r\n") },
	{ "only-dot", S("."), S("..\r\n"), S(".\r\n") },
	{ "dot-dot", S("..\n"), S("...\r\n"), S("..\r\n") },
	{ "dot-second-line", S("a\n.b\n"),
	    S("a\r\n..b\r\n"),
	    S("a\r\n.b\r\n") },
	{ "dot-after-crlf", S("a\r\n.\r\n"),
	    S("a\r\n..\r\n"),
	    S("a\r\n.\r\n") },
	{ "dot-mid-line", S("a.b\n"), S("a.b\r\n"), S("a.b\r\n") },
	{ "dot-after-lone-cr", S("\r.x"), S("\r.x\r\n"), S("\r.x\r\n") },
	{ "lone-cr-then-crlf", S("x\r\r\n"), S("x\r\r\n"), S("x\r\r\n") },
	{ "lone-cr-mid", S("a\rb"), S("a\rb\r\n"), S("a\rb\r\n") },
	{ "cr-cr-lf-lf", S("a\r\r\n\n"), S("a\r\r\n\r\n"), S("a\r\r\n\r\n") },
	{ "nul-octet", S("a\0b\n"), S("a\0b\r\n"), S("a\0b\r\n") },
	{ "dot-last", S("x\n."), S("x\r\n..\r\n"), S("x\r\n.\r\n") },
	{ "high-octets", S("\xff\xfe.\n.\xff"),
	    S("\xff\xfe.\r\n..\xff\r\n"),
	    S("\xff\xfe.\r\n.\xff\r\n") },
	{ "message", S("Subject: x\n\n.\n..\r\nbody\r\n.end"),
	    S("Subject: x\r\n\r\n..\r\n...\r\nbody\r\n..end\r\n"),
	    S("Subject: x\r\n\r\n.\r\n..\r\nbody\r\n.end\r\n") },
	{ "mixed-endings", S("a\r\nb\nc\r\rd\n"),
	    S("a\r\nb\r\nc\r\rd\r\n"),
	    S("a\r\nb\r\nc\r\rd\r\n") },
};

static int	 failed;

static void
fail(const char *name, const char *why)
{
	printf("FAIL: %s (%s)\n", name, why);
	failed = 1;
}

/*
 * Run the transform over in with chunk boundaries at the given split
 * points (sorted, nsplit of them), into a buffer guarded at its end.
 * Returns -1 and a reason on a bound violation.
 */
static int
run(const unsigned char *in, size_t inlen, const size_t *splits,
    size_t nsplit, int stuff, unsigned char **outp, size_t *outlen,
    uint64_t *size, const char **why)
{
	struct xform	 x;
	unsigned char	*out, *chunk;
	size_t		 start, end, i, k, n, o = 0, cap;

	/* The whole output fits in the sum of the per-chunk bounds. */
	cap = XFORM_OUTLEN(inlen) + 2 * (nsplit + 1);
	if ((out = malloc(cap)) == NULL) {
		perror("malloc");
		exit(1);
	}
	xform_init(&x, stuff);
	start = 0;
	for (i = 0; i <= nsplit; i++) {
		end = i < nsplit ? splits[i] : inlen;
		n = end - start;
		/* A chunk gets exactly its bound, then guard octets. */
		if ((chunk = malloc(XFORM_OUTLEN(n) + GUARD)) == NULL) {
			perror("malloc");
			exit(1);
		}
		memset(chunk, GUARDBYTE, XFORM_OUTLEN(n) + GUARD);
		k = xform_chunk(&x, in + start, n, chunk);
		if (k > 2 * n) {
			*why = "chunk output over 2 * len";
			free(chunk);
			free(out);
			return (-1);
		}
		for (n = XFORM_OUTLEN(end - start);
		    n < XFORM_OUTLEN(end - start) + GUARD; n++)
			if (chunk[n] != GUARDBYTE) {
				*why = "guard octets overwritten";
				free(chunk);
				free(out);
				return (-1);
			}
		memcpy(out + o, chunk, k);
		o += k;
		free(chunk);
		start = end;
	}
	k = xform_finish(&x, out + o);
	if (k > 2) {
		*why = "finish output over 2";
		free(out);
		return (-1);
	}
	o += k;
	if (xform_finish(&x, out + o) != 0) {
		*why = "second finish not empty";
		free(out);
		return (-1);
	}
	*outp = out;
	*outlen = o;
	*size = x.size;
	return (0);
}

/* Count-only run (NULL output) with the same chunking. */
static uint64_t
count(const unsigned char *in, size_t inlen, const size_t *splits,
    size_t nsplit, int stuff, size_t *total)
{
	struct xform	 x;
	size_t		 start = 0, end, i;

	*total = 0;
	xform_init(&x, stuff);
	for (i = 0; i <= nsplit; i++) {
		end = i < nsplit ? splits[i] : inlen;
		*total += xform_chunk(&x, in + start, end - start, NULL);
		start = end;
	}
	*total += xform_finish(&x, NULL);
	return (x.size);
}

/* The same with xform_count(), the size of a new message. */
static uint64_t
fastcount(const unsigned char *in, size_t inlen, const size_t *splits,
    size_t nsplit)
{
	struct xform	 x;
	size_t		 start = 0, end, i;

	xform_init(&x, 0);
	for (i = 0; i <= nsplit; i++) {
		end = i < nsplit ? splits[i] : inlen;
		xform_count(&x, in + start, end - start);
		start = end;
	}
	xform_finish(&x, NULL);
	return (x.size);
}

/* One chunking of one case, both modes, output and size checked. */
static int
check(const struct tcase *tc, const size_t *splits, size_t nsplit,
    const char **why)
{
	const char	*exp;
	unsigned char	*out;
	size_t		 outlen, total, elen, plen = tc->plainlen;
	uint64_t	 size;
	int		 stuff;

	for (stuff = 0; stuff <= 1; stuff++) {
		exp = stuff ? tc->wire : tc->plain;
		elen = stuff ? tc->wirelen : tc->plainlen;
		if (run((const unsigned char *)tc->in, tc->inlen, splits,
		    nsplit, stuff, &out, &outlen, &size, why) == -1)
			return (-1);
		if (outlen != elen || memcmp(out, exp, elen) != 0) {
			*why = stuff ? "wrong dot-stuffed output" :
			    "wrong plain output";
			free(out);
			return (-1);
		}
		free(out);
		if (size != plen) {
			*why = "wrong size";
			return (-1);
		}
		if (count((const unsigned char *)tc->in, tc->inlen, splits,
		    nsplit, stuff, &total) != plen || total != elen) {
			*why = "count-only run differs";
			return (-1);
		}
		if (fastcount((const unsigned char *)tc->in, tc->inlen,
		    splits, nsplit) != plen) {
			*why = "xform_count differs";
			return (-1);
		}
	}
	return (0);
}

static void
test_case(const struct tcase *tc)
{
	size_t		*splits, i, j;
	const char	*why = NULL;
	char		 reason[128];

	if (check(tc, NULL, 0, &why) == -1) {
		snprintf(reason, sizeof(reason), "whole: %s", why);
		fail(tc->name, reason);
		return;
	}
	/* Every single split point, empty chunks at both ends included. */
	for (i = 0; i <= tc->inlen; i++) {
		if (check(tc, &i, 1, &why) == -1) {
			snprintf(reason, sizeof(reason), "split at %zu: %s",
			    i, why);
			fail(tc->name, reason);
			return;
		}
	}
	/* One octet at a time. */
	if (tc->inlen > 0) {
		if ((splits = calloc(tc->inlen, sizeof(*splits))) == NULL) {
			perror("calloc");
			exit(1);
		}
		for (j = 0; j < tc->inlen - 1; j++)
			splits[j] = j + 1;
		if (check(tc, splits, tc->inlen - 1, &why) == -1) {
			snprintf(reason, sizeof(reason), "bytewise: %s", why);
			fail(tc->name, reason);
			free(splits);
			return;
		}
		free(splits);
	}
	printf("PASS: %s\n", tc->name);
}

/* A deterministic generator: the test must fail the same way twice. */
static uint32_t	 rnd_state = 0x12345678;

static uint32_t
rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return (rnd_state);
}

/*
 * A straightforward reference: line by line over the whole input.
 * Returns the output length; out has room for 2 * len + 2.
 */
static size_t
reference(const unsigned char *in, size_t len, int stuff,
    unsigned char *out, uint64_t *size)
{
	size_t	 i, o = 0, dots = 0;

	for (i = 0; i < len; i++) {
		if (in[i] == '.' && stuff && (i == 0 || in[i - 1] == '\n')) {
			out[o++] = '.';
			dots++;
		}
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = in[i];
	}
	if (len > 0 && in[len - 1] != '\n') {
		if (in[len - 1] != '\r')
			out[o++] = '\r';
		out[o++] = '\n';
	}
	*size = o - dots;
	return (o);
}

/* Random messages over the interesting octets, randomly chunked. */
static void
test_random(void)
{
	static const unsigned char alpha[] = { '\r', '\n', '.', 'a', '\0' };
	unsigned char	 in[200], exp[402], *out;
	size_t		 splits[200], nsplit, len, i, elen, outlen;
	uint64_t	 esize, size;
	const char	*why;
	int		 round, stuff;
	char		 reason[128];

	for (round = 0; round < 20000; round++) {
		len = rnd() % sizeof(in);
		for (i = 0; i < len; i++)
			in[i] = alpha[rnd() % sizeof(alpha)];
		nsplit = 0;
		for (i = 1; i < len; i++)
			if (rnd() % 4 == 0)
				splits[nsplit++] = i;
		stuff = round & 1;
		elen = reference(in, len, stuff, exp, &esize);
		if (run(in, len, splits, nsplit, stuff, &out, &outlen, &size,
		    &why) == -1) {
			snprintf(reason, sizeof(reason), "round %d: %s",
			    round, why);
			fail("random-chunking", reason);
			return;
		}
		if (outlen != elen || memcmp(out, exp, elen) != 0 ||
		    size != esize) {
			snprintf(reason, sizeof(reason),
			    "round %d: differs from the reference", round);
			fail("random-chunking", reason);
			free(out);
			return;
		}
		free(out);
	}
	printf("PASS: random-chunking\n");
}

/*
 * xform_count against xform_chunk over longer random messages, cut at
 * random points (empty chunks too), LF-heavy and LF-sparse.
 */
static void
test_random_count(void)
{
	static const unsigned char alpha[] = { '\r', '\n', '.', 'a', '\0' };
	static unsigned char	 in[1 << 17];
	size_t		 splits[64], nsplit, len, i, j, t;
	uint64_t	 slow, fast;
	size_t		 total;
	int		 round, sparse;
	char		 reason[128];

	for (round = 0; round < 2000; round++) {
		len = round < 1000 ? rnd() % 512 : rnd() % sizeof(in);
		sparse = round % 3 == 0;
		for (i = 0; i < len; i++) {
			if (sparse && rnd() % 64 != 0)
				in[i] = 'a' + rnd() % 26;
			else
				in[i] = alpha[rnd() % sizeof(alpha)];
		}
		nsplit = len == 0 ? 0 : rnd() % (sizeof(splits) /
		    sizeof(splits[0]));
		for (i = 0; i < nsplit; i++)
			splits[i] = rnd() % (len + 1);
		/* Sorted, duplicates kept: empty chunks. */
		for (i = 1; i < nsplit; i++)
			for (j = i; j > 0 && splits[j - 1] > splits[j]; j--) {
				t = splits[j];
				splits[j] = splits[j - 1];
				splits[j - 1] = t;
			}
		slow = count(in, len, splits, nsplit, 0, &total);
		fast = fastcount(in, len, splits, nsplit);
		if (slow != fast) {
			snprintf(reason, sizeof(reason), "round %d: %llu, "
			    "xform_chunk %llu", round,
			    (unsigned long long)fast,
			    (unsigned long long)slow);
			fail("random-count", reason);
			return;
		}
	}
	printf("PASS: random-count\n");
}

int
main(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		test_case(&cases[i]);
	test_random();
	test_random_count();
	return (failed ? 1 : 0);
}
