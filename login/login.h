/*
 * The login process: TLS, the AUTHORIZATION state and the relay.
 */

#ifndef POP3D_LOGIN_H
#define POP3D_LOGIN_H

#include <sys/types.h>
#include <sys/queue.h>

#include <event.h>
#include <stdint.h>

#include "iobuf.h"
#include "proto.h"

#define LINE_MAX_PREAUTH	255	/* RFC 2449: command line, CRLF excluded */
#define LINE_MAX_SASL		1100	/* three 255-octet PLAIN fields, base64 */
#define PREAUTH_BUFSIZE		2048
#define RELAY_BUFSIZE		(16 * 1024)
#define RELAY_BURST		8	/* buffers moved a wake-up, at most */

struct tls;

struct pki_ctx {
	TAILQ_ENTRY(pki_ctx)	 entry;
	char			 name[POP3D_NAMELEN];
	struct tls		*tls;		/* server context */
};

struct listener {
	TAILQ_ENTRY(listener)	 entry;
	uint32_t		 id;
	uint32_t		 flags;
	int			 fd;
	char			 addr[POP3D_ADDRLEN];
	struct pki_ctx		*pki;
	struct event		 ev;
	struct event		 pause;		/* out of descriptors */
};

enum sasl_wait {
	SASL_NONE,
	SASL_PLAIN,
	SASL_EXTERNAL
};

enum conn_state {
	CONN_HANDSHAKE,		/* TLS not yet up */
	CONN_AUTHORIZATION,	/* reading commands */
	CONN_AUTHWAIT,		/* credentials at the master */
	CONN_STLS,		/* sending STLS' +OK, then the handshake */
	CONN_RELAY,		/* logged in: pumping to the mailbox */
	CONN_CLOSING		/* flushing the last reply, then close */
};

struct conn {
	TAILQ_ENTRY(conn)	 entry;
	uint32_t		 id;
	int			 fd;
	struct tls		*tls;		/* NULL without TLS */
	struct listener		*l;
	enum conn_state		 state;
	char			 peer[POP3D_ADDRLEN];
	char			 host[POP3D_ADDRLEN];	/* peer without port */
	struct event		 ev;		/* client socket */
	struct event		 timer;		/* pre-auth deadline */
	short			 rwant;		/* event a read waits on */
	short			 wwant;		/* event a write waits on */
	int			 client_eof;
	struct iobuf		 in;		/* from the client */
	struct iobuf		 out;		/* to the client */
	int			 skipline;	/* discarding an overlong line */
	int			 tls_done;	/* TLS is up */
	int			 sasl_wait;	/* SASL_*: AUTH awaits a response */
	uint32_t		 failures;	/* failed logins */
	struct event		 delay;		/* holds a failure's reply */
	char			 user[POP3D_NAMELEN];
	char			 cert_user[POP3D_NAMELEN]; /* "" if none */
	int			 mfd;		/* mailbox socketpair end */
	struct event		 mev;
	int			 mbox_eof;	/* mailbox closed its end */
	int			 mbox_wshut;	/* no more input for it */
};

/* login.c */
extern struct login_conf lconf;
extern int		 client_ca;	/* client certificates are verified */
extern int		 draining;
int			 master_compose(uint32_t, int, const void *, size_t);

/* conn.c */
void			 conn_accept(int, short, void *);
void			 conn_pump(struct conn *);
void			 conn_close(struct conn *);
struct conn		*conn_find(uint32_t);
int			 conn_reply(struct conn *, const char *);
void			 conn_closeall(void);
int			 conn_count(void);
void			 conn_accept_resume(int, short, void *);

/* authorization.c */
void			 authorization_greet(struct conn *);
void			 authorization_input(struct conn *);
int			 login_allowed(struct conn *);
void			 authorization_submit(struct conn *, const char *,
			    const char *, enum auth_mech);
void			 authorization_result(struct conn *,
			    const struct auth_result *, int);
void			 authorization_delayed(int, short, void *);

/* stls.c */
void			 cmd_stls(struct conn *, char *);
int			 stls_start(struct conn *);

/* sasl.c */
void			 cmd_auth(struct conn *, char *);
void			 sasl_response(struct conn *, char *);
void			 sasl_identity(struct conn *);

/* relay.c */
void			 relay_start(struct conn *, int);
size_t			 relay_pump(struct conn *);
void			 relay_arm(struct conn *);
void			 relay_close(struct conn *);

#endif /* POP3D_LOGIN_H */
