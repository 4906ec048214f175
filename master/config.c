/*
 * A configuration made real: its users, keys and listening sockets
 * loaded and checked, at start and at each reload.  A reload that fails
 * any check leaves the running configuration alone.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "master.h"
#include "pop3d.h"

#define PKI_FILE_MAX		(28 * 1024)	/* cert + key fit one imsg */

struct pop3d_conf	*conf;
struct userdb		*userdb;	/* NULL with auth system */
char			*client_ca;
size_t			 client_ca_len;

/* What a configuration brings beside its file. */
struct loaded {
	struct pop3d_conf	*conf;
	struct userdb		*userdb;
	char			*ca;
	size_t			 ca_len;
};

static int	 config_prepare(struct loaded *, struct pop3d_conf *);
static void	 config_discard(struct loaded *);
static int	 check_chroot(const char *);
static int	 load_pki(struct pop3d_conf *);
static char	*read_file(const char *, size_t *);
static int	 bind_listeners(struct pop3d_conf *, struct pop3d_conf *);
static void	 close_listeners(struct pop3d_conf *);

int
config_init(const char *file)
{
	struct loaded	 ld;

	memset(&ld, 0, sizeof(ld));
	if ((ld.conf = parse_config(file)) == NULL ||
	    config_prepare(&ld, NULL) == -1) {
		config_discard(&ld);
		return (-1);
	}
	conf = ld.conf;
	userdb = ld.userdb;
	client_ca = ld.ca;
	client_ca_len = ld.ca_len;
	return (0);
}

/* SIGHUP or pop3ctl reload: -1, and nothing changed, on any error. */
int
config_reload(void)
{
	struct loaded	 ld;

	memset(&ld, 0, sizeof(ld));
	if ((ld.conf = parse_config(conffile)) == NULL ||
	    config_prepare(&ld, conf) == -1) {
		config_discard(&ld);
		log_warnx("reload failed; the running configuration stays");
		return (-1);
	}
	close_listeners(conf);
	free_config(conf);
	users_free(userdb);
	freezero(client_ca, client_ca_len);
	conf = ld.conf;
	userdb = ld.userdb;
	client_ca = ld.ca;
	client_ca_len = ld.ca_len;
	/* New users and passwords: what the cache vouched for is void. */
	auth_cache_flush();
	login_procs_reload(conf->login_uid, conf->login_gid);
	log_info("configuration reloaded");
	return (0);
}

/* Everything the file names, checked and loaded; old lends its sockets. */
static int
config_prepare(struct loaded *ld, struct pop3d_conf *old)
{
	struct pop3d_conf	*nc = ld->conf;
	struct passwd		*pw;

	if ((pw = getpwnam(nc->user)) == NULL) {
		log_warnx("unknown user %s", nc->user);
		return (-1);
	}
	if (pw->pw_uid == 0) {
		log_warnx("user %s must not be root", nc->user);
		return (-1);
	}
	nc->login_uid = pw->pw_uid;
	nc->login_gid = pw->pw_gid;
	if (check_chroot(nc->chroot) == -1)
		return (-1);
	if (nc->auth_type == AUTHDB_PASSWD &&
	    (ld->userdb = users_load(nc->users_file)) == NULL) {
		log_warnx("cannot load users from %s", nc->users_file);
		return (-1);
	}
	if (load_pki(nc) == -1)
		return (-1);
	if (nc->tls_client_ca[0] != '\0' &&
	    (ld->ca = read_file(nc->tls_client_ca, &ld->ca_len)) == NULL) {
		log_warnx("cannot load tls client ca");
		return (-1);
	}
	return (bind_listeners(nc, old));
}

static void
config_discard(struct loaded *ld)
{
	if (ld->conf != NULL) {
		close_listeners(ld->conf);
		free_config(ld->conf);
	}
	users_free(ld->userdb);
	freezero(ld->ca, ld->ca_len);
}

/*
 * The login processes' root: a directory only root can change, or an
 * attacker in a login process could find something placed there.
 */
static int
check_chroot(const char *dir)
{
	struct stat	 st;

	if (stat(dir, &st) == -1) {
		log_warn("chroot %s", dir);
		return (-1);
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		log_warnx("chroot %s: must be a directory owned by root and "
		    "not writable by others", dir);
		return (-1);
	}
	return (0);
}

static int
load_pki(struct pop3d_conf *nc)
{
	struct pki	*pki;

	TAILQ_FOREACH(pki, &nc->pkis, entry) {
		if ((pki->cert = read_file(pki->cert_file,
		    &pki->certlen)) == NULL) {
			log_warnx("pki %s: cannot load certificate",
			    pki->name);
			return (-1);
		}
		if ((pki->key = read_file(pki->key_file,
		    &pki->keylen)) == NULL) {
			log_warnx("pki %s: cannot load key", pki->name);
			return (-1);
		}
	}
	return (0);
}

static char *
read_file(const char *path, size_t *lenp)
{
	struct stat	 st;
	char		*buf;
	ssize_t		 n;
	size_t		 len = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("%s", path);
		return (NULL);
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > PKI_FILE_MAX) {
		log_warnx("%s: not a regular file of at most %d bytes", path,
		    PKI_FILE_MAX);
		close(fd);
		return (NULL);
	}
	if ((buf = calloc(1, st.st_size + 1)) == NULL)
		fatal("read_file");
	while (len < (size_t)st.st_size &&
	    (n = read(fd, buf + len, st.st_size - len)) > 0)
		len += n;
	close(fd);
	if (len != (size_t)st.st_size) {
		log_warnx("%s: short read", path);
		freezero(buf, st.st_size + 1);
		return (NULL);
	}
	*lenp = len;
	return (buf);
}

/* Bind what is new; an address old already has is shared, not rebound. */
static int
bind_listeners(struct pop3d_conf *nc, struct pop3d_conf *old)
{
	struct listener	*l, *o;
	char		 name[POP3D_ADDRLEN];
	int		 on = 1;

	TAILQ_FOREACH(l, &nc->listeners, entry) {
		addr_string((struct sockaddr *)&l->ss, l->sslen, name,
		    sizeof(name));
		o = NULL;
		if (old != NULL)
			TAILQ_FOREACH(o, &old->listeners, entry)
				if (o->fd != -1 && o->sslen == l->sslen &&
				    memcmp(&o->ss, &l->ss, l->sslen) == 0)
					break;
		if (o != NULL) {
			if ((l->fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 0)) == -1) {
				log_warn("dup %s", name);
				return (-1);
			}
			continue;
		}
		if ((l->fd = socket(l->ss.ss_family,
		    SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
			log_warn("socket for %s", name);
			return (-1);
		}
		if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &on,
		    sizeof(on)) == -1 ||
		    (l->ss.ss_family == AF_INET6 &&
		    setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
		    sizeof(on)) == -1) ||
		    bind(l->fd, (struct sockaddr *)&l->ss, l->sslen) == -1 ||
		    listen(l->fd, SOMAXCONN) == -1) {
			log_warn("listen on %s", name);
			return (-1);
		}
		log_debug("listening on %s", name);
	}
	return (0);
}

static void
close_listeners(struct pop3d_conf *c)
{
	struct listener	*l;

	TAILQ_FOREACH(l, &c->listeners, entry) {
		if (l->fd != -1)
			close(l->fd);
		l->fd = -1;
	}
}

void
config_close_listeners(void)
{
	close_listeners(conf);
}
