#ifndef POP3D_PRIVDROP_H
#define POP3D_PRIVDROP_H

#include <sys/types.h>

/*
 * chroot(2) into dir (unless NULL), then give up every privilege for
 * uid and gid, and fatal() unless the drop is verified complete.
 */
void	privdrop(const char *, uid_t, gid_t);

#endif /* POP3D_PRIVDROP_H */
