/*
 * Giving up root for good, and checking that it is gone.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <grp.h>
#include <unistd.h>

#include "log.h"
#include "privdrop.h"

void
privdrop(const char *dir, uid_t uid, gid_t gid)
{
	uid_t	 ruid, euid, suid;
	gid_t	 rgid, egid, sgid;
	gid_t	 groups[2];
	int	 n;

	if (uid == 0 || gid == 0)
		fatalx("refusing to run a session as root");
	if (dir != NULL) {
		if (chroot(dir) == -1)
			fatal("chroot %s", dir);
		if (chdir("/") == -1)
			fatal("chdir /");
	}
	if (setgroups(1, &gid) == -1)
		fatal("setgroups");
	if (setresgid(gid, gid, gid) == -1)
		fatal("setresgid");
	if (setresuid(uid, uid, uid) == -1)
		fatal("setresuid");

	/* Check the kernel took every id, and that root cannot come back. */
	if (getresuid(&ruid, &euid, &suid) == -1 ||
	    ruid != uid || euid != uid || suid != uid)
		fatalx("uid drop to %u failed", (unsigned)uid);
	if (getresgid(&rgid, &egid, &sgid) == -1 ||
	    rgid != gid || egid != gid || sgid != gid)
		fatalx("gid drop to %u failed", (unsigned)gid);
	n = getgroups(2, groups);
	if (n != 1 || groups[0] != gid)
		fatalx("supplementary groups not dropped");
	if (setuid(0) != -1 || seteuid(0) != -1)
		fatalx("root regained after privilege drop");
	errno = 0;
}
