/*
 * pop3d-mailbox: the TRANSACTION and UPDATE states of one session over
 * one user's maildrop, a Maildir or an mbox file, chrooted and running
 * as that user.
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

#define UIDL_MAX		70		/* RFC 1939 */
#define MBOX_HASHLEN		16		/* of SHA-256, for the UIDL */

/* One a message: 100,000 messages make 100,000 of these. */
struct msg {
	char		*uidl;		/* unique-id listing, in the arena */
	int64_t		 id;		/* index row; Maildir: message order */
	uint64_t	 size;		/* RETR octets before dot-stuffing */
	int		 flags;
	union {
		struct {		/* Maildir; strings in the arena */
			char	*name;	/* file name in cur/ */
			char	*base;	/* up to ':', never changes; uidl
					   is base when it can be */
			int64_t	 fsize;	/* file octets, -1 unknown */
		};
		struct {		/* mbox */
			uint64_t off;	/* its From_ line */
			uint64_t start;	/* the message, past From_ */
			uint64_t end;	/* its end, before the empty line */
			unsigned char hash[MBOX_HASHLEN];	/* content */
		};
	};
};

#define MSG_NEW		0x01		/* not in the index before this scan */
#define MSG_SKIP	0x02		/* unreadable or a duplicate: hidden */
#define MSG_DELETED	0x04		/* marked by DELE */
#define MSG_REMOVED	0x08		/* gone in the UPDATE state */
#define MSG_STALE	0x10		/* index row disagrees with the file */
#define MSG_RENAMED	0x20		/* its name in the index is old */

/* What the index knew of the mbox file or of cur/ (filestate.c). */
struct filestate {
	int64_t		 dev;
	int64_t		 ino;
	int64_t		 size;
	int64_t		 mtime;		/* nanoseconds */
	int64_t		 ctime;
};

struct session {
	struct msg	*msgs;		/* in message number order */
	size_t		 nmsgs;
	size_t		 msgcap;	/* room in msgs */
	int		 type;		/* enum maildrop_type */
	int		 fd;		/* client stream */
	int		 timeout;	/* autologout, seconds */
	uint32_t	 id;		/* the master's session id */
	uint32_t	 retrieved;
	uint32_t	 deleted;
	int		 implementation;	/* name it in CAPA */
	char		 user[POP3D_NAMELEN];

	/* Maildir only */
	int		 lockfd;	/* the maildrop, flock(2)ed */
	struct filestate cur;		/* cur/ before it was listed */
	int		 curquiet;	/* and still for a while then */

	/* mbox only */
	int		 mboxfd;	/* locked, -1 if there is no file */
	int		 keeperfd;	/* EOF tells the keeper to unlock */
	pid_t		 keeper;	/* holds the dot-lock */
	struct filestate mstate;	/* the file as this session read it */
};

/* arena.c: the message list and its strings */
struct msg *msgs_add(struct session *);
void	 msgs_free(struct session *);
char	*arena_strdup(const char *);
char	*arena_strndup(const char *, size_t);
void	 arena_free(void);

/* mailbox.c */
extern volatile sig_atomic_t mailbox_stopping;
__attribute__((__noreturn__))
void	 session_end(struct session *, const char *);
__attribute__((__noreturn__))
void	 refuse(struct session *, const char *, const char *);

#define REPLY_TEMP	"-ERR [SYS/TEMP] Mailbox unavailable, try later."
#define REPLY_PERM	"-ERR [SYS/PERM] Mailbox access refused."
#define REPLY_INUSE	"-ERR [IN-USE] Mailbox in use by another session."

/* maildir.c */
int	 maildir_scan(struct session *);
int	 maildir_list(struct session *);
int	 maildir_size(const struct msg *, uint64_t *, int64_t *);
int	 maildir_open(struct msg *);
int	 maildir_update(struct session *);
int64_t	 maildir_namesize(const char *);
const char *safename(const char *);

/* filestate.c */
int	 filestate(int, struct filestate *);

/* measure.c */
void	 measure_init(void);
void	 measure_sizes(struct msg **, size_t, int *);

/* mboxlock.c: runs as root, ends chrooted as the user */
void	 mbox_enter(struct session *, const struct mailbox_start *);
void	 mbox_release(struct session *);

/* mbox.c */
int	 mbox_sync(struct session *);
void	 mbox_uidl(const unsigned char *, int, char *, size_t);

/* mboxupdate.c */
int	 mbox_recover(struct session *);
int	 mbox_update(struct session *);

/* index.c */
enum {
	IDX_OK,
	IDX_FAIL,		/* give up: the session fails, try later */
	IDX_REBUILD,		/* damaged or foreign: remove and start over */
	IDX_DONE		/* index.c: past the last row */
};
struct mboxrow {
	unsigned char	 hash[MBOX_HASHLEN];
	char		*uidl;
	int64_t		 id;
};
int	 index_load(struct session *);
void	 index_idle(void);
int	 index_remove(struct session *);
int	 index_update_size(const struct msg *);
void	 index_close(void);
int	 index_mbox_state(struct filestate *);
int	 index_mbox_rows(struct session *);
int	 index_mbox_old(struct mboxrow **, size_t *);
int	 index_mbox_store(struct session *, const struct filestate *);
/* uidl.c */
int	 uidl_valid(const char *);
void	 maildir_uidl(const char *, int, char *, size_t);

/* message.c */
void	 message_send(struct session *, struct msg *, size_t, int,
	    uint64_t);

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
/* The size and state of xform_chunk(x, in, len, NULL), faster. */
size_t	 xform_count(struct xform *, const unsigned char *, size_t);
/* At most 2 octets; out may be NULL. */
size_t	 xform_finish(struct xform *, unsigned char *);

/*
 * unfrom.c: the mbox ">From " unescape, in front of the transform for
 * mbox messages.  A line ">From " that follows an empty line, or starts
 * the message, loses its '>': the inverse of what mail.local(8) does.
 */
struct unfrom {
	int		 held;		/* a '>' is held back */
	int		 matched;	/* octets of "From " seen after it */
	int		 prevempty;	/* the line before was empty */
	int		 linelen;	/* octets in this line so far, max 2 */
	int		 cr;		/* the last octet was CR */
};

/* Output room for n input octets. */
#define UNFROM_OUTLEN(n)	((size_t)(n) + 5)

void	 unfrom_init(struct unfrom *);
size_t	 unfrom_chunk(struct unfrom *, const unsigned char *, size_t,
	    unsigned char *);
/* At most 5 octets. */
size_t	 unfrom_finish(struct unfrom *, unsigned char *);

/*
 * top.c: where TOP stops.  Passes the header, the empty line after it
 * and then at most the given number of body lines.
 */
struct toplimit {
	uint64_t	 lines;		/* body lines still to pass */
	int		 body;		/* past the end of the header */
	int		 linelen;	/* octets in this line so far, max 2 */
	int		 done;
};

void	 top_init(struct toplimit *, uint64_t);
/* How many of the octets to pass on; done is set once the limit hits. */
size_t	 top_chunk(struct toplimit *, const unsigned char *, size_t);

#endif /* POP3D_MAILBOX_H */
