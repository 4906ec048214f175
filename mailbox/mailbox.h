/*
 * pop3d-mailbox: the TRANSACTION and UPDATE states of one session over
 * one user's Maildir, chrooted into it and running as that user.
 */

#ifndef POP3D_MAILBOX_H
#define POP3D_MAILBOX_H

#include <sys/types.h>

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define MAILBOX_CHUNK		(64 * 1024)	/* message reads, output */
#define MAILBOX_LINEMAX		255		/* command, CRLF included */
#define MAILBOX_TIMEOUT		600		/* autologout if none given */

struct msg {
	char		*name;		/* file name in cur/ */
	char		*base;		/* name up to ':', never changes */
	char		*uidl;		/* unique-id listing (RFC 1939) */
	int64_t		 id;		/* index row: the message order */
	uint64_t	 size;		/* RETR octets before dot-stuffing */
	int		 flags;
};

#define MSG_NEW		0x01		/* not in the index before this scan */
#define MSG_SKIP	0x02		/* unreadable or a duplicate: hidden */
#define MSG_DELETED	0x04		/* marked by DELE */
#define MSG_REMOVED	0x08		/* file unlinked in the UPDATE state */

struct session {
	struct msg	*msgs;		/* in message number order */
	size_t		 nmsgs;
	int		 fd;		/* client stream */
	int		 timeout;	/* autologout, seconds */
	uint32_t	 id;		/* the master's session id */
	uint32_t	 retrieved;
	uint32_t	 deleted;
	char		 user[POP3D_NAMELEN];
};

/* mailbox.c */
extern volatile sig_atomic_t mailbox_stopping;
__attribute__((__noreturn__))
void	 session_end(struct session *, const char *);

/* maildir.c */
int	 maildir_scan(struct session *);
int	 maildir_size(const struct msg *, uint64_t *);
int	 maildir_open(struct msg *);
int	 maildir_unlink(struct msg *);
void	 maildir_free(struct session *);
const char *safename(const char *);

/* index.c */
int	 index_load(struct session *);
int	 index_remove(struct session *);
void	 index_close(void);

/* transaction.c */
__attribute__((__noreturn__))
void	 transaction_run(struct session *);

/* output.c */
void	 out_init(struct session *);
void	 out_write(const void *, size_t);
void	 out_printf(const char *, ...)
	    __attribute__((__format__ (printf, 1, 2)));
void	 out_flush(void);
uint64_t out_bytes(void);

/*
 * transform.c: a message file as RETR sends it.  Every LF not preceded
 * by CR becomes CRLF, a lone CR passes through, and with stuffing on a
 * '.' that begins a line is doubled.  State carries across chunks, so
 * any chunking gives the same bytes.  xform_finish() ends a last line
 * that lacks its LF (a trailing CR gets just the LF), so the terminating
 * ".\r\n" stands on its own line.  size counts the output without the
 * stuffing dots: the octets STAT, LIST and RETR announce.
 */
struct xform {
	int		 stuff;		/* dot-stuff for the wire */
	int		 cr;		/* last octet was CR */
	int		 bol;		/* next octet begins a line */
	int		 empty;		/* no octet seen yet */
	uint64_t	 size;
};

/* Output room for n input octets, the finishing CRLF included. */
#define XFORM_OUTLEN(n)		(2 * (size_t)(n) + 2)

void	 xform_init(struct xform *, int);
/* Output length; out may be NULL to count only. */
size_t	 xform_chunk(struct xform *, const unsigned char *, size_t,
	    unsigned char *);
/* At most 2 octets; out may be NULL. */
size_t	 xform_finish(struct xform *, unsigned char *);

#endif /* POP3D_MAILBOX_H */
