/*
 * Framed messages with descriptor passing over a stream socketpair,
 * following the semantics of OpenBSD's imsg(3).
 *
 * A message is a struct imsg_hdr followed by its data; hdr.len counts
 * both.  A message that carries a descriptor is sent by a sendmsg(2) of
 * its own, so the descriptor travels with the first byte of that
 * message and the receiver can pair them up in order.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"

/* Buffers gathered by one writev-style sendmsg. */
#define IMSG_IOVMAX	64

/* Descriptors kept free for the rest of the process after a read. */
#define IMSG_FDRESERVE	4

/* Control space for one descriptor, as the sender never sends more. */
#define IMSG_CMSGSPACE	CMSG_SPACE(sizeof(int))
/* Alignment may leave room for more; the kernel will fill it. */
#define IMSG_CMSGMAXFDS	((IMSG_CMSGSPACE - CMSG_LEN(0)) / sizeof(int))

#ifdef MSG_NOSIGNAL
#define IMSG_SENDFLAGS	MSG_NOSIGNAL	/* EPIPE, never SIGPIPE */
#else
#define IMSG_SENDFLAGS	0
#endif

#ifdef MSG_CMSG_CLOEXEC
#define IMSG_RECVFLAGS	MSG_CMSG_CLOEXEC
#else
#define IMSG_RECVFLAGS	0
#endif

/* msgbuf_send() results besides -1, 0 and 1. */
#define IMSG_WOULDBLOCK	2

static int	 imsg_fdroom(int, int);
static size_t	 imsg_fdqueued(const struct imsgbuf *);
static int	 msgbuf_send(struct msgbuf *);
static void	 msgbuf_consume(struct msgbuf *, size_t);
static void	 msgbuf_dequeue(struct msgbuf *, struct ibuf *);

int
imsg_init(struct imsgbuf *ibuf, int fd)
{
	memset(ibuf, 0, sizeof(*ibuf));
	TAILQ_INIT(&ibuf->fds);
	TAILQ_INIT(&ibuf->w.bufs);
	ibuf->w.fd = fd;
	ibuf->fd = fd;
	ibuf->pid = getpid();
	if ((ibuf->rbuf = malloc(IMSG_MAXSIZE)) == NULL)
		return (-1);
	return (0);
}

#ifdef __OpenBSD__
/* True if need more descriptors can be opened. */
static int
imsg_fdroom(int fd, int need)
{
	return (getdtablecount() + need < getdtablesize());
}
#else
/*
 * Without getdtablecount(2) (glibc and libbsd lack it, and /proc is
 * missing in a chroot) try to take need descriptors and give them back.
 */
static int
imsg_fdroom(int fd, int need)
{
	int	 probe[IMSG_CMSGMAXFDS + IMSG_FDRESERVE];
	int	 i, n, room = 1, saved;

	if (need > (int)(sizeof(probe) / sizeof(probe[0])))
		need = sizeof(probe) / sizeof(probe[0]);
	for (n = 0; n < need; n++) {
		if ((probe[n] = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1) {
			/* Other errors are for recvmsg() to report. */
			if (errno == EMFILE)
				room = 0;
			break;
		}
	}
	saved = errno;
	for (i = 0; i < n; i++)
		close(probe[i]);
	errno = saved;
	return (room);
}
#endif

static size_t
imsg_fdqueued(const struct imsgbuf *ibuf)
{
	struct imsg_fd	*ifd;
	size_t		 n = 0;

	TAILQ_FOREACH(ifd, &ibuf->fds, entry)
		n++;
	return (n);
}

ssize_t
imsg_read(struct imsgbuf *ibuf)
{
	struct msghdr		 msg;
	struct iovec		 iov;
	struct cmsghdr		*cmsg;
	struct imsg_fd		*ifd, *ifds[IMSG_CMSGMAXFDS];
	union {
		struct cmsghdr	 hdr;
		unsigned char	 buf[IMSG_CMSGSPACE];
	} cmsgbuf;
	int			 fds[IMSG_CMSGMAXFDS];
	size_t			 nfds = 0, i, j, cnt;
	ssize_t			 n;
	int			 fd, bad = 0, err = EBADMSG;

	if (ibuf->rbuf == NULL) {
		errno = EINVAL;
		return (-1);
	}
	/* Only a caller that does not drain with imsg_get() gets here. */
	if (ibuf->rlen >= IMSG_MAXSIZE) {
		errno = ENOBUFS;
		return (-1);
	}
	/* Better to wait than to lose a descriptor to EMFILE. */
	if (!imsg_fdroom(ibuf->fd, IMSG_CMSGMAXFDS + IMSG_FDRESERVE)) {
		errno = EAGAIN;
		return (-1);
	}

	memset(&msg, 0, sizeof(msg));
	memset(&cmsgbuf, 0, sizeof(cmsgbuf));
	iov.iov_base = ibuf->rbuf + ibuf->rlen;
	iov.iov_len = IMSG_MAXSIZE - ibuf->rlen;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);

	if ((n = recvmsg(ibuf->fd, &msg, IMSG_RECVFLAGS)) == -1)
		return (-1);

	/* Take every descriptor out of the control data, even on error. */
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		if (cmsg->cmsg_len < CMSG_LEN(0))
			continue;
		cnt = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < cnt; i++) {
			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
			    sizeof(fd));
			if (nfds < IMSG_CMSGMAXFDS)
				fds[nfds++] = fd;
			else {
				close(fd);
				bad = 1;
			}
		}
	}
	/* Some descriptors were dropped: the stream no longer pairs up. */
	if (msg.msg_flags & MSG_CTRUNC)
		bad = 1;
	/* A peer that sends descriptors nobody claims is cut off. */
	if (!bad && imsg_fdqueued(ibuf) + nfds > IMSG_MAXFDS) {
		bad = 1;
		err = ENOBUFS;
	}
	for (i = 0; !bad && i < nfds; i++) {
		if ((ifds[i] = malloc(sizeof(*ifds[i]))) == NULL) {
			for (j = 0; j < i; j++)
				free(ifds[j]);
			bad = 1;
			err = ENOMEM;
		}
	}
	if (bad) {
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		errno = err;
		return (-1);
	}
	for (i = 0; i < nfds; i++) {
		ifd = ifds[i];
		ifd->fd = fds[i];
		TAILQ_INSERT_TAIL(&ibuf->fds, ifd, entry);
	}

	ibuf->rlen += n;
	return (n);
}

ssize_t
imsg_get(struct imsgbuf *ibuf, struct imsg *imsg)
{
	struct imsg_fd	*ifd;
	struct imsg_hdr	 hdr;
	size_t		 datalen;

	if (ibuf->rbuf == NULL || ibuf->rlen < IMSG_HEADER_SIZE)
		return (0);
	memcpy(&hdr, ibuf->rbuf, sizeof(hdr));
	if (hdr.len < IMSG_HEADER_SIZE || hdr.len > IMSG_MAXSIZE) {
		errno = ERANGE;
		return (-1);
	}
	if (hdr.len > ibuf->rlen)
		return (0);

	datalen = hdr.len - IMSG_HEADER_SIZE;
	imsg->hdr = hdr;
	imsg->data = NULL;
	imsg->fd = -1;
	if (datalen > 0) {
		if ((imsg->data = malloc(datalen)) == NULL)
			return (-1);
		memcpy(imsg->data, ibuf->rbuf + IMSG_HEADER_SIZE, datalen);
	}
	if ((hdr.flags & IMSGF_HASFD) &&
	    (ifd = TAILQ_FIRST(&ibuf->fds)) != NULL) {
		imsg->fd = ifd->fd;
		TAILQ_REMOVE(&ibuf->fds, ifd, entry);
		free(ifd);
	}

	ibuf->rlen -= hdr.len;
	if (ibuf->rlen > 0)
		memmove(ibuf->rbuf, ibuf->rbuf + hdr.len, ibuf->rlen);
	/* Messages carry passwords: leave no copy behind. */
	explicit_bzero(ibuf->rbuf + ibuf->rlen, hdr.len);
	return (hdr.len);
}

int
imsg_compose(struct imsgbuf *ibuf, uint32_t type, uint32_t peerid,
    pid_t pid, int fd, const void *data, size_t datalen)
{
	struct ibuf	*buf;
	struct imsg_hdr	 hdr;
	size_t		 len;

	if (datalen > IMSG_MAXSIZE - IMSG_HEADER_SIZE) {
		errno = ERANGE;
		return (-1);
	}
	if (datalen > 0 && data == NULL) {
		errno = EINVAL;
		return (-1);
	}
	len = IMSG_HEADER_SIZE + datalen;

	/* One allocation: the ibuf and its bytes right behind it. */
	if ((buf = malloc(sizeof(*buf) + len)) == NULL)
		return (-1);
	buf->buf = (unsigned char *)(buf + 1);
	buf->size = len;
	buf->wpos = len;
	buf->rpos = 0;
	buf->fd = fd;

	memset(&hdr, 0, sizeof(hdr));
	hdr.type = type;
	hdr.len = len;
	hdr.flags = fd != -1 ? IMSGF_HASFD : 0;
	hdr.peerid = peerid;
	hdr.pid = pid != 0 ? (uint32_t)pid : (uint32_t)ibuf->pid;
	memcpy(buf->buf, &hdr, sizeof(hdr));
	if (datalen > 0)
		memcpy(buf->buf + IMSG_HEADER_SIZE, data, datalen);

	TAILQ_INSERT_TAIL(&ibuf->w.bufs, buf, entry);
	ibuf->w.queued++;
	return (1);
}

void
imsg_free(struct imsg *imsg)
{
	if (imsg->data != NULL)
		freezero(imsg->data, imsg_datalen(imsg));
	imsg->data = NULL;
}

static void
msgbuf_dequeue(struct msgbuf *msgbuf, struct ibuf *buf)
{
	TAILQ_REMOVE(&msgbuf->bufs, buf, entry);
	if (buf->fd != -1)
		close(buf->fd);
	freezero(buf, sizeof(*buf) + buf->size);
	msgbuf->queued--;
}

/* Account for n bytes sent from the head of the queue. */
static void
msgbuf_consume(struct msgbuf *msgbuf, size_t n)
{
	struct ibuf	*buf, *next;
	size_t		 left;

	for (buf = TAILQ_FIRST(&msgbuf->bufs); buf != NULL && n > 0;
	    buf = next) {
		next = TAILQ_NEXT(buf, entry);
		left = buf->wpos - buf->rpos;
		if (n < left) {
			buf->rpos += n;
			break;
		}
		n -= left;
		msgbuf_dequeue(msgbuf, buf);
	}
}

/*
 * One sendmsg(2): the head buffer alone with its descriptor, or as many
 * buffers without one as fit in the iovec.  Returns -1 on error, 0 if
 * the peer is gone, 1 on progress, IMSG_WOULDBLOCK to try again later.
 */
static int
msgbuf_send(struct msgbuf *msgbuf)
{
	struct iovec	 iov[IMSG_IOVMAX];
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	struct ibuf	*buf, *first;
	union {
		struct cmsghdr	 hdr;
		unsigned char	 buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	ssize_t		 n;
	int		 i = 0;

	if ((first = TAILQ_FIRST(&msgbuf->bufs)) == NULL)
		return (1);

	memset(&msg, 0, sizeof(msg));
	memset(&cmsgbuf, 0, sizeof(cmsgbuf));
	TAILQ_FOREACH(buf, &msgbuf->bufs, entry) {
		/* A descriptor goes out with the first byte of its message. */
		if (i > 0 && buf->fd != -1)
			break;
		if (i == IMSG_IOVMAX)
			break;
		iov[i].iov_base = buf->buf + buf->rpos;
		iov[i].iov_len = buf->wpos - buf->rpos;
		i++;
		if (buf->fd != -1)
			break;
	}
	msg.msg_iov = iov;
	msg.msg_iovlen = i;

	if (first->fd != -1) {
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = sizeof(cmsgbuf.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cmsg), &first->fd, sizeof(int));
	}

	if ((n = sendmsg(msgbuf->fd, &msg, IMSG_SENDFLAGS)) == -1) {
		switch (errno) {
		case EINTR:
		case EAGAIN:
#if defined(EWOULDBLOCK) && EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return (IMSG_WOULDBLOCK);
		case ENOBUFS:
			/* Transient on BSD unix sockets: retry later. */
			errno = EAGAIN;
			return (IMSG_WOULDBLOCK);
		case EPIPE:
		case ECONNRESET:
			return (0);
		default:
			return (-1);
		}
	}

	/* The descriptor went with the first byte; ours is a copy now. */
	if (first->fd != -1) {
		close(first->fd);
		first->fd = -1;
	}
	msgbuf_consume(msgbuf, n);
	return (1);
}

int
msgbuf_write(struct msgbuf *msgbuf)
{
	int	 rv;

	if ((rv = msgbuf_send(msgbuf)) == IMSG_WOULDBLOCK)
		return (1);
	return (rv);
}

int
imsg_flush(struct imsgbuf *ibuf)
{
	struct pollfd	 pfd;
	int		 rv;

	while (ibuf->w.queued > 0) {
		switch ((rv = msgbuf_send(&ibuf->w))) {
		case -1:
			return (-1);
		case 0:
			errno = EPIPE;
			return (-1);
		case IMSG_WOULDBLOCK:
			if (errno == EINTR)
				break;
			/* Also works when the socket is non-blocking. */
			pfd.fd = ibuf->w.fd;
			pfd.events = POLLOUT;
			pfd.revents = 0;
			if (poll(&pfd, 1, -1) == -1 && errno != EINTR)
				return (-1);
			break;
		default:
			break;
		}
	}
	return (0);
}

void
imsg_clear(struct imsgbuf *ibuf)
{
	struct imsg_fd	*ifd;
	struct ibuf	*buf;

	while ((buf = TAILQ_FIRST(&ibuf->w.bufs)) != NULL)
		msgbuf_dequeue(&ibuf->w, buf);
	ibuf->w.queued = 0;

	while ((ifd = TAILQ_FIRST(&ibuf->fds)) != NULL) {
		TAILQ_REMOVE(&ibuf->fds, ifd, entry);
		close(ifd->fd);
		free(ifd);
	}

	freezero(ibuf->rbuf, IMSG_MAXSIZE);
	ibuf->rbuf = NULL;
	ibuf->rlen = 0;
}

size_t
imsg_datalen(const struct imsg *imsg)
{
	if (imsg->hdr.len < IMSG_HEADER_SIZE)
		return (0);
	return (imsg->hdr.len - IMSG_HEADER_SIZE);
}
