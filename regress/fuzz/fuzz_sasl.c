/*
 * Fuzz target: the SASL decoders of the login process, login/base64.c
 * and login/plain.c, against independent reference code:
 *  - base64_decode() takes exactly the canonical encodings: whatever it
 *    accepts encodes back to the same text, and the encoding of any
 *    bytes decodes back to them;
 *  - utf8_valid() agrees with a table-driven RFC 3629 check;
 *  - plain_parse() splits at the two NULs, fills only its buffers, and
 *    refuses what RFC 4616 and our limits refuse.
 * Output buffers are allocated to their exact size, so any write past
 * them is an AddressSanitizer report.
 */

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "../../login/sasl.h"

static const char	 b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Reference encoder (RFC 4648 section 4, padded); returns the length. */
static size_t
encode(const uint8_t *in, size_t len, char *out)
{
	size_t		 i, o = 0;
	uint32_t	 v;

	for (i = 0; i + 2 < len; i += 3) {
		v = in[i] << 16 | in[i + 1] << 8 | in[i + 2];
		out[o++] = b64[v >> 18];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = b64[v >> 6 & 63];
		out[o++] = b64[v & 63];
	}
	if (len - i == 1) {
		v = in[i] << 16;
		out[o++] = b64[v >> 18];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		v = in[i] << 16 | in[i + 1] << 8;
		out[o++] = b64[v >> 18];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = b64[v >> 6 & 63];
		out[o++] = '=';
	}
	return (o);
}

/* Reference UTF-8 check: the table of RFC 3629 section 4; no NUL/CR/LF. */
static int
utf8_ref(const uint8_t *s, size_t len)
{
	size_t	 i = 0, n, k;
	uint8_t	 lo, hi;

	while (i < len) {
		uint8_t c = s[i];

		lo = 0x80;
		hi = 0xbf;
		if (c <= 0x7f) {
			if (c == 0 || c == '\r' || c == '\n')
				return (0);
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c == 0xe0) {
			n = 2;
			lo = 0xa0;
		} else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
			n = 2;
		else if (c == 0xed) {
			n = 2;
			hi = 0x9f;
		} else if (c == 0xf0) {
			n = 3;
			lo = 0x90;
		} else if (c >= 0xf1 && c <= 0xf3)
			n = 3;
		else if (c == 0xf4) {
			n = 3;
			hi = 0x8f;
		} else
			return (0);
		if (len - i <= n)
			return (0);
		/* Only the first continuation octet has a narrower range. */
		if (s[i + 1] < lo || s[i + 1] > hi)
			return (0);
		for (k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return (0);
		i += n + 1;
	}
	return (1);
}

static void
check_base64(const uint8_t *data, size_t len, size_t outsz)
{
	unsigned char	*out;
	char		*text, *again;
	ssize_t		 n;
	size_t		 elen;

	/* Any text: accepted only if canonical. */
	if ((text = malloc(len + 1)) == NULL ||
	    (out = malloc(outsz + 1)) == NULL)
		abort();
	memcpy(text, data, len);
	n = base64_decode(text, len, out, outsz);
	FUZZ_ASSERT(n >= -1);
	if (n >= 0) {
		FUZZ_ASSERT((size_t)n <= outsz);
		if ((again = malloc(len + 4)) == NULL)
			abort();
		elen = encode(out, n, again);
		FUZZ_ASSERT(elen == len && memcmp(again, text, len) == 0);
		free(again);
	}
	free(out);
	free(text);

	/* Any bytes: their encoding decodes back to them. */
	if ((text = malloc(len / 3 * 4 + 4)) == NULL ||
	    (out = malloc(len > 0 ? len : 1)) == NULL)
		abort();
	elen = encode(data, len, text);
	n = base64_decode(text, elen, out, len);
	FUZZ_ASSERT(n >= 0 && (size_t)n == len);
	FUZZ_ASSERT(len == 0 || memcmp(out, data, len) == 0);
	/* One octet less room must be refused, not overflowed. */
	if (len > 0) {
		n = base64_decode(text, elen, out, len - 1);
		FUZZ_ASSERT(n == -1);
	}
	free(out);
	free(text);
}

static void
check_plain(const uint8_t *data, size_t len, size_t fieldsz)
{
	const uint8_t	*nul1, *nul2;
	char		*a, *b, *c;
	size_t		 la = 0, lb = 0, lc = 0, i;
	int		 r, want;

	if ((a = malloc(fieldsz)) == NULL || (b = malloc(fieldsz)) == NULL ||
	    (c = malloc(fieldsz)) == NULL)
		abort();
	memset(c, 0x5a, fieldsz);
	r = plain_parse(data, len, a, b, c, fieldsz);
	FUZZ_ASSERT(r == 0 || r == -1);

	/* What RFC 4616 and the 255-octet limits say. */
	want = 0;
	nul1 = memchr(data, '\0', len);
	nul2 = nul1 != NULL ? memchr(nul1 + 1, '\0', data + len - nul1 - 1) :
	    NULL;
	if (nul2 != NULL) {
		la = nul1 - data;
		lb = nul2 - nul1 - 1;
		lc = data + len - nul2 - 1;
		want = lb > 0 && lc > 0 && la <= 255 && lb <= 255 &&
		    lc <= 255 && la < fieldsz && lb < fieldsz &&
		    lc < fieldsz && utf8_ref(data, la) &&
		    utf8_ref(nul1 + 1, lb) && utf8_ref(nul2 + 1, lc);
	}
	FUZZ_ASSERT((r == 0) == want);
	if (r == 0) {
		FUZZ_ASSERT(strlen(a) == la && memcmp(a, data, la) == 0);
		FUZZ_ASSERT(strlen(b) == lb && memcmp(b, nul1 + 1, lb) == 0);
		FUZZ_ASSERT(strlen(c) == lc && memcmp(c, nul2 + 1, lc) == 0);
	} else {
		/* A refused message leaves no password behind. */
		for (i = 0; i < fieldsz; i++)
			FUZZ_ASSERT(c[i] == 0 || c[i] == 0x5a);
	}
	free(a);
	free(b);
	free(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	size_t	 outsz, fieldsz;

	if (len < 2)
		return (0);
	/* Two octets of parameters, then the text. */
	outsz = data[0] * 4;
	fieldsz = data[1] + 1;
	data += 2;
	len -= 2;

	FUZZ_ASSERT(utf8_valid(data, len) == utf8_ref(data, len));
	check_base64(data, len, outsz);
	check_base64(data, len, len);
	check_plain(data, len, fieldsz);
	check_plain(data, len, 256);
	return (0);
}
