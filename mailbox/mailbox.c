/*
 * pop3d-mailbox: one authenticated POP3 session.  The master starts it
 * as root with its imsg channel on PROC_FD and sends the session and the
 * client's stream.  It locks itself into the user's maildrop as the user
 * before it reads one client byte, then serves the TRANSACTION state.
 * A Maildir is its own chroot; an mbox is entered by mboxlock.c.
 */

#include <sys/types.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "imsg.h"
#include "log.h"
#include "privdrop.h"
#include "sandbox.h"
#include "proto.h"
#include "mailbox.h"

static struct imsgbuf	 ibuf;
volatile sig_atomic_t	 mailbox_stopping;

__attribute__((__noreturn__))
static void	 usage(void);
static void	 sig_stop(int);
static void	 set_blocking(int);
static int	 recv_start(struct mailbox_start *);
static void	 client_setup(struct session *);
static void	 maildrop_enter(struct session *,
		    const struct mailbox_start *);

static void
usage(void)
{
	fprintf(stderr, "usage: pop3d-mailbox [-dv]\n");
	exit(1);
}

static void
set_blocking(int fd)
{
	int	 flags;

	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1)
		fatal("fcntl fd %d", fd);
}

/* The one message the master sends: who, where, and the client fd. */
static int
recv_start(struct mailbox_start *ms)
{
	struct imsg	 imsg;
	ssize_t		 n;
	int		 fd;

	for (;;) {
		if ((n = imsg_get(&ibuf, &imsg)) == -1)
			fatal("imsg_get");
		if (n > 0)
			break;
		if ((n = imsg_read(&ibuf)) == -1) {
			if (errno == EINTR)
				continue;
			fatal("imsg_read");
		}
		if (n == 0)
			fatalx("master closed the channel before the session");
	}
	if (imsg.hdr.type != IMSG_MAILBOX_START)
		fatalx("unexpected imsg type %u", imsg.hdr.type);
	if (imsg_datalen(&imsg) != sizeof(*ms))
		fatalx("IMSG_MAILBOX_START: wrong size %zu",
		    imsg_datalen(&imsg));
	if (imsg.fd == -1)
		fatalx("IMSG_MAILBOX_START: no client descriptor");
	memcpy(ms, imsg.data, sizeof(*ms));
	fd = imsg.fd;
	imsg_free(&imsg);

	if (memchr(ms->user, '\0', sizeof(ms->user)) == NULL ||
	    memchr(ms->maildrop, '\0', sizeof(ms->maildrop)) == NULL)
		fatalx("IMSG_MAILBOX_START: unterminated string");
	if (ms->type != MAILDROP_MAILDIR && ms->type != MAILDROP_MBOX)
		fatalx("IMSG_MAILBOX_START: unknown maildrop type %u",
		    ms->type);
	if (ms->maildrop[0] != '/')
		fatalx("IMSG_MAILBOX_START: maildrop is not an absolute path");
	return (fd);
}

/*
 * Blocking I/O with the autologout timer on reads (poll) and on writes
 * (SO_SNDTIMEO): a client that stops reading cannot hold us forever.
 */
static void
client_setup(struct session *s)
{
	struct timeval	 tv;

	set_blocking(s->fd);
	memset(&tv, 0, sizeof(tv));
	tv.tv_sec = s->timeout;
	if (setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
	    sizeof(tv)) == -1)
		fatal("setsockopt SO_SNDTIMEO");
}

/* The reply to the client's PASS, when it cannot be +OK. */
void
refuse(struct session *s, const char *reply, const char *reason)
{
	out_printf("%s\r\n", reply);
	session_end(s, reason);
}

/*
 * Open the maildrop, check it belongs to the user, lock it, and chroot
 * into the very directory checked: the path may change under us, the
 * open directory does not.
 */
static void
maildrop_enter(struct session *s, const struct mailbox_start *ms)
{
	struct stat	 sb;
	int		 dfd;

	if (ms->uid == 0 || ms->gid == 0) {
		log_warnx("user %s: refusing a session as root",
		    safename(s->user));
		refuse(s, REPLY_PERM, "root session refused");
	}
	if ((dfd = open(ms->maildrop, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		log_warn("user %s: maildrop %s", safename(s->user),
		    ms->maildrop);
		refuse(s, REPLY_TEMP, "no maildrop");
	}
	if (fstat(dfd, &sb) == -1)
		fatal("fstat %s", ms->maildrop);
	if (sb.st_uid != ms->uid) {
		log_warnx("user %s: maildrop %s is owned by uid %u, not %u",
		    safename(s->user), ms->maildrop, (unsigned)sb.st_uid,
		    (unsigned)ms->uid);
		refuse(s, REPLY_PERM, "maildrop not owned by the user");
	}
	/* RFC 1939's exclusive-access lock: one session per maildrop. */
	if (flock(dfd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK) {
			log_info("user %s: maildrop in use",
			    safename(s->user));
			refuse(s, REPLY_INUSE, "maildrop locked");
		}
		log_warn("flock %s, going on unlocked", ms->maildrop);
	}
	if (fchdir(dfd) == -1)
		fatal("fchdir %s", ms->maildrop);
	privdrop(".", ms->uid, ms->gid);
	/* dfd stays open: it holds the lock till the session ends. */
	s->lockfd = dfd;
	log_debug("user %s: in %s as uid %u", safename(s->user),
	    ms->maildrop, (unsigned)ms->uid);
}

void
session_end(struct session *s, const char *reason)
{
	struct mailbox_done	 done;

	/*
	 * The maildrop is let go before the last reply leaves, so a client
	 * that logs in again at once finds it free.  A reply that cannot
	 * be sent ends the session once more, from out_flush().
	 */
	index_close();
	msgs_free(s);
	if (s->type == MAILDROP_MBOX)
		mbox_release(s);
	else if (s->lockfd != -1) {
		close(s->lockfd);
		s->lockfd = -1;
	}
	out_flush();
	log_info("user %s logout (%s): retrieved %u, deleted %u, "
	    "%llu octets sent", safename(s->user), reason, s->retrieved,
	    s->deleted, (unsigned long long)out_bytes());
	close(s->fd);

	memset(&done, 0, sizeof(done));
	done.session = s->id;
	done.retrieved = s->retrieved;
	done.deleted = s->deleted;
	done.bytes = out_bytes();
	if (imsg_compose(&ibuf, IMSG_MAILBOX_DONE, 0, 0, -1, &done,
	    sizeof(done)) == -1 || imsg_flush(&ibuf) == -1)
		log_warn("cannot report the session end to the master");
	imsg_clear(&ibuf);
	exit(0);
}

/*
 * Asked to stop (pop3d is shutting down): honoured only while waiting
 * for a command, so an UPDATE under way always completes.
 */
static void
sig_stop(int sig)
{
	mailbox_stopping = 1;
}

int
main(int argc, char *argv[])
{
	struct sigaction	 sa;
	struct mailbox_start	 ms;
	struct session		 s;
	int			 ch, debug = 0, verbose = 0;

	while ((ch = getopt(argc, argv, "dv")) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (argc != optind)
		usage();

	/* Nothing but stdio and the master's channel is ours to keep. */
	closefrom(PROC_FD + 1);
	log_init(debug, LOG_MAIL);
	log_procinit("mailbox");
	log_setverbose(verbose);

	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fatal("signal");
	/* No SA_RESTART: a stop request must interrupt the wait for input. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sig_stop;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGINT, &sa, NULL) == -1)
		fatal("sigaction");
	umask(077);
	measure_init();

	set_blocking(PROC_FD);
	if (imsg_init(&ibuf, PROC_FD) == -1)
		fatal("imsg_init");

	memset(&s, 0, sizeof(s));
	s.mboxfd = s.keeperfd = s.lockfd = -1;
	s.keeper = -1;
	s.fd = recv_start(&ms);
	s.type = ms.type;
	s.implementation = ms.implementation != 0;
	if (ms.verbose)
		log_setverbose(1);
	s.id = ms.session;
	if (ms.timeout == 0)
		s.timeout = MAILBOX_TIMEOUT;
	else if (ms.timeout > INT_MAX / 1000)
		s.timeout = INT_MAX / 1000;
	else
		s.timeout = ms.timeout;
	strlcpy(s.user, ms.user, sizeof(s.user));
	client_setup(&s);
	out_init(&s);

	/* Locked in before a byte of mail is parsed. */
	if (s.type == MAILDROP_MBOX) {
		mbox_enter(&s, &ms);
		sandbox_mailbox();
		if (mbox_recover(&s) == -1 || index_load(&s) == -1)
			refuse(&s, REPLY_TEMP, "mailbox unavailable");
	} else {
		maildrop_enter(&s, &ms);
		sandbox_mailbox();
		if (maildir_scan(&s) == -1 || index_load(&s) == -1)
			refuse(&s, REPLY_TEMP, "mailbox unavailable");
	}
	log_debug("user %s: %zu messages", safename(s.user), s.nmsgs);
	/* What loading took and an idle session does not need goes back. */
	index_idle();
#ifdef __GLIBC__
	malloc_trim(0);
#endif

	/* The reply to PASS; the login process relays it. */
	out_printf("+OK Logged in.\r\n");
	transaction_run(&s);
}
