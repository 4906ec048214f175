/*
 * AUTH (RFC 5034) with the PLAIN (RFC 4616) and EXTERNAL (RFC 4422
 * appendix A) mechanisms.
 */

#include <sys/types.h>

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <tls.h>

#include "log.h"
#include "login.h"
#include "sasl.h"

/* Three 255-octet fields and two NULs, decoded. */
#define PLAIN_MAX	(3 * 255 + 2)

static void	 sasl_plain(struct conn *, const char *);
static void	 sasl_external(struct conn *, const char *);
static int	 decode(struct conn *, const char *, unsigned char *, size_t,
		    size_t *);

void
cmd_auth(struct conn *c, char *args)
{
	char	*resp = NULL;

	if (args == NULL) {
		/* RFC 1734's listing, still expected by some clients. */
		conn_reply(c, "+OK\r\n");
		if (login_allowed(c))
			conn_reply(c, "PLAIN\r\n");
		if (c->cert_user[0] != '\0')
			conn_reply(c, "EXTERNAL\r\n");
		conn_reply(c, ".\r\n");
		return;
	}
	if ((resp = strchr(args, ' ')) != NULL)
		*resp++ = '\0';
	if (strcasecmp(args, "PLAIN") == 0) {
		if (!login_allowed(c)) {
			conn_reply(c, "-ERR [AUTH] Login requires TLS "
			    "(use STLS).\r\n");
			return;
		}
		if (resp == NULL) {
			c->sasl_wait = SASL_PLAIN;
			conn_reply(c, "+ \r\n");
			return;
		}
		sasl_plain(c, resp);
	} else if (strcasecmp(args, "EXTERNAL") == 0) {
		if (resp == NULL && c->cert_user[0] != '\0') {
			c->sasl_wait = SASL_EXTERNAL;
			conn_reply(c, "+ \r\n");
			return;
		}
		sasl_external(c, resp == NULL ? "=" : resp);
	} else
		conn_reply(c, "-ERR [AUTH] Unsupported SASL mechanism.\r\n");
}

/* The line after "+ ". */
void
sasl_response(struct conn *c, char *line)
{
	int	 mech = c->sasl_wait;

	c->sasl_wait = SASL_NONE;
	if (strcmp(line, "*") == 0) {
		conn_reply(c, "-ERR Authentication cancelled.\r\n");
		return;
	}
	if (mech == SASL_EXTERNAL)
		sasl_external(c, line[0] == '\0' ? "=" : line);
	else
		sasl_plain(c, line);
}

/* "=" is the empty response (RFC 5034 section 4). */
static int
decode(struct conn *c, const char *b64, unsigned char *out, size_t outsz,
    size_t *lenp)
{
	ssize_t	 n;

	if (strcmp(b64, "=") == 0) {
		*lenp = 0;
		return (0);
	}
	if ((n = base64_decode(b64, strlen(b64), out, outsz)) == -1) {
		conn_reply(c, "-ERR [AUTH] Invalid base64 data.\r\n");
		return (-1);
	}
	*lenp = n;
	return (0);
}

static void
sasl_plain(struct conn *c, const char *b64)
{
	unsigned char	 msg[PLAIN_MAX];
	char		 authzid[POP3D_NAMELEN], authcid[POP3D_NAMELEN];
	char		 passwd[POP3D_PASSLEN];
	size_t		 len, i;

	if (decode(c, b64, msg, sizeof(msg), &len) == -1)
		goto done;
	if (plain_parse(msg, len, authzid, authcid, passwd,
	    sizeof(passwd)) == -1) {
		conn_reply(c, "-ERR [AUTH] Malformed PLAIN response.\r\n");
		goto done;
	}
	for (i = 0; authcid[i] != '\0'; i++) {
		if (iscntrl((unsigned char)authcid[i]) || authcid[i] == ' ') {
			conn_reply(c, "-ERR [AUTH] Malformed PLAIN "
			    "response.\r\n");
			goto done;
		}
	}
	/* No proxy logins: acting for another user needs its password. */
	if (authzid[0] != '\0' && strcmp(authzid, authcid) != 0) {
		conn_reply(c, "-ERR [AUTH] Authorization identity must "
		    "match.\r\n");
		goto done;
	}
	authorization_submit(c, authcid, passwd, AUTH_MECH_PASSWORD);
 done:
	explicit_bzero(msg, sizeof(msg));
	explicit_bzero(passwd, sizeof(passwd));
}

static void
sasl_external(struct conn *c, const char *b64)
{
	unsigned char	 authzid[POP3D_NAMELEN];
	size_t		 len;

	if (c->cert_user[0] == '\0') {
		conn_reply(c, "-ERR [AUTH] No client certificate.\r\n");
		return;
	}
	if (decode(c, b64, authzid, sizeof(authzid) - 1, &len) == -1)
		return;
	authzid[len] = '\0';
	if (len > 0 && (memchr(authzid, '\0', len) != NULL ||
	    strcmp((char *)authzid, c->cert_user) != 0)) {
		conn_reply(c, "-ERR [AUTH] Authorization identity must "
		    "match.\r\n");
		return;
	}
	authorization_submit(c, c->cert_user, "", AUTH_MECH_EXTERNAL);
}

/*
 * After the handshake: a client certificate that libtls verified
 * against the configured CA names its user in its subject's CN.
 */
void
sasl_identity(struct conn *c)
{
	const char	*subject, *cn, *end;
	size_t		 len, i;

	c->cert_user[0] = '\0';
	if (!client_ca || !tls_peer_cert_provided(c->tls) ||
	    (subject = tls_peer_cert_subject(c->tls)) == NULL)
		return;
	/* "/C=../O=../CN=alice": the last CN counts. */
	for (cn = NULL; (subject = strstr(subject, "/CN=")) != NULL;
	    subject += 4)
		cn = subject + 4;
	if (cn == NULL)
		return;
	end = strchr(cn, '/');
	len = end != NULL ? (size_t)(end - cn) : strlen(cn);
	if (len == 0 || len >= sizeof(c->cert_user))
		return;
	for (i = 0; i < len; i++)
		if (!isgraph((unsigned char)cn[i]))
			return;
	memcpy(c->cert_user, cn, len);
	c->cert_user[len] = '\0';
	log_info("%u: %s: client certificate for %s", c->id, c->peer,
	    c->cert_user);
}
