/*
 * The UPDATE state of an mbox, and its recovery after a crash.
 *
 * The session cannot write the mbox's directory, and renaming a new
 * file over the mbox would strand a delivery agent already waiting on
 * the old one's lock, so the mbox is rewritten in place, through a
 * journal in the index directory (the chroot).  With F the offset of
 * the first deleted message, N the new size and L the old one:
 *
 *  1. /pop3d.journal.tmp gets a header and the new bytes of [F, N): the
 *     messages kept after F, read from the mbox.  The header holds F,
 *     N, L, the mbox's device and inode, a SHA-256 of those bytes and
 *     one of the old bytes [N, L).  fsync, rename to /pop3d.journal,
 *     fsync the directory: the update has happened.
 *  2. The bytes are copied into the mbox at F; fsync.
 *  3. The mbox is cut at N; fsync; the journal's state becomes T.
 *  4. The journal goes; fsync the directory.
 *
 * Killed (or the power cut) before step 1 ends, nothing changed.
 * After it, the next session, holding the locks, finishes the work
 * before it reads the mbox.  Until step 3, [N, L) holds the old bytes
 * its hash names, and mail delivered after the crash lies past L: it
 * is put in the journal behind the new bytes, so it is kept.  After
 * step 3, [F, N) holds the journal's bytes and only the journal needs
 * to go.  A mbox that matches neither (another program changed it
 * since) is left alone, and the journal set aside as .bad.  So a
 * message is never lost, never doubled, and either all the deleted
 * messages go or none.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sha2.h>

#include "log.h"
#include "mailbox.h"

#define JOURNAL		"/pop3d.journal"
#define JOURNAL_TMP	"/pop3d.journal.tmp"
#define JOURNAL_BAD	"/pop3d.journal.bad"
#define JOURNAL_HDR	512		/* the data follows at this offset */
#define JOURNAL_MAGIC	"pop3d mbox journal 1\nstate "
#define JOURNAL_STATE	(sizeof(JOURNAL_MAGIC) - 1)

struct journal {
	char		 state;		/* 'P' pending, 'T' mbox truncated */
	int64_t		 dev;
	int64_t		 ino;
	uint64_t	 from;
	uint64_t	 new;
	uint64_t	 old;
	char		 tail[SHA256_DIGEST_STRING_LENGTH];
	char		 data[SHA256_DIGEST_STRING_LENGTH];
};

/* A stretch of some file, copied into the journal. */
struct piece {
	int		 fd;
	uint64_t	 off;
	uint64_t	 len;
};

static void	 jr_format(const struct journal *, char *);
static int	 jr_parse(const char *, struct journal *);
static int	 hash_range(int, uint64_t, uint64_t, char *);
static int	 copy_range(int, uint64_t, uint64_t, int, uint64_t,
		    SHA2_CTX *);
static int	 sync_root(void);
static int	 jr_write(struct journal *, const struct piece *, size_t);
static int	 jr_apply(int, int, const struct journal *);
static int	 jr_setaside(int, const char *);

static unsigned char	 iobuf[MAILBOX_CHUNK];

static void
jr_format(const struct journal *j, char *hdr)
{
	memset(hdr, 0, JOURNAL_HDR);
	snprintf(hdr, JOURNAL_HDR, JOURNAL_MAGIC "%c\ndev %lld\nino %lld\n"
	    "from %llu\nnew %llu\nold %llu\ntail %s\ndata %s\n", j->state,
	    (long long)j->dev, (long long)j->ino,
	    (unsigned long long)j->from, (unsigned long long)j->new,
	    (unsigned long long)j->old, j->tail, j->data);
}

/* Strict: the header must be exactly what jr_format() would write. */
static int
jr_parse(const char *hdr, struct journal *j)
{
	char			 again[JOURNAL_HDR];
	long long		 dev, ino;
	unsigned long long	 from, new, old;

	if (memchr(hdr, '\0', JOURNAL_HDR) == NULL ||
	    sscanf(hdr, JOURNAL_MAGIC "%c\ndev %lld\nino %lld\nfrom %llu\n"
	    "new %llu\nold %llu\ntail %64s\ndata %64s\n", &j->state, &dev,
	    &ino, &from, &new, &old, j->tail, j->data) != 8)
		return (-1);
	j->dev = dev;
	j->ino = ino;
	j->from = from;
	j->new = new;
	j->old = old;
	if ((j->state != 'P' && j->state != 'T') || j->from > j->new ||
	    j->new >= j->old)
		return (-1);
	jr_format(j, again);
	return (memcmp(again, hdr, JOURNAL_HDR) == 0 ? 0 : -1);
}

/* SHA-256 of [off, off + len) as hex; -1 if the file is shorter. */
static int
hash_range(int fd, uint64_t off, uint64_t len, char *out)
{
	SHA2_CTX	 ctx;
	ssize_t		 n;
	size_t		 want;

	SHA256Init(&ctx);
	while (len > 0) {
		want = len < sizeof(iobuf) ? len : sizeof(iobuf);
		if ((n = pread(fd, iobuf, want, (off_t)off)) == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		if (n == 0) {
			errno = EIO;
			return (-1);
		}
		SHA256Update(&ctx, iobuf, n);
		off += n;
		len -= n;
	}
	SHA256End(&ctx, out);
	return (0);
}

static int
copy_range(int from, uint64_t off, uint64_t len, int to, uint64_t toff,
    SHA2_CTX *ctx)
{
	ssize_t	 n, w;
	size_t	 want, done;

	while (len > 0) {
		want = len < sizeof(iobuf) ? len : sizeof(iobuf);
		if ((n = pread(from, iobuf, want, (off_t)off)) == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		if (n == 0) {
			errno = EIO;
			return (-1);
		}
		if (ctx != NULL)
			SHA256Update(ctx, iobuf, n);
		for (done = 0; done < (size_t)n; done += w) {
			if ((w = pwrite(to, iobuf + done, n - done,
			    (off_t)(toff + done))) == -1) {
				if (errno == EINTR) {
					w = 0;
					continue;
				}
				return (-1);
			}
		}
		off += n;
		toff += n;
		len -= n;
	}
	return (0);
}

/* The chroot is the index directory: make its renames last. */
static int
sync_root(void)
{
	int	 fd, rv;

	if ((fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return (-1);
	rv = fsync(fd);
	close(fd);
	return (rv);
}

/* Step 1: the journal, complete and durable, under its own name. */
static int
jr_write(struct journal *j, const struct piece *pc, size_t npc)
{
	char		 hdr[JOURNAL_HDR];
	SHA2_CTX	 ctx;
	uint64_t	 pos = JOURNAL_HDR;
	size_t		 i;
	int		 fd;

	if ((fd = open(JOURNAL_TMP, O_WRONLY | O_CREAT | O_TRUNC |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1) {
		log_warn("open %s", JOURNAL_TMP);
		return (-1);
	}
	SHA256Init(&ctx);
	for (i = 0; i < npc; i++) {
		if (copy_range(pc[i].fd, pc[i].off, pc[i].len, fd, pos,
		    &ctx) == -1) {
			log_warn("write %s", JOURNAL_TMP);
			goto fail;
		}
		pos += pc[i].len;
	}
	SHA256End(&ctx, j->data);
	j->state = 'P';
	jr_format(j, hdr);
	if (pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    fsync(fd) == -1) {
		log_warn("write %s", JOURNAL_TMP);
		goto fail;
	}
	close(fd);
	if (rename(JOURNAL_TMP, JOURNAL) == -1) {
		log_warn("rename %s", JOURNAL_TMP);
		unlink(JOURNAL_TMP);
		return (-1);
	}
	if (sync_root() == -1) {
		/* Renamed, so it stands; durable soon enough. */
		log_warn("fsync of the index directory");
	}
	return (0);
 fail:
	close(fd);
	unlink(JOURNAL_TMP);
	return (-1);
}

/* Steps 2 to 4, with jfd the journal. */
static int
jr_apply(int mfd, int jfd, const struct journal *j)
{
	if (copy_range(jfd, JOURNAL_HDR, j->new - j->from, mfd, j->from,
	    NULL) == -1 || fsync(mfd) == -1) {
		log_warn("mbox: rewrite");
		return (-1);
	}
	if (ftruncate(mfd, (off_t)j->new) == -1 || fsync(mfd) == -1) {
		log_warn("mbox: truncate");
		return (-1);
	}
	/* Only a help: without it, the hashes tell the same. */
	if (pwrite(jfd, "T", 1, JOURNAL_STATE) != 1 || fsync(jfd) == -1)
		log_warn("mark %s", JOURNAL);
	if (unlink(JOURNAL) == -1) {
		log_warn("unlink %s", JOURNAL);
		return (-1);
	}
	if (sync_root() == -1)
		log_warn("fsync of the index directory");
	return (0);
}

static int
jr_setaside(int jfd, const char *why)
{
	log_warnx("mbox: journal of an interrupted update not used (%s); "
	    "kept as %s", why, JOURNAL_BAD);
	close(jfd);
	if (rename(JOURNAL, JOURNAL_BAD) == -1) {
		log_warn("rename %s", JOURNAL);
		return (-1);
	}
	return (0);
}

/*
 * At session start, with every lock held and before the mbox is read:
 * finish an update a crash interrupted.
 */
int
mbox_recover(struct session *s)
{
	struct journal		 j, j2;
	struct filestate	 st;
	struct piece		 pc[2];
	char			 hdr[JOURNAL_HDR];
	char			 sum[SHA256_DIGEST_STRING_LENGTH];
	int			 jfd;

	if (unlink(JOURNAL_TMP) == 0)
		log_info("mbox: dropped an unfinished journal");
	else if (errno != ENOENT) {
		log_warn("unlink %s", JOURNAL_TMP);
		return (-1);
	}
	if ((jfd = open(JOURNAL, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return (0);
		log_warn("open %s", JOURNAL);
		return (-1);
	}
	if (pread(jfd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    jr_parse(hdr, &j) == -1)
		return (jr_setaside(jfd, "malformed"));
	if (s->mboxfd == -1)
		return (jr_setaside(jfd, "the mbox is gone"));
	if (filestate(s->mboxfd, &st) == -1) {
		log_warn("mbox: fstat");
		close(jfd);
		return (-1);
	}
	if (st.dev != j.dev || st.ino != j.ino)
		return (jr_setaside(jfd, "the mbox was replaced"));
	if (hash_range(jfd, JOURNAL_HDR, j.new - j.from, sum) == -1 ||
	    strcmp(sum, j.data) != 0)
		return (jr_setaside(jfd, "damaged"));

	if (j.state == 'P' && (uint64_t)st.size >= j.old &&
	    hash_range(s->mboxfd, j.new, j.old - j.new, sum) == 0 &&
	    strcmp(sum, j.tail) == 0) {
		/* Not cut yet.  Mail that came since goes behind. */
		if ((uint64_t)st.size > j.old) {
			j2 = j;
			j2.new = j.new + (st.size - j.old);
			j2.old = st.size;
			pc[0].fd = jfd;
			pc[0].off = JOURNAL_HDR;
			pc[0].len = j.new - j.from;
			pc[1].fd = s->mboxfd;
			pc[1].off = j.old;
			pc[1].len = st.size - j.old;
			if (hash_range(s->mboxfd, j2.new, j2.old - j2.new,
			    j2.tail) == -1 || jr_write(&j2, pc, 2) == -1) {
				log_warn("mbox: journal");
				close(jfd);
				return (-1);
			}
			close(jfd);
			if ((jfd = open(JOURNAL, O_RDWR | O_NOFOLLOW |
			    O_CLOEXEC)) == -1) {
				log_warn("open %s", JOURNAL);
				return (-1);
			}
			log_info("mbox: %llu octets delivered since the "
			    "interrupted update kept",
			    (unsigned long long)(st.size - j.old));
			j = j2;
		}
		if (jr_apply(s->mboxfd, jfd, &j) == -1) {
			close(jfd);
			return (-1);
		}
		close(jfd);
		log_warnx("mbox: finished an interrupted update");
		return (0);
	}
	/* Cut already: all done if the new bytes are in place. */
	if ((uint64_t)st.size >= j.new &&
	    hash_range(s->mboxfd, j.from, j.new - j.from, sum) == 0 &&
	    strcmp(sum, j.data) == 0) {
		close(jfd);
		if (unlink(JOURNAL) == -1) {
			log_warn("unlink %s", JOURNAL);
			return (-1);
		}
		sync_root();
		log_info("mbox: an interrupted update had finished");
		return (0);
	}
	return (jr_setaside(jfd, "the mbox changed since"));
}

/*
 * QUIT: the deleted messages go, all of them or none.  The mbox must be
 * as the session read it: the locks keep cooperating programs out, and
 * a change by any other is no time to write.  0 done, -1 nothing done,
 * -2 committed but unfinished: the next login finishes it.
 */
int
mbox_update(struct session *s)
{
	struct journal		 j;
	struct filestate	 st;
	struct piece		*pc = NULL;
	struct msg		*m;
	uint64_t		 next, removed = 0, len, total = 0;
	size_t			 i, first, npc = 0;
	uint32_t		 ndel = 0;
	int			 jfd;

	for (first = 0; first < s->nmsgs; first++)
		if (s->msgs[first].flags & MSG_DELETED)
			break;
	if (first == s->nmsgs || s->mboxfd == -1)
		return (0);
	if (filestate(s->mboxfd, &st) == -1) {
		log_warn("mbox: fstat");
		return (-1);
	}
	if (memcmp(&st, &s->mstate, sizeof(st)) != 0) {
		log_warnx("mbox: changed during the session by a program "
		    "that ignores its locks; not updated");
		return (-1);
	}
	if ((pc = reallocarray(NULL, s->nmsgs, sizeof(*pc))) == NULL) {
		log_warn("reallocarray");
		return (-1);
	}

	/* A message runs from its From_ line to the next one's. */
	for (i = first; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		next = i + 1 < s->nmsgs ? s->msgs[i + 1].off :
		    (uint64_t)st.size;
		if (m->flags & MSG_DELETED)
			continue;
		if (npc > 0 && pc[npc - 1].off + pc[npc - 1].len == m->off)
			pc[npc - 1].len += next - m->off;
		else {
			pc[npc].fd = s->mboxfd;
			pc[npc].off = m->off;
			pc[npc].len = next - m->off;
			npc++;
		}
		total += next - m->off;
	}
	memset(&j, 0, sizeof(j));
	j.dev = st.dev;
	j.ino = st.ino;
	j.from = s->msgs[first].off;
	j.new = j.from + total;
	j.old = st.size;
	if (hash_range(s->mboxfd, j.new, j.old - j.new, j.tail) == -1) {
		log_warn("mbox: read");
		free(pc);
		return (-1);
	}
	if (jr_write(&j, pc, npc) == -1) {
		free(pc);
		return (-1);
	}
	free(pc);
	/* From here on, the update happens: now or at the next login. */
	if ((jfd = open(JOURNAL, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		log_warn("open %s", JOURNAL);
		return (-2);
	}
	if (jr_apply(s->mboxfd, jfd, &j) == -1) {
		close(jfd);
		return (-2);
	}
	close(jfd);

	for (i = first; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		next = i + 1 < s->nmsgs ? s->msgs[i + 1].off :
		    (uint64_t)st.size;
		len = next - m->off;
		if (m->flags & MSG_DELETED) {
			m->flags |= MSG_REMOVED;
			removed += len;
			ndel++;
			continue;
		}
		m->off -= removed;
		m->start -= removed;
		m->end -= removed;
	}
	s->deleted = ndel;
	/* The index follows; if it cannot, the next session reads all. */
	if (filestate(s->mboxfd, &s->mstate) == -1 ||
	    index_mbox_store(s, &s->mstate) != IDX_OK)
		log_warnx("mbox: index not updated, rebuilt next time");
	return (0);
}
