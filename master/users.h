/*
 * The users file of "auth passwd": name:hash:uid:gid:maildrop[:options]
 */

#ifndef POP3D_USERS_H
#define POP3D_USERS_H

#include <sys/types.h>

#include "proto.h"

#define USER_TLS_ONLY		0x01

struct user {
	char		 name[POP3D_NAMELEN];
	char		 hash[POP3D_NAMELEN];
	uid_t		 uid;
	gid_t		 gid;
	char		 maildrop[POP3D_PATHLEN];	/* "" if unset */
	int		 flags;
};

struct userdb;

/* NULL, with the reason logged as "file:line: message", on any error. */
struct userdb		*users_load(const char *);
const struct user	*users_find(const struct userdb *, const char *);
/* The first user of the file, NULL if there is none. */
const struct user	*users_first(const struct userdb *);
size_t			 users_count(const struct userdb *);
void			 users_free(struct userdb *);

#endif /* POP3D_USERS_H */
