/*
 * Fuzz target: the master's imsg handlers, fed what a compromised login
 * process, mailbox process or pop3ctl can send: login_dispatch() of
 * master/login_procs.c, session_dispatch() of master/session.c and
 * control_dispatch() of master/control.c, the real files, driven
 * through libevent as in pop3d.  Below are stand-ins for the rest of
 * the master: spawn_helper() makes a socketpair instead of a process,
 * and every "child" is one process of ours that ignores SIGTERM, so the
 * handlers' kill(2)s hit nothing else; auth_submit() answers AUTH_FAIL;
 * config_reload() does nothing.
 *
 * The input is a list of records, each sent by one sendmsg(2):
 *
 *	chan:1 len:2 (little endian) bytes:len
 *
 * chan & 3 picks the channel: 0 the login process, 1 a session's mailbox
 * process, 2 a pop3ctl connection (root only: the master checks the
 * peer's uid), 3 hangs up the channel chan >> 3 & 3 picks; chan & 4 sends
 * a descriptor along.  After each record the event loop runs until the
 * master has nothing more to say.
 *
 * Checked: what the master sends back is well framed, sized and
 * NUL-terminated; an AUTH_OK carries a descriptor; pop3ctl gets one
 * result per request it sent while the stream was well formed; a
 * channel the master gives up on is closed; and after each input, every
 * descriptor the master received or opened is closed again.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fuzz.h"
#include "imsg.h"
#include "log.h"
#include "proto.h"
#include "../../master/master.h"
#include "../../master/pop3d.h"

#define FD_SCAN		256
#define QUIET_PASSES	3
#define MAX_PASSES	10000
#define SESSION_USER	"alice"

/* What pop3d.c and config.c hold. */
int			 debug;
int			 verbose;
const char		*conffile = "fuzz";
const char		*libexec_dir = "/nonexistent";
struct ctl_stats	 stats;
struct pop3d_conf	*conf;
struct userdb		*userdb;
char			*client_ca;
size_t			 client_ca_len;

enum { CH_LOGIN, CH_SESSION, CH_CONTROL, CH_MAX };

/* Our end of a channel, as the "child" or pop3ctl sees it. */
struct peer {
	struct imsgbuf	 ibuf;
	int		 open;		/* ibuf is ours to read */
	int		 eof;		/* the master closed its end */
	int		 hungup;	/* we shut our end down */
	size_t		 msgs;		/* from the master */
	size_t		 results;	/* IMSG_CTL_RESULT, IMSG_AUTH_RESULT */
	/* The stream we sent, for counting pop3ctl's requests. */
	uint8_t		 hdr[IMSG_HEADER_SIZE];
	size_t		 hdrfill;
	size_t		 skip;		/* data left of the current request */
	size_t		 requests;	/* complete, well formed */
	int		 malformed;
};

static struct peer	 peers[CH_MAX];
static pid_t		 child;			/* the stand-in process */
static int		 childpipe = -1;
static int		 pending_login = -1;	/* spawn_helper()'s ends */
static int		 pending_session = -1;
static int		 is_root;
static size_t		 auth_requests;
static char		 ctl_dir[96];	/* fits in a sun_path */

/* ------------------------------------------------ the rest of the master */

pid_t
spawn_helper(const char *prog, int *fd)
{
	int	 sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1)
		return (-1);
	if (fcntl(sp[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(sp[1], F_SETFL, O_NONBLOCK) == -1)
		abort();
	if (strcmp(prog, LOGIN_PROG) == 0) {
		FUZZ_ASSERT(pending_login == -1);
		pending_login = sp[1];
	} else {
		FUZZ_ASSERT(strcmp(prog, MAILBOX_PROG) == 0);
		FUZZ_ASSERT(pending_session == -1);
		pending_session = sp[1];
	}
	*fd = sp[0];
	return (child);
}

void
auth_submit(pid_t pid, const struct auth_request *req)
{
	FUZZ_ASSERT(pid == child);
	auth_requests++;
	login_reply(pid, req->conn, AUTH_FAIL, 0, -1);
}

int
config_reload(void)
{
	return (0);
}

/* ------------------------------------------------------------ our ends */

static int
count_fds(void)
{
	int	 fd, n = 0;

	for (fd = 0; fd < FD_SCAN; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return (n);
}

static void
peer_open(struct peer *p, int fd)
{
	memset(p, 0, sizeof(*p));
	if (imsg_init(&p->ibuf, fd) == -1)
		abort();
	p->open = 1;
}

static void
peer_close(struct peer *p)
{
	if (!p->open)
		return;
	imsg_clear(&p->ibuf);
	close(p->ibuf.fd);
	p->open = 0;
}

static void
check_string(const char *s, size_t size)
{
	FUZZ_ASSERT(memchr(s, '\0', size) != NULL);
}

/* One message from the master to the channel ch. */
static void
check_message(int ch, struct peer *p, struct imsg *imsg)
{
	struct auth_result	 ar;
	struct mailbox_start	 ms;
	struct ctl_result	 cr;
	struct ctl_session	 cs;
	size_t			 len = imsg_datalen(imsg);

	p->msgs++;
	switch (imsg->hdr.type) {
	case IMSG_LOGIN_CONF:
		FUZZ_ASSERT(ch == CH_LOGIN);
		FUZZ_ASSERT(len == sizeof(struct login_conf));
		break;
	case IMSG_LOGIN_READY:
	case IMSG_LOGIN_DRAIN:
		FUZZ_ASSERT(ch == CH_LOGIN && len == 0);
		break;
	case IMSG_LOGIN_VERBOSE:
		FUZZ_ASSERT(ch == CH_LOGIN && len == sizeof(uint32_t));
		break;
	case IMSG_AUTH_RESULT:
		FUZZ_ASSERT(ch == CH_LOGIN && len == sizeof(ar));
		memcpy(&ar, imsg->data, sizeof(ar));
		FUZZ_ASSERT((ar.status == AUTH_OK) == (imsg->fd != -1));
		p->results++;
		break;
	case IMSG_MAILBOX_START:
		FUZZ_ASSERT(ch == CH_SESSION && len == sizeof(ms));
		FUZZ_ASSERT(imsg->fd != -1);
		memcpy(&ms, imsg->data, sizeof(ms));
		check_string(ms.user, sizeof(ms.user));
		check_string(ms.maildrop, sizeof(ms.maildrop));
		FUZZ_ASSERT(strcmp(ms.user, SESSION_USER) == 0);
		break;
	case IMSG_CTL_SESSION:
		FUZZ_ASSERT(ch == CH_CONTROL && len == sizeof(cs));
		memcpy(&cs, imsg->data, sizeof(cs));
		check_string(cs.user, sizeof(cs.user));
		check_string(cs.peer, sizeof(cs.peer));
		break;
	case IMSG_CTL_STATS:
		FUZZ_ASSERT(ch == CH_CONTROL &&
		    len == sizeof(struct ctl_stats));
		break;
	case IMSG_CTL_RESULT:
		FUZZ_ASSERT(ch == CH_CONTROL && len == sizeof(cr));
		memcpy(&cr, imsg->data, sizeof(cr));
		check_string(cr.msg, sizeof(cr.msg));
		p->results++;
		break;
	default:
		fuzz_fail("master sent imsg type %u on channel %d",
		    imsg->hdr.type, ch);
	}
	if (imsg->fd != -1)
		close(imsg->fd);
}

/* Take what the master wrote; 1 if anything came. */
static int
peer_read(int ch)
{
	struct peer	*p = &peers[ch];
	struct imsg	 imsg;
	ssize_t		 n;
	int		 got = 0;

	while (p->open && !p->eof) {
		if ((n = imsg_read(&p->ibuf)) == -1) {
			FUZZ_ASSERT(errno == EAGAIN);
			break;
		}
		got = 1;
		if (n == 0)
			p->eof = 1;
		for (;;) {
			n = imsg_get(&p->ibuf, &imsg);
			FUZZ_ASSERT(n != -1);
			if (n == 0)
				break;
			check_message(ch, p, &imsg);
			imsg_free(&imsg);
		}
		if (p->eof)
			FUZZ_ASSERT(p->ibuf.rlen == 0);
	}
	return (got);
}

/* Run the master until it has been quiet for a few rounds. */
static void
pump(void)
{
	int	 i, quiet = 0, ch, got;

	for (i = 0; i < MAX_PASSES && quiet < QUIET_PASSES; i++) {
		event_loop(EVLOOP_NONBLOCK);
		got = 0;
		for (ch = 0; ch < CH_MAX; ch++)
			got |= peer_read(ch);
		quiet = got ? 0 : quiet + 1;
	}
	FUZZ_ASSERT(i < MAX_PASSES);
}

/* Count pop3ctl's complete, well-formed requests as they go out. */
static void
count_requests(struct peer *p, const uint8_t *b, size_t len)
{
	struct imsg_hdr	 hdr;
	size_t		 n;

	while (len > 0 && !p->malformed) {
		if (p->skip > 0) {
			n = len < p->skip ? len : p->skip;
			p->skip -= n;
			b += n;
			len -= n;
			if (p->skip == 0)
				p->requests++;
			continue;
		}
		n = sizeof(p->hdr) - p->hdrfill;
		if (n > len)
			n = len;
		memcpy(p->hdr + p->hdrfill, b, n);
		p->hdrfill += n;
		b += n;
		len -= n;
		if (p->hdrfill < sizeof(p->hdr))
			break;
		p->hdrfill = 0;
		memcpy(&hdr, p->hdr, sizeof(hdr));
		if (hdr.len < IMSG_HEADER_SIZE || hdr.len > IMSG_MAXSIZE)
			p->malformed = 1;
		else if (hdr.len == IMSG_HEADER_SIZE)
			p->requests++;
		else
			p->skip = hdr.len - IMSG_HEADER_SIZE;
	}
}

static void
peer_send(int ch, const uint8_t *b, size_t len, int withfd)
{
	struct peer	*p = &peers[ch];
	ssize_t		 n;
	int		 tries = 0;

	if (!p->open || p->hungup)
		return;
	while (len > 0) {
		n = fuzz_send(p->ibuf.fd, b, len, withfd);
		if (n == -1) {
			/* Gone: the master dropped the channel. */
			if (errno != EAGAIN)
				return;
			FUZZ_ASSERT(++tries < 100);
			pump();
			continue;
		}
		if (ch == CH_CONTROL)
			count_requests(p, b, n);
		withfd = 0;
		b += n;
		len -= n;
	}
}

static void
peer_hangup(int ch)
{
	struct peer	*p = &peers[ch];

	if (p->open && !p->hungup) {
		shutdown(p->ibuf.fd, SHUT_WR);
		p->hungup = 1;
	}
}

/* A pop3ctl connection, accepted by control.c. */
static void
control_connect(void)
{
	struct sockaddr_un	 sun;
	int			 s;

	memset(&peers[CH_CONTROL], 0, sizeof(peers[CH_CONTROL]));
	if (!is_root)
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, conf->control_socket, sizeof(sun.sun_path));
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(s, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		abort();
	if (fcntl(s, F_SETFL, O_NONBLOCK) == -1)
		abort();
	peer_open(&peers[CH_CONTROL], s);
	pump();
}

/* A session of SESSION_USER, as if the password had been right. */
static void
session_new(void)
{
	struct auth_job	 job;

	memset(&job, 0, sizeof(job));
	job.login_pid = child;
	job.req.conn = 1;
	strlcpy(job.req.user, SESSION_USER, sizeof(job.req.user));
	strlcpy(job.req.peer, "[127.0.0.1]:1100", sizeof(job.req.peer));
	strlcpy(job.user.name, SESSION_USER, sizeof(job.user.name));
	job.user.uid = 1000;
	job.user.gid = 1000;
	strlcpy(job.user.maildrop, "/var/mail/" SESSION_USER,
	    sizeof(job.user.maildrop));
	job.known = job.ok = 1;
	session_start(&job);
	FUZZ_ASSERT(pending_session != -1);
	peer_open(&peers[CH_SESSION], pending_session);
	pending_session = -1;
}

/* ------------------------------------------------------------ set-up */

static void
ctl_cleanup(void)
{
	if (conf != NULL)
		unlink(conf->control_socket);
	if (ctl_dir[0] != '\0')
		rmdir(ctl_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char	*tmp;
	int		 p[2];
	char		 c;

	log_init(1, LOG_DAEMON);
	signal(SIGPIPE, SIG_IGN);
	is_root = geteuid() == 0;

	/* The "child" of every spawn: it outlives nothing of ours. */
	if (pipe(p) == -1)
		abort();
	switch (child = fork()) {
	case -1:
		abort();
	case 0:
		signal(SIGTERM, SIG_IGN);
		close(p[1]);
		while (read(p[0], &c, 1) == -1 && errno == EINTR)
			;
		_exit(0);
	}
	close(p[0]);
	childpipe = p[1];
	fcntl(childpipe, F_SETFD, FD_CLOEXEC);

	if ((conf = calloc(1, sizeof(*conf))) == NULL)
		abort();
	TAILQ_INIT(&conf->pkis);
	TAILQ_INIT(&conf->listeners);
	conf->login_procs = 1;
	conf->login_timeout = 60;
	conf->timeout = 600;
	conf->max_auth_failures = 3;
	conf->max_sessions = 1000;
	conf->max_sessions_per_ip = 20;
	conf->maildrop_type = MAILDROP_MAILDIR;
	strlcpy(conf->maildrop, "~/Maildir", sizeof(conf->maildrop));
	strlcpy(conf->chroot, "/var/empty", sizeof(conf->chroot));
	strlcpy(conf->tls_protocols, "secure", sizeof(conf->tls_protocols));
	strlcpy(conf->tls_ciphers, "secure", sizeof(conf->tls_ciphers));
	strlcpy(conf->tls_curves, "default", sizeof(conf->tls_curves));

	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	if (snprintf(ctl_dir, sizeof(ctl_dir), "%s/pop3d-fuzz-ctl.XXXXXX",
	    tmp) >= (int)sizeof(ctl_dir))
		tmp = "/tmp";
	snprintf(ctl_dir, sizeof(ctl_dir), "%s/pop3d-fuzz-ctl.XXXXXX", tmp);
	if (mkdtemp(ctl_dir) == NULL) {
		perror(ctl_dir);
		exit(2);
	}
	snprintf(conf->control_socket, sizeof(conf->control_socket),
	    "%s/sock", ctl_dir);
	atexit(ctl_cleanup);

	event_init();
	control_init();
	login_procs_start(1000, 1000);
	FUZZ_ASSERT(pending_login != -1);
	peer_open(&peers[CH_LOGIN], pending_login);
	pending_login = -1;
	pump();
	return (0);
}

/* ------------------------------------------------------------ one input */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct peer	*p;
	size_t		 i, n, auth_before;
	size_t		 results_before;
	int		 before, ch, chan, login_was_open;

	/* The login channel of the previous input is open; so is ours. */
	before = count_fds();
	verbose = 0;
	log_setverbose(0);
	auth_before = auth_requests;
	results_before = peers[CH_LOGIN].results;

	session_new();
	control_connect();
	pump();

	for (i = 0; i + 3 <= len; i += 3 + n) {
		chan = data[i];
		n = data[i + 1] | data[i + 2] << 8;
		if (n > len - i - 3)
			n = len - i - 3;
		ch = chan & 3;
		if (ch == 3)
			peer_hangup((chan >> 3 & 3) % CH_MAX);
		else if (n > 0)
			peer_send(ch, data + i + 3, n, chan & 4);
		pump();
	}

	/*
	 * pop3ctl: one result per request, unless a malformed one made
	 * the master hang up before it answered them all.
	 */
	p = &peers[CH_CONTROL];
	if (p->open) {
		if (!p->malformed && !p->hungup)
			FUZZ_ASSERT(p->results == p->requests);
		FUZZ_ASSERT(p->results <= p->requests);
		if (p->malformed)
			FUZZ_ASSERT(p->eof);
	}
	/* A login process gets an answer to each request while it lasts. */
	login_was_open = !peers[CH_LOGIN].eof;
	if (login_was_open)
		FUZZ_ASSERT(peers[CH_LOGIN].results - results_before ==
		    auth_requests - auth_before + 1);

	/* Everyone hangs up; the master closes what it holds. */
	for (ch = 0; ch < CH_MAX; ch++)
		peer_hangup(ch);
	pump();
	for (ch = 0; ch < CH_MAX; ch++)
		FUZZ_ASSERT(!peers[ch].open || peers[ch].eof);
	while (session_reaped(child, 0))
		;
	peer_close(&peers[CH_SESSION]);
	peer_close(&peers[CH_CONTROL]);

	/* A fresh login process for the next input; the old one leaves. */
	login_procs_reload(1000, 1000);
	FUZZ_ASSERT(login_procs_reaped(child, 0) == 1);
	peer_close(&peers[CH_LOGIN]);
	FUZZ_ASSERT(pending_login != -1);
	peer_open(&peers[CH_LOGIN], pending_login);
	pending_login = -1;
	pump();

	FUZZ_ASSERT(count_fds() == before);
	return (0);
}
