/*
 * The message list's memory: the array, grown by doubling, and its
 * strings (file names, base names, unique-ids) carved out of large
 * blocks.  All of it is freed at once when the list goes.  A Maildir of 100,000 messages holds 200,000 of them, and
 * malloc(3)'s overhead on each would be a third of the session's memory.
 */

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mailbox.h"

#define ARENA_BLOCK	(64 * 1024)

struct block {
	struct block	*next;
	size_t		 used;
	size_t		 size;
	char		 data[];
};

static struct block	*blocks;

char *
arena_strndup(const char *s, size_t len)
{
	struct block	*b;
	size_t		 size;
	char		*p;

	if (blocks == NULL || blocks->size - blocks->used < len + 1) {
		/* A long string gets a block of its own, behind the rest. */
		size = len + 1 > ARENA_BLOCK / 4 ? len + 1 : ARENA_BLOCK;
		if ((b = malloc(sizeof(*b) + size)) == NULL)
			return (NULL);
		b->used = 0;
		b->size = size;
		if (blocks != NULL && size != ARENA_BLOCK) {
			b->next = blocks->next;
			blocks->next = b;
		} else {
			b->next = blocks;
			blocks = b;
		}
	} else
		b = blocks;
	p = b->data + b->used;
	memcpy(p, s, len);
	p[len] = '\0';
	b->used += len + 1;
	return (p);
}

char *
arena_strdup(const char *s)
{
	return (arena_strndup(s, strlen(s)));
}

void
arena_free(void)
{
	struct block	*b;

	while ((b = blocks) != NULL) {
		blocks = b->next;
		free(b);
	}
}

/* A zeroed message at the end of the list, or NULL. */
struct msg *
msgs_add(struct session *s)
{
	struct msg	*m;
	size_t		 cap;

	if (s->nmsgs == s->msgcap) {
		cap = s->msgcap ? s->msgcap * 2 : 64;
		if ((m = reallocarray(s->msgs, cap, sizeof(*m))) == NULL) {
			log_warn("reallocarray");
			return (NULL);
		}
		s->msgs = m;
		s->msgcap = cap;
	}
	m = &s->msgs[s->nmsgs++];
	memset(m, 0, sizeof(*m));
	return (m);
}

void
msgs_free(struct session *s)
{
	free(s->msgs);
	arena_free();
	s->msgs = NULL;
	s->nmsgs = s->msgcap = 0;
}
