/*
 * Socket addresses as the logs and the imsgs show them.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

void
addr_string(const struct sockaddr *sa, socklen_t salen, char *buf,
    size_t len)
{
	char	 host[NI_MAXHOST], port[NI_MAXSERV];
	int	 n;

	if (getnameinfo(sa, salen, host, sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		strlcpy(buf, "unknown", len);
		return;
	}
	if (sa->sa_family == AF_INET6)
		n = snprintf(buf, len, "[%s]:%s", host, port);
	else
		n = snprintf(buf, len, "%s:%s", host, port);
	if (n < 0 || (size_t)n >= len)
		strlcpy(buf, "unknown", len);
}

void
addr_host(const char *peer, char *buf, size_t len)
{
	char	*p;

	strlcpy(buf, peer[0] == '[' ? peer + 1 : peer, len);
	if ((p = strrchr(buf, peer[0] == '[' ? ']' : ':')) != NULL)
		*p = '\0';
}
