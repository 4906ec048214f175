/*
 * The Maildir.  After the chroot it is "/": new deliveries wait in
 * /new, seen messages live in /cur.  A message's file name may change
 * its flags after the ':' (another mail reader does that), the part
 * before it never changes and names the message in the index.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mailbox.h"

#define MAILDIR_STILL	2	/* seconds, past any timestamp's grain */

#ifndef O_NOATIME
#define O_NOATIME	0
#endif

static int	 maildir_mkdirs(void);
static int	 maildir_path(char *, size_t, const char *, const char *);
static int	 maildir_deliver(void);
static int	 maildir_msgopen(const char *, int, struct stat *);
static int	 maildir_find(struct msg *);
static int	 maildir_unlink(struct msg *);
static int	 maildir_synccur(void);

static const char *const maildir_dirs[] = { "/cur", "/new", "/tmp" };

/* A Maildir nobody delivered to yet may lack its subdirectories. */
static int
maildir_mkdirs(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(maildir_dirs) / sizeof(maildir_dirs[0]); i++) {
		if (mkdir(maildir_dirs[i], 0700) == 0)
			log_info("created %s in the maildrop", maildir_dirs[i]);
		else if (errno != EEXIST) {
			log_warn("mkdir %s", maildir_dirs[i]);
			return (-1);
		}
	}
	return (0);
}

static int
maildir_path(char *buf, size_t len, const char *dir, const char *name)
{
	int	 n;

	n = snprintf(buf, len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	return (0);
}

/*
 * Move every new/X to cur/X:2, so it counts as seen.  The names are
 * taken first: a directory changing under readdir(3) may repeat or skip
 * entries.
 */
static int
maildir_deliver(void)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 sb;
	char		**names = NULL, **tmp;
	char		 from[PATH_MAX], to[PATH_MAX];
	size_t		 n = 0, cap = 0, i;
	int		 rv = -1;

	if ((d = opendir("/new")) == NULL) {
		log_warn("opendir /new");
		return (-1);
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((tmp = reallocarray(names, cap,
			    sizeof(*names))) == NULL) {
				log_warn("reallocarray");
				goto done;
			}
			names = tmp;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			log_warn("strdup");
			goto done;
		}
		n++;
	}
	if (errno != 0) {
		log_warn("readdir /new");
		goto done;
	}

	for (i = 0; i < n; i++) {
		if (maildir_path(from, sizeof(from), "/new", names[i]) == -1 ||
		    snprintf(to, sizeof(to), "/cur/%s%s", names[i],
		    strchr(names[i], ':') != NULL ? "" : ":2,") >=
		    (int)sizeof(to)) {
			log_warnx("new/%s: name too long", safename(names[i]));
			continue;
		}
		/* Unique names make this rare, but never clobber mail. */
		if (lstat(to, &sb) == 0) {
			log_warnx("new/%s: %s exists, left in new",
			    safename(names[i]), safename(to + 1));
			continue;
		}
		if (rename(from, to) == -1) {
			/* Gone already: someone else took it. */
			if (errno != ENOENT)
				log_warn("rename new/%s", safename(names[i]));
			continue;
		}
		log_debug("moved new/%s to %s", safename(names[i]),
		    safename(to + 1));
	}
	rv = 0;
 done:
	closedir(d);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return (rv);
}

/* The files of cur/, in s->msgs (empty until then). */
int
maildir_list(struct session *s)
{
	DIR		*d;
	struct dirent	*de;
	struct msg	*m;

	if ((d = opendir("/cur")) == NULL) {
		log_warn("opendir /cur");
		return (-1);
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || de->d_type == DT_DIR)
			continue;
		if ((m = msgs_add(s)) == NULL)
			goto fail;
		if ((m->name = arena_strdup(de->d_name)) == NULL ||
		    (m->base = arena_strndup(de->d_name,
		    strcspn(de->d_name, ":"))) == NULL) {
			log_warn("strdup");
			goto fail;
		}
	}
	if (errno != 0) {
		log_warn("readdir /cur");
		goto fail;
	}
	closedir(d);
	log_debug("%zu files in cur", s->nmsgs);
	return (0);
 fail:
	closedir(d);
	return (-1);
}

/*
 * New mail moved to cur/, and cur/ as it is before anyone lists it: a
 * change after this shows in its times, so the index may trust a cur/
 * with the times it had.  A change within a timestamp's grain of the
 * last would not show: only a cur/ untouched for MAILDIR_STILL seconds
 * by our clock counts.
 */
int
maildir_scan(struct session *s)
{
	struct timespec	 now;
	int64_t		 still;
	int		 fd;

	if (maildir_mkdirs() == -1 || maildir_deliver() == -1)
		return (-1);
	if ((fd = open("/cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_warn("open /cur");
		return (-1);
	}
	if (filestate(fd, &s->cur) == -1) {
		log_warn("fstat /cur");
		close(fd);
		return (-1);
	}
	close(fd);
	if (clock_gettime(CLOCK_REALTIME, &now) == -1)
		fatal("clock_gettime");
	still = ((int64_t)now.tv_sec - MAILDIR_STILL) * 1000000000LL +
	    now.tv_nsec;
	s->curquiet = s->cur.mtime < still && s->cur.ctime < still;
	return (0);
}

/*
 * Open a message file, a regular file: O_NONBLOCK keeps a FIFO from
 * blocking open(2) and changes nothing on a regular file, so it stays.
 */
static int
maildir_msgopen(const char *name, int flags, struct stat *sb)
{
	char	 path[PATH_MAX];
	int	 fd;

	if (maildir_path(path, sizeof(path), "/cur", name) == -1)
		return (-1);
	flags |= O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	/* O_NOATIME is the owner's: a file of someone else opens without. */
	if ((fd = open(path, flags)) == -1 && errno == EPERM &&
	    (flags & O_NOATIME))
		fd = open(path, flags & ~O_NOATIME);
	if (fd == -1)
		return (-1);
	if (fstat(fd, sb) == -1)
		goto fail;
	if (!S_ISREG(sb->st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	return (fd);
 fail:
	close(fd);
	return (-1);
}

/*
 * The octets RETR will announce, and the file's own: the file read once,
 * transformed.  Counting is not reading the mail, so the access time
 * stays.  Called from several threads at once (measure.c).
 */
int
maildir_size(const struct msg *m, uint64_t *size, int64_t *fsize)
{
	unsigned char	 buf[MAILBOX_CHUNK];
	struct stat	 sb;
	struct xform	 x;
	ssize_t		 n;
	int64_t		 raw = 0;
	int		 fd, saved;

	if ((fd = maildir_msgopen(m->name, O_NOATIME, &sb)) == -1)
		return (-1);
	xform_init(&x, 0);
	for (;;) {
		if ((n = read(fd, buf, sizeof(buf))) == -1) {
			if (errno == EINTR)
				continue;
			saved = errno;
			close(fd);
			errno = saved;
			return (-1);
		}
		if (n == 0)
			break;
		raw += n;
		xform_count(&x, buf, n);
		/* Short of a full buffer at the size fstat(2) gave: the end. */
		if ((size_t)n < sizeof(buf) && raw >= sb.st_size)
			break;
	}
	xform_finish(&x, NULL);
	close(fd);
	*size = x.size;
	*fsize = raw;
	return (0);
}

/*
 * The file size some delivery agents put in the name ("...,S=1234:2,"),
 * or -1: a free check of an index row, without a stat(2).
 */
int64_t
maildir_namesize(const char *base)
{
	const char	*p, *digits;
	int64_t		 n = 0;

	if ((p = strstr(base, ",S=")) == NULL)
		return (-1);
	for (p = digits = p + 3; *p >= '0' && *p <= '9'; p++) {
		if (n > (INT64_MAX - 9) / 10)
			return (-1);
		n = n * 10 + (*p - '0');
	}
	if (p == digits || (*p != '\0' && *p != ','))
		return (-1);
	return (n);
}

/*
 * Another reader may have renamed the file to change its flags: look
 * for the same base name in cur/.  The lock keeps other pop3d sessions
 * out, not every mail program.
 */
static int
maildir_find(struct msg *m)
{
	DIR		*d;
	struct dirent	*de;
	char		*name;
	size_t		 len = strlen(m->base);

	if ((d = opendir("/cur")) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, m->base, len) != 0 ||
		    (de->d_name[len] != ':' && de->d_name[len] != '\0') ||
		    strcmp(de->d_name, m->name) == 0)
			continue;
		if ((name = arena_strdup(de->d_name)) == NULL) {
			closedir(d);
			return (-1);
		}
		log_debug("cur/%s is now cur/%s", safename(m->name),
		    safename(name));
		m->name = name;
		closedir(d);
		return (0);
	}
	closedir(d);
	errno = ENOENT;
	return (-1);
}

/* A descriptor for RETR, -1 with errno ENOENT if the message is gone. */
int
maildir_open(struct msg *m)
{
	struct stat	 sb;
	int		 fd;

	if ((fd = maildir_msgopen(m->name, 0, &sb)) == -1 &&
	    errno == ENOENT && maildir_find(m) == 0)
		fd = maildir_msgopen(m->name, 0, &sb);
	return (fd);
}

/* A message already gone counts as removed: that was the intent. */
static int
maildir_unlink(struct msg *m)
{
	char	 path[PATH_MAX];
	int	 tries;

	/* Each retry needs another program renaming it: a few will do. */
	for (tries = 0; tries < 3; tries++) {
		if (maildir_path(path, sizeof(path), "/cur", m->name) == -1) {
			log_warn("cur/%s", safename(m->name));
			return (-1);
		}
		if (unlink(path) == 0)
			return (0);
		if (errno != ENOENT) {
			log_warn("unlink cur/%s", safename(m->name));
			return (-1);
		}
		if (maildir_find(m) == -1) {
			if (errno == ENOENT) {
				log_debug("cur/%s already gone",
				    safename(m->name));
				return (0);
			}
			log_warn("opendir /cur");
			return (-1);
		}
	}
	log_warnx("cur/%s keeps changing its name", safename(m->name));
	return (-1);
}

/*
 * A file name fit for a log line: the user chooses names, and must not
 * write lines of their own into the log.  Two buffers serve one call.
 */
const char *
safename(const char *name)
{
	static char	 buf[2][NAME_MAX + 1];
	static int	 which;
	char		*p;
	size_t		 i;

	which = !which;
	p = buf[which];
	for (i = 0; name[i] != '\0' && i < NAME_MAX; i++)
		p[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
	p[i] = '\0';
	return (p);
}

/* The unlinks must last: a message back after a power cut is fetched twice. */
static int
maildir_synccur(void)
{
	int	 fd, rv = 0;

	if ((fd = open("/cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return (-1);
	if (fsync(fd) == -1)
		rv = -1;
	close(fd);
	return (rv);
}

/*
 * The UPDATE state.  Each file goes before its row: a crash between the
 * two leaves a row without a file, which the next scan drops, so a
 * message is never lost or shown twice, and the unique-ids of the rest
 * stay as they were.
 */
int
maildir_update(struct session *s)
{
	struct msg	*m;
	size_t		 i;
	uint32_t	 removed = 0, failed = 0;

	for (i = 0; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		if (!(m->flags & MSG_DELETED))
			continue;
		if (maildir_unlink(m) == -1) {
			failed++;
			continue;
		}
		m->flags |= MSG_REMOVED;
		removed++;
	}
	if (removed > 0 && maildir_synccur() == -1) {
		log_warn("fsync /cur");
		failed++;
	}
	/* The files are gone; stale rows go at the next scan. */
	if (removed > 0 && index_remove(s) == -1)
		log_warnx("index rows of deleted messages left for the "
		    "next session");
	s->deleted = removed;
	if (failed > 0) {
		log_warnx("%u deleted messages not removed", failed);
		return (-1);
	}
	return (0);
}
