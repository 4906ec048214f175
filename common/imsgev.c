/*
 * An imsgbuf driven by libevent.  The event is not persistent: as in
 * OpenBSD's daemons, a handler ends with imsgev_add() to listen again
 * (with EV_WRITE added while output is queued), or with imsgev_close().
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <errno.h>
#include <event.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"
#include "imsgev.h"
#include "log.h"

/* The handler is called with data as its argument, not the imsgev. */
int
imsgev_init(struct imsgev *iev, int fd, void *data,
    void (*handler)(int, short, void *))
{
	memset(iev, 0, sizeof(*iev));
	if (imsg_init(&iev->ibuf, fd) == -1)
		return (-1);
	iev->handler = handler;
	iev->data = data;
	iev->events = 0;
	return (0);
}

void
imsgev_add(struct imsgev *iev)
{
	if (iev->ibuf.fd == -1)
		return;
	if (iev->events != 0)
		event_del(&iev->ev);
	iev->events = EV_READ;
	if (iev->ibuf.w.queued > 0)
		iev->events |= EV_WRITE;
	event_set(&iev->ev, iev->ibuf.fd, iev->events, iev->handler,
	    iev->data);
	/* A channel nobody listens to would hang the process silently. */
	if (event_add(&iev->ev, NULL) == -1)
		fatal("%s: event_add", __func__);
}

int
imsgev_compose(struct imsgev *iev, uint32_t type, uint32_t peerid,
    pid_t pid, int fd, const void *data, size_t datalen)
{
	int	 rv;

	if (iev->ibuf.fd == -1) {
		errno = EBADF;
		return (-1);
	}
	if ((rv = imsg_compose(&iev->ibuf, type, peerid, pid, fd, data,
	    datalen)) == -1)
		return (-1);
	imsgev_add(iev);
	return (rv);
}

void
imsgev_close(struct imsgev *iev)
{
	if (iev->events != 0) {
		event_del(&iev->ev);
		iev->events = 0;
	}
	imsg_clear(&iev->ibuf);
	if (iev->ibuf.fd != -1)
		close(iev->ibuf.fd);
	iev->ibuf.fd = -1;
	iev->ibuf.w.fd = -1;
}

int
imsgev_io(struct imsgev *iev, short events)
{
	ssize_t	 n;
	int	 rv;

	if (events & EV_WRITE) {
		if ((rv = msgbuf_write(&iev->ibuf.w)) == -1)
			return (-1);
		if (rv == 0) {
			errno = EPIPE;
			return (-1);
		}
	}
	if (events & EV_READ) {
		if ((n = imsg_read(&iev->ibuf)) == 0) {
			errno = EPIPE;
			return (-1);
		}
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return (0);
			return (-1);
		}
	}
	return (0);
}
