/*
 * Unit tests of master/users.c, the users file of "auth passwd".
 * Prints "PASS: name" or "FAIL: name (reason)" for each case.
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "../../master/users.h"

#define HASH	"$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ0"
#define NBIG	100000

static char	 tmpdir[] = "/tmp/test_users.XXXXXX";
static char	 errbuf[65536];
static int	 failures;

static void
pass(const char *name)
{
	printf("PASS: %s\n", name);
}

static void
fail(const char *name, const char *fmt, ...)
{
	va_list	 ap;
	char	 reason[512];

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	printf("FAIL: %s (%s)\n", name, reason);
	failures++;
}

static const char *
path(const char *name)
{
	static char	 buf[4][PATH_MAX];
	static int	 i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
	return (buf[i]);
}

static void
writefile(const char *name, const char *text, size_t len)
{
	FILE	*fp;

	if ((fp = fopen(path(name), "w")) == NULL) {
		perror(path(name));
		exit(1);
	}
	if (len > 0 && fwrite(text, len, 1, fp) != 1) {
		perror("fwrite");
		exit(1);
	}
	fclose(fp);
}

static void
chomp(char *s)
{
	s[strcspn(s, "\n")] = '\0';
}

/* Load file name of tmpdir; what users_load logged goes to errbuf. */
static struct userdb *
load_file(const char *name)
{
	struct userdb	*db;
	const char	*errpath;
	ssize_t		 n;
	int		 fd, saved;

	errpath = path("stderr");
	fflush(stderr);
	if ((fd = open(errpath, O_RDWR | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    (saved = dup(STDERR_FILENO)) == -1 ||
	    dup2(fd, STDERR_FILENO) == -1) {
		perror("redirect stderr");
		exit(1);
	}
	db = users_load(path(name));
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	if ((n = pread(fd, errbuf, sizeof(errbuf) - 1, 0)) < 0)
		n = 0;
	errbuf[n] = '\0';
	close(fd);
	unlink(errpath);
	return (db);
}

static struct userdb *
load_text(const char *name, const char *text)
{
	writefile(name, text, strlen(text));
	return (load_file(name));
}

/*
 * The text (NULL: the file as it is) must fail with "file:line: msg"
 * logged, line 0 meaning "file: msg"; and the hash must not show.
 */
static void
expect_err_file(const char *test, const char *name, const char *text,
    int line, const char *msg)
{
	struct userdb	*db;
	char		 want[PATH_MAX + 32];
	char		*p, *eol;

	db = text != NULL ? load_text(name, text) : load_file(name);
	if (db != NULL) {
		users_free(db);
		fail(test, "accepted");
		return;
	}
	if (strstr(errbuf, HASH) != NULL || strstr(errbuf, "$2b$") != NULL) {
		fail(test, "hash logged");
		return;
	}
	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: ", path(name), line);
	else
		snprintf(want, sizeof(want), "%s: ", path(name));
	for (p = errbuf; (p = strstr(p, want)) != NULL; p++) {
		if ((eol = strchr(p, '\n')) != NULL)
			*eol = '\0';
		if (strstr(p, msg) != NULL) {
			if (eol != NULL)
				*eol = '\n';
			pass(test);
			return;
		}
		if (eol != NULL)
			*eol = '\n';
	}
	chomp(errbuf);
	fail(test, "no \"%s...%s\" in \"%s\"", want, msg, errbuf);
}

static void
expect_err(const char *test, const char *text, int line, const char *msg)
{
	expect_err_file(test, "bad.users", text, line, msg);
}

static void
test_good(void)
{
	const char		*test = "good file";
	struct userdb		*db;
	const struct user	*u;

	db = load_text("good.users",
	    "# pop3d users\n"
	    "\n"
	    "   \t# an indented comment\n"
	    "  \t \n"
	    "alice:" HASH ":2000:2001:/var/vmail/alice/Maildir:\n"
	    "bob:$6$salt$hash:2002:2003:/var/vmail/bob/Maildir:tls-only\n"
	    "carol:$y$j9T$x$y:2004:2005:\n"
	    "d\xc3\xa9sir\xc3\xa9" "e:*:4294967294:4294967294::"
	    "tls-only,tls-only\n"
	    "#eve:x:1:1:\n"
	    "frank:$2b$x:1:1:/m");		/* no newline at the end */
	if (db == NULL) {
		chomp(errbuf);
		fail(test, "rejected: %s", errbuf);
		return;
	}
	if (users_count(db) != 5)
		fail(test, "count %zu", users_count(db));
	else if ((u = users_find(db, "alice")) == NULL ||
	    strcmp(u->name, "alice") != 0 || strcmp(u->hash, HASH) != 0 ||
	    u->uid != 2000 || u->gid != 2001 ||
	    strcmp(u->maildrop, "/var/vmail/alice/Maildir") != 0 ||
	    u->flags != 0)
		fail(test, "alice");
	else if ((u = users_find(db, "bob")) == NULL ||
	    strcmp(u->hash, "$6$salt$hash") != 0 || u->uid != 2002 ||
	    u->gid != 2003 || u->flags != USER_TLS_ONLY)
		fail(test, "bob");
	else if ((u = users_find(db, "carol")) == NULL ||
	    u->maildrop[0] != '\0' || u->flags != 0)
		fail(test, "carol");
	else if ((u = users_find(db, "d\xc3\xa9sir\xc3\xa9" "e")) == NULL ||
	    u->uid != 4294967294U || u->flags != USER_TLS_ONLY)
		fail(test, "UTF-8 name, largest uid");
	else if ((u = users_find(db, "frank")) == NULL ||
	    strcmp(u->maildrop, "/m") != 0)
		fail(test, "last line without newline");
	else if (users_find(db, "eve") != NULL ||
	    users_find(db, "#eve") != NULL)
		fail(test, "comment read as a user");
	else if (users_find(db, "Alice") != NULL ||
	    users_find(db, "alic") != NULL || users_find(db, "") != NULL ||
	    users_find(db, NULL) != NULL)
		fail(test, "found a user not there");
	else
		pass(test);
	users_free(db);

	if (users_find(NULL, "alice") != NULL || users_count(NULL) != 0)
		fail("NULL db", "not empty");
	else
		pass("NULL db");
	users_free(NULL);
}

static void
test_empty(void)
{
	struct userdb	*db;

	if ((db = load_text("empty.users", "")) == NULL)
		fail("empty file", "rejected");
	else if (users_count(db) != 0 || users_find(db, "x") != NULL)
		fail("empty file", "not empty");
	else
		pass("empty file");
	users_free(db);

	if ((db = load_text("comments.users", "# only\n\n#\n")) == NULL)
		fail("only comments", "rejected");
	else if (users_count(db) != 0)
		fail("only comments", "not empty");
	else
		pass("only comments");
	users_free(db);
}

static void
test_bad(void)
{
	static const char nul[] = "a:" HASH ":1:1:\nb:x\0:2:2:\n";
	char	 text[8192];
	char	 name[300];
	size_t	 n;

	expect_err("bad uid", "alice:" HASH ":abc:100:\n", 1,
	    "uid \"abc\" is not a decimal number");
	expect_err("negative uid", "ok:" HASH ":5:5:\nalice:" HASH
	    ":-5:100:\n", 2, "uid");
	expect_err("uid with +", "alice:" HASH ":+5:100:\n", 1, "uid");
	expect_err("uid with blank", "alice:" HASH ": 5:100:\n", 1, "uid");
	expect_err("empty uid", "alice:" HASH "::100:\n", 1, "empty uid");
	expect_err("uid too large", "alice:" HASH ":4294967295:100:\n", 1,
	    "too large");
	expect_err("uid far too large",
	    "alice:" HASH ":99999999999999999999999:100:\n", 1, "too large");
	expect_err("uid 0", "root:" HASH ":0:100:/root/Maildir:\n", 1,
	    "uid 0 refused");
	expect_err("uid 00", "root:" HASH ":00:100:\n", 1, "uid 0 refused");
	expect_err("gid 0", "\nroot:" HASH ":100:0:\n", 2, "gid 0 refused");
	expect_err("bad gid", "alice:" HASH ":100:1x:\n", 1, "gid");
	expect_err("duplicate user",
	    "alice:" HASH ":1000:1000:\n"
	    "bob:" HASH ":1001:1001:\n"
	    "# c\n"
	    "alice:" HASH ":1002:1002:\n", 4,
	    "duplicate user alice, first on line 1");
	expect_err("unknown option",
	    "alice:" HASH ":1000:1000:/m:tls-only,frob\n", 1,
	    "unknown option \"frob\"");
	expect_err("empty option",
	    "alice:" HASH ":1000:1000:/m:tls-only,\n", 1, "empty option");
	expect_err("relative maildrop",
	    "alice:" HASH ":1000:1000:Maildir:\n", 1, "absolute path");
	expect_err("maildrop with ~", "alice:" HASH ":1000:1000:~/Maildir\n",
	    1, "absolute path");
	expect_err("empty name", ":" HASH ":1000:1000:\n", 1,
	    "empty user name");
	expect_err("blank in name", "al ice:" HASH ":1000:1000:\n", 1,
	    "white space");
	expect_err("leading blank", " alice:" HASH ":1000:1000:\n", 1,
	    "white space");
	expect_err("tab in name", "al\tice:" HASH ":1000:1000:\n", 1,
	    "control character 0x09");
	expect_err("control char in name", "al\001ice:" HASH ":1:1:\n", 1,
	    "control character 0x01");
	expect_err("DEL in maildrop", "alice:" HASH ":1:1:/m\177\n", 1,
	    "control character 0x7f");
	expect_err("CR line end", "alice:" HASH ":1:1:/m\r\n", 1,
	    "carriage return");
	expect_err("empty hash", "alice::1000:1000:\n", 1,
	    "empty password hash");
	expect_err("blank in hash", "alice:$2b$ x:1000:1000:\n", 1,
	    "white space in password hash");
	expect_err("too few fields", "alice:" HASH ":1000:1000\n", 1,
	    "too few fields");
	expect_err("too many fields", "alice:" HASH ":1000:1000:/m::\n", 1,
	    "too many fields");
	expect_err("name only", "alice\n", 1, "too few fields");
	writefile("nul.users", nul, sizeof(nul) - 1);
	expect_err_file("NUL byte", "nul.users", NULL, 2,
	    "control character 0x00");

	memset(name, 'n', 255);
	name[255] = '\0';
	snprintf(text, sizeof(text), "%s:" HASH ":1:1:\n", name);
	{
		struct userdb	*db;

		if ((db = load_text("long.users", text)) == NULL ||
		    users_find(db, name) == NULL)
			fail("255 octet name", "rejected");
		else
			pass("255 octet name");
		users_free(db);
	}
	memset(name, 'n', 256);
	name[256] = '\0';
	snprintf(text, sizeof(text), "x:" HASH ":1:1:\n%s:" HASH ":1:1:\n",
	    name);
	expect_err("256 octet name", text, 2, "user name longer than 255");

	snprintf(text, sizeof(text), "alice:$%0299d:1:1:\n", 0);
	expect_err("hash too long", text, 1, "password hash longer");

	snprintf(text, sizeof(text), "alice:" HASH ":1:1:/%01099d\n", 0);
	expect_err("maildrop too long", text, 1, "maildrop longer");

	/* 4096 octets is the most a line may have, newline not counted. */
	n = snprintf(text, sizeof(text), "alice:" HASH ":1:1:/");
	memset(text + n, 'm', 4096 - n);
	text[4096] = '\0';
	{
		struct userdb	*db;

		/* The maildrop is then too long: it must be that error. */
		if ((db = load_text("4096.users", text)) != NULL)
			fail("4096 octet line", "accepted");
		else if (strstr(errbuf, "maildrop longer") == NULL) {
			chomp(errbuf);
			fail("4096 octet line", "%s", errbuf);
		} else
			pass("4096 octet line");
		users_free(db);
	}
	text[4096] = 'm';
	text[4097] = '\n';
	strlcpy(text + 4098, "bob:" HASH ":1:1:\nbob:x:1:1:\n",
	    sizeof(text) - 4098);
	expect_err("overlong line", text, 1, "line longer than 4096");
	/* ... and the lines after it are still counted right. */
	expect_err("line count after overlong line", text, 3,
	    "duplicate user bob, first on line 2");

	/* Every bad line is reported; no partial database. */
	{
		struct userdb	*db;
		char		 want[PATH_MAX + 16];
		int		 i, ok = 1;
		static const int lines[] = { 2, 4, 5 };

		db = load_text("multi.users",
		    "a:" HASH ":1:1:\n"
		    "b:" HASH ":0:1:\n"
		    "c:" HASH ":1:1:\n"
		    "d:" HASH ":1:1:rel\n"
		    "e:" HASH ":1:1::nope\n");
		for (i = 0; i < 3; i++) {
			snprintf(want, sizeof(want), "%s:%d: ",
			    path("multi.users"), lines[i]);
			if (strstr(errbuf, want) == NULL)
				ok = 0;
		}
		if (db != NULL) {
			fail("every error reported", "accepted");
			users_free(db);
		} else if (!ok) {
			chomp(errbuf);
			fail("every error reported", "%s", errbuf);
		} else
			pass("every error reported");
	}

	expect_err_file("missing file", "nonexistent.users", NULL, 0,
	    "No such file");
	if (mkdir(path("dir.users"), 0700) == -1)
		fail("directory", "mkdir: %s", strerror(errno));
	else
		expect_err_file("directory", "dir.users", NULL, 0,
		    "not a regular file");
}

static double
now(void)
{
	struct timeval	 tv;

	gettimeofday(&tv, NULL);
	return (tv.tv_sec + tv.tv_usec / 1e6);
}

static void
test_big(void)
{
	const char		*test = "100000 users";
	struct userdb		*db;
	const struct user	*u;
	FILE			*fp;
	char			 name[64];
	double			 t0, t1, t2;
	int			 i;

	if ((fp = fopen(path("big.users"), "w")) == NULL) {
		fail(test, "fopen: %s", strerror(errno));
		return;
	}
	/* Not in sorted order, so the sort has work to do. */
	for (i = 0; i < NBIG; i++)
		fprintf(fp, "user%d:" HASH ":%d:%d:/var/vmail/user%d/Maildir:"
		    "%s\n", (i * 7919) % NBIG, 10000 + i, 20000 + i,
		    (i * 7919) % NBIG, i % 2 ? "tls-only" : "");
	fclose(fp);

	t0 = now();
	db = load_file("big.users");
	t1 = now();
	if (db == NULL) {
		chomp(errbuf);
		fail(test, "rejected: %s", errbuf);
		return;
	}
	if (users_count(db) != NBIG) {
		fail(test, "count %zu", users_count(db));
		users_free(db);
		return;
	}
	for (i = 0; i < NBIG; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		if ((u = users_find(db, name)) == NULL ||
		    strcmp(u->name, name) != 0)
			break;
		snprintf(name, sizeof(name), "user%d", i + NBIG);
		if (users_find(db, name) != NULL)
			break;
	}
	t2 = now();
	if (i != NBIG)
		fail(test, "lookup of user%d", i);
	else if (t2 - t1 > 2.0)
		fail(test, "200000 lookups took %.2fs", t2 - t1);
	else {
		pass(test);
		fprintf(stderr, "test_users: %d users loaded in %.2fs, "
		    "200000 lookups in %.3fs\n", NBIG, t1 - t0, t2 - t1);
	}
	users_free(db);
}

static void
cleanup(void)
{
	char	 cmd[PATH_MAX + 16];

	/* Our own mkdtemp directory, nothing else. */
	if (strncmp(tmpdir, "/tmp/test_users.", 16) == 0 &&
	    strchr(tmpdir, '\'') == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", tmpdir);
	}
}

int
main(int argc, char *argv[])
{
	log_init(1, LOG_DAEMON);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return (1);
	}

	test_good();
	test_empty();
	test_bad();
	/* "-s": skip the big file, for slow runs under valgrind. */
	if (argc < 2 || strcmp(argv[1], "-s") != 0)
		test_big();

	cleanup();
	return (failures ? 1 : 0);
}
