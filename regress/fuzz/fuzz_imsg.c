/*
 * Fuzz target: common/imsg.c, the receiving side every process uses on
 * its imsg channels: imsg_read() and imsg_get() on whatever a peer can
 * write, descriptors included.  The input is a list of chunks
 *
 *	flags:1 len:1 bytes:len
 *
 * each sent by one sendmsg(2) on a socketpair, with a descriptor if
 * flags & 1; flags & 2 lets the receiver read and take messages after
 * that chunk.  With flags & 4 the chunk is (len + 1) * 256 copies of
 * the one octet that follows instead, so that messages near the 64 KB
 * limit fit in a small input.  Checked: each message taken is the next
 * hdr.len bytes of the stream, header and data as sent, within the size
 * limits; a descriptor comes only with IMSGF_HASFD; a malformed length
 * is an error, not a crash; and no descriptor leaks, whatever the peer
 * sent.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "imsg.h"

#define FD_SCAN		256

struct stream {
	const uint8_t	*sent;		/* everything written, in order */
	size_t		 len;
	size_t		 taken;		/* bytes imsg_get() returned */
	int		 broken;	/* the receiver gave up */
	int		 eof;
};

static uint8_t	 sentbuf[1 << 20];
static uint8_t	 fillbuf[256 * 256];

static int
count_fds(void)
{
	int	 fd, n = 0;

	for (fd = 0; fd < FD_SCAN; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return (n);
}

/* Read what is there and take every complete message. */
static void
receive(struct imsgbuf *ibuf, struct stream *st)
{
	struct imsg_hdr	 hdr;
	struct imsg	 imsg;
	ssize_t		 n;

	while (!st->broken && !st->eof) {
		if ((n = imsg_read(ibuf)) == -1) {
			if (errno == EAGAIN)
				break;
			/* Too many descriptors, or a lost one: cut off. */
			FUZZ_ASSERT(errno == ENOBUFS || errno == EBADMSG);
			st->broken = 1;
			return;
		}
		if (n == 0)
			st->eof = 1;
		for (;;) {
			if ((n = imsg_get(ibuf, &imsg)) == -1) {
				FUZZ_ASSERT(errno == ERANGE);
				FUZZ_ASSERT(st->len - st->taken >=
				    sizeof(hdr));
				memcpy(&hdr, st->sent + st->taken,
				    sizeof(hdr));
				FUZZ_ASSERT(hdr.len < IMSG_HEADER_SIZE ||
				    hdr.len > IMSG_MAXSIZE);
				st->broken = 1;
				return;
			}
			if (n == 0)
				break;
			FUZZ_ASSERT((size_t)n >= IMSG_HEADER_SIZE &&
			    n <= IMSG_MAXSIZE);
			FUZZ_ASSERT(imsg.hdr.len == (size_t)n);
			FUZZ_ASSERT(st->taken + n <= st->len);
			FUZZ_ASSERT(memcmp(&imsg.hdr, st->sent + st->taken,
			    sizeof(imsg.hdr)) == 0);
			FUZZ_ASSERT(imsg_datalen(&imsg) ==
			    n - IMSG_HEADER_SIZE);
			FUZZ_ASSERT((imsg.data != NULL) ==
			    (imsg_datalen(&imsg) > 0));
			if (imsg.data != NULL)
				FUZZ_ASSERT(memcmp(imsg.data, st->sent +
				    st->taken + IMSG_HEADER_SIZE,
				    imsg_datalen(&imsg)) == 0);
			if (imsg.fd != -1) {
				FUZZ_ASSERT(imsg.hdr.flags & IMSGF_HASFD);
				FUZZ_ASSERT(fcntl(imsg.fd, F_GETFD) != -1);
				close(imsg.fd);
			}
			st->taken += n;
			imsg_free(&imsg);
			FUZZ_ASSERT(imsg.data == NULL);
		}
	}
}

/* One chunk, with a descriptor if asked; 0 if the peer is gone. */
static int
send_chunk(int s, const uint8_t *p, size_t len, int withfd,
    struct imsgbuf *ibuf, struct stream *st)
{
	ssize_t		 n;

	while (len > 0) {
		n = fuzz_send(s, p, len, withfd);
		if (n == -1) {
			if (errno != EAGAIN)
				return (0);
			/* Full: let the receiver make room. */
			receive(ibuf, st);
			if (st->broken)
				return (0);
			continue;
		}
		withfd = 0;
		FUZZ_ASSERT(st->len + n <= sizeof(sentbuf));
		memcpy(sentbuf + st->len, p, n);
		st->len += n;
		p += n;
		len -= n;
	}
	return (1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct imsgbuf	 ibuf;
	struct stream	 st;
	size_t		 i, n, fill;
	int		 sp[2], before, flags;

	if (len > sizeof(sentbuf))
		return (0);
	before = count_fds();
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		abort();
	if (fcntl(sp[1], F_SETFL, O_NONBLOCK) == -1)
		abort();
	if (imsg_init(&ibuf, sp[1]) == -1)
		abort();
	memset(&st, 0, sizeof(st));
	st.sent = sentbuf;

	for (i = 0; i + 2 <= len && !st.broken; i += 2 + n) {
		flags = data[i];
		n = data[i + 1];
		if (flags & 4) {
			if (i + 3 > len)
				break;
			fill = ((size_t)n + 1) * 256;
			if (st.len + fill > sizeof(sentbuf))
				break;
			memset(fillbuf, data[i + 2], fill);
			if (!send_chunk(sp[0], fillbuf, fill, flags & 1,
			    &ibuf, &st))
				break;
			n = 1;
		} else {
			if (n > len - i - 2)
				n = len - i - 2;
			if (st.len + n > sizeof(sentbuf))
				break;
			if (n > 0 && !send_chunk(sp[0], data + i + 2, n,
			    flags & 1, &ibuf, &st))
				break;
		}
		if (flags & 2)
			receive(&ibuf, &st);
	}
	/* The peer hangs up: what is complete is still delivered. */
	shutdown(sp[0], SHUT_WR);
	receive(&ibuf, &st);
	if (!st.broken) {
		FUZZ_ASSERT(st.eof);
		/* Whatever is left is less than one message. */
		FUZZ_ASSERT(st.len - st.taken == ibuf.rlen);
	}
	imsg_clear(&ibuf);
	FUZZ_ASSERT(ibuf.rbuf == NULL && TAILQ_EMPTY(&ibuf.fds));
	close(sp[0]);
	close(sp[1]);
	FUZZ_ASSERT(count_fds() == before);
	return (0);
}
