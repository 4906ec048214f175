/*
 * The pure parts of SASL: base64 and the PLAIN message.  No I/O here,
 * so the unit tests and fuzzers can link them alone.
 */

#ifndef POP3D_SASL_H
#define POP3D_SASL_H

#include <sys/types.h>

#include <stddef.h>

ssize_t	 base64_decode(const char *, size_t, unsigned char *, size_t);
int	 utf8_valid(const unsigned char *, size_t);
int	 plain_parse(const unsigned char *, size_t, char *, char *, char *,
	    size_t);

#endif /* POP3D_SASL_H */
