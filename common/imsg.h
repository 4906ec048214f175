/*
 * Framed messages with descriptor passing over a stream socketpair.
 * The semantics follow OpenBSD's imsg(3): messages are composed into a
 * write queue, flushed with msgbuf_write() or imsg_flush(), read into a
 * buffer with imsg_read() and taken out one by one with imsg_get().
 */

#ifndef POP3D_IMSG_H
#define POP3D_IMSG_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stdint.h>

#define IMSG_MAXSIZE		(64 * 1024)	/* header and data */
#define IMSG_HEADER_SIZE	sizeof(struct imsg_hdr)
#define IMSG_MAXFDS		16		/* queued received fds */

#define IMSGF_HASFD		0x1

struct ibuf {
	TAILQ_ENTRY(ibuf)	 entry;
	unsigned char		*buf;
	size_t			 size;
	size_t			 wpos;
	size_t			 rpos;
	int			 fd;
};

struct msgbuf {
	TAILQ_HEAD(, ibuf)	 bufs;
	uint32_t		 queued;
	int			 fd;
};

struct imsg_fd {
	TAILQ_ENTRY(imsg_fd)	 entry;
	int			 fd;
};

struct imsgbuf {
	TAILQ_HEAD(, imsg_fd)	 fds;
	unsigned char		*rbuf;		/* IMSG_MAXSIZE bytes */
	size_t			 rlen;		/* bytes buffered */
	struct msgbuf		 w;
	int			 fd;
	pid_t			 pid;
};

struct imsg_hdr {
	uint32_t		 type;
	uint32_t		 len;		/* header included */
	uint32_t		 flags;
	uint32_t		 peerid;
	uint32_t		 pid;
};

struct imsg {
	struct imsg_hdr		 hdr;
	int			 fd;		/* -1 if none */
	void			*data;		/* hdr.len - IMSG_HEADER_SIZE */
};

/* Returns -1 on allocation failure (errno set). */
int	 imsg_init(struct imsgbuf *, int);
/* Bytes read, 0 on EOF, -1 on error; EAGAIN/EINTR are errors for the caller. */
ssize_t	 imsg_read(struct imsgbuf *);
/* Size of the taken message, 0 if none complete, -1 on a malformed one. */
ssize_t	 imsg_get(struct imsgbuf *, struct imsg *);
/* fd, if not -1, is sent with the message and closed once it is sent. */
int	 imsg_compose(struct imsgbuf *, uint32_t, uint32_t, pid_t, int,
	    const void *, size_t);
void	 imsg_free(struct imsg *);
/* Write until the queue is empty (blocking socket); -1 on error. */
int	 imsg_flush(struct imsgbuf *);
/* Drop everything queued and close received and queued fds. */
void	 imsg_clear(struct imsgbuf *);
/* One write attempt: 1 progressed or EAGAIN, 0 peer closed, -1 error. */
int	 msgbuf_write(struct msgbuf *);
/* Bytes of data in the message. */
size_t	 imsg_datalen(const struct imsg *);

#endif /* POP3D_IMSG_H */
