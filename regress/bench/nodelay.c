/*
 * nodelay.so: a what-if for make bench, never part of pop3d.  Preloaded
 * into a second pop3d instance (BENCH_SERVERS=...,pop3d-nodelay), it
 * sets TCP_NODELAY on every socket accept(2) or accept4(2) returns, so
 * that the bench shows what the option would change in pop3d-login
 * before anyone changes pop3d-login.  The real functions are looked up
 * at load time, before the login process chroots and filters its calls.
 */

#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

int	accept(int, struct sockaddr *, socklen_t *);
int	accept4(int, struct sockaddr *, socklen_t *, int);

static int	(*real_accept)(int, struct sockaddr *, socklen_t *);
static int	(*real_accept4)(int, struct sockaddr *, socklen_t *, int);

static void	nodelay_init(void) __attribute__((__constructor__));

static void
nodelay_init(void)
{
	real_accept = (int (*)(int, struct sockaddr *, socklen_t *))
	    dlsym(RTLD_NEXT, "accept");
	real_accept4 = (int (*)(int, struct sockaddr *, socklen_t *, int))
	    dlsym(RTLD_NEXT, "accept4");
}

static int
nodelay(int fd)
{
	int	 one = 1, saved = errno;

	/* Fails harmlessly on sockets other than TCP. */
	if (fd != -1) {
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		errno = saved;
	}
	return (fd);
}

int
accept(int s, struct sockaddr *sa, socklen_t *len)
{
	if (real_accept == NULL) {
		errno = ENOSYS;
		return (-1);
	}
	return (nodelay(real_accept(s, sa, len)));
}

int
accept4(int s, struct sockaddr *sa, socklen_t *len, int flags)
{
	if (real_accept4 == NULL) {
		errno = ENOSYS;
		return (-1);
	}
	return (nodelay(real_accept4(s, sa, len, flags)));
}
