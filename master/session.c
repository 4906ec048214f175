/*
 * Sessions: after a good password, one pop3d-mailbox process per login,
 * joined to the login process by a socketpair.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "imsgev.h"
#include "log.h"
#include "master.h"
#include "pop3d.h"

struct session {
	TAILQ_ENTRY(session)	 entry;
	uint32_t		 id;
	pid_t			 pid;
	struct imsgev		 iev;
	int			 connected;
	char			 user[POP3D_NAMELEN];
	char			 peer[POP3D_ADDRLEN];
	time_t			 started;
};

static TAILQ_HEAD(, session)	 sessions = TAILQ_HEAD_INITIALIZER(sessions);
static uint32_t			 session_nextid = 1;
static int			 nsessions;

static int	 session_limited(const char *);
static void	 session_refuse(struct auth_job *);
static int	 maildrop_path(const struct user *, char *, size_t);
static void	 session_dispatch(int, short, void *);
static int	 session_messages(struct session *);
static void	 session_disconnect(struct session *);

void
session_start(struct auth_job *job)
{
	struct mailbox_start	 ms;
	struct session		*s;
	int			 sp[2], fd;

	if (session_limited(job->req.peer)) {
		login_reply(job->login_pid, job->req.conn, AUTH_BUSY, 0, -1);
		return;
	}
	memset(&ms, 0, sizeof(ms));
	if (maildrop_path(&job->user, ms.maildrop, sizeof(ms.maildrop))
	    == -1) {
		session_refuse(job);
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("session_start");
		session_refuse(job);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1) {
		log_warn("socketpair");
		free(s);
		session_refuse(job);
		return;
	}
	if ((s->pid = spawn_helper(MAILBOX_PROG, &fd)) == -1) {
		log_warn("spawn %s", MAILBOX_PROG);
		close(sp[0]);
		close(sp[1]);
		free(s);
		session_refuse(job);
		return;
	}
	if (imsgev_init(&s->iev, fd, s, session_dispatch) == -1)
		fatal("imsgev_init");
	s->connected = 1;
	s->id = session_nextid++;
	strlcpy(s->user, job->user.name, sizeof(s->user));
	strlcpy(s->peer, job->req.peer, sizeof(s->peer));
	s->started = time(NULL);
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	nsessions++;
	stats.sessions++;
	stats.logins_ok++;

	ms.session = s->id;
	ms.uid = job->user.uid;
	ms.gid = job->user.gid;
	ms.type = conf->maildrop_type;
	ms.verbose = verbose;
	ms.timeout = conf->timeout;
	ms.implementation = conf->show_implementation;
	strlcpy(ms.user, job->user.name, sizeof(ms.user));
	imsgev_compose(&s->iev, IMSG_MAILBOX_START, 0, 0, sp[0], &ms,
	    sizeof(ms));
	login_reply(job->login_pid, job->req.conn, AUTH_OK, 0,
	    sp[1]);
	log_info("session %u: %s: user %s logged in, mailbox pid %d",
	    s->id, s->peer, s->user, s->pid);
}

/* max-sessions and max-sessions-per-ip: 1 if peer must wait. */
static int
session_limited(const char *peer)
{
	struct session	*s;
	char		 host[POP3D_ADDRLEN], other[POP3D_ADDRLEN];
	int		 n = 0;

	if (nsessions >= conf->max_sessions) {
		log_warnx("%s: refused, max-sessions %d reached", peer,
		    conf->max_sessions);
		return (1);
	}
	addr_host(peer, host, sizeof(host));
	TAILQ_FOREACH(s, &sessions, entry) {
		addr_host(s->peer, other, sizeof(other));
		if (strcmp(host, other) == 0)
			n++;
	}
	if (n >= conf->max_sessions_per_ip) {
		log_warnx("%s: refused, max-sessions-per-ip %d reached", peer,
		    conf->max_sessions_per_ip);
		return (1);
	}
	return (0);
}

static void
session_refuse(struct auth_job *job)
{
	login_reply(job->login_pid, job->req.conn, AUTH_TEMPFAIL,
	    0, -1);
}

/* The user's own path, or the template with ~ and %u filled in. */
static int
maildrop_path(const struct user *u, char *buf, size_t len)
{
	const char	*t = conf->maildrop;
	struct passwd	*pw;
	size_t		 n = 0;

	if (u->maildrop[0] != '\0') {
		if (strlcpy(buf, u->maildrop, len) >= len)
			goto toolong;
		return (0);
	}
	buf[0] = '\0';
	if (t[0] == '~') {
		if ((pw = getpwuid(u->uid)) == NULL) {
			log_warnx("user %s: no home directory for uid %u",
			    u->name, (unsigned)u->uid);
			return (-1);
		}
		if (strlcpy(buf, pw->pw_dir, len) >= len)
			goto toolong;
		n = strlen(buf);
		t++;
	}
	for (; *t != '\0'; t++) {
		if (t[0] == '%' && t[1] == 'u') {
			if (strlcat(buf, u->name, len) >= len)
				goto toolong;
			n = strlen(buf);
			t++;
			continue;
		}
		if (n + 1 >= len)
			goto toolong;
		buf[n++] = *t;
		buf[n] = '\0';
	}
	if (buf[0] != '/') {
		log_warnx("user %s: maildrop %s is not an absolute path",
		    u->name, buf);
		return (-1);
	}
	return (0);
 toolong:
	log_warnx("user %s: maildrop path too long", u->name);
	return (-1);
}

static void
session_dispatch(int fd, short events, void *arg)
{
	struct session	*s = arg;

	if (imsgev_io(&s->iev, events) == -1) {
		/* Messages may still be buffered: the child's last words. */
		session_messages(s);
		session_disconnect(s);
		return;
	}
	if (session_messages(s) == 0)
		imsgev_add(&s->iev);
}

/* Handle what is buffered; -1 if the channel had to be closed. */
static int
session_messages(struct session *s)
{
	struct mailbox_done	 md;
	struct imsg		 imsg;
	ssize_t			 n;

	for (;;) {
		if ((n = imsg_get(&s->iev.ibuf, &imsg)) == -1) {
			log_warnx("session %u: malformed message", s->id);
			session_disconnect(s);
			return (-1);
		}
		if (n == 0)
			return (0);
		if (imsg.fd != -1)
			close(imsg.fd);
		if (imsg.hdr.type != IMSG_MAILBOX_DONE ||
		    imsg_datalen(&imsg) != sizeof(md)) {
			log_warnx("session %u: unexpected imsg %u", s->id,
			    imsg.hdr.type);
			imsg_free(&imsg);
			session_disconnect(s);
			return (-1);
		}
		memcpy(&md, imsg.data, sizeof(md));
		imsg_free(&imsg);
		stats.retrieved += md.retrieved;
		stats.deleted += md.deleted;
		stats.bytes += md.bytes;
		log_info("session %u: user %s logged out: %u retrieved, "
		    "%u deleted, %llu bytes", s->id, s->user, md.retrieved,
		    md.deleted, (unsigned long long)md.bytes);
	}
}

static void
session_disconnect(struct session *s)
{
	if (!s->connected)
		return;
	imsgev_close(&s->iev);
	s->connected = 0;
}

/* 1 if pid was a session's mailbox process. */
int
session_reaped(pid_t pid, int status)
{
	struct session	*s;

	TAILQ_FOREACH(s, &sessions, entry)
		if (s->pid == pid)
			break;
	if (s == NULL)
		return (0);
	/* The exit may be reported before its last message was read. */
	if (s->connected) {
		while (imsg_read(&s->iev.ibuf) > 0)
			;
		session_messages(s);
	}
	if (WIFSIGNALED(status))
		log_warnx("session %u: mailbox process %d died of signal %d",
		    s->id, pid, WTERMSIG(status));
	else if (WEXITSTATUS(status) != 0)
		log_warnx("session %u: mailbox process %d exited with %d",
		    s->id, pid, WEXITSTATUS(status));
	session_disconnect(s);
	TAILQ_REMOVE(&sessions, s, entry);
	nsessions--;
	free(s);
	return (1);
}

/* Ask every mailbox process to end; none is in the middle of UPDATE. */
void
sessions_stop(void)
{
	struct session	*s;

	TAILQ_FOREACH(s, &sessions, entry)
		kill(s->pid, SIGTERM);
}

int
sessions_count(void)
{
	return (nsessions);
}

void
sessions_report(struct imsgev *iev)
{
	struct ctl_session	 cs;
	struct session		*s;

	TAILQ_FOREACH(s, &sessions, entry) {
		memset(&cs, 0, sizeof(cs));
		cs.id = s->id;
		cs.pid = s->pid;
		cs.started = s->started;
		strlcpy(cs.user, s->user, sizeof(cs.user));
		strlcpy(cs.peer, s->peer, sizeof(cs.peer));
		imsgev_compose(iev, IMSG_CTL_SESSION, 0, 0, -1, &cs,
		    sizeof(cs));
	}
}

/*
 * End user's sessions.  A mailbox process stops at its next wait for
 * a command, so an UPDATE under way completes and nothing else is
 * deleted.
 */
int
sessions_kick(const char *user)
{
	struct session	*s;
	int		 n = 0;

	TAILQ_FOREACH(s, &sessions, entry) {
		if (strcmp(s->user, user) == 0 && kill(s->pid, SIGTERM) == 0)
			n++;
	}
	return (n);
}
