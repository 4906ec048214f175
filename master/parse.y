/*
 * The pop3d.conf parser, in the shape of OpenBSD's parse.y files: a
 * hand-written lexer with macros, include and line continuation in
 * front of a yacc grammar of one statement a line.
 *
 * Besides parse_config() and free_config() of pop3d.h, this file
 * exports, for -D on the command line ("name=value"; 0, or -1 if bad):
 *
 *	int	cmdline_symset(char *);
 */

%{
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pop3d.h"

#define MAXTOKEN		8192	/* longest word or string */
#define MAXINCLUDE		16	/* include nesting */
#define MACRO_NAMELEN		255	/* longest macro name */
#define MACRO_MAXLEN		4096	/* longest macro value */
#define MAX_DURATION		86400	/* a day, in seconds */

/* Out of the character range, so no file byte can forge them. */
#define START_EXPAND		0x100
#define DONE_EXPAND		0x101

struct file {
	TAILQ_ENTRY(file)	 entry;
	FILE			*stream;
	char			*name;
	dev_t			 dev;
	ino_t			 ino;
	int			*ungetbuf;
	size_t			 ungetpos;
	size_t			 ungetsize;
	int			 eof_reached;
	int			 lineno;
};
static TAILQ_HEAD(files, file)	 files = TAILQ_HEAD_INITIALIZER(files);
static struct file		*file, *topfile;

struct sym {
	TAILQ_ENTRY(sym)	 entry;
	int			 used;
	int			 persist;
	char			*nam;
	char			*val;
};
static TAILQ_HEAD(, sym)	 symhead = TAILQ_HEAD_INITIALIZER(symhead);

/*
 * Every string the lexer hands to the grammar lives here until the
 * statement it belongs to is done, so that neither an action's error
 * path nor yacc's error recovery can leak one.
 */
struct tokstr {
	SLIST_ENTRY(tokstr)	 entry;
	char			 str[];
};
static SLIST_HEAD(, tokstr)	 tokstrs = SLIST_HEAD_INITIALIZER(tokstrs);

/* Where a pki or a listen statement came from, for the final checks. */
struct origin {
	TAILQ_ENTRY(origin)	 entry;
	void			*obj;
	char			*file;
	int			 line;
};
TAILQ_HEAD(origins, origin);
static struct origins		 pki_origins =
				    TAILQ_HEAD_INITIALIZER(pki_origins);
static struct origins		 listen_origins =
				    TAILQ_HEAD_INITIALIZER(listen_origins);

static struct pop3d_conf	*newconf;
static int			 errors;
static int			 expanding;
static int			 last_was_nl;

typedef struct {
	union {
		int64_t		 number;
		char		*string;
	} v;
	int lineno;
} YYSTYPE;
#define YYSTYPE_IS_DECLARED	1
#define YY_NO_LEAKS		1	/* byacc: free the parser stack */

int		 yyparse(void);
int		 yylex(void);
int		 yyerror(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
int		 cmdline_symset(char *);

static int	 kw_cmp(const void *, const void *);
static int	 lookup(const char *);
static int	 igetc(void);
static int	 lgetc(int);
static void	 lungetc(int);
static int	 findeol(void);
static int	 allowed_in_string(int);
static struct file *pushfile(const char *, int);
static int	 popfile(void);
static void	 closefiles(void);
static char	*tokstr_new(const char *);
static void	 tokstr_clear(void);
static int	 symset(const char *, const char *, int);
static char	*symget(const char *);
static int	 valid_macro_name(const char *);
static void	 symclear(void);
static int	 origin_add(struct origins *, void *);
static void	 origin_clear(struct origins *);
static void	 conferr(const struct origin *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static int	 set_string(char *, size_t, const char *, const char *);
static int	 set_path(char *, size_t, const char *, const char *);
static struct pki *pki_find(const char *);
static struct pki *pki_get(const char *);
static int	 parse_duration(const char *, int64_t *);
static int	 parse_port(const char *, int64_t *);
static int	 sa_equal(const struct sockaddr *, const struct sockaddr *);
static int	 listener_add(struct sockaddr *, socklen_t, int,
		    const char *, struct listener **);
static int	 listen_on(const char *, int, int, const char *);
static void	 conf_defaults(struct pop3d_conf *);
static int	 check_config(const char *);
%}

%token	AUTH AUTHCACHE CA CERT CHROOT CIPHERS CLEARTEXTAUTH CLIENT CONTROL CURVES
%token	FAILUREDELAY MAXSESSIONS MAXSESSIONSPERIP SOCKET SYSTEM
%token	IMPLEMENTATION INCLUDE KEY LISTEN LOGINPROCS LOGINTIMEOUT
%token	MAILDIR MAILDROP MAXAUTHFAILURES MBOX NO ON PASSWD PKI PORT
%token	PROTOCOLS STARTTLS TIMEOUT TLS USER YES
%token	ERROR
%token	<v.string>	STRING
%token	<v.number>	NUMBER
%type	<v.string>	value
%type	<v.number>	port duration yesno

%%

grammar		: /* empty */
		| grammar '\n'
		| grammar include '\n'
		| grammar varset '\n'
		| grammar main '\n'
		| grammar error '\n'		{
			/* Report the errors of the next line too. */
			yyerrok;
			errors++;
		}
		;

include		: INCLUDE STRING		{
			struct file	*nfile;

			if ((nfile = pushfile($2, 1)) == NULL)
				YYERROR;
			file = nfile;
			/* The new file gives the newline ending this line. */
			lungetc('\n');
		}
		;

value		: STRING
		| NUMBER			{
			char	 buf[32];

			snprintf(buf, sizeof(buf), "%lld", (long long)$1);
			$$ = tokstr_new(buf);
		}
		;

varset		: STRING '=' value		{
			if (!valid_macro_name($1)) {
				yyerror("invalid macro name \"%s\"", $1);
				YYERROR;
			}
			if (strlen($3) > MACRO_MAXLEN) {
				yyerror("value of macro %s too long", $1);
				YYERROR;
			}
			if (symset($1, $3, 0) == -1) {
				yyerror("cannot store macro %s", $1);
				YYERROR;
			}
		}
		;

port		: NUMBER			{
			if ($1 < 1 || $1 > 65535) {
				yyerror("port %lld out of range 1..65535",
				    (long long)$1);
				YYERROR;
			}
			$$ = $1;
		}
		| STRING			{
			if (parse_port($1, &$$) == -1)
				YYERROR;
		}
		;

duration	: NUMBER			{
			if ($1 < 0 || $1 > MAX_DURATION) {
				yyerror("duration %lld out of range",
				    (long long)$1);
				YYERROR;
			}
			$$ = $1;
		}
		| STRING			{
			if (parse_duration($1, &$$) == -1)
				YYERROR;
		}
		;

yesno		: YES				{ $$ = 1; }
		| NO				{ $$ = 0; }
		;

main		: PKI STRING CERT STRING	{
			struct pki	*pki;

			if ((pki = pki_get($2)) == NULL)
				YYERROR;
			if (pki->cert_file != NULL) {
				yyerror("pki %s: cert given twice", $2);
				YYERROR;
			}
			if (*$4 == '\0') {
				yyerror("pki %s: empty cert file name", $2);
				YYERROR;
			}
			if ((pki->cert_file = strdup($4)) == NULL)
				fatal("%s", __func__);
		}
		| PKI STRING KEY STRING		{
			struct pki	*pki;

			if ((pki = pki_get($2)) == NULL)
				YYERROR;
			if (pki->key_file != NULL) {
				yyerror("pki %s: key given twice", $2);
				YYERROR;
			}
			if (*$4 == '\0') {
				yyerror("pki %s: empty key file name", $2);
				YYERROR;
			}
			if ((pki->key_file = strdup($4)) == NULL)
				fatal("%s", __func__);
		}
		| LISTEN ON STRING PORT port TLS PKI STRING {
			if (listen_on($3, $5, LISTEN_TLS, $8) == -1)
				YYERROR;
		}
		| LISTEN ON STRING PORT port STARTTLS PKI STRING {
			if (listen_on($3, $5, LISTEN_STARTTLS, $8) == -1)
				YYERROR;
		}
		| LISTEN ON STRING PORT port	{
			if (listen_on($3, $5, 0, "") == -1)
				YYERROR;
		}
		| CLEARTEXTAUTH yesno		{
			newconf->cleartext_auth = $2;
		}
		| IMPLEMENTATION yesno		{
			newconf->show_implementation = $2;
		}
		| FAILUREDELAY duration		{
			if ($2 > 60) {
				yyerror("failure-delay %llds out of range "
				    "0..60s", (long long)$2);
				YYERROR;
			}
			newconf->failure_delay = $2;
		}
		| MAXSESSIONS NUMBER		{
			if ($2 < 1 || $2 > 100000) {
				yyerror("max-sessions %lld out of range "
				    "1..100000", (long long)$2);
				YYERROR;
			}
			newconf->max_sessions = $2;
		}
		| MAXSESSIONSPERIP NUMBER	{
			if ($2 < 1 || $2 > 100000) {
				yyerror("max-sessions-per-ip %lld out of range "
				    "1..100000", (long long)$2);
				YYERROR;
			}
			newconf->max_sessions_per_ip = $2;
		}
		| MAXAUTHFAILURES NUMBER	{
			if ($2 < 1 || $2 > 100) {
				yyerror("max-auth-failures %lld out of range "
				    "1..100", (long long)$2);
				YYERROR;
			}
			newconf->max_auth_failures = $2;
		}
		| TLS PROTOCOLS STRING		{
			if (set_string(newconf->tls_protocols,
			    sizeof(newconf->tls_protocols), $3,
			    "tls protocols") == -1)
				YYERROR;
		}
		| TLS CIPHERS STRING		{
			if (set_string(newconf->tls_ciphers,
			    sizeof(newconf->tls_ciphers), $3,
			    "tls ciphers") == -1)
				YYERROR;
		}
		| TLS CURVES STRING		{
			if (set_string(newconf->tls_curves,
			    sizeof(newconf->tls_curves), $3,
			    "tls curves") == -1)
				YYERROR;
		}
		| TLS CLIENT CA STRING		{
			if (set_path(newconf->tls_client_ca,
			    sizeof(newconf->tls_client_ca), $4,
			    "tls client ca") == -1)
				YYERROR;
		}
		| AUTH PASSWD STRING		{
			if (set_string(newconf->users_file,
			    sizeof(newconf->users_file), $3,
			    "auth passwd") == -1)
				YYERROR;
			newconf->auth_type = AUTHDB_PASSWD;
		}
		| AUTHCACHE duration		{
			if ($2 > 3600) {
				yyerror("auth-cache %llds out of range "
				    "0..1h", (long long)$2);
				YYERROR;
			}
			newconf->auth_cache = $2;
		}
		| AUTH SYSTEM			{
			newconf->auth_type = AUTHDB_SYSTEM;
		}
		| CONTROL SOCKET STRING		{
			if (set_path(newconf->control_socket,
			    sizeof(newconf->control_socket), $3,
			    "control socket") == -1)
				YYERROR;
		}
		| MAILDROP MAILDIR STRING	{
			if (set_string(newconf->maildrop,
			    sizeof(newconf->maildrop), $3, "maildrop") == -1)
				YYERROR;
			newconf->maildrop_type = MAILDROP_MAILDIR;
		}
		| MAILDROP MBOX STRING		{
			if (set_string(newconf->maildrop,
			    sizeof(newconf->maildrop), $3, "maildrop") == -1)
				YYERROR;
			newconf->maildrop_type = MAILDROP_MBOX;
		}
		| USER STRING			{
			if (set_string(newconf->user, sizeof(newconf->user), $2,
			    "user") == -1)
				YYERROR;
		}
		| CHROOT STRING			{
			if (set_path(newconf->chroot,
			    sizeof(newconf->chroot), $2, "chroot") == -1)
				YYERROR;
		}
		| LOGINPROCS NUMBER		{
			if ($2 < 1 || $2 > 64) {
				yyerror("login-processes %lld out of range "
				    "1..64", (long long)$2);
				YYERROR;
			}
			newconf->login_procs = $2;
		}
		| TIMEOUT duration		{
			/* RFC 1939 section 3: at least 10 minutes. */
			if ($2 < 600) {
				yyerror("timeout %llds too small, RFC 1939 "
				    "requires at least 600s (10m)",
				    (long long)$2);
				YYERROR;
			}
			newconf->timeout = $2;
		}
		| LOGINTIMEOUT duration		{
			if ($2 < 5 || $2 > 600) {
				yyerror("login-timeout %llds out of range "
				    "5s..10m", (long long)$2);
				YYERROR;
			}
			newconf->login_timeout = $2;
		}
		;

%%

struct keywords {
	const char	*k_name;
	int		 k_val;
};

int
yyerror(const char *fmt, ...)
{
	va_list		 ap;
	char		*msg;

	/* The lexer has said what is wrong with the token it returned. */
	if (yychar == ERROR && strcmp(fmt, "syntax error") == 0)
		return (0);

	errors++;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatalx("yyerror vasprintf");
	va_end(ap);
	log_warnx("%s:%d: %s", file->name, yylval.lineno, msg);
	free(msg);
	return (0);
}

static int
kw_cmp(const void *k, const void *e)
{
	return (strcmp(k, ((const struct keywords *)e)->k_name));
}

static int
lookup(const char *s)
{
	/* Sorted, for bsearch. */
	static const struct keywords keywords[] = {
		{ "auth",		AUTH },
		{ "auth-cache",		AUTHCACHE },
		{ "ca",			CA },
		{ "cert",		CERT },
		{ "chroot",		CHROOT },
		{ "ciphers",		CIPHERS },
		{ "cleartext-auth",	CLEARTEXTAUTH },
		{ "client",		CLIENT },
		{ "control",		CONTROL },
		{ "curves",		CURVES },
		{ "failure-delay",	FAILUREDELAY },
		{ "implementation",	IMPLEMENTATION },
		{ "include",		INCLUDE },
		{ "key",		KEY },
		{ "listen",		LISTEN },
		{ "login-processes",	LOGINPROCS },
		{ "login-timeout",	LOGINTIMEOUT },
		{ "maildir",		MAILDIR },
		{ "maildrop",		MAILDROP },
		{ "max-auth-failures",	MAXAUTHFAILURES },
		{ "max-sessions",	MAXSESSIONS },
		{ "max-sessions-per-ip", MAXSESSIONSPERIP },
		{ "mbox",		MBOX },
		{ "no",			NO },
		{ "on",			ON },
		{ "passwd",		PASSWD },
		{ "pki",		PKI },
		{ "port",		PORT },
		{ "protocols",		PROTOCOLS },
		{ "socket",		SOCKET },
		{ "starttls",		STARTTLS },
		{ "system",		SYSTEM },
		{ "timeout",		TIMEOUT },
		{ "tls",		TLS },
		{ "user",		USER },
		{ "yes",		YES }
	};
	const struct keywords	*p;

	p = bsearch(s, keywords, sizeof(keywords) / sizeof(keywords[0]),
	    sizeof(keywords[0]), kw_cmp);
	return (p != NULL ? p->k_val : STRING);
}

/* The next character of the current file, pushed back ones first. */
static int
igetc(void)
{
	int	 c;

	for (;;) {
		if (file->ungetpos > 0)
			c = file->ungetbuf[--file->ungetpos];
		else
			c = getc(file->stream);

		if (c == START_EXPAND)
			expanding = 1;
		else if (c == DONE_EXPAND)
			expanding = 0;
		else
			return (c);
	}
}

/*
 * Like igetc, but outside quotes a backslash-newline joins two lines,
 * and the end of a file gives one newline (so a last line without one
 * still ends) before the lexer moves back to the including file.
 */
static int
lgetc(int quotec)
{
	int	 c, next;

	if (quotec)
		return (igetc());

	for (;;) {
		c = igetc();
		if (c == '\\') {
			next = igetc();
			if (next == '\n') {
				file->lineno++;
				continue;
			}
			lungetc(next);
			return (c);
		}
		if (c != EOF)
			return (c);
		if (!file->eof_reached) {
			file->eof_reached = 1;
			return ('\n');
		}
		if (file == topfile || popfile() == EOF)
			return (EOF);
	}
}

static void
lungetc(int c)
{
	int	*p;

	if (c == EOF)
		return;
	if (file->ungetpos >= file->ungetsize) {
		p = reallocarray(file->ungetbuf, file->ungetsize * 2,
		    sizeof(*p));
		if (p == NULL)
			fatal("%s", __func__);
		file->ungetbuf = p;
		file->ungetsize *= 2;
	}
	file->ungetbuf[file->ungetpos++] = c;
}

/* Skip the rest of a bad line, but leave its newline for the grammar. */
static int
findeol(void)
{
	int	 c;

	for (;;) {
		c = lgetc(0);
		if (c == '\n') {
			lungetc(c);
			break;
		}
		if (c == EOF)
			break;
	}
	return (ERROR);
}

/*
 * What a word outside quotes is made of.  Unlike OpenBSD's, '/' is in,
 * for paths without quotes and macros holding paths.
 */
static int
allowed_in_string(int c)
{
	if (c < 0 || c > UCHAR_MAX)
		return (0);
	if (isalnum(c))
		return (1);
	return (ispunct(c) && strchr("(){}<>!=#,\"'\\", c) == NULL);
}

int
yylex(void)
{
	char		 buf[MAXTOKEN];
	const char	*errstr;
	char		*p, *val;
	size_t		 i;
	int		 quotec, next, c, token;

	/* The grammar has taken the last newline: its line is done. */
	if (last_was_nl) {
		tokstr_clear();
		last_was_nl = 0;
	}

top:
	p = buf;
	while ((c = lgetc(0)) == ' ' || c == '\t')
		;	/* nothing */

	yylval.lineno = file->lineno;
	if (c == '#')
		while ((c = lgetc(0)) != '\n' && c != EOF)
			;	/* nothing */
	if (c == '$' && !expanding) {
		for (;;) {
			c = lgetc(0);
			if (c == EOF || !(isalnum(c) || c == '_'))
				break;
			if (p - buf >= MACRO_NAMELEN) {
				yyerror("macro name too long");
				return (findeol());
			}
			*p++ = c;
		}
		lungetc(c);
		*p = '\0';
		if (p == buf) {
			yyerror("macro name expected after '$'");
			return (findeol());
		}
		if ((val = symget(buf)) == NULL) {
			yyerror("macro '%s' not defined", buf);
			return (findeol());
		}
		lungetc(DONE_EXPAND);
		for (i = strlen(val); i > 0; i--)
			lungetc((unsigned char)val[i - 1]);
		lungetc(START_EXPAND);
		goto top;
	}

	switch (c) {
	case '\'':
	case '"':
		quotec = c;
		for (;;) {
			c = lgetc(quotec);
			if (c == EOF || c == '\n') {
				yyerror("unterminated quoted string");
				lungetc(c);
				return (ERROR);
			}
			if (c == '\\') {
				next = lgetc(quotec);
				if (next == '\n') {
					file->lineno++;
					continue;
				}
				if (next == quotec || next == '\\')
					c = next;
				else
					lungetc(next);
			} else if (c == quotec)
				break;
			if (iscntrl(c) && c != '\t') {
				yyerror("control character in quoted string");
				return (findeol());
			}
			if ((size_t)(p - buf) >= sizeof(buf) - 1) {
				yyerror("string too long");
				return (findeol());
			}
			*p++ = c;
		}
		*p = '\0';
		yylval.v.string = tokstr_new(buf);
		return (STRING);
	}

	if (c == '-' || isdigit(c)) {
		do {
			if ((size_t)(p - buf) >= sizeof(buf) - 1) {
				yyerror("string too long");
				return (findeol());
			}
			*p++ = c;
		} while ((c = lgetc(0)) != EOF && isdigit(c));
		lungetc(c);
		*p = '\0';
		if (!allowed_in_string(c) && !(p == buf + 1 && *buf == '-')) {
			yylval.v.number = strtonum(buf, LLONG_MIN, LLONG_MAX,
			    &errstr);
			if (errstr != NULL) {
				yyerror("\"%s\" invalid number: %s", buf,
				    errstr);
				return (findeol());
			}
			return (NUMBER);
		}
		/* Not a number after all: read it again as a word. */
		while (p > buf + 1)
			lungetc((unsigned char)*--p);
		c = (unsigned char)*--p;
	}

	if (allowed_in_string(c)) {
		do {
			if ((size_t)(p - buf) >= sizeof(buf) - 1) {
				yyerror("string too long");
				return (findeol());
			}
			*p++ = c;
		} while ((c = lgetc(0)) != EOF && allowed_in_string(c));
		lungetc(c);
		*p = '\0';
		if ((token = lookup(buf)) == STRING)
			yylval.v.string = tokstr_new(buf);
		return (token);
	}

	switch (c) {
	case '\n':
		yylval.lineno = file->lineno;
		file->lineno++;
		last_was_nl = 1;
		return (c);
	case '=':
		return (c);
	case EOF:
		return (0);
	}

	if (isprint(c))
		yyerror("unexpected character '%c'", c);
	else
		yyerror("unexpected character 0x%02x", c);
	return (findeol());
}

/*
 * Open name as a regular file.  An include (nested set) names a file
 * that no file on the stack may be, which stops include loops.
 */
static struct file *
pushfile(const char *name, int nested)
{
	struct stat	 st;
	struct file	*nfile, *f;
	int		 fd, depth = 0;

	TAILQ_FOREACH(f, &files, entry)
		depth++;
	if (depth >= MAXINCLUDE) {
		yyerror("include %s: nested too deep", name);
		return (NULL);
	}

	/* O_NONBLOCK: a FIFO must not hang the parser at open. */
	if ((fd = open(name, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		if (nested)
			yyerror("include %s: %s", name, strerror(errno));
		else
			log_warn("%s", name);
		return (NULL);
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		if (nested)
			yyerror("include %s: not a regular file", name);
		else
			log_warnx("%s: not a regular file", name);
		close(fd);
		return (NULL);
	}
	TAILQ_FOREACH(f, &files, entry) {
		if (f->dev == st.st_dev && f->ino == st.st_ino) {
			yyerror("include %s: include loop", name);
			close(fd);
			return (NULL);
		}
	}

	if ((nfile = calloc(1, sizeof(*nfile))) == NULL ||
	    (nfile->name = strdup(name)) == NULL ||
	    (nfile->stream = fdopen(fd, "r")) == NULL) {
		log_warn("%s", __func__);
		if (nfile != NULL)
			free(nfile->name);
		free(nfile);
		close(fd);
		return (NULL);
	}
	nfile->ungetsize = 16;
	if ((nfile->ungetbuf = calloc(nfile->ungetsize,
	    sizeof(*nfile->ungetbuf))) == NULL) {
		log_warn("%s", __func__);
		fclose(nfile->stream);
		free(nfile->name);
		free(nfile);
		return (NULL);
	}
	nfile->dev = st.st_dev;
	nfile->ino = st.st_ino;
	/* An included file starts with the newline of its include line. */
	nfile->lineno = nested ? 0 : 1;
	TAILQ_INSERT_TAIL(&files, nfile, entry);
	return (nfile);
}

static int
popfile(void)
{
	struct file	*prev;

	prev = TAILQ_PREV(file, files, entry);
	TAILQ_REMOVE(&files, file, entry);
	fclose(file->stream);
	free(file->name);
	free(file->ungetbuf);
	free(file);
	file = prev;
	return (file != NULL ? 0 : EOF);
}

static void
closefiles(void)
{
	while ((file = TAILQ_LAST(&files, files)) != NULL)
		popfile();
	topfile = NULL;
}

static char *
tokstr_new(const char *s)
{
	struct tokstr	*t;
	size_t		 len;

	len = strlen(s) + 1;
	if ((t = malloc(sizeof(*t) + len)) == NULL)
		fatal("%s", __func__);
	memcpy(t->str, s, len);
	SLIST_INSERT_HEAD(&tokstrs, t, entry);
	return (t->str);
}

static void
tokstr_clear(void)
{
	struct tokstr	*t;

	while ((t = SLIST_FIRST(&tokstrs)) != NULL) {
		SLIST_REMOVE_HEAD(&tokstrs, entry);
		free(t);
	}
}

/* A -D macro (persist) wins over an assignment in the file. */
static int
symset(const char *nam, const char *val, int persist)
{
	struct sym	*sym;
	char		*nval;

	TAILQ_FOREACH(sym, &symhead, entry) {
		if (strcmp(nam, sym->nam) == 0)
			break;
	}
	if (sym != NULL) {
		if (sym->persist && !persist)
			return (0);
		if ((nval = strdup(val)) == NULL)
			return (-1);
		free(sym->val);
		sym->val = nval;
		sym->used = 0;
		sym->persist = persist;
		return (0);
	}
	if ((sym = calloc(1, sizeof(*sym))) == NULL)
		return (-1);
	if ((sym->nam = strdup(nam)) == NULL ||
	    (sym->val = strdup(val)) == NULL) {
		free(sym->nam);
		free(sym);
		return (-1);
	}
	sym->persist = persist;
	TAILQ_INSERT_TAIL(&symhead, sym, entry);
	return (0);
}

static char *
symget(const char *nam)
{
	struct sym	*sym;

	TAILQ_FOREACH(sym, &symhead, entry) {
		if (strcmp(nam, sym->nam) == 0) {
			sym->used = 1;
			return (sym->val);
		}
	}
	return (NULL);
}

/* Only names that "$name" can spell. */
static int
valid_macro_name(const char *s)
{
	if (*s == '\0' || strlen(s) > MACRO_NAMELEN)
		return (0);
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return (0);
	return (1);
}

int
cmdline_symset(char *s)
{
	char		*val, *nam;
	size_t		 len;
	const char	*p;
	int		 ret;

	if ((val = strchr(s, '=')) == NULL)
		return (-1);
	len = val - s;
	val++;
	if (strlen(val) > MACRO_MAXLEN)
		return (-1);
	/* A control character would confuse the lexer's line count. */
	for (p = val; *p != '\0'; p++)
		if (iscntrl((unsigned char)*p) && *p != '\t')
			return (-1);
	if ((nam = strndup(s, len)) == NULL)
		return (-1);
	if (!valid_macro_name(nam)) {
		free(nam);
		return (-1);
	}
	ret = symset(nam, val, 1);
	free(nam);
	return (ret);
}

/* Forget the macros of the file; those of -D stay for a reload. */
static void
symclear(void)
{
	struct sym	*sym, *next;

	TAILQ_FOREACH_SAFE(sym, &symhead, entry, next) {
		if (!sym->used)
			log_debug("warning: macro '%s' not used", sym->nam);
		if (sym->persist) {
			sym->used = 0;
			continue;
		}
		TAILQ_REMOVE(&symhead, sym, entry);
		free(sym->nam);
		free(sym->val);
		free(sym);
	}
}

static int
origin_add(struct origins *head, void *obj)
{
	struct origin	*o;

	if ((o = calloc(1, sizeof(*o))) == NULL ||
	    (o->file = strdup(file->name)) == NULL) {
		free(o);
		yyerror("out of memory");
		return (-1);
	}
	o->obj = obj;
	o->line = yylval.lineno;
	TAILQ_INSERT_TAIL(head, o, entry);
	return (0);
}

static void
origin_clear(struct origins *head)
{
	struct origin	*o;

	while ((o = TAILQ_FIRST(head)) != NULL) {
		TAILQ_REMOVE(head, o, entry);
		free(o->file);
		free(o);
	}
}

static void
conferr(const struct origin *o, const char *fmt, ...)
{
	va_list		 ap;
	char		*msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatalx("conferr vasprintf");
	va_end(ap);
	log_warnx("%s:%d: %s", o->file, o->line, msg);
	free(msg);
}

static int
set_string(char *dst, size_t dstsz, const char *s, const char *what)
{
	if (*s == '\0') {
		yyerror("%s: empty string", what);
		return (-1);
	}
	if (strlen(s) >= dstsz) {
		yyerror("%s: string too long (max %zu)", what, dstsz - 1);
		return (-1);
	}
	strlcpy(dst, s, dstsz);
	return (0);
}

static int
set_path(char *dst, size_t dstsz, const char *s, const char *what)
{
	if (*s != '/') {
		yyerror("%s: \"%s\" is not an absolute path", what, s);
		return (-1);
	}
	return (set_string(dst, dstsz, s, what));
}

static struct pki *
pki_find(const char *name)
{
	struct pki	*pki;

	TAILQ_FOREACH(pki, &newconf->pkis, entry)
		if (strcmp(pki->name, name) == 0)
			return (pki);
	return (NULL);
}

/* The pki of that name, new if need be. */
static struct pki *
pki_get(const char *name)
{
	struct pki	*pki;

	if (*name == '\0') {
		yyerror("empty pki name");
		return (NULL);
	}
	if (strlen(name) >= sizeof(pki->name)) {
		yyerror("pki name too long (max %zu)", sizeof(pki->name) - 1);
		return (NULL);
	}
	if ((pki = pki_find(name)) != NULL)
		return (pki);
	if ((pki = calloc(1, sizeof(*pki))) == NULL) {
		yyerror("out of memory");
		return (NULL);
	}
	strlcpy(pki->name, name, sizeof(pki->name));
	if (origin_add(&pki_origins, pki) == -1) {
		free(pki);
		return (NULL);
	}
	TAILQ_INSERT_TAIL(&newconf->pkis, pki, entry);
	return (pki);
}

/* A number of seconds, or of minutes or hours with an m or h after it. */
static int
parse_duration(const char *s, int64_t *secs)
{
	char		 num[16];
	const char	*errstr;
	size_t		 len;
	long long	 mult = 1, n;

	len = strlen(s);
	if (len == 0 || len >= sizeof(num))
		goto bad;
	switch (s[len - 1]) {
	case 's':
		len--;
		break;
	case 'm':
		mult = 60;
		len--;
		break;
	case 'h':
		mult = 3600;
		len--;
		break;
	}
	if (len == 0 || strspn(s, "0123456789") != len)
		goto bad;
	memcpy(num, s, len);
	num[len] = '\0';
	n = strtonum(num, 0, MAX_DURATION / mult, &errstr);
	if (errstr != NULL) {
		yyerror("duration \"%s\" %s (max %ds)", s, errstr,
		    MAX_DURATION);
		return (-1);
	}
	*secs = n * mult;
	return (0);
 bad:
	yyerror("invalid duration \"%s\": a number with an optional "
	    "s, m or h", s);
	return (-1);
}

static int
parse_port(const char *s, int64_t *port)
{
	struct servent	*se;
	const char	*errstr;

	if (*s != '\0' && strspn(s, "0123456789") == strlen(s)) {
		*port = strtonum(s, 1, 65535, &errstr);
		if (errstr != NULL) {
			yyerror("port %s %s", s, errstr);
			return (-1);
		}
		return (0);
	}
	if ((se = getservbyname(s, "tcp")) == NULL) {
		yyerror("unknown port %s", s);
		return (-1);
	}
	*port = ntohs(se->s_port);
	if (*port < 1 || *port > 65535) {
		yyerror("port %s out of range", s);
		return (-1);
	}
	return (0);
}

/* Same address family, address and port (and IPv6 scope). */
static int
sa_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	const struct sockaddr_in	*a4, *b4;
	const struct sockaddr_in6	*a6, *b6;

	if (a->sa_family != b->sa_family)
		return (0);
	switch (a->sa_family) {
	case AF_INET:
		a4 = (const struct sockaddr_in *)a;
		b4 = (const struct sockaddr_in *)b;
		return (a4->sin_port == b4->sin_port &&
		    a4->sin_addr.s_addr == b4->sin_addr.s_addr);
	case AF_INET6:
		a6 = (const struct sockaddr_in6 *)a;
		b6 = (const struct sockaddr_in6 *)b;
		return (a6->sin6_port == b6->sin6_port &&
		    a6->sin6_scope_id == b6->sin6_scope_id &&
		    memcmp(&a6->sin6_addr, &b6->sin6_addr,
		    sizeof(a6->sin6_addr)) == 0);
	}
	return (0);
}

/*
 * One listener for sa; *first is the first this statement added.  A
 * repeat of an address of the same statement (a host name can resolve
 * to one address twice) is dropped; a repeat of an earlier statement's
 * is an error.
 */
static int
listener_add(struct sockaddr *sa, socklen_t salen, int flags,
    const char *pki, struct listener **first)
{
	struct listener	*l;
	char		 host[NI_MAXHOST];
	int		 ours = 0;

	TAILQ_FOREACH(l, &newconf->listeners, entry) {
		if (l == *first)
			ours = 1;
		if (!sa_equal((struct sockaddr *)&l->ss, sa))
			continue;
		if (ours)
			return (0);
		if (getnameinfo(sa, salen, host, sizeof(host), NULL, 0,
		    NI_NUMERICHOST) != 0)
			strlcpy(host, "?", sizeof(host));
		yyerror("duplicate listener %s port %d", host,
		    ntohs(sa->sa_family == AF_INET ?
		    ((struct sockaddr_in *)sa)->sin_port :
		    ((struct sockaddr_in6 *)sa)->sin6_port));
		return (-1);
	}

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		yyerror("out of memory");
		return (-1);
	}
	memcpy(&l->ss, sa, salen);
	l->sslen = salen;
	l->flags = flags;
	strlcpy(l->pki, pki, sizeof(l->pki));
	l->fd = -1;
	TAILQ_INSERT_TAIL(&newconf->listeners, l, entry);
	if (*first == NULL)
		*first = l;
	return (1);
}

/* "listen on": one listener per address of host, "*" for all. */
static int
listen_on(const char *host, int port, int flags, const char *pki)
{
	struct addrinfo		 hints, *res, *ai;
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	struct listener		*first = NULL;
	int			 error, n, ret = 0;

	if ((flags & (LISTEN_TLS | LISTEN_STARTTLS)) && *pki == '\0') {
		yyerror("empty pki name");
		return (-1);
	}
	if (strlen(pki) >= POP3D_NAMELEN) {
		yyerror("pki name too long (max %d)", POP3D_NAMELEN - 1);
		return (-1);
	}
	if (*host == '\0') {
		yyerror("empty listen address");
		return (-1);
	}

	if (strcmp(host, "*") == 0) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_ANY);
		sin.sin_port = htons(port);
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_addr = in6addr_any;
		sin6.sin6_port = htons(port);
		if (listener_add((struct sockaddr *)&sin, sizeof(sin),
		    flags, pki, &first) == -1 ||
		    listener_add((struct sockaddr *)&sin6, sizeof(sin6),
		    flags, pki, &first) == -1)
			return (-1);
		return (origin_add(&listen_origins, first));
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = AI_PASSIVE;
	if ((error = getaddrinfo(host, NULL, &hints, &res)) != 0) {
		yyerror("listen on %s: %s", host, gai_strerror(error));
		return (-1);
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET &&
		    ai->ai_addrlen == sizeof(sin)) {
			memcpy(&sin, ai->ai_addr, sizeof(sin));
			sin.sin_port = htons(port);
			n = listener_add((struct sockaddr *)&sin, sizeof(sin),
			    flags, pki, &first);
		} else if (ai->ai_family == AF_INET6 &&
		    ai->ai_addrlen == sizeof(sin6)) {
			memcpy(&sin6, ai->ai_addr, sizeof(sin6));
			sin6.sin6_port = htons(port);
			n = listener_add((struct sockaddr *)&sin6,
			    sizeof(sin6), flags, pki, &first);
		} else
			continue;
		if (n == -1) {
			ret = -1;
			break;
		}
	}
	freeaddrinfo(res);
	if (ret == -1)
		return (-1);
	if (first == NULL) {
		yyerror("listen on %s: no IPv4 or IPv6 address", host);
		return (-1);
	}
	return (origin_add(&listen_origins, first));
}

static void
conf_defaults(struct pop3d_conf *c)
{
	long	 ncpu;

	TAILQ_INIT(&c->pkis);
	TAILQ_INIT(&c->listeners);
	c->auth_type = AUTHDB_PASSWD;
	strlcpy(c->users_file, "/etc/pop3d/users", sizeof(c->users_file));
	c->maildrop_type = MAILDROP_MAILDIR;
	strlcpy(c->maildrop, POP3D_MAILDROP, sizeof(c->maildrop));
	strlcpy(c->user, POP3D_USER, sizeof(c->user));
	strlcpy(c->chroot, POP3D_CHROOT, sizeof(c->chroot));
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	if (ncpu > 8)
		ncpu = 8;
	c->login_procs = ncpu;
	c->timeout = 600;
	c->login_timeout = 60;
	c->cleartext_auth = 0;
	c->show_implementation = 1;
	c->max_auth_failures = 3;
	c->failure_delay = 1;
	c->auth_cache = 300;
	c->max_sessions = 1000;
	c->max_sessions_per_ip = 20;
	strlcpy(c->control_socket, POP3D_SOCKET, sizeof(c->control_socket));
	strlcpy(c->tls_protocols, "secure", sizeof(c->tls_protocols));
	strlcpy(c->tls_ciphers, "secure", sizeof(c->tls_ciphers));
	strlcpy(c->tls_curves, "default", sizeof(c->tls_curves));
}

/* What only the whole file can tell; the number of errors. */
static int
check_config(const char *filename)
{
	struct origin	*o;
	struct pki	*pki;
	struct listener	*l;
	int		 nerr = 0;

	TAILQ_FOREACH(o, &pki_origins, entry) {
		pki = o->obj;
		if (pki->cert_file == NULL) {
			conferr(o, "pki %s: no cert", pki->name);
			nerr++;
		}
		if (pki->key_file == NULL) {
			conferr(o, "pki %s: no key", pki->name);
			nerr++;
		}
	}
	TAILQ_FOREACH(o, &listen_origins, entry) {
		l = o->obj;
		if (l->pki[0] != '\0' && pki_find(l->pki) == NULL) {
			conferr(o, "listen: no pki named %s", l->pki);
			nerr++;
		}
	}
	if (TAILQ_EMPTY(&newconf->listeners)) {
		log_warnx("%s: no \"listen on\" statement", filename);
		nerr++;
	}
	return (nerr);
}

struct pop3d_conf *
parse_config(const char *filename)
{
	struct pop3d_conf	*c;

	if ((newconf = calloc(1, sizeof(*newconf))) == NULL) {
		log_warn("%s", __func__);
		return (NULL);
	}
	conf_defaults(newconf);
	errors = 0;
	expanding = 0;
	last_was_nl = 0;

	if ((file = pushfile(filename, 0)) == NULL) {
		free_config(newconf);
		newconf = NULL;
		symclear();
		return (NULL);
	}
	topfile = file;

	if (yyparse() != 0 && errors == 0)
		errors++;
	tokstr_clear();
	closefiles();

	/* Partial statements would only make more, misleading, errors. */
	if (errors == 0)
		errors = check_config(filename);

	origin_clear(&pki_origins);
	origin_clear(&listen_origins);
	symclear();

	c = newconf;
	newconf = NULL;
	if (errors) {
		free_config(c);
		return (NULL);
	}
	return (c);
}

void
free_config(struct pop3d_conf *c)
{
	struct pki	*pki;
	struct listener	*l;

	if (c == NULL)
		return;
	while ((pki = TAILQ_FIRST(&c->pkis)) != NULL) {
		TAILQ_REMOVE(&c->pkis, pki, entry);
		free(pki->cert_file);
		free(pki->key_file);
		free(pki->cert);
		if (pki->key != NULL) {
			explicit_bzero(pki->key, pki->keylen);
			free(pki->key);
		}
		free(pki);
	}
	while ((l = TAILQ_FIRST(&c->listeners)) != NULL) {
		TAILQ_REMOVE(&c->listeners, l, entry);
		free(l);
	}
	free(c);
}
