/*
 * The master's configuration and its pieces.
 */

#ifndef POP3D_H
#define POP3D_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "proto.h"

#define POP3D_CONF		"/etc/pop3d.conf"
#define POP3D_USER		"_pop3d"
#define POP3D_CHROOT		"/var/empty"
#define POP3D_MAILDROP		"~/Maildir"
#define POP3D_SOCKET		"/var/run/pop3d.sock"
#ifndef LIBEXECDIR
#define LIBEXECDIR		"/usr/local/libexec/pop3d"
#endif

struct pki {
	TAILQ_ENTRY(pki)	 entry;
	char			 name[POP3D_NAMELEN];
	char			*cert_file;
	char			*key_file;
	char			*cert;		/* file contents, loaded later */
	size_t			 certlen;
	char			*key;
	size_t			 keylen;
};

struct listener {
	TAILQ_ENTRY(listener)	 entry;
	struct sockaddr_storage	 ss;		/* address and port */
	socklen_t		 sslen;
	uint32_t		 flags;		/* LISTEN_* of proto.h */
	char			 pki[POP3D_NAMELEN];
	int			 fd;		/* -1 until bound */
};

enum auth_type {
	AUTHDB_PASSWD,
	AUTHDB_SYSTEM
};

struct pop3d_conf {
	TAILQ_HEAD(, pki)	 pkis;
	TAILQ_HEAD(, listener)	 listeners;
	enum auth_type		 auth_type;
	char			 users_file[POP3D_PATHLEN];
	enum maildrop_type	 maildrop_type;
	char			 maildrop[POP3D_PATHLEN];	/* template */
	char			 user[POP3D_NAMELEN];	/* of login procs */
	char			 chroot[POP3D_PATHLEN];
	int			 login_procs;
	int			 timeout;	/* autologout, seconds */
	int			 login_timeout;	/* pre-auth, seconds */
	int			 cleartext_auth; /* login without TLS */
	int			 show_implementation; /* in CAPA */
	int			 max_auth_failures; /* per connection */
	int			 failure_delay;	/* seconds, base */
	int			 auth_cache;	/* seconds a good check lasts */
	int			 max_sessions;	/* logged in at once */
	int			 max_sessions_per_ip;
	char			 tls_protocols[POP3D_NAMELEN];	/* libtls */
	char			 tls_ciphers[POP3D_NAMELEN];
	char			 tls_curves[POP3D_NAMELEN];
	char			 tls_client_ca[POP3D_PATHLEN];	/* "" none */
	char			 control_socket[POP3D_PATHLEN];
	uid_t			 login_uid;	/* of user, looked up */
	gid_t			 login_gid;
};

/* parse.y */
struct pop3d_conf	*parse_config(const char *);
void			 free_config(struct pop3d_conf *);
int			 cmdline_symset(char *);

#endif /* POP3D_H */
