/*
 * An imsgbuf driven by libevent: the handler is called with EV_READ or
 * EV_WRITE like any libevent callback and decides what to do.
 */

#ifndef POP3D_IMSGEV_H
#define POP3D_IMSGEV_H

#include <event.h>

#include "imsg.h"

struct imsgev {
	struct imsgbuf		 ibuf;
	void			(*handler)(int, short, void *);
	struct event		 ev;
	short			 events;
	void			*data;
};

int	 imsgev_init(struct imsgev *, int, void *,
	    void (*)(int, short, void *));
/* (Re)arm the event: always EV_READ, EV_WRITE while output is queued. */
void	 imsgev_add(struct imsgev *);
int	 imsgev_compose(struct imsgev *, uint32_t, uint32_t, pid_t, int,
	    const void *, size_t);
/* Remove the event, clear the buffers and close the descriptor. */
void	 imsgev_close(struct imsgev *);
/*
 * The usual first half of a handler: writes queued output on EV_WRITE,
 * reads on EV_READ.  Returns -1 if the peer went away or failed (the
 * caller should shut the channel), 0 otherwise.
 */
int	 imsgev_io(struct imsgev *, short);

#endif /* POP3D_IMSGEV_H */
