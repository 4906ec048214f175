/*
 * Every message exchanged between the pop3d processes, and its fixed
 * layout.  A receiver checks the size of each message against its struct
 * before it reads a field, and checks every string for its NUL.
 */

#ifndef POP3D_PROTO_H
#define POP3D_PROTO_H

#include <stdint.h>

#define PROC_FD			3	/* helpers' imsg channel to the master */

#define POP3D_NAMELEN		256	/* 255 octets and the NUL */
#define POP3D_PASSLEN		256
#define POP3D_PATHLEN		1024
#define POP3D_ADDRLEN		64	/* "[address]:port" of a peer */

enum imsg_type {
	IMSG_NONE,

	/* master -> login, at start */
	IMSG_LOGIN_CONF,	/* struct login_conf */
	IMSG_LOGIN_PKI,		/* struct login_pki, cert bytes, key bytes */
	IMSG_LOGIN_LISTENER,	/* struct login_listener, listening fd */
	IMSG_LOGIN_CA,		/* PEM bytes of the client certificate CA */
	IMSG_LOGIN_READY,	/* no data: configuration complete */
	IMSG_LOGIN_DRAIN,	/* no data: stop accepting, exit when idle */
	IMSG_LOGIN_VERBOSE,	/* uint32_t: log verbosity */

	/* login -> master */
	IMSG_AUTH_REQUEST,	/* struct auth_request */

	/* master -> login */
	IMSG_AUTH_RESULT,	/* struct auth_result, socketpair end if OK */

	/* master -> mailbox */
	IMSG_MAILBOX_START,	/* struct mailbox_start, client stream fd */

	/* mailbox -> master */
	IMSG_MAILBOX_DONE,	/* struct mailbox_done */

	/* pop3ctl -> master, over the control socket */
	IMSG_CTL_SHOW_SESSIONS,	/* no data */
	IMSG_CTL_SHOW_STATS,	/* no data */
	IMSG_CTL_RELOAD,	/* no data */
	IMSG_CTL_LOG_VERBOSE,	/* uint32_t: 0 brief, 1 verbose */
	IMSG_CTL_KICK,		/* struct ctl_kick */

	/* master -> pop3ctl */
	IMSG_CTL_SESSION,	/* struct ctl_session, one per session */
	IMSG_CTL_STATS,		/* struct ctl_stats */
	IMSG_CTL_RESULT,	/* struct ctl_result: the last reply */

	IMSG_MAX
};

struct login_conf {
	uint32_t	uid;
	uint32_t	gid;
	uint32_t	verbose;
	uint32_t	timeout;		/* to log in, seconds */
	uint32_t	cleartext_auth;		/* login without TLS */
	uint32_t	show_implementation;
	uint32_t	max_auth_failures;
	uint32_t	max_conns;		/* per login process */
	uint32_t	max_conns_per_ip;	/* per login process */
	uint32_t	pad;
	char		chroot[POP3D_PATHLEN];
	char		tls_protocols[POP3D_NAMELEN];	/* libtls syntax */
	char		tls_ciphers[POP3D_NAMELEN];
	char		tls_curves[POP3D_NAMELEN];
};

struct login_pki {
	char		name[POP3D_NAMELEN];
	uint32_t	certlen;
	uint32_t	keylen;
	/* followed by certlen bytes of PEM certificate, keylen of key */
};

#define LISTEN_TLS		0x01	/* implicit TLS (RFC 8314) */
#define LISTEN_STARTTLS		0x02	/* STLS (RFC 2595) */

struct login_listener {
	uint32_t	id;
	uint32_t	flags;
	char		pki[POP3D_NAMELEN];
	char		addr[POP3D_ADDRLEN];	/* for log messages */
};

#define AUTH_REQ_TLS		0x01	/* credentials came over TLS */

enum auth_mech {
	AUTH_MECH_PASSWORD,	/* USER/PASS or SASL PLAIN */
	AUTH_MECH_EXTERNAL	/* verified client certificate names user */
};

struct auth_request {
	uint32_t	conn;			/* login process' id */
	uint32_t	flags;
	uint32_t	mech;			/* enum auth_mech */
	uint32_t	failures;		/* on this connection so far */
	char		user[POP3D_NAMELEN];
	char		pass[POP3D_PASSLEN];
	char		peer[POP3D_ADDRLEN];
};

enum auth_status {
	AUTH_OK,		/* fd is the session's socketpair end */
	AUTH_FAIL,		/* bad user or password */
	AUTH_TEMPFAIL,		/* server trouble, try later */
	AUTH_TLS_REQUIRED,	/* right password, but tls-only user */
	AUTH_BUSY		/* too many sessions, overall or from there */
};

struct auth_result {
	uint32_t	conn;
	uint32_t	status;
	uint32_t	delay_ms;		/* hold a failure this long */
	uint32_t	pad;
};

enum maildrop_type {
	MAILDROP_MAILDIR,
	MAILDROP_MBOX
};

struct mailbox_start {
	uint32_t	session;
	uint32_t	uid;
	uint32_t	gid;
	uint32_t	type;			/* enum maildrop_type */
	uint32_t	verbose;
	uint32_t	timeout;		/* autologout, seconds */
	uint32_t	implementation;		/* IMPLEMENTATION in CAPA */
	char		user[POP3D_NAMELEN];
	char		maildrop[POP3D_PATHLEN];
};

struct mailbox_done {
	uint32_t	session;
	uint32_t	retrieved;
	uint32_t	deleted;
	uint32_t	pad;
	uint64_t	bytes;
};

#define POP3D_CTL_MSGLEN	256

struct ctl_kick {
	char		user[POP3D_NAMELEN];
};

struct ctl_session {
	uint32_t	id;
	uint32_t	pid;
	int64_t		started;		/* time(3) */
	char		user[POP3D_NAMELEN];
	char		peer[POP3D_ADDRLEN];
};

struct ctl_stats {
	int64_t		started;
	uint32_t	sessions_now;
	uint32_t	pad;
	uint64_t	sessions;
	uint64_t	logins_ok;
	uint64_t	logins_failed;
	uint64_t	retrieved;
	uint64_t	deleted;
	uint64_t	bytes;
};

struct ctl_result {
	uint32_t	ok;
	char		msg[POP3D_CTL_MSGLEN];
};

#endif /* POP3D_PROTO_H */
