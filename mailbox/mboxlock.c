/*
 * Entering an mbox maildrop.  As root: find or make the maildrop's index
 * directory, lock the mbox the way local delivery agents expect, start
 * the lock keeper; then chroot into the index directory as the user.
 *
 * For the maildrop /var/mail/alice:
 *	/var/mail/alice			the mbox, alice's, left where it is
 *	/var/mail/alice.lock		the dot-lock, while a session runs
 *	/var/mail/.pop3d/		root's, 0711: no listing
 *	/var/mail/.pop3d/alice/		alice's, 0700: the session's chroot,
 *					with pop3d.index and pop3d.journal
 * (when the mbox's directory belongs to the user, so does .pop3d).
 *
 * The locks, taken in this order and given up in the reverse one:
 *  1. flock(2) of the index directory: one pop3d session a maildrop,
 *     [IN-USE] at once for a second one.  The kernel drops it when the
 *     holder exits or is killed.
 *  2. The dot-lock <mbox>.lock, made with O_EXCL as mail.local(8) and
 *     lockspool(1) do.  Only root may write /var/mail, so a root
 *     "keeper" holds it: a fork that only waits for end of file on a
 *     pipe from the session, touches the lock every minute so nobody
 *     takes it for stale, and removes it once the session is gone,
 *     however it ended.  A dot-lock older than LOCK_STALE seconds, or
 *     naming a process that is gone, is stale and removed.
 *  3. The kernel locks of the mbox: flock(2), as mail.local(8) takes
 *     with O_EXLOCK, and on Linux, where fcntl(2) locks are apart from
 *     flock(2) ones, an fcntl(2) write lock too.
 * Locks 2 and 3 are tried for LOCK_WAIT seconds, then [IN-USE].
 *
 * The session never writes /var/mail: deletions rewrite the mbox in
 * place (mboxupdate.c), which keeps its owner, mode and inode, so it
 * keeps no descriptor of the directory.  Chrooted into its own index
 * directory, with one descriptor of its own mbox, a session sees one
 * user's mail and nothing else.
 */

#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "privdrop.h"
#include "mailbox.h"

#define INDEX_DIR	".pop3d"
#define LOCK_WAIT	8		/* seconds for locks held by others */
#define LOCK_STALE	300		/* an untouched dot-lock is stale */
#define LOCK_TOUCH	60		/* seconds between touches */
#define LOCK_RETRYMS	100

#define REPLY_LOCKED	"-ERR [IN-USE] Mailbox locked by another program."

static int	 index_dir(struct session *, int, const struct stat *,
		    const char *, const struct mailbox_start *);
static int	 dotlock(int, const char *, time_t, int *);
static int	 dotlock_stale(int, const char *);
static void	 dotlock_drop(int, const char *, int);
static int	 kernel_lock(int, time_t);
static int	 nap(void);
static void	 lock_holder(int, pid_t);
__attribute__((__noreturn__))
static void	 keeper_run(int, int, const char *, int, int);

/* A pause between tries; -1 if pop3d is shutting down meanwhile. */
static int
nap(void)
{
	struct timespec	 ts = { 0, LOCK_RETRYMS * 1000000L };

	nanosleep(&ts, NULL);
	if (mailbox_stopping) {
		log_info("shutting down while waiting for a lock");
		return (-1);
	}
	return (0);
}

/* Who holds the dot-lock, for those that look (liblockfile, us). */
static void
lock_holder(int lockfd, pid_t pid)
{
	char	 buf[32];
	int	 n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)pid);
	if (ftruncate(lockfd, 0) == -1 || pwrite(lockfd, buf, n, 0) != n)
		log_warn("dot-lock: write");
}

/*
 * The index directory, made if missing: .pop3d in the mbox's directory,
 * then one directory a maildrop, the user's.  Every step is relative to
 * a directory already open and refuses symbolic links.
 */
static int
index_dir(struct session *s, int dfd, const struct stat *dsb,
    const char *name, const struct mailbox_start *ms)
{
	struct stat	 sb;
	uid_t		 owner;
	int		 pfd, ifd, made;

	/* In a directory of the user's own, .pop3d is the user's too. */
	owner = dsb->st_uid == ms->uid ? ms->uid : 0;
	made = mkdirat(dfd, INDEX_DIR, 0711) == 0;
	if (!made && errno != EEXIST) {
		log_warn("mkdir %s", INDEX_DIR);
		return (-1);
	}
	if ((pfd = openat(dfd, INDEX_DIR, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC)) == -1 || fstat(pfd, &sb) == -1) {
		log_warn("open %s", INDEX_DIR);
		if (pfd != -1)
			close(pfd);
		return (-1);
	}
	if (made && (fchown(pfd, owner, owner ? ms->gid : 0) == -1 ||
	    fchmod(pfd, 0711) == -1)) {
		log_warn("chown %s", INDEX_DIR);
		close(pfd);
		return (-1);
	}
	if (!made && ((sb.st_uid != 0 && sb.st_uid != owner) ||
	    (sb.st_mode & (S_IWGRP | S_IWOTH)))) {
		log_warnx("%s: wrong owner or mode, not used", INDEX_DIR);
		close(pfd);
		refuse(s, REPLY_PERM, "index directory not safe");
	}

	made = mkdirat(pfd, name, 0700) == 0;
	if (!made && errno != EEXIST) {
		log_warn("mkdir %s/%s", INDEX_DIR, name);
		close(pfd);
		return (-1);
	}
	ifd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	close(pfd);
	if (ifd == -1 || fstat(ifd, &sb) == -1) {
		log_warn("open %s/%s", INDEX_DIR, name);
		if (ifd != -1)
			close(ifd);
		return (-1);
	}
	if (made && (fchown(ifd, ms->uid, ms->gid) == -1 ||
	    fchmod(ifd, 0700) == -1)) {
		log_warn("chown %s/%s", INDEX_DIR, name);
		close(ifd);
		return (-1);
	}
	if (!made && (sb.st_uid != ms->uid ||
	    (sb.st_mode & (S_IWGRP | S_IWOTH)))) {
		log_warnx("%s/%s: not the user's, not used", INDEX_DIR, name);
		close(ifd);
		refuse(s, REPLY_PERM, "index directory not the user's");
	}
	return (ifd);
}

/*
 * A dot-lock nobody holds: untouched for LOCK_STALE seconds, or naming
 * (as liblockfile and procmail write) a process that does not exist.
 * Removed if so.
 */
static int
dotlock_stale(int dfd, const char *lockname)
{
	struct stat	 sb, sb2;
	char		 buf[32];
	const char	*errstr;
	ssize_t		 n;
	pid_t		 pid = 0;
	int		 fd, stale;

	if (fstatat(dfd, lockname, &sb, AT_SYMLINK_NOFOLLOW) == -1)
		return (errno == ENOENT);
	stale = time(NULL) - sb.st_mtime > LOCK_STALE;
	if (!stale && S_ISREG(sb.st_mode) && (fd = openat(dfd, lockname,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) != -1) {
		if (fstat(fd, &sb2) == 0 && sb2.st_ino == sb.st_ino &&
		    (n = read(fd, buf, sizeof(buf) - 1)) > 0) {
			buf[n] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			pid = strtonum(buf, 1, INT_MAX, &errstr);
			if (errstr != NULL)
				pid = 0;
		}
		close(fd);
		stale = pid > 0 && kill(pid, 0) == -1 && errno == ESRCH;
	}
	if (!stale)
		return (0);
	/* Only the lock just judged: another may have taken its place. */
	if (fstatat(dfd, lockname, &sb2, AT_SYMLINK_NOFOLLOW) == -1 ||
	    sb2.st_dev != sb.st_dev || sb2.st_ino != sb.st_ino ||
	    unlinkat(dfd, lockname, 0) == -1)
		return (0);
	log_info("removed stale dot-lock %s", safename(lockname));
	return (1);
}

/*
 * 0 locked, 1 held by another until the deadline, 2 not possible here
 * (no right to write the directory), -1 error.
 */
static int
dotlock(int dfd, const char *lockname, time_t deadline, int *lockfd)
{
	int	 fd, breaks = 0;

	for (;;) {
		if ((fd = openat(dfd, lockname, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600)) != -1) {
			/* Ours till the keeper takes it: stale if we die. */
			lock_holder(fd, getpid());
			*lockfd = fd;
			return (0);
		}
		if (errno == EACCES || errno == EPERM || errno == EROFS) {
			log_warn("dot-lock %s", safename(lockname));
			return (2);
		}
		if (errno != EEXIST) {
			log_warn("dot-lock %s", safename(lockname));
			return (-1);
		}
		if (breaks < 3 && dotlock_stale(dfd, lockname)) {
			breaks++;
			continue;
		}
		if (time(NULL) >= deadline)
			return (1);
		if (nap() == -1)
			return (-1);
	}
}

/* Ours only: someone may have judged it stale and put their own. */
static void
dotlock_drop(int dfd, const char *lockname, int lockfd)
{
	struct stat	 a, b;

	if (fstat(lockfd, &a) == 0 &&
	    fstatat(dfd, lockname, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino &&
	    unlinkat(dfd, lockname, 0) == -1)
		log_warn("unlink %s", safename(lockname));
	close(lockfd);
}

/* 0 locked, 1 held by another until the deadline, -1 error. */
static int
kernel_lock(int fd, time_t deadline)
{
#ifdef __linux__
	struct flock	 fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, F_SETLK, &fl) == -1) {
		if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
			log_warn("fcntl lock");
			return (-1);
		}
		if (time(NULL) >= deadline)
			return (1);
		if (nap() == -1)
			return (-1);
	}
#endif
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			log_warn("flock");
			return (-1);
		}
		if (time(NULL) >= deadline)
			return (1);
		if (nap() == -1)
			return (-1);
	}
	return (0);
}

/*
 * The keeper: root, holding the dot-lock for a session that no longer
 * can.  It reads nothing but its pipe, and ends only at its end of file,
 * so it outlives the session by a moment whatever ends that.  Chrooted
 * into the index directory, it reaches the spool through dfd alone.
 */
static void
keeper_run(int dfd, int ifd, const char *lockname, int lockfd, int rfd)
{
	struct pollfd	 pfd;
	char		 c;
	ssize_t		 n;

	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	log_procinit("mailbox-lock");
	if (fchdir(ifd) == -1 || chroot(".") == -1 || chdir("/") == -1)
		fatal("lock keeper: chroot");
	close(ifd);
#ifdef __OpenBSD__
	if (pledge("stdio cpath fattr", NULL) == -1)
		fatal("pledge");
#endif
	for (;;) {
		pfd.fd = rfd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		switch (poll(&pfd, 1, LOCK_TOUCH * 1000)) {
		case -1:
			if (errno == EINTR)
				continue;
			log_warn("poll");
			break;
		case 0:
			if (futimens(lockfd, NULL) == -1)
				log_warn("touch %s", safename(lockname));
			continue;
		default:
			if ((n = read(rfd, &c, 1)) == -1 && errno == EINTR)
				continue;
			if (n > 0)
				continue;
			break;
		}
		break;
	}
	dotlock_drop(dfd, lockname, lockfd);
	_exit(0);
}

void
mbox_enter(struct session *s, const struct mailbox_start *ms)
{
	struct stat	 dsb, sb, msb;
	char		 dir[PATH_MAX], name[NAME_MAX + 1];
	char		 lockname[NAME_MAX + 1];
	const char	*slash;
	time_t		 deadline;
	pid_t		 pid;
	int		 dfd, ifd, mfd = -1, lockfd = -1, p[2], rv, flags;
	int		 exists;

	s->mboxfd = s->keeperfd = -1;
	s->keeper = -1;
	if (ms->uid == 0 || ms->gid == 0) {
		log_warnx("user %s: refusing a session as root",
		    safename(s->user));
		refuse(s, REPLY_PERM, "root session refused");
	}
	slash = strrchr(ms->maildrop, '/');
	if (slash == NULL || slash[1] == '\0' || strcmp(slash, "/.") == 0 ||
	    strcmp(slash, "/..") == 0 ||
	    strlcpy(name, slash + 1, sizeof(name)) >= sizeof(name) ||
	    snprintf(lockname, sizeof(lockname), "%s.lock", name) >=
	    (int)sizeof(lockname) || (size_t)(slash - ms->maildrop) >=
	    sizeof(dir)) {
		log_warnx("user %s: maildrop %s is no mbox file path",
		    safename(s->user), ms->maildrop);
		refuse(s, REPLY_PERM, "bad mbox path");
	}
	if (slash == ms->maildrop)
		strlcpy(dir, "/", sizeof(dir));
	else {
		memcpy(dir, ms->maildrop, slash - ms->maildrop);
		dir[slash - ms->maildrop] = '\0';
	}

	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fstat(dfd, &dsb) == -1) {
		log_warn("user %s: mbox directory %s", safename(s->user), dir);
		refuse(s, REPLY_TEMP, "no mbox directory");
	}
	/* As mail.local(8): anyone could replace anyone's mbox there. */
	if ((dsb.st_mode & S_IWOTH) && !(dsb.st_mode & S_ISVTX)) {
		log_warnx("%s is world-writable, refusing it", dir);
		refuse(s, REPLY_PERM, "world-writable mbox directory");
	}
	if ((ifd = index_dir(s, dfd, &dsb, name, ms)) == -1)
		refuse(s, REPLY_TEMP, "no index directory");
	if (flock(ifd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK) {
			log_info("user %s: maildrop in use",
			    safename(s->user));
			refuse(s, REPLY_INUSE, "maildrop locked");
		}
		log_warn("flock %s/%s, going on unlocked", INDEX_DIR, name);
	}

	/* Never open as root what is not the user's regular file. */
	exists = fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
	if (!exists && errno != ENOENT) {
		log_warn("user %s: %s", safename(s->user), ms->maildrop);
		refuse(s, REPLY_TEMP, "mbox unavailable");
	}
	if (exists && (!S_ISREG(sb.st_mode) || sb.st_uid != ms->uid ||
	    sb.st_nlink != 1)) {
		log_warnx("user %s: %s is not a regular file of uid %u with "
		    "one link", safename(s->user), ms->maildrop,
		    (unsigned)ms->uid);
		refuse(s, REPLY_PERM, "mbox not the user's");
	}

	deadline = time(NULL) + LOCK_WAIT;
	if ((rv = dotlock(dfd, lockname, deadline, &lockfd)) == 1) {
		log_info("user %s: %s is dot-locked", safename(s->user),
		    ms->maildrop);
		refuse(s, REPLY_LOCKED, "mbox dot-locked");
	}
	if (rv == -1)
		refuse(s, REPLY_TEMP, "cannot dot-lock");
	if (rv == 2)
		log_warnx("user %s: no dot-lock, kernel locks only",
		    safename(s->user));

	if (exists) {
		mfd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
		if (mfd == -1 || fstat(mfd, &msb) == -1 ||
		    msb.st_dev != sb.st_dev || msb.st_ino != sb.st_ino ||
		    (flags = fcntl(mfd, F_GETFL)) == -1 ||
		    fcntl(mfd, F_SETFL, flags & ~O_NONBLOCK) == -1) {
			log_warn("user %s: open %s", safename(s->user),
			    ms->maildrop);
			if (lockfd != -1)
				dotlock_drop(dfd, lockname, lockfd);
			refuse(s, REPLY_TEMP, "mbox unavailable");
		}
		if ((rv = kernel_lock(mfd, deadline)) != 0) {
			if (lockfd != -1)
				dotlock_drop(dfd, lockname, lockfd);
			if (rv == 1) {
				log_info("user %s: %s is locked",
				    safename(s->user), ms->maildrop);
				refuse(s, REPLY_LOCKED, "mbox locked");
			}
			refuse(s, REPLY_TEMP, "cannot lock mbox");
		}
	}

	if (lockfd != -1) {
		if (pipe(p) == -1) {
			log_warn("pipe");
			dotlock_drop(dfd, lockname, lockfd);
			refuse(s, REPLY_TEMP, "no pipe");
		}
		switch (pid = fork()) {
		case -1:
			log_warn("fork");
			dotlock_drop(dfd, lockname, lockfd);
			refuse(s, REPLY_TEMP, "no lock keeper");
		case 0:
			/* Keep the lock, the directory and the pipe only. */
			close(p[1]);
			close(s->fd);
			close(PROC_FD);
			if (mfd != -1)
				close(mfd);
			keeper_run(dfd, ifd, lockname, lockfd, p[0]);
		}
		close(p[0]);
		s->keeper = pid;
		s->keeperfd = p[1];
		lock_holder(lockfd, pid);
		close(lockfd);
	}
	close(dfd);

	if (fchdir(ifd) == -1)
		fatal("fchdir %s/%s", INDEX_DIR, name);
	privdrop(".", ms->uid, ms->gid);
	/* ifd stays open: it holds the session lock until we exit. */
	s->mboxfd = mfd;
	log_debug("user %s: mbox %s%s, as uid %u", safename(s->user),
	    ms->maildrop, exists ? "" : " (none yet)", (unsigned)ms->uid);
}

/* Kernel locks first, then the dot-lock: the reverse of taking them. */
void
mbox_release(struct session *s)
{
	struct timespec	 ts = { 0, 10 * 1000000L };
	int		 i;

	if (s->mboxfd != -1) {
		close(s->mboxfd);
		s->mboxfd = -1;
	}
	if (s->keeperfd != -1) {
		close(s->keeperfd);
		s->keeperfd = -1;
	}
	/* The keeper removes the lock at once; do not wait on it long. */
	for (i = 0; s->keeper != -1 && i < 300; i++) {
		if (waitpid(s->keeper, NULL, WNOHANG) != 0)
			s->keeper = -1;
		else
			nanosleep(&ts, NULL);
	}
}
