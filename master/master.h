/*
 * Declarations shared by the files of the master process.
 */

#ifndef POP3D_MASTER_H
#define POP3D_MASTER_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stdint.h>

#include "proto.h"
#include "users.h"

#define LOGIN_PROG		"pop3d-login"
#define MAILBOX_PROG		"pop3d-mailbox"

/* A password check on its way through the worker threads. */
struct auth_job {
	TAILQ_ENTRY(auth_job)	 entry;
	pid_t			 login_pid;	/* that asked */
	struct auth_request	 req;
	struct user		 user;
	int			 known;		/* user exists */
	int			 ok;		/* password matched */
	uint8_t			 digest[32];	/* for the auth cache */
};

/* pop3d.c */
extern int			 debug;
extern int			 verbose;
extern const char		*conffile;
extern struct ctl_stats		 stats;	/* for pop3ctl show stats */

/* auth_cache.c */
void	 auth_cache_init(void);
void	 auth_cache_digest(const char *, const char *, const char *,
	    uint8_t *);
int	 auth_cache_hit(const uint8_t *);
void	 auth_cache_add(const uint8_t *);
void	 auth_cache_flush(void);

/* auth_system.c */
int	 system_user(const char *, struct user *);

/* config.c */
extern struct pop3d_conf	*conf;
extern struct userdb		*userdb;	/* NULL with auth system */
extern char			*client_ca;	/* PEM, NULL if none */
extern size_t			 client_ca_len;
int	 config_init(const char *);
int	 config_reload(void);
void	 config_close_listeners(void);

/* control.c */
void	 control_init(void);
void	 control_close(void);

/* spawn.c */
pid_t	 spawn_helper(const char *, int *);

/* login_procs.c */
void	 login_procs_start(uid_t, gid_t);
void	 login_procs_reload(uid_t, gid_t);
void	 login_procs_verbose(int);
int	 login_procs_reaped(pid_t, int);
void	 login_procs_stop(void);
int	 login_procs_running(void);
void	 login_reply(pid_t, uint32_t, enum auth_status, uint32_t, int);

/* auth.c */
void	 auth_init(void);
void	 auth_submit(pid_t, const struct auth_request *);

/* penalty.c */
uint32_t penalty_fail(const char *, uint32_t);

/* session.c */
void	 session_start(struct auth_job *);
int	 session_reaped(pid_t, int);
void	 sessions_stop(void);
int	 sessions_count(void);
struct imsgev;
void	 sessions_report(struct imsgev *);
int	 sessions_kick(const char *);

#endif /* POP3D_MASTER_H */
