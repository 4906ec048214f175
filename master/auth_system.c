/*
 * "auth system": the system's own accounts, from passwd and the shadow
 * file, for operators who serve their Unix users directly.
 */

#include <sys/types.h>

#include <pwd.h>
#include <string.h>
#include <time.h>
#ifndef __OpenBSD__
#include <shadow.h>
#endif

#include "master.h"

/* 1 and *u filled if name is an account that may log in, else 0. */
int
system_user(const char *name, struct user *u)
{
	struct passwd	*pw;
	const char	*hash;
#ifndef __OpenBSD__
	struct spwd	*sp;
#endif

#ifdef __OpenBSD__
	pw = getpwnam_shadow(name);
#else
	pw = getpwnam(name);
#endif
	/* Never root, nor an expired account. */
	if (pw == NULL || pw->pw_uid == 0 || pw->pw_gid == 0)
		return (0);
	hash = pw->pw_passwd;
#ifdef __OpenBSD__
	if (pw->pw_expire != 0 && pw->pw_expire <= time(NULL))
		return (0);
#else
	if ((sp = getspnam(name)) != NULL) {
		/* sp_expire counts days since the epoch; -1 is never. */
		if (sp->sp_expire > 0 &&
		    sp->sp_expire <= (long)(time(NULL) / 86400))
			return (0);
		hash = sp->sp_pwdp;
	}
#endif
	memset(u, 0, sizeof(*u));
	if (strlcpy(u->name, pw->pw_name, sizeof(u->name)) >= sizeof(u->name) ||
	    strlcpy(u->hash, hash, sizeof(u->hash)) >= sizeof(u->hash))
		return (0);
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return (1);
}
