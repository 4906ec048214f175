#ifndef POP3D_SANDBOX_H
#define POP3D_SANDBOX_H

/*
 * Lock a process into the system calls its work needs, after its
 * set-up: seccomp on Linux, pledge on OpenBSD.  A call outside the
 * list ends the process; opening files or sockets fails with EACCES.
 */
void	sandbox_master(void);
void	sandbox_login(void);
void	sandbox_mailbox(void);

#endif /* POP3D_SANDBOX_H */
