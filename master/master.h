/*
 * Declarations shared by the files of the master process.
 */

#ifndef POP3D_MASTER_H
#define POP3D_MASTER_H

#include <sys/types.h>
#include <sys/queue.h>

#include "proto.h"
#include "users.h"

#define LOGIN_PROG		"pop3d-login"
#define MAILBOX_PROG		"pop3d-mailbox"

/* A password check on its way through the worker threads. */
struct auth_job {
	TAILQ_ENTRY(auth_job)	 entry;
	int			 slot;		/* login process ... */
	pid_t			 login_pid;	/* ... and its pid then */
	struct auth_request	 req;
	struct user		 user;
	int			 known;		/* user exists */
	int			 ok;		/* password matched */
};

/* pop3d.c */
extern struct pop3d_conf	*conf;
extern struct userdb		*userdb;
extern int			 debug;
extern int			 verbose;
extern char			*client_ca;	/* PEM, NULL if none */
extern size_t			 client_ca_len;

/* spawn.c */
pid_t	 spawn_helper(const char *, int *);

/* login_procs.c */
void	 login_procs_start(uid_t, gid_t);
int	 login_procs_reaped(pid_t, int);
void	 login_procs_stop(void);
int	 login_procs_running(void);
void	 login_reply(int, pid_t, uint32_t, enum auth_status, uint32_t, int);

/* auth.c */
void	 auth_init(void);
void	 auth_submit(int, pid_t, const struct auth_request *);

/* penalty.c */
uint32_t penalty_fail(const char *, uint32_t);

/* session.c */
void	 session_start(struct auth_job *);
int	 session_reaped(pid_t, int);
void	 sessions_stop(void);
int	 sessions_count(void);

#endif /* POP3D_MASTER_H */
