/*
 * A file's identity as the index keeps it: the mbox file, or a
 * Maildir's cur/.  The same identity later means the same contents,
 * so nothing is read again (compared with memcmp(3): no padding).
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <stdint.h>

#include "mailbox.h"

int
filestate(int fd, struct filestate *fs)
{
	struct stat	 sb;

	if (fstat(fd, &sb) == -1)
		return (-1);
	fs->dev = (int64_t)sb.st_dev;
	fs->ino = (int64_t)sb.st_ino;
	fs->size = (int64_t)sb.st_size;
	fs->mtime = (int64_t)sb.st_mtim.tv_sec * 1000000000LL +
	    sb.st_mtim.tv_nsec;
	fs->ctime = (int64_t)sb.st_ctim.tv_sec * 1000000000LL +
	    sb.st_ctim.tv_nsec;
	return (0);
}
