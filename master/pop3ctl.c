/*
 * pop3ctl: ask the pop3d master what it is doing, or tell it what to
 * do, over its control socket; and make password hashes.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#ifndef __OpenBSD__
#include <crypt.h>
#endif
#include <err.h>
#include <errno.h>
#include <pwd.h>
#include <readpassphrase.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "imsg.h"
#include "proto.h"

#define POP3D_SOCKET		"/var/run/pop3d.sock"
#define BCRYPT_COST		10

static void	 usage(void);
static int	 encrypt_password(const char *);
static int	 send_request(const char *, uint32_t, const void *, size_t);
static int	 show_reply(struct imsg *);

static void
usage(void)
{
	extern char	*__progname;

	fprintf(stderr, "usage: %s [-s socket] command [argument]\n"
	    "commands: show sessions | show stats | reload |\n"
	    "          log verbose | log brief | kick user |"
	    " encrypt [string]\n", __progname);
	exit(1);
}

int
main(int argc, char *argv[])
{
	const char	*sock = POP3D_SOCKET;
	struct ctl_kick	 kick;
	uint32_t	 v;
	int		 ch;

	while ((ch = getopt(argc, argv, "s:")) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();

	if (strcmp(argv[0], "encrypt") == 0 && argc <= 2)
		return (encrypt_password(argc == 2 ? argv[1] : NULL));
	if (strcmp(argv[0], "show") == 0 && argc == 2) {
		if (strcmp(argv[1], "sessions") == 0)
			return (send_request(sock, IMSG_CTL_SHOW_SESSIONS,
			    NULL, 0));
		if (strcmp(argv[1], "stats") == 0)
			return (send_request(sock, IMSG_CTL_SHOW_STATS, NULL,
			    0));
	}
	if (strcmp(argv[0], "reload") == 0 && argc == 1)
		return (send_request(sock, IMSG_CTL_RELOAD, NULL, 0));
	if (strcmp(argv[0], "log") == 0 && argc == 2 &&
	    (strcmp(argv[1], "verbose") == 0 ||
	    strcmp(argv[1], "brief") == 0)) {
		v = strcmp(argv[1], "verbose") == 0;
		return (send_request(sock, IMSG_CTL_LOG_VERBOSE, &v,
		    sizeof(v)));
	}
	if (strcmp(argv[0], "kick") == 0 && argc == 2) {
		memset(&kick, 0, sizeof(kick));
		if (strlcpy(kick.user, argv[1], sizeof(kick.user)) >=
		    sizeof(kick.user))
			errx(1, "user name too long");
		return (send_request(sock, IMSG_CTL_KICK, &kick,
		    sizeof(kick)));
	}
	usage();
	return (1);
}

/* A bcrypt hash for the users file; the password never leaves here. */
static int
encrypt_password(const char *given)
{
	char	 pass[POP3D_PASSLEN], again[POP3D_PASSLEN];
	char	 hash[128];
#ifndef __OpenBSD__
	char	 salt[64];
	char	*res;
#endif

	if (given != NULL) {
		if (strlcpy(pass, given, sizeof(pass)) >= sizeof(pass))
			errx(1, "password too long");
	} else {
		if (readpassphrase("Password: ", pass, sizeof(pass),
		    RPP_REQUIRE_TTY) == NULL ||
		    readpassphrase("Again: ", again, sizeof(again),
		    RPP_REQUIRE_TTY) == NULL)
			errx(1, "cannot read the password");
		if (strcmp(pass, again) != 0) {
			explicit_bzero(pass, sizeof(pass));
			explicit_bzero(again, sizeof(again));
			errx(1, "passwords differ");
		}
		explicit_bzero(again, sizeof(again));
	}
	if (pass[0] == '\0')
		errx(1, "empty password");
#ifdef __OpenBSD__
	if (crypt_newhash(pass, "bcrypt,10", hash, sizeof(hash)) == -1)
		err(1, "crypt_newhash");
#else
	if (crypt_gensalt_rn("$2b$", BCRYPT_COST, NULL, 0, salt,
	    sizeof(salt)) == NULL ||
	    (res = crypt(pass, salt)) == NULL || res[0] == '*')
		errx(1, "bcrypt is not available");
	strlcpy(hash, res, sizeof(hash));
	explicit_bzero(res, strlen(res));
#endif
	explicit_bzero(pass, sizeof(pass));
	printf("%s\n", hash);
	return (0);
}

static int
send_request(const char *path, uint32_t type, const void *data, size_t len)
{
	struct sockaddr_un	 sun;
	struct imsgbuf		 ibuf;
	struct imsg		 imsg;
	ssize_t			 n;
	int			 fd, done = 0, ret = 1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		errx(1, "%s: path too long", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		err(1, "connect %s", path);
	if (imsg_init(&ibuf, fd) == -1)
		err(1, "imsg_init");
	if (imsg_compose(&ibuf, type, 0, 0, -1, data, len) == -1 ||
	    imsg_flush(&ibuf) == -1)
		err(1, "write %s", path);
	while (!done) {
		if ((n = imsg_read(&ibuf)) == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			err(1, "read %s", path);
		}
		if (n == 0)
			errx(1, "pop3d closed the connection");
		while (!done) {
			if ((n = imsg_get(&ibuf, &imsg)) == -1)
				errx(1, "bad reply");
			if (n == 0)
				break;
			if (imsg.hdr.type == IMSG_CTL_RESULT) {
				ret = show_reply(&imsg);
				done = 1;
			} else
				show_reply(&imsg);
			imsg_free(&imsg);
		}
	}
	imsg_clear(&ibuf);
	close(fd);
	return (ret);
}

/* Prints a reply; for the final result, the exit status. */
static int
show_reply(struct imsg *imsg)
{
	struct ctl_session	 cs;
	struct ctl_stats	 st;
	struct ctl_result	 r;
	char			 when[32];
	time_t			 t;

	switch (imsg->hdr.type) {
	case IMSG_CTL_SESSION:
		if (imsg_datalen(imsg) != sizeof(cs))
			errx(1, "bad session reply");
		memcpy(&cs, imsg->data, sizeof(cs));
		cs.user[sizeof(cs.user) - 1] = '\0';
		cs.peer[sizeof(cs.peer) - 1] = '\0';
		t = cs.started;
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S",
		    localtime(&t));
		printf("%u %s %s pid %u since %s\n", cs.id, cs.user, cs.peer,
		    cs.pid, when);
		return (0);
	case IMSG_CTL_STATS:
		if (imsg_datalen(imsg) != sizeof(st))
			errx(1, "bad stats reply");
		memcpy(&st, imsg->data, sizeof(st));
		printf("uptime: %lld seconds\n",
		    (long long)(time(NULL) - st.started));
		printf("sessions: %u now, %llu in all\n", st.sessions_now,
		    (unsigned long long)st.sessions);
		printf("logins: %llu ok, %llu failed\n",
		    (unsigned long long)st.logins_ok,
		    (unsigned long long)st.logins_failed);
		printf("messages: %llu retrieved, %llu deleted\n",
		    (unsigned long long)st.retrieved,
		    (unsigned long long)st.deleted);
		printf("bytes sent: %llu\n", (unsigned long long)st.bytes);
		return (0);
	case IMSG_CTL_RESULT:
		if (imsg_datalen(imsg) != sizeof(r))
			errx(1, "bad result");
		memcpy(&r, imsg->data, sizeof(r));
		r.msg[sizeof(r.msg) - 1] = '\0';
		fprintf(r.ok ? stdout : stderr, "%s\n", r.msg);
		return (r.ok ? 0 : 1);
	default:
		errx(1, "unexpected reply %u", imsg->hdr.type);
	}
}
