/*
 * The SASL PLAIN message (RFC 4616): [authzid] NUL authcid NUL passwd,
 * each at most 255 octets of UTF-8 without NUL, CR or LF.
 */

#include <stddef.h>
#include <string.h>

#include "sasl.h"

#define PLAIN_FIELD_MAX		255

/* 1 if s holds well-formed UTF-8 (RFC 3629) and no CR or LF. */
int
utf8_valid(const unsigned char *s, size_t len)
{
	size_t		 i = 0, n, k;
	unsigned int	 cp, min;

	while (i < len) {
		if (s[i] < 0x80) {
			if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
				return (0);
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			n = 1;
			cp = s[i] & 0x1f;
			min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			n = 2;
			cp = s[i] & 0x0f;
			min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			n = 3;
			cp = s[i] & 0x07;
			min = 0x10000;
		} else
			return (0);
		if (i + n >= len)
			return (0);
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return (0);
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates, past the last code point. */
		if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) ||
		    cp > 0x10ffff)
			return (0);
		i += n + 1;
	}
	return (1);
}

static int
plain_field(const unsigned char *p, size_t len, int may_be_empty,
    char *out, size_t outsz)
{
	if ((len == 0 && !may_be_empty) || len > PLAIN_FIELD_MAX ||
	    len >= outsz || !utf8_valid(p, len))
		return (-1);
	memcpy(out, p, len);
	out[len] = '\0';
	return (0);
}

/* 0 and the three fields NUL-terminated, or -1 if malformed. */
int
plain_parse(const unsigned char *msg, size_t len, char *authzid,
    char *authcid, char *passwd, size_t fieldsz)
{
	const unsigned char	*nul1, *nul2, *end = msg + len;

	if ((nul1 = memchr(msg, '\0', len)) == NULL ||
	    (nul2 = memchr(nul1 + 1, '\0', end - nul1 - 1)) == NULL)
		return (-1);
	if (plain_field(msg, nul1 - msg, 1, authzid, fieldsz) == -1 ||
	    plain_field(nul1 + 1, nul2 - nul1 - 1, 0, authcid,
	    fieldsz) == -1 ||
	    plain_field(nul2 + 1, end - nul2 - 1, 0, passwd, fieldsz) == -1) {
		explicit_bzero(passwd, fieldsz);
		return (-1);
	}
	return (0);
}
