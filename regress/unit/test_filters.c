/*
 * Unit tests of mailbox/unfrom.c (the mbox ">From " unescape) and
 * mailbox/top.c (where TOP stops), under every chunking of each input
 * into up to three pieces.  Prints "PASS: name" or "FAIL: name (reason)".
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mailbox/mailbox.h"

#define S(s)	s, sizeof(s) - 1

struct ucase {
	const char	*name;
	const char	*in;
	size_t		 inlen;
	const char	*out;
	size_t		 outlen;
};

static const struct ucase ucases[] = {
	{ "empty", S(""), S("") },
	{ "first-line", S(">From x\n"), S("From x\n") },
	{ "after-empty", S("a\n\n>From x\n"), S("a\n\nFrom x\n") },
	{ "after-crlf-empty", S("a\r\n\r\n>From x\r\n"),
	    S("a\r\n\r\nFrom x\r\n") },
	{ "not-after-text", S("a\n>From x\n"), S("a\n>From x\n") },
	{ "two-quotes", S("\n>>From x\n"), S("\n>>From x\n") },
	{ "mid-line", S("\nx >From y\n"), S("\nx >From y\n") },
	{ "no-space", S("\n>Fromx\n"), S("\n>Fromx\n") },
	{ "lower-case", S("\n>from x\n"), S("\n>from x\n") },
	{ "only-quote", S(">"), S(">") },
	{ "cut-prefix", S("\n>Fro"), S("\n>Fro") },
	{ "quote-newline", S(">\n>From a\n"), S(">\n>From a\n") },
	{ "quote-then-empty", S("\n>\n\n>From a\n"), S("\n>\n\nFrom a\n") },
	{ "twice", S(">From a\n\n>From b\n"), S("From a\n\nFrom b\n") },
	{ "exact", S("\n>From "), S("\nFrom ") },
	{ "cr-line-not-empty", S("\r\r\n>From a\n"), S("\r\r\n>From a\n") },
};

struct tcase {
	const char	*name;
	const char	*in;
	size_t		 inlen;
	uint64_t	 lines;
	size_t		 pass;		/* octets passed */
	int		 done;
};

static const struct tcase tcases[] = {
	{ "empty", S(""), 0, 0, 0 },
	{ "head-only-0", S("A: b\nC: d\n"), 0, 10, 0 },
	{ "head-body-0", S("A: b\n\nl1\nl2\n"), 0, 6, 1 },
	{ "head-body-1", S("A: b\n\nl1\nl2\n"), 1, 9, 1 },
	{ "head-body-2", S("A: b\n\nl1\nl2\n"), 2, 12, 1 },
	{ "head-body-9", S("A: b\n\nl1\nl2\n"), 9, 12, 0 },
	{ "crlf-0", S("A: b\r\n\r\nl1\r\n"), 0, 8, 1 },
	{ "crlf-1", S("A: b\r\n\r\nl1\r\nl2\r\n"), 1, 12, 1 },
	{ "no-final-lf", S("A: b\n\nl1\nl2"), 5, 11, 0 },
	{ "empty-body-lines", S("A\n\n\n\nx\n"), 2, 5, 1 },
	{ "lone-cr-line", S("A\n\r\nb\n"), 0, 4, 1 },
	{ "cr-cr-not-empty", S("A\n\r\r\nb\n\nc\n"), 0, 8, 1 },
	{ "empty-first", S("\nbody\n"), 0, 1, 1 },
	{ "empty-first-1", S("\nbody\nx\n"), 1, 6, 1 },
};

static int	 failed;

static void
fail(const char *what, const char *name, const char *why)
{
	printf("FAIL: %s %s (%s)\n", what, name, why);
	failed = 1;
}

/* The unescape over in, cut at a and b (a <= b), into out. */
static int
unfrom_run(const struct ucase *c, size_t a, size_t b, const char **why)
{
	struct unfrom	 u;
	unsigned char	*out;
	size_t		 cuts[3] = { a, b, c->inlen }, start = 0, i, k, o = 0;

	if ((out = malloc(UNFROM_OUTLEN(c->inlen) * 3 + 8)) == NULL) {
		perror("malloc");
		exit(1);
	}
	unfrom_init(&u);
	for (i = 0; i < 3; i++) {
		k = unfrom_chunk(&u, (const unsigned char *)c->in + start,
		    cuts[i] - start, out + o);
		if (k > UNFROM_OUTLEN(cuts[i] - start)) {
			*why = "chunk output over its bound";
			free(out);
			return (-1);
		}
		o += k;
		start = cuts[i];
	}
	k = unfrom_finish(&u, out + o);
	if (k > 5) {
		*why = "finish output over 5";
		free(out);
		return (-1);
	}
	o += k;
	if (o != c->outlen || memcmp(out, c->out, o) != 0) {
		*why = "wrong output";
		free(out);
		return (-1);
	}
	free(out);
	return (0);
}

static int
top_run(const struct tcase *c, size_t a, size_t b, const char **why)
{
	struct toplimit	 t;
	size_t		 cuts[3] = { a, b, c->inlen }, start = 0, i, k;
	size_t		 passed = 0;

	top_init(&t, c->lines);
	for (i = 0; i < 3; i++) {
		k = top_chunk(&t, (const unsigned char *)c->in + start,
		    cuts[i] - start);
		if (k > cuts[i] - start) {
			*why = "passes more than it got";
			return (-1);
		}
		passed += k;
		/* Once done, nothing more passes. */
		if (t.done && k < cuts[i] - start) {
			start = cuts[i];
			for (i++; i < 3; i++) {
				if (top_chunk(&t, (const unsigned char *)
				    c->in + start, cuts[i] - start) != 0) {
					*why = "passes after done";
					return (-1);
				}
				start = cuts[i];
			}
			break;
		}
		start = cuts[i];
	}
	if (passed != c->pass) {
		*why = "wrong cut";
		return (-1);
	}
	if (t.done != c->done) {
		*why = "wrong done";
		return (-1);
	}
	return (0);
}

int
main(void)
{
	const char	*why;
	size_t		 i, a, b;
	int		 bad;

	for (i = 0; i < sizeof(ucases) / sizeof(ucases[0]); i++) {
		bad = 0;
		for (a = 0; a <= ucases[i].inlen && !bad; a++)
			for (b = a; b <= ucases[i].inlen && !bad; b++)
				if (unfrom_run(&ucases[i], a, b, &why) == -1) {
					fail("unfrom", ucases[i].name, why);
					bad = 1;
				}
		if (!bad)
			printf("PASS: unfrom %s\n", ucases[i].name);
	}
	for (i = 0; i < sizeof(tcases) / sizeof(tcases[0]); i++) {
		bad = 0;
		for (a = 0; a <= tcases[i].inlen && !bad; a++)
			for (b = a; b <= tcases[i].inlen && !bad; b++)
				if (top_run(&tcases[i], a, b, &why) == -1) {
					fail("top", tcases[i].name, why);
					bad = 1;
				}
		if (!bad)
			printf("PASS: top %s\n", tcases[i].name);
	}
	return (failed);
}
