/*
 * Unit tests of the SASL parsers: strict base64, UTF-8 and PLAIN.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../login/sasl.h"

static int	 failed;

static void
check(const char *name, int ok)
{
	printf("%s: %s\n", ok ? "PASS" : "FAIL", name);
	if (!ok)
		failed = 1;
}

static int
b64_is(const char *in, const char *want, ssize_t wantlen)
{
	unsigned char	 out[64];
	ssize_t		 n;

	n = base64_decode(in, strlen(in), out, sizeof(out));
	if (wantlen < 0)
		return (n == -1);
	return (n == wantlen && memcmp(out, want, wantlen) == 0);
}

static int
plain_is(const char *msg, size_t len, const char *zid, const char *cid,
    const char *pw)
{
	char	 a[256], b[256], c[256];

	if (plain_parse((const unsigned char *)msg, len, a, b, c,
	    sizeof(a)) == -1)
		return (zid == NULL);
	return (zid != NULL && strcmp(a, zid) == 0 && strcmp(b, cid) == 0 &&
	    strcmp(c, pw) == 0);
}

static void
test_base64(void)
{
	unsigned char	 out[8];
	char		 big[1025];

	check("base64 empty", b64_is("", "", 0));
	check("base64 one byte", b64_is("YQ==", "a", 1));
	check("base64 two bytes", b64_is("YWI=", "ab", 2));
	check("base64 three bytes", b64_is("YWJj", "abc", 3));
	check("base64 NULs", b64_is("AGFsaWNlAHNlY3JldA==",
	    "\0alice\0secret", 13));
	check("base64 length not a multiple of 4", b64_is("YWJ", NULL, -1));
	check("base64 bad character", b64_is("YW*j", NULL, -1));
	check("base64 whitespace", b64_is("YW Jj", NULL, -1));
	check("base64 padding inside", b64_is("YQ==YWJj", NULL, -1));
	check("base64 three pads", b64_is("Y===", NULL, -1));
	check("base64 non-canonical bits (YR==)", b64_is("YR==", NULL, -1));
	check("base64 non-canonical bits (YWJ=)", b64_is("YWK=", NULL, -1));
	check("base64 output too small",
	    base64_decode("YWJjZGVmZ2hp", 12, out, 8) == -1);
	memset(big, 'A', 1024);
	big[1024] = '\0';
	check("base64 long input into small buffer",
	    base64_decode(big, 1024, out, sizeof(out)) == -1);
}

static void
test_utf8(void)
{
	check("utf8 ascii", utf8_valid((const unsigned char *)"abc", 3));
	check("utf8 two bytes", utf8_valid((const unsigned char *)"\xc3\xa9",
	    2));
	check("utf8 four bytes",
	    utf8_valid((const unsigned char *)"\xf0\x9f\x93\xa7", 4));
	check("utf8 truncated",
	    !utf8_valid((const unsigned char *)"\xe2\x82", 2));
	check("utf8 overlong", !utf8_valid((const unsigned char *)"\xc0\xaf",
	    2));
	check("utf8 surrogate",
	    !utf8_valid((const unsigned char *)"\xed\xa0\x80", 3));
	check("utf8 past U+10FFFF",
	    !utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4));
	check("utf8 stray continuation",
	    !utf8_valid((const unsigned char *)"\x80", 1));
	check("utf8 CR refused", !utf8_valid((const unsigned char *)"a\rb",
	    3));
	check("utf8 LF refused", !utf8_valid((const unsigned char *)"a\nb",
	    3));
}

static void
test_plain(void)
{
	char	 msg[1024];
	size_t	 n;

	check("plain no authzid", plain_is("\0alice\0secret", 13, "",
	    "alice", "secret"));
	check("plain with authzid", plain_is("alice\0alice\0pw", 14,
	    "alice", "alice", "pw"));
	check("plain password with spaces and UTF-8",
	    plain_is("\0bob\0p w \xc3\xa9", 11, "", "bob", "p w \xc3\xa9"));
	check("plain one NUL", plain_is("alice\0secret", 12, NULL, NULL,
	    NULL));
	check("plain no NUL", plain_is("alice", 5, NULL, NULL, NULL));
	check("plain three NULs", plain_is("\0a\0b\0c", 6, NULL, NULL,
	    NULL));
	check("plain empty authcid", plain_is("\0\0pw", 4, NULL, NULL,
	    NULL));
	check("plain empty password", plain_is("\0alice\0", 7, NULL, NULL,
	    NULL));
	check("plain bad UTF-8 password", plain_is("\0a\0\xff", 4, NULL,
	    NULL, NULL));

	/* Three fields of 255 octets: the most RFC 4616 asks for. */
	memset(msg, 'z', 255);
	msg[255] = '\0';
	memset(msg + 256, 'z', 255);
	msg[511] = '\0';
	memset(msg + 512, 'p', 255);
	n = 767;
	{
		char	 a[256], b[256], c[256];

		check("plain 3 x 255 octets", plain_parse(
		    (unsigned char *)msg, n, a, b, c, sizeof(a)) == 0 &&
		    strlen(a) == 255 && strlen(b) == 255 && strlen(c) == 255);
		msg[n] = 'p';
		check("plain 256-octet password refused", plain_parse(
		    (unsigned char *)msg, n + 1, a, b, c, sizeof(a)) == -1);
	}
}

int
main(void)
{
	test_base64();
	test_utf8();
	test_plain();
	return (failed);
}
