/*
 * Fuzz target: Maildir file names and their UIDLs (mailbox/uidl.c).
 * The input is a list of file names separated by NUL or LF.  Each
 * name's base (up to the ':' of its flags) gets a UIDL the way the
 * index gives one, trying again while it clashes.  Checked:
 *  - every UIDL is 1 to 70 octets of 0x21-0x7E (RFC 1939);
 *  - UIDLs are unique across the list, apart from equal base names;
 *  - a second pass over the same names gives the same UIDLs (an index
 *    rebuilt from nothing keeps them);
 *  - a valid base name is its own UIDL.
 */

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "../../mailbox/mailbox.h"

#define NAMES_MAX	256
#define TRIES_MAX	100	/* as the index's retries */

struct name {
	char	 base[256];
	char	 uidl[UIDL_MAX + 1];
};

static int
taken(const struct name *n, size_t count, const char *uidl)
{
	size_t	 i;

	for (i = 0; i < count; i++)
		if (strcmp(n[i].uidl, uidl) == 0)
			return (1);
	return (0);
}

/* UIDLs for names[0..count) as the index assigns them, in order. */
static void
assign(struct name *n, size_t count)
{
	size_t	 i, j;
	int	 try;

	for (i = 0; i < count; i++) {
		/* A base name already seen is the same message. */
		for (j = 0; j < i; j++)
			if (strcmp(n[j].base, n[i].base) == 0)
				break;
		if (j < i) {
			memcpy(n[i].uidl, n[j].uidl, sizeof(n[i].uidl));
			continue;
		}
		for (try = 0; try < TRIES_MAX; try++) {
			maildir_uidl(n[i].base, try, n[i].uidl,
			    sizeof(n[i].uidl));
			if (!taken(n, i, n[i].uidl))
				break;
		}
		FUZZ_ASSERT(try < TRIES_MAX);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct name	 a[NAMES_MAX], b[NAMES_MAX];
	size_t			 count = 0, i, j, start = 0, len;

	for (i = 0; i <= size && count < NAMES_MAX; i++) {
		if (i < size && data[i] != '\0' && data[i] != '\n')
			continue;
		/* The base is the name up to the flags. */
		for (len = 0; start + len < i && data[start + len] != ':';
		    len++)
			;
		if (len > 0 && len < sizeof(a[0].base)) {
			memcpy(a[count].base, data + start, len);
			a[count].base[len] = '\0';
			if (strlen(a[count].base) == len)
				count++;
		}
		start = i + 1;
	}
	memcpy(b, a, sizeof(a));
	assign(a, count);
	assign(b, count);
	for (i = 0; i < count; i++) {
		len = strlen(a[i].uidl);
		FUZZ_ASSERT(len >= 1 && len <= UIDL_MAX);
		for (j = 0; j < len; j++)
			FUZZ_ASSERT(a[i].uidl[j] >= 0x21 &&
			    a[i].uidl[j] <= 0x7e);
		FUZZ_ASSERT(strcmp(a[i].uidl, b[i].uidl) == 0);
		if (uidl_valid(a[i].base) && !taken(a, i, a[i].base))
			FUZZ_ASSERT(strcmp(a[i].uidl, a[i].base) == 0);
		for (j = 0; j < i; j++)
			FUZZ_ASSERT(strcmp(a[i].uidl, a[j].uidl) != 0 ||
			    strcmp(a[i].base, a[j].base) == 0);
	}
	return (0);
}
