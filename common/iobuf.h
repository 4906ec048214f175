/*
 * A linear byte buffer for connection I/O.  Consumed bytes are zeroed:
 * a buffer may have held a password.
 */

#ifndef POP3D_IOBUF_H
#define POP3D_IOBUF_H

#include <stddef.h>

struct iobuf {
	char		*data;
	size_t		 len;		/* bytes held */
	size_t		 size;		/* capacity */
};

int	 iobuf_init(struct iobuf *, size_t);
/* Grow the capacity (never shrinks); -1 on allocation failure. */
int	 iobuf_resize(struct iobuf *, size_t);
/* -1 if it does not fit. */
int	 iobuf_append(struct iobuf *, const void *, size_t);
void	 iobuf_consume(struct iobuf *, size_t);
size_t	 iobuf_room(const struct iobuf *);
void	 iobuf_free(struct iobuf *);

#endif /* POP3D_IOBUF_H */
