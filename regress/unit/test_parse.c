/*
 * Unit tests of master/parse.y: good and bad pop3d.conf files.
 * Prints "PASS: name" or "FAIL: name (reason)" for each case.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "../../master/pop3d.h"

/* parse.y; pop3d.h will declare it. */
int	cmdline_symset(char *);

static char	 tmpdir[] = "/tmp/test_parse.XXXXXX";
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

/* Parse file name of tmpdir; what the parser logged goes to errbuf. */
static struct pop3d_conf *
parse_file(const char *name)
{
	struct pop3d_conf	*conf;
	const char		*errpath;
	ssize_t			 n;
	int			 fd, saved;

	errpath = path("stderr");
	fflush(stderr);
	if ((fd = open(errpath, O_RDWR | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    (saved = dup(STDERR_FILENO)) == -1 ||
	    dup2(fd, STDERR_FILENO) == -1) {
		perror("redirect stderr");
		exit(1);
	}
	conf = parse_config(path(name));
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	if ((n = pread(fd, errbuf, sizeof(errbuf) - 1, 0)) < 0)
		n = 0;
	errbuf[n] = '\0';
	close(fd);
	unlink(errpath);
	return (conf);
}

static struct pop3d_conf *
parse_text(const char *name, const char *text)
{
	writefile(name, text, strlen(text));
	return (parse_file(name));
}

static void
chomp(char *s)
{
	s[strcspn(s, "\n")] = '\0';
}

/* The text must parse; the caller frees the result. */
static struct pop3d_conf *
expect_ok(const char *test, const char *text)
{
	struct pop3d_conf	*conf;

	if ((conf = parse_text("good.conf", text)) == NULL) {
		chomp(errbuf);
		fail(test, "rejected: %s", errbuf);
	}
	return (conf);
}

/*
 * The text (NULL: the file as it is) must fail, with a message
 * "file:line: ...msg..." logged for that line; line 0 means no line
 * number is expected.
 */
static int
expect_err_in(const char *test, const char *name, const char *text,
    const char *file, int line, const char *msg)
{
	struct pop3d_conf	*conf;
	char			 want[PATH_MAX + 32];
	char			*p, *eol;

	conf = text != NULL ? parse_text(name, text) : parse_file(name);
	if (conf != NULL) {
		free_config(conf);
		fail(test, "accepted");
		return (0);
	}
	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: ", path(file), line);
	else
		snprintf(want, sizeof(want), "%s: ", path(file));
	for (p = errbuf; (p = strstr(p, want)) != NULL; p++) {
		eol = strchr(p, '\n');
		if (eol != NULL)
			*eol = '\0';
		if (strstr(p, msg) != NULL) {
			if (eol != NULL)
				*eol = '\n';
			pass(test);
			return (1);
		}
		if (eol != NULL)
			*eol = '\n';
	}
	chomp(errbuf);
	fail(test, "no \"%s...%s\" in \"%s\"", want, msg, errbuf);
	return (0);
}

static int
expect_err(const char *test, const char *text, int line, const char *msg)
{
	return (expect_err_in(test, "bad.conf", text, "bad.conf", line, msg));
}

static int
count_lines(const char *s)
{
	int	 n = 0;

	for (; *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return (n);
}

static void
sa_str(const struct listener *l, char *buf, size_t len)
{
	char	 host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo((const struct sockaddr *)&l->ss, l->sslen, host,
	    sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		strlcpy(buf, "?", len);
	else {
		strlcpy(buf, host, len);
		strlcat(buf, " ", len);
		strlcat(buf, serv, len);
	}
}

static int
nlisteners(const struct pop3d_conf *conf)
{
	const struct listener	*l;
	int			 n = 0;

	TAILQ_FOREACH(l, &conf->listeners, entry)
		n++;
	return (n);
}

#define PKI	"pki mail cert \"/etc/ssl/mail.crt\"\n" \
		"pki mail key \"/etc/ssl/private/mail.key\"\n"

static void
test_all_statements(void)
{
	const char		*test = "all statements";
	struct pop3d_conf	*conf;
	struct listener		*l;
	struct pki		*pki;
	char			 a[128];

	conf = expect_ok(test,
	    "pki mail.example.com cert \"/etc/ssl/mail.crt\"\n"
	    "pki \"mail.example.com\" key \"/etc/ssl/private/mail.key\"\n"
	    "listen on 127.0.0.1 port 995 tls pki mail.example.com\n"
	    "auth passwd \"/etc/pop3d/users.test\"\n"
	    "maildrop maildir \"/var/vmail/%u/Maildir\"\n"
	    "user \"_pop3dtest\"\n"
	    "chroot \"/var/empty/pop3d\"\n"
	    "login-processes 3\n"
	    "timeout 15m\n"
	    "login-timeout 30s\n");
	if (conf == NULL)
		return;
	pki = TAILQ_FIRST(&conf->pkis);
	l = TAILQ_FIRST(&conf->listeners);
	if (pki == NULL || TAILQ_NEXT(pki, entry) != NULL)
		fail(test, "not one pki");
	else if (strcmp(pki->name, "mail.example.com") != 0 ||
	    strcmp(pki->cert_file, "/etc/ssl/mail.crt") != 0 ||
	    strcmp(pki->key_file, "/etc/ssl/private/mail.key") != 0 ||
	    pki->cert != NULL || pki->key != NULL)
		fail(test, "pki fields");
	else if (l == NULL || TAILQ_NEXT(l, entry) != NULL)
		fail(test, "not one listener");
	else if (sa_str(l, a, sizeof(a)), strcmp(a, "127.0.0.1 995") != 0)
		fail(test, "listener is %s", a);
	else if (l->ss.ss_family != AF_INET ||
	    l->sslen != sizeof(struct sockaddr_in) ||
	    l->flags != LISTEN_TLS || l->fd != -1 ||
	    strcmp(l->pki, "mail.example.com") != 0)
		fail(test, "listener fields");
	else if (conf->auth_type != AUTHDB_PASSWD ||
	    strcmp(conf->users_file, "/etc/pop3d/users.test") != 0)
		fail(test, "auth passwd");
	else if (conf->maildrop_type != MAILDROP_MAILDIR ||
	    strcmp(conf->maildrop, "/var/vmail/%u/Maildir") != 0)
		fail(test, "maildrop");
	else if (strcmp(conf->user, "_pop3dtest") != 0)
		fail(test, "user");
	else if (strcmp(conf->chroot, "/var/empty/pop3d") != 0)
		fail(test, "chroot");
	else if (conf->login_procs != 3)
		fail(test, "login-processes %d", conf->login_procs);
	else if (conf->timeout != 900)
		fail(test, "timeout %d", conf->timeout);
	else if (conf->login_timeout != 30)
		fail(test, "login-timeout %d", conf->login_timeout);
	else
		pass(test);
	free_config(conf);
}

static void
test_defaults(void)
{
	const char		*test = "defaults";
	struct pop3d_conf	*conf;
	long			 ncpu;

	conf = expect_ok(test,
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\n");
	if (conf == NULL)
		return;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	ncpu = ncpu < 1 ? 1 : ncpu > 8 ? 8 : ncpu;
	if (conf->auth_type != AUTHDB_PASSWD ||
	    strcmp(conf->users_file, "/etc/pop3d/users") != 0)
		fail(test, "users file %s", conf->users_file);
	else if (conf->maildrop_type != MAILDROP_MAILDIR ||
	    strcmp(conf->maildrop, POP3D_MAILDROP) != 0)
		fail(test, "maildrop %s", conf->maildrop);
	else if (strcmp(conf->user, POP3D_USER) != 0)
		fail(test, "user %s", conf->user);
	else if (strcmp(conf->chroot, POP3D_CHROOT) != 0)
		fail(test, "chroot %s", conf->chroot);
	else if (conf->login_procs != ncpu)
		fail(test, "login-processes %d", conf->login_procs);
	else if (conf->timeout != 600 || conf->login_timeout != 60)
		fail(test, "timeouts %d %d", conf->timeout,
		    conf->login_timeout);
	else
		pass(test);
	free_config(conf);
}

static void
test_durations(void)
{
	static const struct {
		const char	*text;
		int		 timeout, login_timeout;
	} cases[] = {
		{ "timeout 600\nlogin-timeout 5\n", 600, 5 },
		{ "timeout 700s\nlogin-timeout 5s\n", 700, 5 },
		{ "timeout 10m\nlogin-timeout 10m\n", 600, 600 },
		{ "timeout 1h\nlogin-timeout 1m\n", 3600, 60 },
		{ "timeout \"2h\"\nlogin-timeout \"45\"\n", 7200, 45 }
	};
	const char		*test = "durations";
	struct pop3d_conf	*conf;
	char			 text[512];
	size_t			 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text),
		    PKI "listen on 127.0.0.1 port 995 tls pki mail\n%s",
		    cases[i].text);
		if ((conf = expect_ok(test, text)) == NULL)
			return;
		if (conf->timeout != cases[i].timeout ||
		    conf->login_timeout != cases[i].login_timeout) {
			fail(test, "case %zu: %d %d", i, conf->timeout,
			    conf->login_timeout);
			free_config(conf);
			return;
		}
		free_config(conf);
	}
	pass(test);
}

static void
test_macros(void)
{
	const char		*test = "macros";
	struct pop3d_conf	*conf;
	struct listener		*l;
	char			 a[128];

	conf = expect_ok(test,
	    "ext = \"127.0.0.1\"\n"
	    "p = 1995\n"
	    "name=mail\n"
	    "t = \"20m\"\n"
	    "dir = \"/var/empty\"\n"
	    "pki $name cert /etc/ssl/c.pem\n"
	    "pki $name key \"/k\"\n"
	    "listen on $ext port $p tls pki $name\n"
	    "timeout $t\n"
	    "chroot $dir\n");
	if (conf == NULL)
		return;
	l = TAILQ_FIRST(&conf->listeners);
	if (l == NULL)
		fail(test, "no listener");
	else if (sa_str(l, a, sizeof(a)), strcmp(a, "127.0.0.1 1995") != 0)
		fail(test, "listener is %s", a);
	else if (strcmp(l->pki, "mail") != 0)
		fail(test, "pki %s", l->pki);
	else if (conf->timeout != 1200)
		fail(test, "timeout %d", conf->timeout);
	else if (strcmp(conf->chroot, "/var/empty") != 0)
		fail(test, "chroot %s", conf->chroot);
	else
		pass(test);
	free_config(conf);
}

static void
test_cmdline_macro(void)
{
	const char		*test = "-D macro";
	struct pop3d_conf	*conf;
	char			 a[128];
	char			 d1[] = "daddr=127.0.0.2";
	char			 d2[] = "dport=2995";
	char			 bad1[] = "noequals";
	char			 bad2[] = "bad-name=x";
	char			 bad3[] = "=x";
	char			 bad4[] = "nl=a\nb";

	if (cmdline_symset(bad1) != -1 || cmdline_symset(bad2) != -1 ||
	    cmdline_symset(bad3) != -1 || cmdline_symset(bad4) != -1) {
		fail(test, "bad -D accepted");
		return;
	}
	if (cmdline_symset(d1) == -1 || cmdline_symset(d2) == -1) {
		fail(test, "cmdline_symset failed");
		return;
	}
	/* -D wins over the file's assignment. */
	conf = expect_ok(test,
	    PKI
	    "daddr = \"127.0.0.3\"\n"
	    "listen on $daddr port $dport tls pki mail\n");
	if (conf == NULL)
		return;
	sa_str(TAILQ_FIRST(&conf->listeners), a, sizeof(a));
	if (strcmp(a, "127.0.0.2 2995") != 0)
		fail(test, "listener is %s", a);
	else
		pass(test);
	free_config(conf);
}

static void
test_include(void)
{
	const char		*test = "include";
	struct pop3d_conf	*conf;
	char			 text[1024];

	writefile("pki.conf", PKI, strlen(PKI));
	writefile("listen.conf",
	    "# nested\n"
	    "listen on 127.0.0.1 port 995 tls pki mail\n",
	    strlen("# nested\nlisten on 127.0.0.1 port 995 tls pki mail\n"));
	snprintf(text, sizeof(text),
	    "include \"%s\"\n"
	    "include \"%s\"\n"
	    "timeout 11m\n", path("pki.conf"), path("listen.conf"));
	if ((conf = expect_ok(test, text)) == NULL)
		return;
	if (nlisteners(conf) != 1 || TAILQ_FIRST(&conf->pkis) == NULL ||
	    conf->timeout != 660)
		fail(test, "wrong result");
	else
		pass(test);
	free_config(conf);

	/* An error in an included file names that file and its line. */
	writefile("inc.conf", "\n# two\nbogus statement\n",
	    strlen("\n# two\nbogus statement\n"));
	snprintf(text, sizeof(text),
	    PKI "include \"%s\"\n"
	    "listen on 127.0.0.1 port 995 tls pki mail\n"
	    "frob\n", path("inc.conf"));
	expect_err_in("include: error line in included file", "bad.conf",
	    text, "inc.conf", 3, "syntax error");
	/* ... and the line count of the including file goes on. */
	expect_err_in("include: error line after include", "bad.conf",
	    text, "bad.conf", 5, "syntax error");

	snprintf(text, sizeof(text), PKI "include \"%s\"\n",
	    path("nonexistent.conf"));
	expect_err("include: missing file", text, 3, "nonexistent.conf");

	snprintf(text, sizeof(text), PKI "include \"%s\"\n", tmpdir);
	expect_err("include: directory", text, 3, "not a regular file");
}

static void
test_include_loop(void)
{
	char	 text[1024], text2[1024];
	int	 i;

	snprintf(text, sizeof(text), PKI "include \"%s\"\n",
	    path("self.conf"));
	expect_err_in("include loop: itself", "self.conf", text,
	    "self.conf", 3, "include loop");

	snprintf(text, sizeof(text), "\ninclude \"%s\"\n", path("loopb.conf"));
	snprintf(text2, sizeof(text2), "include \"%s\"\n", path("loopa.conf"));
	writefile("loopb.conf", text2, strlen(text2));
	expect_err_in("include loop: a b a", "loopa.conf", text,
	    "loopb.conf", 1, "include loop");

	/* A chain deeper than the limit, without a loop. */
	for (i = 0; i < 40; i++) {
		snprintf(text, sizeof(text), "include \"%s/deep%d.conf\"\n",
		    tmpdir, i + 1);
		snprintf(text2, sizeof(text2), "deep%d.conf", i);
		writefile(text2, text, strlen(text));
	}
	writefile("deep40.conf", "\n", 1);
	if (parse_file("deep0.conf") != NULL)
		fail("include: too deep", "accepted");
	else if (strstr(errbuf, "nested too deep") == NULL) {
		chomp(errbuf);
		fail("include: too deep", "%s", errbuf);
	} else
		pass("include: too deep");
}

static void
test_localhost(void)
{
	const char		*test = "listen on localhost";
	struct pop3d_conf	*conf;
	struct listener		*l;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;

	conf = expect_ok(test,
	    PKI "listen on localhost port 995 tls pki mail\n");
	if (conf == NULL)
		return;
	if (nlisteners(conf) < 1) {
		fail(test, "no listener");
		free_config(conf);
		return;
	}
	TAILQ_FOREACH(l, &conf->listeners, entry) {
		if (l->ss.ss_family == AF_INET) {
			sin = (struct sockaddr_in *)&l->ss;
			if (ntohl(sin->sin_addr.s_addr) != INADDR_LOOPBACK ||
			    ntohs(sin->sin_port) != 995 ||
			    l->sslen != sizeof(*sin))
				break;
		} else if (l->ss.ss_family == AF_INET6) {
			sin6 = (struct sockaddr_in6 *)&l->ss;
			if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
			    ntohs(sin6->sin6_port) != 995 ||
			    l->sslen != sizeof(*sin6))
				break;
		} else
			break;
		if (l->fd != -1 || l->flags != LISTEN_TLS)
			break;
	}
	if (l != NULL)
		fail(test, "bad listener");
	else
		pass(test);
	free_config(conf);
}

static void
test_wildcard(void)
{
	const char		*test = "listen on *";
	struct pop3d_conf	*conf;
	struct listener		*l;
	char			 a[128], b[128];

	conf = expect_ok(test, PKI "listen on * port pop3s tls pki mail\n");
	if (conf == NULL)
		return;
	if (nlisteners(conf) != 2) {
		fail(test, "%d listeners", nlisteners(conf));
		free_config(conf);
		return;
	}
	l = TAILQ_FIRST(&conf->listeners);
	sa_str(l, a, sizeof(a));
	sa_str(TAILQ_NEXT(l, entry), b, sizeof(b));
	if (strcmp(a, "0.0.0.0 995") != 0 || strcmp(b, ":: 995") != 0)
		fail(test, "listeners %s, %s", a, b);
	else
		pass(test);
	free_config(conf);
}

static void
test_ports_and_addresses(void)
{
	const char		*test = "port by name, IPv6, quoted";
	struct pop3d_conf	*conf;
	struct listener		*l;
	char			 a[3][128];
	int			 i = 0;

	conf = expect_ok(test, PKI
	    "listen on 127.0.0.1 port pop3s tls pki mail\n"
	    "listen on ::1 port \"996\" tls pki \"mail\"\n"
	    "listen on \"127.0.0.1\" port 997 tls pki mail\n");
	if (conf == NULL)
		return;
	TAILQ_FOREACH(l, &conf->listeners, entry)
		if (i < 3)
			sa_str(l, a[i++], sizeof(a[0]));
	if (i != 3 || nlisteners(conf) != 3)
		fail(test, "%d listeners", nlisteners(conf));
	else if (strcmp(a[0], "127.0.0.1 995") != 0 ||
	    strcmp(a[1], "::1 996") != 0 || strcmp(a[2], "127.0.0.1 997") != 0)
		fail(test, "listeners %s, %s, %s", a[0], a[1], a[2]);
	else
		pass(test);
	free_config(conf);
}

static void
test_lexer(void)
{
	const char		*test = "comments, continuation, quoting";
	struct pop3d_conf	*conf;

	conf = expect_ok(test,
	    "# a comment\n"
	    "\n"
	    "   \t# indented comment\n"
	    "pki mail cert \"/etc/ssl/a \\\"quoted\\\" name.crt\" # trailing\n"
	    "pki mail key '/etc/ssl/private/mail.key'\n"
	    "listen on 127.0.0.1 \\\n"
	    "    port 995 \\\n"
	    "    tls pki mail\n"
	    "user \"long\\\n"
	    "name\"\n"
	    "login-processes 7");		/* no newline at the end */
	if (conf == NULL)
		return;
	if (strcmp(TAILQ_FIRST(&conf->pkis)->cert_file,
	    "/etc/ssl/a \"quoted\" name.crt") != 0)
		fail(test, "cert file \"%s\"",
		    TAILQ_FIRST(&conf->pkis)->cert_file);
	else if (strcmp(conf->user, "longname") != 0)
		fail(test, "user \"%s\"", conf->user);
	else if (conf->login_procs != 7)
		fail(test, "login-processes %d", conf->login_procs);
	else if (nlisteners(conf) != 1)
		fail(test, "listeners");
	else
		pass(test);
	free_config(conf);

	/* Lines after a continuation keep their numbers. */
	expect_err("line count after continuation",
	    PKI "listen on 127.0.0.1 \\\nport 995 \\\ntls pki mail\n"
	    "\nfrob\n", 7, "syntax error");
}

static void
test_bad(void)
{
	static const char nul[] = PKI "user \"x\"\0\nfoo\n";
	static const int errlines[] = { 1, 4, 6, 7 };
	char	 text[16384];
	char	 longname[300];

	expect_err("unknown keyword", PKI "frobnicate 3\n", 3,
	    "syntax error");
	expect_err("missing pki",
	    "listen on 127.0.0.1 port 995 tls pki nope\n", 1,
	    "no pki named nope");
	expect_err("pki without key",
	    "pki mail cert \"/c\"\n"
	    "listen on 127.0.0.1 port 995 tls pki mail\n", 1, "no key");
	expect_err("pki without cert",
	    "\npki mail key \"/k\"\n"
	    "listen on 127.0.0.1 port 995 tls pki mail\n", 2, "no cert");
	expect_err("pki cert twice", PKI "pki mail cert \"/c2\"\n", 3,
	    "cert given twice");
	expect_err("pki key twice", PKI "pki mail key \"/k2\"\n", 3,
	    "key given twice");
	expect_err("no listener", PKI, 0, "no \"listen on\"");
	expect_err("timeout too small",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\ntimeout 9m\n", 4,
	    "RFC 1939");
	expect_err("timeout 599",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\ntimeout 599\n", 4,
	    "too small");
	expect_err("timeout garbage",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\ntimeout 10x\n", 4,
	    "invalid duration");
	expect_err("timeout huge",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\n"
	    "timeout 99999999999h\n", 4, "duration");
	expect_err("timeout negative",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\ntimeout -700\n",
	    4, "out of range");
	expect_err("login-timeout too small",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\nlogin-timeout 4\n",
	    4, "login-timeout");
	expect_err("login-timeout too large",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\n"
	    "login-timeout 11m\n", 4, "login-timeout");
	expect_err("login-processes 0",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\n"
	    "login-processes 0\n", 4, "out of range");
	expect_err("login-processes 65",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\n"
	    "login-processes 65\n", 4, "out of range");
	expect_err("duplicate listener",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\n"
	    "listen on 127.0.0.1 port pop3s tls pki mail\n", 4,
	    "duplicate listener 127.0.0.1 port 995");
	expect_err("duplicate listener with *",
	    PKI "listen on :: port 995 tls pki mail\n"
	    "listen on * port 995 tls pki mail\n", 4,
	    "duplicate listener :: port 995");
	expect_err("unterminated string",
	    PKI "user \"_pop3d\n"
	    "listen on 127.0.0.1 port 995 tls pki mail\n", 3,
	    "unterminated quoted string");
	expect_err("unterminated string at EOF",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\nuser \"x", 4,
	    "unterminated quoted string");
	expect_err("undefined macro",
	    PKI "listen on $nope port 995 tls pki mail\n", 3,
	    "macro 'nope' not defined");
	expect_err("invalid macro name", PKI "a-b = \"x\"\n", 3,
	    "invalid macro name");
	expect_err("port 0",
	    PKI "listen on 127.0.0.1 port 0 tls pki mail\n", 3,
	    "out of range");
	expect_err("port 65536",
	    PKI "listen on 127.0.0.1 port 65536 tls pki mail\n", 3,
	    "out of range");
	expect_err("unknown service",
	    PKI "listen on 127.0.0.1 port nosuchservice tls pki mail\n", 3,
	    "unknown port");
	expect_err("bad address",
	    PKI "listen on 999.1.1.1.1 port 995 tls pki mail\n", 3,
	    "999.1.1.1.1");
	expect_err("relative chroot",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\nchroot \"var\"\n",
	    4, "absolute");
	expect_err("empty user",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\nuser \"\"\n",
	    4, "empty");
	memset(longname, 'u', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	snprintf(text, sizeof(text),
	    PKI "listen on 127.0.0.1 port 995 tls pki mail\nuser \"%s\"\n",
	    longname);
	expect_err("user too long", text, 4, "too long");
	snprintf(text, sizeof(text), "pki %s cert \"/c\"\n", longname);
	expect_err("pki name too long", text, 1, "too long");
	memset(text, 'a', 9000);
	memcpy(text, "user \"", 6);
	strlcpy(text + 9000, "\"\n", sizeof(text) - 9000);
	expect_err("token too long", text, 1, "string too long");
	expect_err("missing statement end",
	    PKI "listen on 127.0.0.1 port 995 tls pki mail user \"x\"\n",
	    3, "syntax error");
	expect_err("control char in string",
	    PKI "user \"a\001b\"\n", 3, "control character");
	expect_err("non-ASCII word", PKI "user \xc3\xa9t\xc3\xa9\n", 3,
	    "unexpected character");
	writefile("nul.conf", nul, sizeof(nul) - 1);
	expect_err_in("NUL byte", "nul.conf", NULL, "nul.conf", 3,
	    "unexpected character 0x00");

	/* Every error is reported, each with its own line. */
	snprintf(text, sizeof(text),
	    "frob\n"
	    PKI
	    "timeout 1\n"
	    "listen on 127.0.0.1 port 995 tls pki mail\n"
	    "user \"unterminated\n"
	    "login-processes 100\n");
	if (parse_text("multi.conf", text) != NULL)
		fail("every error reported", "accepted");
	else {
		char	 want[4][PATH_MAX + 16];
		int	 i, ok = 1;

		for (i = 0; i < 4; i++)
			snprintf(want[i], sizeof(want[i]), "%s:%d: ",
			    path("multi.conf"), errlines[i]);
		for (i = 0; i < 4; i++)
			if (strstr(errbuf, want[i]) == NULL)
				ok = 0;
		if (!ok || count_lines(errbuf) != 4) {
			chomp(errbuf);
			fail("every error reported", "got: %s", errbuf);
		} else
			pass("every error reported");
	}

	expect_err_in("missing config file", "does-not-exist.conf", NULL,
	    "does-not-exist.conf", 0, "No such file");
	if (mkdir(path("dir.conf"), 0700) == -1)
		fail("directory as config file", "mkdir: %s", strerror(errno));
	else
		expect_err_in("directory as config file", "dir.conf", NULL,
		    "dir.conf", 0, "not a regular file");
}

/* Overwrites errbuf as expect_err_in does, with a NULL text. */
static void
test_macro_oddities(void)
{
	struct pop3d_conf	*conf;

	/* A macro naming itself is not expanded again: no endless loop. */
	conf = parse_text("odd.conf", PKI "a = \"$a\"\nuser $a\n");
	free_config(conf);
	conf = parse_text("odd.conf", PKI "a = \"\"\nuser $a\n$\n$$\n");
	free_config(conf);
	conf = parse_text("odd.conf", PKI "a = \"x y z\"\nuser $a\n");
	free_config(conf);
	pass("macro oddities");
}

/* Random bytes and random statement salad must not crash the parser. */
static void
test_fuzz(void)
{
	static const char *words[] = {
		"pki", "cert", "key", "listen", "on", "port", "tls", "auth",
		"passwd", "maildrop", "maildir", "user", "chroot",
		"login-processes", "timeout", "login-timeout", "include",
		"\"", "'", "\\\n", "\\", "$", "$x", "x", "=", "\"/a\"", "#",
		"\n", "\n", "*", "127.0.0.1", "::1", "995", "-1", "10m",
		"99999999999999999999999", "\t", " ", "\0", "\001", "\377"
	};
	char	 buf[2048];
	size_t	 len, n;
	int	 i, j;

	srandom(1939);
	for (i = 0; i < 300; i++) {
		len = 0;
		if (i % 3 == 0) {
			n = random() % sizeof(buf);
			for (len = 0; len < n; len++)
				buf[len] = random() % 256;
		} else {
			for (j = random() % 200; j > 0; j--) {
				const char *w = words[random() %
				    (sizeof(words) / sizeof(words[0]))];
				n = *w == '\0' ? 1 : strlen(w);
				if (len + n + 1 >= sizeof(buf))
					break;
				memcpy(buf + len, w, n);
				len += n;
				if (random() % 2)
					buf[len++] = ' ';
			}
		}
		writefile("fuzz.conf", buf, len);
		free_config(parse_file("fuzz.conf"));
	}
	pass("fuzz: 300 random files, no crash");
}

static void
cleanup(void)
{
	char	 cmd[PATH_MAX + 16];

	/* Our own mkdtemp directory, nothing else. */
	if (strncmp(tmpdir, "/tmp/test_parse.", 16) == 0 &&
	    strchr(tmpdir, '\'') == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", tmpdir);
	}
}

int
main(void)
{
	log_init(1, LOG_DAEMON);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return (1);
	}

	test_all_statements();
	test_defaults();
	test_durations();
	test_macros();
	test_cmdline_macro();
	test_include();
	test_include_loop();
	test_localhost();
	test_wildcard();
	test_ports_and_addresses();
	test_lexer();
	test_bad();
	test_macro_oddities();
	test_fuzz();

	cleanup();
	return (failures ? 1 : 0);
}
