/*
 * Fuzz target: mailbox/mbox.c, the mbox parser and its unique-ids,
 * through mbox_sync(), with mailbox/unfrom.c and transform.c behind it.
 * The input is the mbox file.  The index is played by the stubs below:
 * it never knows the file, so mbox_sync() reads it all; the first pass
 * has no old rows, the second gets the first's rows back.  Checked,
 * when the file parses as an mbox:
 *  - each message starts at a From_ line at the start of the file or
 *    after an empty line, off < start <= end <= the file's size, the
 *    From_ line is [off, start), messages in file order, and between
 *    one's end and the next's From_ line lies exactly one empty line,
 *    before the first only empty lines, after the last at most one;
 *  - the size is what RETR sends (before dot-stuffing) for [start, end):
 *    unfrom then the transform, in one chunk or in small ones;
 *  - unique-ids are 1..70 octets of 0x21-0x7E, unique in the mailbox;
 *  - a second pass with the first's rows as the index gives every
 *    message the same unique-id, none of them new.
 * mbox_sync() failing (not an mbox) is fine; a crash is not.
 */

#include <sys/types.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "../../mailbox/mailbox.h"

/* The rows the last index_mbox_store() kept, malloc'ed. */
struct saved {
	unsigned char	 hash[MBOX_HASHLEN];
	char		*uidl;
	int64_t		 id;
};
static struct saved	*saved;
static size_t		 nsaved;
static int		 give_old;	/* index_mbox_old() hands them out */

static void
saved_free(void)
{
	size_t	 i;

	for (i = 0; i < nsaved; i++)
		free(saved[i].uidl);
	free(saved);
	saved = NULL;
	nsaved = 0;
}

/* index.c's: an index that never saw this file. */
int
index_mbox_state(struct filestate *ms)
{
	memset(ms, 0, sizeof(*ms));
	return (IDX_OK);
}

int
index_mbox_rows(struct session *s)
{
	fuzz_fail("index_mbox_rows: the file cannot match the index");
}

int
index_mbox_old(struct mboxrow **rowsp, size_t *np)
{
	struct mboxrow	*rows = NULL;
	size_t		 i;

	*rowsp = NULL;
	*np = 0;
	if (!give_old || nsaved == 0)
		return (IDX_OK);
	if ((rows = calloc(nsaved, sizeof(*rows))) == NULL)
		abort();
	for (i = 0; i < nsaved; i++) {
		memcpy(rows[i].hash, saved[i].hash, MBOX_HASHLEN);
		rows[i].id = saved[i].id;
		/* As the real one: the strings live in the arena. */
		if ((rows[i].uidl = arena_strdup(saved[i].uidl)) == NULL)
			abort();
	}
	*rowsp = rows;
	*np = nsaved;
	return (IDX_OK);
}

int
index_mbox_store(struct session *s, const struct filestate *ms)
{
	size_t	 i;

	saved_free();
	if (s->nmsgs == 0)
		return (IDX_OK);
	if ((saved = calloc(s->nmsgs, sizeof(*saved))) == NULL)
		abort();
	for (i = 0; i < s->nmsgs; i++) {
		memcpy(saved[i].hash, s->msgs[i].hash, MBOX_HASHLEN);
		saved[i].id = (int64_t)i + 1;
		FUZZ_ASSERT(s->msgs[i].uidl != NULL);
		if ((saved[i].uidl = strdup(s->msgs[i].uidl)) == NULL)
			abort();
	}
	nsaved = s->nmsgs;
	return (IDX_OK);
}

/* The octets RETR announces for in[0..len), in chunks of step. */
static uint64_t
retr_size(const uint8_t *in, size_t len, size_t step)
{
	struct unfrom	 u;
	struct xform	 x;
	unsigned char	*mid, tail[5];
	size_t		 off, n, k;

	if ((mid = malloc(UNFROM_OUTLEN(step))) == NULL)
		abort();
	unfrom_init(&u);
	xform_init(&x, 0);
	for (off = 0; off < len; off += n) {
		n = len - off < step ? len - off : step;
		k = unfrom_chunk(&u, in + off, n, mid);
		FUZZ_ASSERT(k <= UNFROM_OUTLEN(n));
		xform_chunk(&x, mid, k, NULL);
	}
	k = unfrom_finish(&u, tail);
	FUZZ_ASSERT(k <= sizeof(tail));
	xform_chunk(&x, tail, k, NULL);
	xform_finish(&x, NULL);
	free(mid);
	return (x.size);
}

static int
is_empty_line(const uint8_t *p, size_t n)
{
	return ((n == 1 && p[0] == '\n') ||
	    (n == 2 && p[0] == '\r' && p[1] == '\n'));
}

static int
cmp_str(const void *a, const void *b)
{
	return (strcmp(*(char * const *)a, *(char * const *)b));
}

static void
check(const struct session *s, const uint8_t *data, size_t len)
{
	const struct msg	*m;
	const uint8_t		*nl;
	const char		**v;
	size_t			 i, j, ulen;
	uint64_t		 prev_end = 0;

	for (i = 0; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		FUZZ_ASSERT(m->off < m->start && m->start <= m->end &&
		    m->end <= len);
		FUZZ_ASSERT(m->off + 5 <= len &&
		    memcmp(data + m->off, "From ", 5) == 0);
		/* The From_ line, all of it. */
		nl = memchr(data + m->off, '\n', m->start - m->off);
		FUZZ_ASSERT(nl == NULL ?
		    m->start == len : (uint64_t)(nl - data) + 1 == m->start);
		if (i == 0) {
			/* Only empty lines before the first. */
			for (j = 0; j < m->off; )
				if (data[j] == '\n')
					j++;
				else {
					FUZZ_ASSERT(j + 1 < m->off &&
					    data[j] == '\r' &&
					    data[j + 1] == '\n');
					j += 2;
				}
		} else {
			FUZZ_ASSERT(m->off > prev_end);
			FUZZ_ASSERT(is_empty_line(data + prev_end,
			    m->off - prev_end));
		}
		FUZZ_ASSERT(m->off == 0 || data[m->off - 1] == '\n');
		prev_end = m->end;

		FUZZ_ASSERT(m->size == retr_size(data + m->start,
		    m->end - m->start, MAILBOX_CHUNK));
		FUZZ_ASSERT(m->size == retr_size(data + m->start,
		    m->end - m->start, 3));

		FUZZ_ASSERT(m->uidl != NULL);
		ulen = strlen(m->uidl);
		FUZZ_ASSERT(ulen >= 1 && ulen <= UIDL_MAX);
		for (j = 0; j < ulen; j++)
			FUZZ_ASSERT(m->uidl[j] >= 0x21 && m->uidl[j] <= 0x7e);
	}
	if (s->nmsgs > 0)
		FUZZ_ASSERT(prev_end == len ||
		    is_empty_line(data + prev_end, len - prev_end));

	if (s->nmsgs < 2)
		return;
	if ((v = reallocarray(NULL, s->nmsgs, sizeof(*v))) == NULL)
		abort();
	for (i = 0; i < s->nmsgs; i++)
		v[i] = s->msgs[i].uidl;
	qsort(v, s->nmsgs, sizeof(*v), cmp_str);
	for (i = 1; i < s->nmsgs; i++)
		if (strcmp(v[i - 1], v[i]) == 0)
			fuzz_fail("unique-id %s twice", v[i]);
	free(v);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init(1, LOG_DAEMON);
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct session	 s;
	const char	*path;
	char		**first = NULL;
	size_t		 i, n;
	int		 rv;

	path = fuzz_file_write("mbox", data, len);
	memset(&s, 0, sizeof(s));
	s.type = MAILDROP_MBOX;
	s.keeperfd = -1;
	if ((s.mboxfd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		abort();

	give_old = 0;
	saved_free();
	rv = mbox_sync(&s);
	FUZZ_ASSERT(rv == IDX_OK || rv == IDX_FAIL);
	if (rv != IDX_OK)
		goto done;
	FUZZ_ASSERT(s.mstate.size == (int64_t)len);
	check(&s, data, len);
	for (i = 0; i < s.nmsgs; i++)
		FUZZ_ASSERT(s.msgs[i].flags & MSG_NEW);

	/* Again, the index knowing the first pass's unique-ids. */
	n = s.nmsgs;
	if (n > 0 && (first = calloc(n, sizeof(*first))) == NULL)
		abort();
	for (i = 0; i < n; i++)
		if ((first[i] = strdup(s.msgs[i].uidl)) == NULL)
			abort();
	give_old = 1;
	rv = mbox_sync(&s);
	FUZZ_ASSERT(rv == IDX_OK);
	FUZZ_ASSERT(s.nmsgs == n);
	check(&s, data, len);
	for (i = 0; i < n; i++) {
		if (strcmp(first[i], s.msgs[i].uidl) != 0)
			fuzz_fail("message %zu: unique-id %s, then %s", i + 1,
			    first[i], s.msgs[i].uidl);
		FUZZ_ASSERT(!(s.msgs[i].flags & MSG_NEW));
		free(first[i]);
	}
	free(first);
 done:
	msgs_free(&s);
	saved_free();
	close(s.mboxfd);
	return (0);
}
