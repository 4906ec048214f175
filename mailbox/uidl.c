/*
 * Unique-ids of Maildir messages (RFC 1939 section 7): the file's base
 * name where it is a valid one, else a hash of it.  Pure, so that an
 * index rebuilt from nothing gives every message the same UIDL again.
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mailbox.h"

int
uidl_valid(const char *s)
{
	size_t	 i;

	for (i = 0; s[i] != '\0'; i++)
		if (i == UIDL_MAX || s[i] < 0x21 || s[i] > 0x7e)
			return (0);
	return (i > 0);
}

/*
 * The UIDL of base at the try-th attempt: the caller tries again with
 * the next number while the UIDL clashes with another message's.
 */
void
maildir_uidl(const char *base, int try, char *buf, size_t len)
{
	const unsigned char	*p;
	uint64_t		 h = 0xcbf29ce484222325ULL;	/* FNV-1a */

	if (try == 0 && uidl_valid(base)) {
		strlcpy(buf, base, len);
		return;
	}
	for (p = (const unsigned char *)base; *p != '\0'; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	if (try == 0)
		snprintf(buf, len, "%016llx", (unsigned long long)h);
	else
		snprintf(buf, len, "%016llx-%d", (unsigned long long)h, try);
}
