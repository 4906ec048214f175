/*
 * Password checks.  crypt(3) is slow on purpose, so it runs in worker
 * threads: the master's event loop keeps serving other logins and
 * sessions meanwhile.  The threads touch nothing but their jobs.
 */

#include <sys/types.h>

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event.h>

#include "log.h"
#include "master.h"
#include "pop3d.h"

#define AUTH_THREADS_MAX	4

/*
 * Checked for unknown users so that they cost as much as known ones.
 * Its password is unknown to everybody.
 */
#define DUMMY_HASH \
	"$2b$10$CrqzpxR7oMZA7YHYmIsMsO563e72eyExGkmBJ/OybaxX6TLLG74e."

static pthread_mutex_t		 auth_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t		 auth_cond = PTHREAD_COND_INITIALIZER;
static TAILQ_HEAD(, auth_job)	 auth_pending =
				    TAILQ_HEAD_INITIALIZER(auth_pending);
static TAILQ_HEAD(, auth_job)	 auth_done =
				    TAILQ_HEAD_INITIALIZER(auth_done);
static int			 auth_notify[2];
static struct event		 auth_ev;

static void	*auth_worker(void *);
static int	 auth_verify(const char *, const char *, void *, size_t);
#ifndef __OpenBSD__
static int	 equal_consttime(const char *, const char *, size_t);
#endif
static void	 auth_finish(int, short, void *);
static void	 auth_complete(struct auth_job *);

void
auth_init(void)
{
	pthread_t	 t;
	sigset_t	 all, old;
	long		 ncpu;
	int		 i, n;

	if (pipe2(auth_notify, O_CLOEXEC | O_NONBLOCK) == -1)
		fatal("pipe2");
	event_set(&auth_ev, auth_notify[0], EV_READ | EV_PERSIST,
	    auth_finish, NULL);
	event_add(&auth_ev, NULL);

	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	n = ncpu < 1 ? 1 : ncpu > AUTH_THREADS_MAX ? AUTH_THREADS_MAX : ncpu;

	/* Signals belong to the event loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < n; i++) {
		if ((errno = pthread_create(&t, NULL, auth_worker, NULL)) != 0)
			fatal("pthread_create");
		pthread_detach(t);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Called with a login process' request; the caller wipes req. */
void
auth_submit(pid_t login_pid, const struct auth_request *req)
{
	struct auth_job		*job;
	const struct user	*u;

	if (memchr(req->user, '\0', sizeof(req->user)) == NULL ||
	    memchr(req->pass, '\0', sizeof(req->pass)) == NULL ||
	    memchr(req->peer, '\0', sizeof(req->peer)) == NULL ||
	    (req->mech != AUTH_MECH_PASSWORD &&
	    req->mech != AUTH_MECH_EXTERNAL) ||
	    (req->mech == AUTH_MECH_EXTERNAL &&
	    conf->tls_client_ca[0] == '\0')) {
		/* EXTERNAL only where the operator asked for certificates. */
		log_warnx("malformed auth request");
		login_reply(login_pid, req->conn, AUTH_FAIL, 0, -1);
		return;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		log_warn("auth_submit");
		login_reply(login_pid, req->conn, AUTH_TEMPFAIL, 0, -1);
		return;
	}
	job->login_pid = login_pid;
	memcpy(&job->req, req, sizeof(job->req));
	if (conf->auth_type == AUTHDB_SYSTEM)
		job->known = system_user(req->user, &job->user);
	else if ((u = users_find(userdb, req->user)) != NULL) {
		memcpy(&job->user, u, sizeof(job->user));
		job->known = 1;
	}
	if (!job->known) {
		/* A real user's hash costs what a real check costs. */
		if ((u = users_first(userdb)) != NULL)
			strlcpy(job->user.hash, u->hash,
			    sizeof(job->user.hash));
		else
			strlcpy(job->user.hash, DUMMY_HASH,
			    sizeof(job->user.hash));
	}

	/*
	 * The login process verified the client certificate that names
	 * this user; there is no password to check.
	 */
	if (req->mech == AUTH_MECH_EXTERNAL) {
		job->ok = job->known;
		auth_complete(job);
		freezero(job, sizeof(*job));
		return;
	}
	/* A password that was good a moment ago needs no crypt(3). */
	if (job->known && conf->auth_cache > 0) {
		auth_cache_digest(job->user.name, job->req.pass,
		    job->user.hash, job->digest);
		if (auth_cache_hit(job->digest)) {
			explicit_bzero(job->req.pass, sizeof(job->req.pass));
			job->ok = 1;
			auth_complete(job);
			freezero(job, sizeof(*job));
			return;
		}
	}

	pthread_mutex_lock(&auth_lock);
	TAILQ_INSERT_TAIL(&auth_pending, job, entry);
	pthread_cond_signal(&auth_cond);
	pthread_mutex_unlock(&auth_lock);
}

static void *
auth_worker(void *arg)
{
	struct auth_job	*job;
	void		*scratch;
	size_t		 scratchlen;

#ifdef __OpenBSD__
	scratch = NULL;
	scratchlen = 0;
#else
	scratchlen = sizeof(struct crypt_data);
	if ((scratch = calloc(1, scratchlen)) == NULL)
		fatal("auth_worker");
#endif
	for (;;) {
		pthread_mutex_lock(&auth_lock);
		while ((job = TAILQ_FIRST(&auth_pending)) == NULL)
			pthread_cond_wait(&auth_cond, &auth_lock);
		TAILQ_REMOVE(&auth_pending, job, entry);
		pthread_mutex_unlock(&auth_lock);

		job->ok = auth_verify(job->req.pass, job->user.hash,
		    scratch, scratchlen) && job->known;
		explicit_bzero(job->req.pass, sizeof(job->req.pass));

		pthread_mutex_lock(&auth_lock);
		TAILQ_INSERT_TAIL(&auth_done, job, entry);
		pthread_mutex_unlock(&auth_lock);
		/* A full pipe already has the loop's attention. */
		(void)write(auth_notify[1], "", 1);
	}
	return (NULL);
}

#ifndef __OpenBSD__
/* memcmp that takes as long for a near miss as for a far one. */
static int
equal_consttime(const char *a, const char *b, size_t len)
{
	unsigned char	 diff = 0;
	size_t		 i;

	for (i = 0; i < len; i++)
		diff |= a[i] ^ b[i];
	return (diff == 0);
}
#endif

/* 1 if pass matches hash. */
static int
auth_verify(const char *pass, const char *hash, void *scratch, size_t len)
{
#ifdef __OpenBSD__
	return (crypt_checkpass(pass, hash) == 0);
#else
	const char	*res;
	size_t		 hlen;
	int		 ok;

	res = crypt_rn(pass, hash, scratch, len);
	hlen = strlen(hash);
	ok = res != NULL && res[0] != '*' && strlen(res) == hlen &&
	    equal_consttime(res, hash, hlen);
	explicit_bzero(scratch, len);
	return (ok);
#endif
}

static void
auth_finish(int fd, short events, void *arg)
{
	struct auth_job	*job;
	char		 buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	for (;;) {
		pthread_mutex_lock(&auth_lock);
		if ((job = TAILQ_FIRST(&auth_done)) != NULL)
			TAILQ_REMOVE(&auth_done, job, entry);
		pthread_mutex_unlock(&auth_lock);
		if (job == NULL)
			break;
		auth_complete(job);
		freezero(job, sizeof(*job));
	}
}

static void
auth_complete(struct auth_job *job)
{
	uint32_t	 delay;

	if (job->ok && job->req.mech == AUTH_MECH_PASSWORD &&
	    conf->auth_cache > 0)
		auth_cache_add(job->digest);
	if (!job->ok) {
		stats.logins_failed++;
		delay = penalty_fail(job->req.peer, job->req.failures);
		log_info("%s: user %s: authentication failed%s%s",
		    job->req.peer, job->req.user,
		    job->known ? "" : " (no such user)",
		    job->req.mech == AUTH_MECH_EXTERNAL ?
		    " (client certificate)" : "");
		login_reply(job->login_pid, job->req.conn,
		    AUTH_FAIL, delay, -1);
		return;
	}
	/* Checked after the password: no hint without it. */
	if ((job->user.flags & USER_TLS_ONLY) &&
	    !(job->req.flags & AUTH_REQ_TLS)) {
		log_info("%s: user %s: refused, account requires TLS",
		    job->req.peer, job->req.user);
		login_reply(job->login_pid, job->req.conn,
		    AUTH_TLS_REQUIRED, 0, -1);
		return;
	}
	session_start(job);
}
