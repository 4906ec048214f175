/*
 * The users file of "auth passwd", one user a line:
 *
 *	name:crypt-hash:uid:gid:maildrop-path[:options]
 *
 * Blank lines and lines whose first non-blank character is '#' are
 * ignored.  Any bad line makes the whole file fail: a half-loaded user
 * database would lock out or, worse, let in the wrong people.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "users.h"

#define USERS_MAXLINE		4096	/* octets, newline aside */
#define USERS_MAXFIELDS		6

struct userdb {
	struct user	 *users;	/* in file order */
	struct user	**byname;	/* sorted by name, for bsearch */
	size_t		  count;
};

static int	 users_line(const char *, int, char *, struct user *);
static int	 parse_id(const char *, int, const char *, const char *,
		    long long *);
static int	 parse_options(const char *, int, char *, int *);
static int	 bad_char(int);
static int	 cmp_users(const void *, const void *);
static int	 cmp_name(const void *, const void *);
static void	 lineerr(const char *, int, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));
static void	 userdb_destroy(struct userdb *);

static void
lineerr(const char *path, int lineno, const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("%s:%d: %s", path, lineno, msg);
}

/* Control characters and DEL; octets from 0x80 up are left alone. */
static int
bad_char(int c)
{
	return ((unsigned char)c < 0x20 || c == 0x7f);
}

/* A uid or gid: decimal digits only, neither 0 nor (id_t)-1. */
static int
parse_id(const char *path, int lineno, const char *what, const char *s,
    long long *id)
{
	const char	*errstr;
	long long	 max;

	max = (long long)(uid_t)-1 - 1;
	if (sizeof(gid_t) < sizeof(uid_t))
		max = (long long)(gid_t)-1 - 1;
	if (*s == '\0') {
		lineerr(path, lineno, "empty %s", what);
		return (-1);
	}
	if (strspn(s, "0123456789") != strlen(s)) {
		lineerr(path, lineno, "%s \"%.32s\" is not a decimal number",
		    what, s);
		return (-1);
	}
	*id = strtonum(s, 0, max, &errstr);
	if (errstr != NULL) {
		lineerr(path, lineno, "%s %.32s %s", what, s, errstr);
		return (-1);
	}
	if (*id == 0) {
		lineerr(path, lineno, "%s 0 refused: no mail is read as root",
		    what);
		return (-1);
	}
	return (0);
}

/* A comma-separated list; "tls-only" is the one option known. */
static int
parse_options(const char *path, int lineno, char *s, int *flags)
{
	char	*opt;

	*flags = 0;
	if (*s == '\0')
		return (0);
	while ((opt = strsep(&s, ",")) != NULL) {
		if (*opt == '\0') {
			lineerr(path, lineno, "empty option");
			return (-1);
		}
		if (strcmp(opt, "tls-only") == 0)
			*flags |= USER_TLS_ONLY;
		else {
			lineerr(path, lineno, "unknown option \"%.64s\"", opt);
			return (-1);
		}
	}
	return (0);
}

/*
 * One line, NUL terminated and free of control characters, into u.
 * The hash goes into no message.
 */
static int
users_line(const char *path, int lineno, char *line, struct user *u)
{
	char		*field[USERS_MAXFIELDS];
	char		*p, *f;
	size_t		 n = 0, len;
	long long	 id;

	p = line;
	while ((f = strsep(&p, ":")) != NULL) {
		if (n == USERS_MAXFIELDS) {
			lineerr(path, lineno, "too many fields, want "
			    "name:hash:uid:gid:maildrop[:options]");
			return (-1);
		}
		field[n++] = f;
	}
	if (n < USERS_MAXFIELDS - 1) {
		lineerr(path, lineno, "too few fields, want "
		    "name:hash:uid:gid:maildrop[:options]");
		return (-1);
	}

	memset(u, 0, sizeof(*u));

	len = strlen(field[0]);
	if (len == 0) {
		lineerr(path, lineno, "empty user name");
		return (-1);
	}
	if (len >= sizeof(u->name)) {
		lineerr(path, lineno, "user name longer than %zu octets",
		    sizeof(u->name) - 1);
		return (-1);
	}
	if (strpbrk(field[0], " \t") != NULL) {
		lineerr(path, lineno, "white space in user name");
		return (-1);
	}
	strlcpy(u->name, field[0], sizeof(u->name));

	len = strlen(field[1]);
	if (len == 0) {
		lineerr(path, lineno, "user %s: empty password hash",
		    u->name);
		return (-1);
	}
	if (len >= sizeof(u->hash)) {
		lineerr(path, lineno, "user %s: password hash longer than "
		    "%zu octets", u->name, sizeof(u->hash) - 1);
		return (-1);
	}
	if (strpbrk(field[1], " \t") != NULL) {
		lineerr(path, lineno, "user %s: white space in password hash",
		    u->name);
		return (-1);
	}
	strlcpy(u->hash, field[1], sizeof(u->hash));

	if (parse_id(path, lineno, "uid", field[2], &id) == -1)
		return (-1);
	u->uid = id;
	if (parse_id(path, lineno, "gid", field[3], &id) == -1)
		return (-1);
	u->gid = id;

	len = strlen(field[4]);
	if (len > 0 && field[4][0] != '/') {
		lineerr(path, lineno, "user %s: maildrop must be empty or an "
		    "absolute path", u->name);
		return (-1);
	}
	if (len >= sizeof(u->maildrop)) {
		lineerr(path, lineno, "user %s: maildrop longer than %zu "
		    "octets", u->name, sizeof(u->maildrop) - 1);
		return (-1);
	}
	strlcpy(u->maildrop, field[4], sizeof(u->maildrop));

	if (n == USERS_MAXFIELDS &&
	    parse_options(path, lineno, field[5], &u->flags) == -1)
		return (-1);
	return (0);
}

/* By name; equal names in file order, so the first comes first. */
static int
cmp_users(const void *a, const void *b)
{
	const struct user	*ua = *(struct user * const *)a;
	const struct user	*ub = *(struct user * const *)b;
	int			 r;

	if ((r = strcmp(ua->name, ub->name)) != 0)
		return (r);
	return (ua < ub ? -1 : ua > ub);
}

static int
cmp_name(const void *key, const void *elem)
{
	return (strcmp(key, (*(struct user * const *)elem)->name));
}

struct userdb *
users_load(const char *path)
{
	struct userdb	*db;
	struct user	*u, *nusers;
	struct stat	 st;
	FILE		*fp;
	char		 iobuf[BUFSIZ];
	char		 line[USERS_MAXLINE + 1];
	int		*lines = NULL, *nlines;
	size_t		 len, cap = 0, i;
	int		 fd, c, lineno = 0, errors = 0, toolong;
	char		*p;

	/* O_NONBLOCK: a FIFO must not hang us at open. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		log_warn("%s", path);
		return (NULL);
	}
	if (fstat(fd, &st) == -1) {
		log_warn("%s", path);
		close(fd);
		return (NULL);
	}
	if (!S_ISREG(st.st_mode)) {
		log_warnx("%s: not a regular file", path);
		close(fd);
		return (NULL);
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		log_warn("%s", path);
		close(fd);
		return (NULL);
	}
	/* Our own buffer, to wipe the hashes it held when done. */
	setvbuf(fp, iobuf, _IOFBF, sizeof(iobuf));
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		log_warn("%s", __func__);
		goto done;
	}

	for (;;) {
		len = 0;
		toolong = 0;
		while ((c = getc(fp)) != EOF && c != '\n') {
			if (len < USERS_MAXLINE)
				line[len++] = c;
			else
				toolong = 1;
		}
		if (c == EOF && len == 0)
			break;
		line[len] = '\0';
		lineno++;

		if (toolong) {
			lineerr(path, lineno, "line longer than %d octets",
			    USERS_MAXLINE);
			errors++;
			continue;
		}
		p = line + strspn(line, " \t");
		if (*p == '\0' && strlen(line) == len)
			continue;
		if (*p == '#')
			continue;
		for (i = 0; i < len; i++)
			if (bad_char(line[i]))
				break;
		if (i < len) {
			if (line[i] == '\r')
				lineerr(path, lineno, "carriage return "
				    "(a file with DOS line ends?)");
			else
				lineerr(path, lineno, "control character "
				    "0x%02x", (unsigned char)line[i]);
			errors++;
			continue;
		}

		if (db->count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			nusers = reallocarray(db->users, cap,
			    sizeof(*db->users));
			nlines = reallocarray(lines, cap, sizeof(*lines));
			if (nusers != NULL)
				db->users = nusers;
			if (nlines != NULL)
				lines = nlines;
			if (nusers == NULL || nlines == NULL) {
				log_warn("%s", __func__);
				errors++;
				goto done;
			}
		}
		u = &db->users[db->count];
		if (users_line(path, lineno, line, u) == -1) {
			explicit_bzero(u, sizeof(*u));
			errors++;
			continue;
		}
		lines[db->count++] = lineno;
	}
	if (ferror(fp)) {
		log_warn("%s", path);
		errors++;
		goto done;
	}

	/* Duplicates too are worth knowing about next to other errors. */
	if (db->count > 0) {
		if ((db->byname = calloc(db->count,
		    sizeof(*db->byname))) == NULL) {
			log_warn("%s", __func__);
			errors++;
			goto done;
		}
		for (i = 0; i < db->count; i++)
			db->byname[i] = &db->users[i];
		qsort(db->byname, db->count, sizeof(*db->byname), cmp_users);
		for (i = 1; i < db->count; i++) {
			if (strcmp(db->byname[i - 1]->name,
			    db->byname[i]->name) != 0)
				continue;
			lineerr(path, lines[db->byname[i] - db->users],
			    "duplicate user %s, first on line %d",
			    db->byname[i]->name,
			    lines[db->byname[i - 1] - db->users]);
			errors++;
		}
	}

 done:
	fclose(fp);
	explicit_bzero(iobuf, sizeof(iobuf));
	explicit_bzero(line, sizeof(line));
	free(lines);
	if (errors) {
		userdb_destroy(db);
		return (NULL);
	}
	return (db);
}

const struct user *
users_find(const struct userdb *db, const char *name)
{
	struct user * const	*u;

	if (db == NULL || name == NULL || db->count == 0)
		return (NULL);
	u = bsearch(name, db->byname, db->count, sizeof(*db->byname),
	    cmp_name);
	return (u != NULL ? *u : NULL);
}

const struct user *
users_first(const struct userdb *db)
{
	return (db != NULL && db->count > 0 ? &db->users[0] : NULL);
}

size_t
users_count(const struct userdb *db)
{
	return (db != NULL ? db->count : 0);
}

/* users_free, for a db also half built. */
static void
userdb_destroy(struct userdb *db)
{
	if (db == NULL)
		return;
	/* All of it, so the hashes are gone. */
	if (db->users != NULL)
		explicit_bzero(db->users, db->count * sizeof(*db->users));
	free(db->users);
	free(db->byname);
	free(db);
}

void
users_free(struct userdb *db)
{
	userdb_destroy(db);
}
