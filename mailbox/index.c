/*
 * The SQLite message index, /pop3d.index in the Maildir root.  It keeps
 * each message's size, unique-id and place in the message order, so a
 * session opens only the files it has never seen.  Maildir files never
 * change after delivery; only their names after the ':' do, so a message
 * is known by its base name.
 */

#include <sys/types.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "mailbox.h"

#define INDEX_PATH	"/pop3d.index"
#define INDEX_VERSION	1
#define INDEX_BUSYMS	5000
#define UIDL_MAX	70		/* RFC 1939 */
#define UIDL_TRIES	100

/* What a failed step calls for. */
enum {
	IDX_OK,
	IDX_FAIL,		/* give up: the session fails, try later */
	IDX_REBUILD		/* damaged or foreign: remove and start over */
};

struct row {
	int64_t		 id;
	char		*base;
	char		*uidl;
	uint64_t	 size;
};

static sqlite3		*db;
static sqlite3_stmt	*st_select, *st_insert, *st_delete;

static const char *const index_files[] = {
	INDEX_PATH, INDEX_PATH "-wal", INDEX_PATH "-shm",
	INDEX_PATH "-journal"
};

static int	 index_status(int);
static int	 index_exec(const char *);
static int	 index_prepare(const char *, sqlite3_stmt **);
static int	 index_open(void);
static int	 index_unlink(void);
static int	 index_rows(struct row **, size_t *);
static void	 index_freerows(struct row *, size_t);
static int	 index_insert(struct msg *);
static int	 index_sync(struct session *);
static void	 index_compact(struct session *);
static int	 uidl_valid(const char *);
static void	 uidl_derive(const char *, int, char *, size_t);
static int	 cmp_base(const void *, const void *);
static int	 cmp_rowbase(const void *, const void *);
static int	 cmp_name(const void *, const void *);
static int	 cmp_id(const void *, const void *);

static int
index_status(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return (IDX_REBUILD);
	default:
		return (IDX_FAIL);
	}
}

static int
index_exec(const char *sql)
{
	int	 rc;

	if ((rc = sqlite3_exec(db, sql, NULL, NULL, NULL)) != SQLITE_OK) {
		log_warnx("index: %s: %s", sql, sqlite3_errmsg(db));
		return (index_status(rc));
	}
	return (IDX_OK);
}

static int
index_prepare(const char *sql, sqlite3_stmt **st)
{
	int	 rc;

	if ((rc = sqlite3_prepare_v2(db, sql, -1, st, NULL)) != SQLITE_OK) {
		log_warnx("index: %s: %s", sql, sqlite3_errmsg(db));
		/* Our schema version with other tables: not ours. */
		if ((rc & 0xff) == SQLITE_ERROR)
			return (IDX_REBUILD);
		return (index_status(rc));
	}
	return (IDX_OK);
}

static int
index_open(void)
{
	sqlite3_stmt	*st;
	const char	*mode;
	int		 rc, rv, version, tables;

	rc = sqlite3_open_v2(INDEX_PATH, &db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		log_warnx("index: open %s: %s", INDEX_PATH,
		    db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		return (index_status(rc));
	}
	if (sqlite3_db_readonly(db, "main") == 1) {
		log_warnx("index: %s is read-only", INDEX_PATH);
		return (IDX_FAIL);
	}
	sqlite3_busy_timeout(db, INDEX_BUSYMS);

	/* Chrooted: no temporary files outside the maildrop. */
	if ((rv = index_exec("PRAGMA temp_store=MEMORY")) != IDX_OK)
		return (rv);

	/* The first read of the file: a damaged one shows here. */
	if ((rv = index_prepare("PRAGMA journal_mode=WAL", &st)) != IDX_OK)
		return (rv);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		log_warnx("index: journal_mode: %s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return (index_status(rc));
	}
	mode = (const char *)sqlite3_column_text(st, 0);
	rv = mode != NULL && strcmp(mode, "wal") == 0;
	sqlite3_finalize(st);
	if (!rv) {
		log_debug("index: no WAL, using a rollback journal");
		if ((rv = index_exec("PRAGMA journal_mode=DELETE")) != IDX_OK)
			return (rv);
	}
	if ((rv = index_exec("PRAGMA synchronous=NORMAL")) != IDX_OK)
		return (rv);

	if ((rv = index_prepare("PRAGMA user_version", &st)) != IDX_OK)
		return (rv);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		log_warnx("index: user_version: %s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return (index_status(rc));
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);

	if (version == 0) {
		if ((rv = index_prepare("SELECT count(*) FROM sqlite_master",
		    &st)) != IDX_OK)
			return (rv);
		if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
			log_warnx("index: sqlite_master: %s",
			    sqlite3_errmsg(db));
			sqlite3_finalize(st);
			return (index_status(rc));
		}
		tables = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		if (tables != 0) {
			log_warnx("index: %s has tables but no version",
			    INDEX_PATH);
			return (IDX_REBUILD);
		}
		if ((rv = index_exec("BEGIN IMMEDIATE")) != IDX_OK)
			return (rv);
		if ((rv = index_exec("CREATE TABLE msg ("
		    "id INTEGER PRIMARY KEY, "
		    "base TEXT UNIQUE NOT NULL, "
		    "uidl TEXT UNIQUE NOT NULL, "
		    "size INTEGER NOT NULL)")) != IDX_OK ||
		    (rv = index_exec("PRAGMA user_version=1")) != IDX_OK ||
		    (rv = index_exec("COMMIT")) != IDX_OK) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return (rv);
		}
		log_debug("index: created %s", INDEX_PATH);
	} else if (version != INDEX_VERSION) {
		log_warnx("index: %s has unknown schema version %d",
		    INDEX_PATH, version);
		return (IDX_REBUILD);
	}

	if ((rv = index_prepare("SELECT id, base, uidl, size FROM msg",
	    &st_select)) != IDX_OK ||
	    (rv = index_prepare("INSERT INTO msg (base, uidl, size) "
	    "VALUES (?, ?, ?)", &st_insert)) != IDX_OK ||
	    (rv = index_prepare("DELETE FROM msg WHERE id = ?",
	    &st_delete)) != IDX_OK)
		return (rv);
	return (IDX_OK);
}

void
index_close(void)
{
	sqlite3_finalize(st_select);
	sqlite3_finalize(st_insert);
	sqlite3_finalize(st_delete);
	st_select = st_insert = st_delete = NULL;
	if (db != NULL && sqlite3_close(db) != SQLITE_OK)
		log_warnx("index: close: %s", sqlite3_errmsg(db));
	db = NULL;
}

static int
index_unlink(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(index_files) / sizeof(index_files[0]); i++) {
		if (unlink(index_files[i]) == -1 && errno != ENOENT) {
			log_warn("index: unlink %s", index_files[i]);
			return (-1);
		}
	}
	return (0);
}

static void
index_freerows(struct row *rows, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		free(rows[i].base);
		free(rows[i].uidl);
	}
	free(rows);
}

static int
index_rows(struct row **rowsp, size_t *np)
{
	struct row	*rows = NULL, *tmp, *r;
	const char	*base, *uidl;
	size_t		 n = 0, cap = 0;
	int64_t		 size;
	int		 rc;

	while ((rc = sqlite3_step(st_select)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			if ((tmp = reallocarray(rows, cap,
			    sizeof(*rows))) == NULL) {
				log_warn("index: reallocarray");
				goto fail;
			}
			rows = tmp;
		}
		base = (const char *)sqlite3_column_text(st_select, 1);
		uidl = (const char *)sqlite3_column_text(st_select, 2);
		size = sqlite3_column_int64(st_select, 3);
		/* Rows we never write mean someone else wrote them. */
		if (base == NULL || uidl == NULL || size < 0 ||
		    *uidl == '\0' || strlen(uidl) > UIDL_MAX) {
			log_warnx("index: malformed row");
			sqlite3_reset(st_select);
			index_freerows(rows, n);
			return (IDX_REBUILD);
		}
		r = &rows[n];
		r->id = sqlite3_column_int64(st_select, 0);
		r->size = size;
		r->base = strdup(base);
		r->uidl = strdup(uidl);
		n++;
		if (r->base == NULL || r->uidl == NULL) {
			log_warn("index: strdup");
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		log_warnx("index: select: %s", sqlite3_errmsg(db));
		sqlite3_reset(st_select);
		index_freerows(rows, n);
		return (index_status(rc));
	}
	sqlite3_reset(st_select);
	*rowsp = rows;
	*np = n;
	return (IDX_OK);
 fail:
	sqlite3_reset(st_select);
	index_freerows(rows, n);
	return (IDX_FAIL);
}

/* The file's own name is the best unique-id, when RFC 1939 allows it. */
static int
uidl_valid(const char *s)
{
	size_t	 i;

	for (i = 0; s[i] != '\0'; i++)
		if (i == UIDL_MAX || s[i] < 0x21 || s[i] > 0x7e)
			return (0);
	return (i > 0);
}

/* Stable across rebuilds: a hash of the base name, FNV-1a. */
static void
uidl_derive(const char *base, int n, char *buf, size_t len)
{
	const unsigned char	*p;
	uint64_t		 h = 0xcbf29ce484222325ULL;

	for (p = (const unsigned char *)base; *p != '\0'; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	if (n == 0)
		snprintf(buf, len, "%016llx", (unsigned long long)h);
	else
		snprintf(buf, len, "%016llx-%d", (unsigned long long)h, n);
}

static int
index_insert(struct msg *m)
{
	char	 uidl[UIDL_MAX + 1];
	int	 i, rc, valid;

	valid = uidl_valid(m->base);
	for (i = 0; i < UIDL_TRIES; i++) {
		if (i == 0 && valid)
			strlcpy(uidl, m->base, sizeof(uidl));
		else
			uidl_derive(m->base, i, uidl, sizeof(uidl));
		if (sqlite3_bind_text(st_insert, 1, m->base, -1,
		    SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(st_insert, 2, uidl, -1,
		    SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_int64(st_insert, 3, (int64_t)m->size) !=
		    SQLITE_OK) {
			log_warnx("index: bind: %s", sqlite3_errmsg(db));
			sqlite3_reset(st_insert);
			return (IDX_FAIL);
		}
		rc = sqlite3_step(st_insert);
		sqlite3_reset(st_insert);
		sqlite3_clear_bindings(st_insert);
		if (rc == SQLITE_DONE) {
			m->id = sqlite3_last_insert_rowid(db);
			if ((m->uidl = strdup(uidl)) == NULL) {
				log_warn("index: strdup");
				return (IDX_FAIL);
			}
			return (IDX_OK);
		}
		/* Only the unique-id can clash: bases are merged first. */
		if ((rc & 0xff) != SQLITE_CONSTRAINT) {
			log_warnx("index: insert: %s", sqlite3_errmsg(db));
			return (index_status(rc));
		}
	}
	log_warnx("index: no free unique-id for %s", safename(m->base));
	return (IDX_FAIL);
}

/*
 * Bring the index in line with cur/, in one transaction: rows of files
 * gone are dropped, files never seen are read once and added.  The
 * session's messages get their ids, sizes and unique-ids.
 */
static int
index_sync(struct session *s)
{
	struct row	*rows = NULL;
	struct msg	*m, **fresh = NULL;
	size_t		 nrows = 0, nfresh = 0, dropped = 0, i, j;
	int		 rv, rc, c;

	/* A second try after a rebuild starts from the scan alone. */
	for (i = 0; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		free(m->uidl);
		m->uidl = NULL;
		m->id = 0;
		m->size = 0;
		m->flags = 0;
	}

	if ((rv = index_exec("BEGIN IMMEDIATE")) != IDX_OK)
		return (rv);
	if ((rv = index_rows(&rows, &nrows)) != IDX_OK)
		goto fail;

	/* qsort(3) wants an array, even an empty one. */
	if (s->nmsgs > 0)
		qsort(s->msgs, s->nmsgs, sizeof(*s->msgs), cmp_base);
	if (nrows > 0)
		qsort(rows, nrows, sizeof(*rows), cmp_rowbase);

	/* Two files of one message (a crashed rename?): show one. */
	for (i = 1; i < s->nmsgs; i++) {
		if (strcmp(s->msgs[i].base, s->msgs[i - 1].base) == 0) {
			s->msgs[i].flags |= MSG_SKIP;
			log_warnx("cur/%s duplicates cur/%s, ignored",
			    safename(s->msgs[i].name),
			    safename(s->msgs[i - 1].name));
		}
	}

	i = j = 0;
	while (i < s->nmsgs || j < nrows) {
		if (i < s->nmsgs && (s->msgs[i].flags & MSG_SKIP)) {
			i++;
			continue;
		}
		if (i == s->nmsgs)
			c = 1;
		else if (j == nrows)
			c = -1;
		else
			c = strcmp(s->msgs[i].base, rows[j].base);
		if (c < 0) {
			s->msgs[i++].flags |= MSG_NEW;
			nfresh++;
		} else if (c > 0) {
			rc = sqlite3_bind_int64(st_delete, 1, rows[j].id);
			if (rc == SQLITE_OK)
				rc = sqlite3_step(st_delete);
			if (rc != SQLITE_DONE) {
				log_warnx("index: delete: %s",
				    sqlite3_errmsg(db));
				sqlite3_reset(st_delete);
				rv = index_status(rc);
				goto fail;
			}
			sqlite3_reset(st_delete);
			dropped++;
			j++;
		} else {
			m = &s->msgs[i++];
			m->id = rows[j].id;
			m->size = rows[j].size;
			m->uidl = rows[j].uidl;
			rows[j++].uidl = NULL;
		}
	}

	/* New messages take their numbers in file name order. */
	if (nfresh > 0 &&
	    (fresh = reallocarray(NULL, nfresh, sizeof(*fresh))) == NULL) {
		log_warn("index: reallocarray");
		rv = IDX_FAIL;
		goto fail;
	}
	for (i = j = 0; i < s->nmsgs; i++)
		if (s->msgs[i].flags & MSG_NEW)
			fresh[j++] = &s->msgs[i];
	if (nfresh > 0)
		qsort(fresh, nfresh, sizeof(*fresh), cmp_name);
	for (i = 0; i < nfresh; i++) {
		m = fresh[i];
		if (maildir_size(m, &m->size) == -1) {
			/* Left for a later session; never a wrong size. */
			log_warn("cur/%s: not listed", safename(m->name));
			m->flags |= MSG_SKIP;
			continue;
		}
		if ((rv = index_insert(m)) != IDX_OK)
			goto fail;
	}

	if ((rv = index_exec("COMMIT")) != IDX_OK)
		goto fail;
	log_debug("index: %zu rows, %zu added, %zu dropped", nrows, nfresh,
	    dropped);
	index_freerows(rows, nrows);
	free(fresh);
	return (IDX_OK);
 fail:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	index_freerows(rows, nrows);
	free(fresh);
	return (rv);
}

/* Drop hidden messages and put the rest in message number order. */
static void
index_compact(struct session *s)
{
	size_t	 i, n = 0;

	for (i = 0; i < s->nmsgs; i++) {
		if (s->msgs[i].flags & MSG_SKIP) {
			free(s->msgs[i].name);
			free(s->msgs[i].base);
			free(s->msgs[i].uidl);
			continue;
		}
		s->msgs[i].flags &= ~MSG_NEW;
		s->msgs[n++] = s->msgs[i];
	}
	s->nmsgs = n;
	if (n > 0)
		qsort(s->msgs, s->nmsgs, sizeof(*s->msgs), cmp_id);
}

int
index_load(struct session *s)
{
	int	 rv, tries;

	for (tries = 0; tries < 2; tries++) {
		if ((rv = index_open()) == IDX_OK &&
		    (rv = index_sync(s)) == IDX_OK) {
			index_compact(s);
			return (0);
		}
		index_close();
		if (rv != IDX_REBUILD || tries > 0)
			break;
		log_warnx("index: %s is damaged or foreign, rebuilding it",
		    INDEX_PATH);
		if (index_unlink() == -1)
			break;
	}
	log_warnx("index: unusable, session refused");
	return (-1);
}

/* Rows of the messages unlinked at QUIT, in one transaction. */
int
index_remove(struct session *s)
{
	struct msg	*m;
	size_t		 i;

	if (index_exec("BEGIN IMMEDIATE") != IDX_OK)
		return (-1);
	for (i = 0; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		if (!(m->flags & MSG_REMOVED))
			continue;
		if (sqlite3_bind_int64(st_delete, 1, m->id) != SQLITE_OK ||
		    sqlite3_step(st_delete) != SQLITE_DONE) {
			log_warnx("index: delete: %s", sqlite3_errmsg(db));
			sqlite3_reset(st_delete);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return (-1);
		}
		sqlite3_reset(st_delete);
	}
	if (index_exec("COMMIT") != IDX_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return (-1);
	}
	return (0);
}

static int
cmp_base(const void *a, const void *b)
{
	const struct msg	*ma = a, *mb = b;
	int			 c;

	if ((c = strcmp(ma->base, mb->base)) != 0)
		return (c);
	return (strcmp(ma->name, mb->name));
}

static int
cmp_rowbase(const void *a, const void *b)
{
	const struct row	*ra = a, *rb = b;

	return (strcmp(ra->base, rb->base));
}

static int
cmp_name(const void *a, const void *b)
{
	const struct msg	*ma = *(struct msg *const *)a;
	const struct msg	*mb = *(struct msg *const *)b;

	return (strcmp(ma->name, mb->name));
}

static int
cmp_id(const void *a, const void *b)
{
	const struct msg	*ma = a, *mb = b;

	return (ma->id < mb->id ? -1 : ma->id > mb->id);
}
