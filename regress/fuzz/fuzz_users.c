/*
 * Fuzz target: master/users.c, users_load() on a file holding the
 * input.  A database it accepts must hold what auth.c and session.c
 * rely on: names and hashes non-empty, NUL-terminated, without blanks;
 * uid and gid neither 0 nor -1; a maildrop empty or absolute; known
 * option bits only; each user found by its name, and the first user of
 * the file first.
 */

#include <sys/types.h>

#include <string.h>
#include <syslog.h>

#include "fuzz.h"
#include "log.h"
#include "../../master/users.h"

#define MAXINPUT	(64 * 1024)

static void
check_user(const struct user *u)
{
	FUZZ_ASSERT(memchr(u->name, '\0', sizeof(u->name)) != NULL);
	FUZZ_ASSERT(memchr(u->hash, '\0', sizeof(u->hash)) != NULL);
	FUZZ_ASSERT(memchr(u->maildrop, '\0', sizeof(u->maildrop)) != NULL);
	FUZZ_ASSERT(u->name[0] != '\0' && u->hash[0] != '\0');
	FUZZ_ASSERT(strpbrk(u->name, " \t:\r\n") == NULL);
	FUZZ_ASSERT(strpbrk(u->hash, " \t:\r\n") == NULL);
	FUZZ_ASSERT(u->uid != 0 && u->uid != (uid_t)-1);
	FUZZ_ASSERT(u->gid != 0 && u->gid != (gid_t)-1);
	FUZZ_ASSERT(u->maildrop[0] == '\0' || u->maildrop[0] == '/');
	FUZZ_ASSERT(strpbrk(u->maildrop, ":\r\n") == NULL);
	FUZZ_ASSERT((u->flags & ~USER_TLS_ONLY) == 0);
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
	struct userdb		*db;
	const struct user	*u, *f;
	const char		*path;
	size_t			 n;

	if (len > MAXINPUT)
		return (0);
	path = fuzz_file_write("users", data, len);
	if ((db = users_load(path)) == NULL)
		return (0);
	n = users_count(db);
	f = users_first(db);
	FUZZ_ASSERT((n == 0) == (f == NULL));
	FUZZ_ASSERT(users_find(db, "") == NULL);
	if (f != NULL) {
		check_user(f);
		FUZZ_ASSERT(users_find(db, f->name) == f);
	}
	/*
	 * Every line that made a user: look each up by the name at the
	 * start of the line.
	 */
	{
		const char	*p = (const char *)data, *end = p + len, *nl;
		char		 name[POP3D_NAMELEN];
		size_t		 found = 0, l;

		for (; p < end; p = nl + 1) {
			if ((nl = memchr(p, '\n', end - p)) == NULL)
				nl = end;
			for (l = 0; p + l < nl && p[l] != ':'; l++)
				;
			if (p + l == nl || l == 0 || l >= sizeof(name))
				continue;
			memcpy(name, p, l);
			name[l] = '\0';
			if ((u = users_find(db, name)) != NULL) {
				check_user(u);
				FUZZ_ASSERT(strcmp(u->name, name) == 0);
				found++;
			}
		}
		FUZZ_ASSERT(found == n);
	}
	users_free(db);
	return (0);
}
