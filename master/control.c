/*
 * The control socket: pop3ctl's requests, from root only.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsgev.h"
#include "log.h"
#include "master.h"
#include "pop3d.h"

#define CONTROL_CLIENTS_MAX	16

struct ctl_conn {
	TAILQ_ENTRY(ctl_conn)	 entry;
	struct imsgev		 iev;
};

static TAILQ_HEAD(, ctl_conn)	 ctl_conns = TAILQ_HEAD_INITIALIZER(ctl_conns);
static int			 ctl_nconns;
static int			 ctl_fd = -1;
static struct event		 ctl_ev;
static char			 ctl_path[POP3D_PATHLEN];

static void	 control_accept(int, short, void *);
static void	 control_dispatch(int, short, void *);
static void	 control_drop(struct ctl_conn *);
static void	 control_result(struct ctl_conn *, int, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));
static void	 control_stats(struct ctl_conn *);

void
control_init(void)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	mode_t			 old;

	strlcpy(ctl_path, conf->control_socket, sizeof(ctl_path));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, ctl_path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		fatalx("control socket %s: path too long", ctl_path);
	if ((ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) == -1)
		fatal("control socket");
	/* A stale socket goes; anything else at that path is a mistake. */
	if (lstat(ctl_path, &st) == 0 && !S_ISSOCK(st.st_mode))
		fatalx("control socket %s: exists and is not a socket",
		    ctl_path);
	if (unlink(ctl_path) == -1 && errno != ENOENT)
		fatal("unlink %s", ctl_path);
	old = umask(S_IXUSR | S_IRWXG | S_IRWXO);
	if (bind(ctl_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("bind %s", ctl_path);
	umask(old);
	if (chmod(ctl_path, S_IRUSR | S_IWUSR) == -1)
		fatal("chmod %s", ctl_path);
	if (listen(ctl_fd, CONTROL_CLIENTS_MAX) == -1)
		fatal("listen %s", ctl_path);
	event_set(&ctl_ev, ctl_fd, EV_READ | EV_PERSIST, control_accept,
	    NULL);
	event_add(&ctl_ev, NULL);
}

void
control_close(void)
{
	struct ctl_conn	*cc;

	if (ctl_fd == -1)
		return;
	event_del(&ctl_ev);
	close(ctl_fd);
	ctl_fd = -1;
	unlink(ctl_path);
	while ((cc = TAILQ_FIRST(&ctl_conns)) != NULL)
		control_drop(cc);
}

static void
control_accept(int fd, short events, void *arg)
{
	struct ctl_conn	*cc;
	uid_t		 uid;
	gid_t		 gid;
	int		 s;

	if ((s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1)
		return;
	/* The socket is root's alone; check anyway. */
	if (getpeereid(s, &uid, &gid) == -1 || uid != 0 ||
	    ctl_nconns >= CONTROL_CLIENTS_MAX) {
		close(s);
		return;
	}
	if ((cc = calloc(1, sizeof(*cc))) == NULL ||
	    imsgev_init(&cc->iev, s, cc, control_dispatch) == -1) {
		log_warn("control_accept");
		free(cc);
		close(s);
		return;
	}
	TAILQ_INSERT_TAIL(&ctl_conns, cc, entry);
	ctl_nconns++;
	imsgev_add(&cc->iev);
}

static void
control_drop(struct ctl_conn *cc)
{
	TAILQ_REMOVE(&ctl_conns, cc, entry);
	ctl_nconns--;
	imsgev_close(&cc->iev);
	free(cc);
}

static void
control_dispatch(int fd, short events, void *arg)
{
	struct ctl_conn	*cc = arg;
	struct ctl_kick	 kick;
	struct imsg	 imsg;
	uint32_t	 v;
	ssize_t		 n;
	int		 kicked;

	if (imsgev_io(&cc->iev, events) == -1) {
		control_drop(cc);
		return;
	}
	for (;;) {
		if ((n = imsg_get(&cc->iev.ibuf, &imsg)) == -1) {
			control_drop(cc);
			return;
		}
		if (n == 0)
			break;
		if (imsg.fd != -1)
			close(imsg.fd);
		switch (imsg.hdr.type) {
		case IMSG_CTL_SHOW_SESSIONS:
			sessions_report(&cc->iev);
			control_result(cc, 1, "%d sessions", sessions_count());
			break;
		case IMSG_CTL_SHOW_STATS:
			control_stats(cc);
			break;
		case IMSG_CTL_RELOAD:
			log_info("reload requested by pop3ctl");
			if (config_reload() == 0)
				control_result(cc, 1, "reloaded");
			else
				control_result(cc, 0, "reload failed; "
				    "see the log");
			break;
		case IMSG_CTL_LOG_VERBOSE:
			if (imsg_datalen(&imsg) != sizeof(v)) {
				control_result(cc, 0, "bad request");
				break;
			}
			memcpy(&v, imsg.data, sizeof(v));
			verbose = v != 0;
			log_setverbose(verbose);
			login_procs_verbose(verbose);
			control_result(cc, 1, "logging %s",
			    verbose ? "verbose" : "brief");
			break;
		case IMSG_CTL_KICK:
			if (imsg_datalen(&imsg) != sizeof(kick)) {
				control_result(cc, 0, "bad request");
				break;
			}
			memcpy(&kick, imsg.data, sizeof(kick));
			if (memchr(kick.user, '\0', sizeof(kick.user)) ==
			    NULL) {
				control_result(cc, 0, "bad request");
				break;
			}
			kicked = sessions_kick(kick.user);
			log_info("pop3ctl: kicked %d sessions of %s", kicked,
			    kick.user);
			control_result(cc, kicked > 0, "%d sessions of %s "
			    "ended", kicked, kick.user);
			break;
		default:
			control_result(cc, 0, "unknown request");
			break;
		}
		imsg_free(&imsg);
	}
	imsgev_add(&cc->iev);
}

static void
control_result(struct ctl_conn *cc, int ok, const char *fmt, ...)
{
	struct ctl_result	 r;
	va_list			 ap;

	memset(&r, 0, sizeof(r));
	r.ok = ok;
	va_start(ap, fmt);
	vsnprintf(r.msg, sizeof(r.msg), fmt, ap);
	va_end(ap);
	imsgev_compose(&cc->iev, IMSG_CTL_RESULT, 0, 0, -1, &r, sizeof(r));
}

static void
control_stats(struct ctl_conn *cc)
{
	struct ctl_stats	 st = stats;

	st.sessions_now = sessions_count();
	imsgev_compose(&cc->iev, IMSG_CTL_STATS, 0, 0, -1, &st, sizeof(st));
	control_result(cc, 1, "ok");
}
