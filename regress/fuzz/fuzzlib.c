/*
 * What every fuzz target shares: failing loudly, scratch files, and
 * sending bytes with a descriptor.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

#define FUZZ_MAXFILES	8

static char	 fuzz_dir[PATH_MAX];
static char	 fuzz_files[FUZZ_MAXFILES][PATH_MAX];
static int	 fuzz_nfiles;

void
fuzz_fail(const char *fmt, ...)
{
	va_list	 ap;

	fflush(stdout);
	fprintf(stderr, "fuzz: invariant violated: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	fflush(stderr);
	/* libFuzzer and the sanitizers report the abort with a stack. */
	abort();
}

static void
fuzz_cleanup(void)
{
	int	 i;

	for (i = 0; i < fuzz_nfiles; i++)
		unlink(fuzz_files[i]);
	if (fuzz_dir[0] != '\0')
		rmdir(fuzz_dir);
}

const char *
fuzz_file_write(const char *name, const uint8_t *data, size_t len)
{
	const char	*tmp;
	char		*path = NULL;
	ssize_t		 n;
	size_t		 off;
	int		 fd, i;

	if (fuzz_dir[0] == '\0') {
		if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
			tmp = "/tmp";
		if (snprintf(fuzz_dir, sizeof(fuzz_dir),
		    "%s/pop3d-fuzz.XXXXXX", tmp) >= (int)sizeof(fuzz_dir) ||
		    mkdtemp(fuzz_dir) == NULL) {
			fprintf(stderr, "fuzz: mkdtemp in %s: %s\n", tmp,
			    strerror(errno));
			exit(2);
		}
		atexit(fuzz_cleanup);
	}
	for (i = 0; i < fuzz_nfiles; i++) {
		if (strcmp(strrchr(fuzz_files[i], '/') + 1, name) == 0) {
			path = fuzz_files[i];
			break;
		}
	}
	if (path == NULL) {
		if (fuzz_nfiles == FUZZ_MAXFILES ||
		    strchr(name, '/') != NULL) {
			fprintf(stderr, "fuzz: bad scratch file %s\n", name);
			exit(2);
		}
		path = fuzz_files[fuzz_nfiles];
		if (snprintf(path, PATH_MAX, "%s/%s", fuzz_dir, name) >=
		    PATH_MAX) {
			fprintf(stderr, "fuzz: path too long\n");
			exit(2);
		}
		fuzz_nfiles++;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1) {
		fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	for (off = 0; off < len; off += n) {
		if ((n = write(fd, data + off, len - off)) == -1) {
			fprintf(stderr, "fuzz: write %s: %s\n", path,
			    strerror(errno));
			exit(2);
		}
	}
	close(fd);
	return (path);
}

ssize_t
fuzz_send(int s, const void *p, size_t len, int withfd)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	struct cmsghdr	*cmsg;
	union {
		struct cmsghdr	 hdr;
		unsigned char	 buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	ssize_t		 n;
	int		 fd = -1, saved;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)p;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (withfd) {
		if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
			abort();
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = sizeof(cmsgbuf.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	n = sendmsg(s, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (fd != -1) {
		saved = errno;
		close(fd);
		errno = saved;
	}
	return (n);
}
