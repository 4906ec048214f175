/*
 * Strict base64 (RFC 4648 section 4) for SASL: no whitespace, padding
 * only at the end, unused bits zero.  Anything else is refused.
 */

#include <stddef.h>
#include <stdint.h>

#include "sasl.h"

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (c - 'A');
	if (c >= 'a' && c <= 'z')
		return (c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (c - '0' + 52);
	if (c == '+')
		return (62);
	if (c == '/')
		return (63);
	return (-1);
}

/* Decoded length, or -1 if src is not canonical base64 or out is small. */
ssize_t
base64_decode(const char *src, size_t len, unsigned char *out, size_t outsz)
{
	size_t		 i, o = 0, pad = 0;
	uint32_t	 acc;
	int		 j, v;

	if (len % 4 != 0)
		return (-1);
	if (len >= 1 && src[len - 1] == '=')
		pad++;
	if (len >= 2 && src[len - 2] == '=')
		pad++;
	if (len / 4 * 3 - pad > outsz)
		return (-1);
	for (i = 0; i < len; i += 4) {
		acc = 0;
		for (j = 0; j < 4; j++) {
			if (i + j >= len - pad) {
				v = 0;		/* padding, checked above */
			} else if ((v = b64_value(src[i + j])) == -1)
				return (-1);
			acc = acc << 6 | v;
		}
		out[o++] = acc >> 16;
		if (i + 4 < len || pad < 2)
			out[o++] = acc >> 8 & 0xff;
		if (i + 4 < len || pad < 1)
			out[o++] = acc & 0xff;
		/* The bits the padding hides must be zero. */
		if (i + 4 == len && ((pad == 1 && (acc & 0xff) != 0) ||
		    (pad == 2 && (acc & 0xffff) != 0)))
			return (-1);
	}
	return (o);
}
