/*
 * Linear byte buffers that wipe what they drop.
 */

#include <stdlib.h>
#include <string.h>

#include "iobuf.h"

int
iobuf_init(struct iobuf *b, size_t size)
{
	b->len = 0;
	b->size = size;
	if ((b->data = malloc(size)) == NULL) {
		b->size = 0;
		return (-1);
	}
	return (0);
}

int
iobuf_resize(struct iobuf *b, size_t size)
{
	char	*p;

	if (size <= b->size)
		return (0);
	if ((p = recallocarray(b->data, b->size, size, 1)) == NULL)
		return (-1);
	b->data = p;
	b->size = size;
	return (0);
}

int
iobuf_append(struct iobuf *b, const void *p, size_t n)
{
	if (n > b->size - b->len)
		return (-1);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return (0);
}

void
iobuf_consume(struct iobuf *b, size_t n)
{
	if (n >= b->len) {
		explicit_bzero(b->data, b->len);
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	explicit_bzero(b->data + b->len - n, n);
	b->len -= n;
}

size_t
iobuf_room(const struct iobuf *b)
{
	return (b->size - b->len);
}

void
iobuf_free(struct iobuf *b)
{
	if (b->data != NULL)
		freezero(b->data, b->size);
	b->data = NULL;
	b->len = b->size = 0;
}
