/*
 * Fuzz target: master/parse.y, parse_config() on a file holding the
 * input.  A configuration it accepts must satisfy what the rest of the
 * master relies on: strings NUL-terminated within their arrays, values
 * in their documented ranges, a listener for every "listen on", every
 * pki with both files, every listener's pki defined.
 *
 * Host names are not looked up: getaddrinfo() is replaced below by one
 * that takes numeric addresses only, so that a fuzzer never waits on,
 * or talks to, DNS.  "include" of the input itself is an include loop;
 * of other files, whatever the fuzzer can name.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <syslog.h>

#include "fuzz.h"
#include "log.h"
#include "../../master/pop3d.h"

#define MAXINPUT	(16 * 1024)

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *,
    struct addrinfo **);

int
getaddrinfo(const char *host, const char *serv, const struct addrinfo *hints,
    struct addrinfo **res)
{
	static gai_fn	 real;
	struct addrinfo	 h;

	if (real == NULL &&
	    (real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo")) == NULL)
		return (EAI_FAIL);
	memset(&h, 0, sizeof(h));
	if (hints != NULL)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST;
	return (real(host, serv, &h, res));
}

static void
check_string(const char *s, size_t size)
{
	FUZZ_ASSERT(memchr(s, '\0', size) != NULL);
}

static void
check_conf(const struct pop3d_conf *c)
{
	const struct pki	*pki;
	const struct listener	*l;
	int			 found;

	check_string(c->users_file, sizeof(c->users_file));
	check_string(c->maildrop, sizeof(c->maildrop));
	check_string(c->user, sizeof(c->user));
	check_string(c->chroot, sizeof(c->chroot));
	check_string(c->tls_protocols, sizeof(c->tls_protocols));
	check_string(c->tls_ciphers, sizeof(c->tls_ciphers));
	check_string(c->tls_curves, sizeof(c->tls_curves));
	check_string(c->tls_client_ca, sizeof(c->tls_client_ca));
	check_string(c->control_socket, sizeof(c->control_socket));
	FUZZ_ASSERT(c->chroot[0] == '/');
	FUZZ_ASSERT(c->control_socket[0] == '/');
	FUZZ_ASSERT(c->tls_client_ca[0] == '\0' || c->tls_client_ca[0] == '/');
	FUZZ_ASSERT(c->user[0] != '\0' && c->maildrop[0] != '\0');
	FUZZ_ASSERT(c->login_procs >= 1 && c->login_procs <= 64);
	FUZZ_ASSERT(c->timeout >= 600 && c->timeout <= 86400);
	FUZZ_ASSERT(c->login_timeout >= 5 && c->login_timeout <= 600);
	FUZZ_ASSERT(c->failure_delay >= 0 && c->failure_delay <= 60);
	FUZZ_ASSERT(c->max_auth_failures >= 1 &&
	    c->max_auth_failures <= 100);
	FUZZ_ASSERT(c->cleartext_auth == 0 || c->cleartext_auth == 1);
	FUZZ_ASSERT(c->auth_type == AUTHDB_PASSWD ||
	    c->auth_type == AUTHDB_SYSTEM);
	FUZZ_ASSERT(c->maildrop_type == MAILDROP_MAILDIR ||
	    c->maildrop_type == MAILDROP_MBOX);

	TAILQ_FOREACH(pki, &c->pkis, entry) {
		check_string(pki->name, sizeof(pki->name));
		FUZZ_ASSERT(pki->name[0] != '\0');
		FUZZ_ASSERT(pki->cert_file != NULL && pki->key_file != NULL);
		FUZZ_ASSERT(pki->cert_file[0] != '\0' &&
		    pki->key_file[0] != '\0');
		FUZZ_ASSERT(pki->cert == NULL && pki->key == NULL);
	}
	FUZZ_ASSERT(!TAILQ_EMPTY(&c->listeners));
	TAILQ_FOREACH(l, &c->listeners, entry) {
		check_string(l->pki, sizeof(l->pki));
		FUZZ_ASSERT(l->fd == -1);
		FUZZ_ASSERT((l->flags & ~(LISTEN_TLS | LISTEN_STARTTLS)) == 0);
		FUZZ_ASSERT((l->flags & (LISTEN_TLS | LISTEN_STARTTLS)) !=
		    (LISTEN_TLS | LISTEN_STARTTLS));
		FUZZ_ASSERT((l->flags == 0) == (l->pki[0] == '\0'));
		FUZZ_ASSERT(l->sslen <= sizeof(l->ss));
		FUZZ_ASSERT((l->ss.ss_family == AF_INET &&
		    l->sslen == sizeof(struct sockaddr_in)) ||
		    (l->ss.ss_family == AF_INET6 &&
		    l->sslen == sizeof(struct sockaddr_in6)));
		if (l->pki[0] == '\0')
			continue;
		found = 0;
		TAILQ_FOREACH(pki, &c->pkis, entry)
			if (strcmp(pki->name, l->pki) == 0)
				found = 1;
		FUZZ_ASSERT(found);
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init(1, LOG_DAEMON);
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct pop3d_conf	*c;
	const char		*path;

	if (len > MAXINPUT)
		return (0);
	path = fuzz_file_write("pop3d.conf", data, len);
	if ((c = parse_config(path)) != NULL) {
		check_conf(c);
		free_config(c);
	}
	/* A second parse finds no state left over from the first. */
	if ((c = parse_config(path)) != NULL) {
		check_conf(c);
		free_config(c);
	}
	return (0);
}
