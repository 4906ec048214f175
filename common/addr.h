#ifndef POP3D_ADDR_H
#define POP3D_ADDR_H

#include <sys/types.h>
#include <sys/socket.h>

/* "192.0.2.1:995" or "[2001:db8::1]:995", "unknown" if unprintable. */
void	addr_string(const struct sockaddr *, socklen_t, char *, size_t);
/* The address of such a string without its port. */
void	addr_host(const char *, char *, size_t);

#endif /* POP3D_ADDR_H */
