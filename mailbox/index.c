/*
 * The SQLite message index, /pop3d.index in the chroot (the Maildir
 * root, or the mbox's index directory).  It is a cache, never the
 * truth: each session reconciles it with the maildrop, and one that is
 * missing, damaged or foreign is rebuilt.  What it saves is work: the
 * sizes and unique-ids of messages seen before, so that a session reads
 * only what is new.
 *
 * Maildir files never change after delivery; only their names after
 * the ':' do, so a Maildir message is known by its base name, which is
 * also its unique-id when RFC 1939 allows.  mbox messages are known by
 * a hash of their content (mbox.c); the index keeps their offsets and
 * the file's identity, so an unchanged mbox is not read at all.
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
#define INDEX_VERSION	3
#define INDEX_BUSYMS	5000
#define UIDL_TRIES	100

static sqlite3		*db;
static sqlite3_stmt	*st_rows, *st_insert, *st_delete, *st_size, *st_rename;

static const char *const index_files[] = {
	INDEX_PATH, INDEX_PATH "-wal", INDEX_PATH "-shm",
	INDEX_PATH "-journal"
};

/* A file's identity (filestate.c), one row: the mbox's or cur/'s. */
#define STATE_COLUMNS \
	"id INTEGER PRIMARY KEY CHECK (id = 1), " \
	"dev INTEGER NOT NULL, " \
	"ino INTEGER NOT NULL, " \
	"size INTEGER NOT NULL, " \
	"mtime INTEGER NOT NULL, " \
	"ctime INTEGER NOT NULL)"

static const char	 schema_mbox[] =
	"CREATE TABLE mbox ("
	"id INTEGER PRIMARY KEY, "
	"hash BLOB NOT NULL, "
	"uidl TEXT UNIQUE NOT NULL, "
	"size INTEGER NOT NULL, "
	"fromoff INTEGER NOT NULL, "
	"msgstart INTEGER NOT NULL, "
	"msgend INTEGER NOT NULL); "
	"CREATE TABLE mboxstate (" STATE_COLUMNS;

/* Version 3: each message's file name, and cur/ when it was listed. */
static const char	 schema_cur[] = "CREATE TABLE curstate (" STATE_COLUMNS;

/* One row of st_rows; its strings last until the next step. */
struct row {
	int64_t		 id;
	int64_t		 size;
	int64_t		 fsize;
	const char	*base;
	const char	*uidl;
	const char	*name;		/* NULL: not known (version 2) */
	size_t		 baselen;
};

static int	 index_status(int);
static int	 index_exec(const char *);
static int	 index_prepare(const char *, sqlite3_stmt **);
static int	 index_int(const char *, int *);
static int	 index_schema(void);
static int	 index_open(void);
static int	 index_unlink(void);
static int	 index_insert(struct msg *);
static int	 index_rename(const struct msg *);
static int	 index_state_get(const char *, struct filestate *);
static int	 index_state_put(const char *, const struct filestate *);
static int	 index_row(struct row *);
static int	 index_take(struct msg *, const struct row *);
static int	 index_match(struct session *, int64_t **, size_t *,
	    uint32_t *, size_t *);
static int	 index_sync(struct session *, uint32_t **, size_t *);
static void	 index_compact(struct session *, uint32_t *, size_t);
static int	 index_unchanged(struct session *, int *);
static int	 index_maildir(struct session *);
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
		log_warnx("index: %.60s: %s", sql, sqlite3_errmsg(db));
		/* Our schema version, but not our tables: not ours. */
		if ((rc & 0xff) == SQLITE_ERROR)
			return (IDX_REBUILD);
		return (index_status(rc));
	}
	return (IDX_OK);
}

static int
index_prepare(const char *sql, sqlite3_stmt **st)
{
	int	 rc;

	if ((rc = sqlite3_prepare_v2(db, sql, -1, st, NULL)) != SQLITE_OK) {
		log_warnx("index: %.60s: %s", sql, sqlite3_errmsg(db));
		if ((rc & 0xff) == SQLITE_ERROR)
			return (IDX_REBUILD);
		return (index_status(rc));
	}
	return (IDX_OK);
}

/* A query of one integer, e.g. a PRAGMA. */
static int
index_int(const char *sql, int *v)
{
	sqlite3_stmt	*st;
	int		 rc, rv;

	if ((rv = index_prepare(sql, &st)) != IDX_OK)
		return (rv);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		log_warnx("index: %s: %s", sql, sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return (index_status(rc));
	}
	*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return (IDX_OK);
}

/*
 * Create the tables, or bring those of version 1 (Maildir only, no file
 * sizes) or 2 (no file names, no curstate) to version 3 in place: the
 * rows, unique-ids included, stay.
 */
static int
index_schema(void)
{
	int	 rv, version, tables;

	if ((rv = index_int("PRAGMA user_version", &version)) != IDX_OK)
		return (rv);
	if (version == INDEX_VERSION)
		return (IDX_OK);
	if (version == 0) {
		if ((rv = index_int("SELECT count(*) FROM sqlite_master",
		    &tables)) != IDX_OK)
			return (rv);
		if (tables != 0) {
			log_warnx("index: %s has tables but no version",
			    INDEX_PATH);
			return (IDX_REBUILD);
		}
	} else if (version < 0 || version > INDEX_VERSION) {
		log_warnx("index: %s has unknown schema version %d",
		    INDEX_PATH, version);
		return (IDX_REBUILD);
	}

	if ((rv = index_exec("BEGIN IMMEDIATE")) != IDX_OK)
		return (rv);
	if (version == 0)
		rv = index_exec("CREATE TABLE msg ("
		    "id INTEGER PRIMARY KEY, "
		    "base TEXT UNIQUE NOT NULL, "
		    "uidl TEXT UNIQUE NOT NULL, "
		    "size INTEGER NOT NULL, "
		    "fsize INTEGER NOT NULL DEFAULT -1, "
		    "name TEXT)");
	else if (version == 1)
		rv = index_exec("ALTER TABLE msg ADD COLUMN "
		    "fsize INTEGER NOT NULL DEFAULT -1");
	if (rv == IDX_OK && version < 2)
		rv = index_exec(schema_mbox);
	if (rv == IDX_OK && version != 0)
		rv = index_exec("ALTER TABLE msg ADD COLUMN name TEXT");
	if (rv != IDX_OK ||
	    (rv = index_exec(schema_cur)) != IDX_OK ||
	    (rv = index_exec("PRAGMA user_version=3")) != IDX_OK ||
	    (rv = index_exec("COMMIT")) != IDX_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return (rv);
	}
	log_debug("index: %s %s", version ? "upgraded" : "created",
	    INDEX_PATH);
	return (IDX_OK);
}

static int
index_open(void)
{
	sqlite3_stmt	*st;
	const char	*mode;
	int		 rc, rv;

	rc = sqlite3_open_v2(INDEX_PATH, &db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		log_warnx("index: open %s: %s", INDEX_PATH,
		    db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		return (index_status(rc));
	}
	/* An index we cannot keep up to date would give wrong answers. */
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
	if ((rv = index_exec("PRAGMA synchronous=NORMAL")) != IDX_OK ||
	    (rv = index_schema()) != IDX_OK)
		return (rv);

	if ((rv = index_prepare("SELECT id, base, uidl, size, fsize, name "
	    "FROM msg ORDER BY id", &st_rows)) != IDX_OK ||
	    (rv = index_prepare("INSERT INTO msg (base, uidl, size, fsize, "
	    "name) VALUES (?, ?, ?, ?, ?)", &st_insert)) != IDX_OK ||
	    (rv = index_prepare("UPDATE msg SET name = ? WHERE id = ?",
	    &st_rename)) != IDX_OK ||
	    (rv = index_prepare("DELETE FROM msg WHERE id = ?",
	    &st_delete)) != IDX_OK ||
	    (rv = index_prepare("UPDATE msg SET size = ?, fsize = ? "
	    "WHERE id = ?", &st_size)) != IDX_OK)
		return (rv);
	return (IDX_OK);
}

void
index_close(void)
{
	sqlite3_finalize(st_rows);
	sqlite3_finalize(st_insert);
	sqlite3_finalize(st_delete);
	sqlite3_finalize(st_size);
	sqlite3_finalize(st_rename);
	st_rows = st_insert = st_delete = st_size = st_rename = NULL;
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

static int
index_insert(struct msg *m)
{
	char	 uidl[UIDL_MAX + 1];
	int	 i, rc;

	for (i = 0; i < UIDL_TRIES; i++) {
		maildir_uidl(m->base, i, uidl, sizeof(uidl));
		if (sqlite3_bind_text(st_insert, 1, m->base, -1,
		    SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(st_insert, 2, uidl, -1,
		    SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_int64(st_insert, 3, (int64_t)m->size) !=
		    SQLITE_OK ||
		    sqlite3_bind_int64(st_insert, 4, m->fsize) != SQLITE_OK ||
		    sqlite3_bind_text(st_insert, 5, m->name, -1,
		    SQLITE_STATIC) != SQLITE_OK) {
			log_warnx("index: bind: %s", sqlite3_errmsg(db));
			sqlite3_reset(st_insert);
			return (IDX_FAIL);
		}
		rc = sqlite3_step(st_insert);
		sqlite3_reset(st_insert);
		sqlite3_clear_bindings(st_insert);
		if (rc == SQLITE_DONE) {
			m->id = sqlite3_last_insert_rowid(db);
			if (strcmp(uidl, m->base) == 0)
				m->uidl = m->base;
			else if ((m->uidl = arena_strdup(uidl)) == NULL) {
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
 * The files by base name, in an open-addressing table of indices + 1
 * into s->msgs: the rows are matched in one pass, with no sort of the
 * whole list.
 */
struct basetab {
	uint32_t	*slot;
	size_t		 mask;
};

static uint32_t
base_hash(const char *p, size_t len)
{
	uint32_t	 h = 2166136261U;

	while (len-- > 0) {
		h ^= (unsigned char)*p++;
		h *= 16777619U;
	}
	return (h);
}

/* Two files of one message (a crashed rename?): show the first by name. */
static int
basetab_build(struct basetab *t, struct session *s)
{
	struct msg	*m, *o;
	uint32_t	*p;
	size_t		 size = 64, i;

	if (s->nmsgs >= UINT32_MAX / 2) {
		errno = ENOMEM;
		return (-1);
	}
	while (size < 2 * s->nmsgs)
		size *= 2;
	if ((t->slot = calloc(size, sizeof(*t->slot))) == NULL)
		return (-1);
	t->mask = size - 1;
	for (i = 0; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		p = &t->slot[base_hash(m->base, strlen(m->base)) & t->mask];
		for (; *p != 0; p = &t->slot[(p - t->slot + 1) & t->mask])
			if (strcmp(s->msgs[*p - 1].base, m->base) == 0)
				break;
		if (*p == 0) {
			*p = i + 1;
			continue;
		}
		o = &s->msgs[*p - 1];
		if (strcmp(m->name, o->name) < 0) {
			*p = i + 1;
			o->flags |= MSG_SKIP;
			log_warnx("cur/%s duplicates cur/%s, ignored",
			    safename(o->name), safename(m->name));
		} else {
			m->flags |= MSG_SKIP;
			log_warnx("cur/%s duplicates cur/%s, ignored",
			    safename(m->name), safename(o->name));
		}
	}
	return (0);
}

static struct msg *
basetab_find(const struct basetab *t, struct session *s, const char *base,
    size_t len)
{
	const uint32_t	*p;

	p = &t->slot[base_hash(base, len) & t->mask];
	for (; *p != 0; p = &t->slot[(p - t->slot + 1) & t->mask])
		if (strcmp(s->msgs[*p - 1].base, base) == 0)
			return (&s->msgs[*p - 1]);
	return (NULL);
}

/* The next row in *r and IDX_OK, IDX_DONE past the last. */
static int
index_row(struct row *r)
{
	size_t	 len;
	int	 rc;

	if ((rc = sqlite3_step(st_rows)) == SQLITE_DONE)
		return (IDX_DONE);
	if (rc != SQLITE_ROW) {
		log_warnx("index: select: %s", sqlite3_errmsg(db));
		return (index_status(rc));
	}
	r->id = sqlite3_column_int64(st_rows, 0);
	r->base = (const char *)sqlite3_column_text(st_rows, 1);
	r->baselen = sqlite3_column_bytes(st_rows, 1);
	r->uidl = (const char *)sqlite3_column_text(st_rows, 2);
	r->size = sqlite3_column_int64(st_rows, 3);
	r->fsize = sqlite3_column_int64(st_rows, 4);
	r->name = (const char *)sqlite3_column_text(st_rows, 5);
	len = r->baselen;
	/* Rows we never write mean someone else wrote them. */
	if (r->base == NULL || r->uidl == NULL || r->size < 0 ||
	    r->fsize < -1 || !uidl_valid(r->uidl) || (r->name != NULL &&
	    (strncmp(r->name, r->base, len) != 0 ||
	    (r->name[len] != ':' && r->name[len] != '\0') ||
	    strchr(r->name, '/') != NULL))) {
		log_warnx("index: malformed row");
		return (IDX_REBUILD);
	}
	return (IDX_OK);
}

/* A row's facts for its message; the unique-id is base when equal. */
static int
index_take(struct msg *m, const struct row *r)
{
	int64_t	 hint;

	m->id = r->id;
	m->size = r->size;
	m->fsize = r->fsize;
	if (strcmp(r->uidl, m->base) == 0)
		m->uidl = m->base;
	else if ((m->uidl = arena_strdup(r->uidl)) == NULL) {
		log_warn("index: strdup");
		return (-1);
	}
	/* A size in the name that disagrees: read the file again. */
	if ((hint = maildir_namesize(m->base)) != -1 && r->fsize != -1 &&
	    hint != r->fsize)
		m->flags |= MSG_STALE;
	return (0);
}

/*
 * Walk the rows in id order, each looked up among the files.  Files
 * without a row are marked new, rows without a file are returned for
 * deletion.  order gets the matched files' indices in row order.
 */
static int
index_match(struct session *s, int64_t **dropp, size_t *ndropp,
    uint32_t *order, size_t *norder)
{
	struct basetab	 t;
	struct row	 r;
	struct msg	*m;
	int64_t		*drop = NULL, *tmp;
	size_t		 i, ndrop = 0, cap = 0, n = 0;
	int		 rv = IDX_FAIL;

	if (basetab_build(&t, s) == -1) {
		log_warn("index: calloc");
		*dropp = NULL;
		*ndropp = 0;
		return (IDX_FAIL);
	}
	while ((rv = index_row(&r)) == IDX_OK) {
		rv = IDX_FAIL;
		m = basetab_find(&t, s, r.base, r.baselen);
		/* A matched file has its unique-id: a second row drops. */
		if (m == NULL || (m->flags & MSG_SKIP) || m->uidl != NULL) {
			if (ndrop == cap) {
				cap = cap ? cap * 2 : 64;
				if ((tmp = reallocarray(drop, cap,
				    sizeof(*drop))) == NULL) {
					log_warn("index: reallocarray");
					goto done;
				}
				drop = tmp;
			}
			drop[ndrop++] = r.id;
			continue;
		}
		order[n++] = m - s->msgs;
		if (index_take(m, &r) == -1)
			goto done;
		if (r.name == NULL || strcmp(r.name, m->name) != 0)
			m->flags |= MSG_RENAMED;
	}
	if (rv != IDX_DONE)
		goto done;
	for (i = 0; i < s->nmsgs; i++)
		if (!(s->msgs[i].flags & MSG_SKIP) && s->msgs[i].uidl == NULL)
			s->msgs[i].flags |= MSG_NEW;
	rv = IDX_OK;
 done:
	free(t.slot);
	sqlite3_reset(st_rows);
	if (rv != IDX_OK) {
		free(drop);
		drop = NULL;
		ndrop = 0;
	}
	*dropp = drop;
	*ndropp = ndrop;
	*norder = n;
	return (rv);
}

#define MSG_SHOWN(m)	(!((m)->flags & MSG_SKIP) && (m)->uidl != NULL)

/*
 * Bring the index in line with cur/, in one transaction: rows of files
 * gone are dropped, files never seen are read once and added.  The
 * session's messages get their ids, sizes and unique-ids.  order gets
 * a permutation of s->msgs: the shown messages in id order (the rows',
 * then the new ones'), then the hidden; *nshown says how many.
 */
static int
index_sync(struct session *s, uint32_t **orderp, size_t *nshown)
{
	struct msg	*m, **todo = NULL, **fresh = NULL;
	int64_t		*drop = NULL;
	uint32_t	*order = NULL;
	size_t		 ndrop = 0, nfresh = 0, nstale = 0, norder, i, j;
	int		*errs = NULL, rv, rc;

	*orderp = NULL;
	/* A second try after a rebuild starts from the scan alone. */
	for (i = 0; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		m->uidl = NULL;
		m->id = 0;
		m->size = 0;
		m->fsize = -1;
		m->flags = 0;
	}

	if ((order = reallocarray(NULL, s->nmsgs + 1,
	    sizeof(*order))) == NULL) {
		log_warn("index: reallocarray");
		return (IDX_FAIL);
	}
	if ((rv = index_exec("BEGIN IMMEDIATE")) != IDX_OK) {
		free(order);
		return (rv);
	}
	if ((rv = index_match(s, &drop, &ndrop, order, &norder)) != IDX_OK)
		goto fail;

	for (i = 0; i < ndrop; i++) {
		rc = sqlite3_bind_int64(st_delete, 1, drop[i]);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st_delete);
		sqlite3_reset(st_delete);
		if (rc != SQLITE_DONE) {
			log_warnx("index: delete: %s", sqlite3_errmsg(db));
			rv = index_status(rc);
			goto fail;
		}
	}
	for (i = 0; i < s->nmsgs; i++)
		if ((s->msgs[i].flags & MSG_RENAMED) &&
		    (rv = index_rename(&s->msgs[i])) != IDX_OK)
			goto fail;

	/* Stale rows first, then the new files in name order. */
	for (i = 0; i < s->nmsgs; i++) {
		if (s->msgs[i].flags & MSG_NEW)
			nfresh++;
		else if (s->msgs[i].flags & MSG_STALE)
			nstale++;
	}
	if (nstale + nfresh > 0 &&
	    ((todo = reallocarray(NULL, nstale + nfresh,
	    sizeof(*todo))) == NULL ||
	    (errs = reallocarray(NULL, nstale + nfresh,
	    sizeof(*errs))) == NULL)) {
		log_warn("index: reallocarray");
		rv = IDX_FAIL;
		goto fail;
	}
	fresh = todo != NULL ? todo + nstale : NULL;
	for (i = j = 0; i < s->nmsgs; i++)
		if (s->msgs[i].flags & MSG_STALE)
			todo[j++] = &s->msgs[i];
	for (i = 0; i < s->nmsgs; i++)
		if (s->msgs[i].flags & MSG_NEW)
			todo[j++] = &s->msgs[i];
	if (nfresh > 0)
		qsort(fresh, nfresh, sizeof(*fresh), cmp_name);
	measure_sizes(todo, nstale + nfresh, errs);

	for (i = 0; i < nstale + nfresh; i++) {
		m = todo[i];
		if (errs[i] != 0) {
			/* Left for a later session; never a wrong size. */
			errno = errs[i];
			log_warn("cur/%s: not listed", safename(m->name));
			m->flags |= MSG_SKIP;
			continue;
		}
		if (i < nstale)
			rv = index_update_size(m) == 0 ? IDX_OK : IDX_FAIL;
		else
			rv = index_insert(m);
		if (rv != IDX_OK)
			goto fail;
	}

	/*
	 * cur/ as listed, for the next session to trust if it has not
	 * changed: only when it had been still, and every file has a row.
	 */
	for (i = 0; i < s->nmsgs; i++)
		if (s->msgs[i].flags & MSG_SKIP)
			break;
	if ((rv = index_state_put("curstate", s->curquiet &&
	    i == s->nmsgs ? &s->cur : NULL)) != IDX_OK ||
	    (rv = index_exec("COMMIT")) != IDX_OK)
		goto fail;
	log_debug("index: %zu added, %zu dropped, %zu read again", nfresh,
	    ndrop, nstale);

	/* Rows that went stale and unreadable since drop out of order. */
	for (i = j = 0; i < norder; i++)
		if (MSG_SHOWN(&s->msgs[order[i]]))
			order[j++] = order[i];
	for (i = 0; i < nfresh; i++)
		if (MSG_SHOWN(fresh[i]))
			order[j++] = fresh[i] - s->msgs;
	*nshown = j;
	for (i = 0; i < s->nmsgs; i++)
		if (!MSG_SHOWN(&s->msgs[i]))
			order[j++] = i;
	*orderp = order;
	free(drop);
	free(todo);
	free(errs);
	return (IDX_OK);
 fail:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	free(order);
	free(drop);
	free(todo);
	free(errs);
	return (rv);
}

/*
 * Put the messages in the order index_sync found, in place, and drop
 * the hidden ones; their strings stay in the arena till the end.
 */
static void
index_compact(struct session *s, uint32_t *order, size_t nshown)
{
	struct msg	 tmp;
	size_t		 i, j, next;

	/* Each cycle of the permutation moves once; done ones are marked. */
	for (i = 0; i < s->nmsgs; i++) {
		if (order[i] == UINT32_MAX)
			continue;
		tmp = s->msgs[i];
		for (j = i; order[j] != i; j = next) {
			next = order[j];
			s->msgs[j] = s->msgs[next];
			order[j] = UINT32_MAX;
		}
		s->msgs[j] = tmp;
		order[j] = UINT32_MAX;
	}
	s->nmsgs = nshown;
	for (i = 0; i < s->nmsgs; i++)
		s->msgs[i].flags &= ~(MSG_NEW | MSG_STALE | MSG_RENAMED);
	/* New rowids pass the old; a foreign writer's may not. */
	for (i = 1; i < s->nmsgs; i++) {
		if (s->msgs[i].id <= s->msgs[i - 1].id) {
			qsort(s->msgs, s->nmsgs, sizeof(*s->msgs), cmp_id);
			break;
		}
	}
}

/*
 * cur/ unchanged since a session listed it whole (index_sync): the rows
 * are the messages, in id order, and neither the directory nor a file
 * is read.  *done stays 0 to send the session the long way: cur/ has
 * changed, or a row lacks its file name or has a size its name
 * disputes.
 */
static int
index_unchanged(struct session *s, int *done)
{
	struct filestate	 known;
	struct row		 r;
	struct msg		*m;
	int			 rv, rc;

	*done = 0;
	if ((rv = index_exec("BEGIN")) != IDX_OK)
		return (rv);
	if ((rv = index_state_get("curstate", &known)) != IDX_OK ||
	    known.size == -1 || memcmp(&known, &s->cur, sizeof(known)) != 0)
		goto done;
	while ((rv = index_row(&r)) == IDX_OK) {
		if (r.name == NULL)
			break;
		if ((m = msgs_add(s)) == NULL) {
			rv = IDX_FAIL;
			break;
		}
		if ((m->name = arena_strdup(r.name)) == NULL ||
		    (m->base = arena_strndup(r.name, r.baselen)) == NULL) {
			log_warn("index: strdup");
			rv = IDX_FAIL;
			break;
		}
		if (index_take(m, &r) == -1) {
			rv = IDX_FAIL;
			break;
		}
		if (m->flags & MSG_STALE)
			break;
	}
	if (rv == IDX_DONE) {
		*done = 1;
		rv = IDX_OK;
	}
 done:
	sqlite3_reset(st_rows);
	if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) !=
	    SQLITE_OK && rv == IDX_OK) {
		log_warnx("index: commit: %s", sqlite3_errmsg(db));
		rv = index_status(rc);
	}
	if (rv != IDX_OK)
		*done = 0;
	if (!*done)
		msgs_free(s);
	return (rv);
}

/* The Maildir's messages, in order, each with its row. */
static int
index_maildir(struct session *s)
{
	uint32_t	*order;
	size_t		 nshown;
	int		 rv, done;

	/* Not listed yet (a second try after a rebuild may have it). */
	if (s->nmsgs == 0) {
		if ((rv = index_unchanged(s, &done)) != IDX_OK)
			return (rv);
		if (done) {
			log_debug("index: cur unchanged, %zu messages",
			    s->nmsgs);
			return (IDX_OK);
		}
		if (maildir_list(s) == -1)
			return (IDX_FAIL);
	}
	if ((rv = index_sync(s, &order, &nshown)) != IDX_OK)
		return (rv);
	index_compact(s, order, nshown);
	free(order);
	return (IDX_OK);
}

int
index_load(struct session *s)
{
	int	 rv, tries;

	for (tries = 0; tries < 2; tries++) {
		if ((rv = index_open()) == IDX_OK) {
			if (s->type == MAILDROP_MBOX)
				rv = mbox_sync(s);
			else
				rv = index_maildir(s);
			if (rv == IDX_OK)
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

/* The page cache of the index: rebuilt from the file when needed. */
void
index_idle(void)
{
	sqlite3_db_release_memory(db);
}

/* Rows of the Maildir messages unlinked at QUIT, in one transaction. */
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

/* A Maildir message measured again. */
int
index_update_size(const struct msg *m)
{
	int	 rc;

	if (db == NULL)
		return (-1);
	if ((rc = sqlite3_bind_int64(st_size, 1, (int64_t)m->size)) ==
	    SQLITE_OK &&
	    (rc = sqlite3_bind_int64(st_size, 2, m->fsize)) == SQLITE_OK &&
	    (rc = sqlite3_bind_int64(st_size, 3, m->id)) == SQLITE_OK)
		rc = sqlite3_step(st_size);
	sqlite3_reset(st_size);
	if (rc != SQLITE_DONE) {
		log_warnx("index: update: %s", sqlite3_errmsg(db));
		return (-1);
	}
	return (0);
}

/* What the index knew of a file (mboxstate, curstate); size -1: nothing. */
static int
index_state_get(const char *table, struct filestate *fs)
{
	sqlite3_stmt	*st;
	char		 sql[128];
	int		 rc, rv;

	fs->size = -1;
	(void)snprintf(sql, sizeof(sql), "SELECT dev, ino, size, mtime, "
	    "ctime FROM %s WHERE id = 1", table);
	if ((rv = index_prepare(sql, &st)) != IDX_OK)
		return (rv);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		fs->dev = sqlite3_column_int64(st, 0);
		fs->ino = sqlite3_column_int64(st, 1);
		fs->size = sqlite3_column_int64(st, 2);
		fs->mtime = sqlite3_column_int64(st, 3);
		fs->ctime = sqlite3_column_int64(st, 4);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		log_warnx("index: %s: %s", table, sqlite3_errmsg(db));
		return (index_status(rc));
	}
	return (IDX_OK);
}

/* Keep a file's identity, or with NULL forget it; in a transaction. */
static int
index_state_put(const char *table, const struct filestate *fs)
{
	sqlite3_stmt	*st;
	char		 sql[128];
	int		 rc, rv;

	if (fs == NULL) {
		(void)snprintf(sql, sizeof(sql), "DELETE FROM %s", table);
		return (index_exec(sql));
	}
	(void)snprintf(sql, sizeof(sql), "INSERT OR REPLACE INTO %s (id, "
	    "dev, ino, size, mtime, ctime) VALUES (1, ?, ?, ?, ?, ?)", table);
	if ((rv = index_prepare(sql, &st)) != IDX_OK)
		return (rv);
	if ((rc = sqlite3_bind_int64(st, 1, fs->dev)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, fs->ino)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, fs->size)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, fs->mtime)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 5, fs->ctime)) != SQLITE_OK ||
	    (rc = sqlite3_step(st)) != SQLITE_DONE) {
		log_warnx("index: %s: %s", table, sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return (index_status(rc));
	}
	sqlite3_finalize(st);
	return (IDX_OK);
}

/* A Maildir message's new file name. */
static int
index_rename(const struct msg *m)
{
	int	 rc;

	if ((rc = sqlite3_bind_text(st_rename, 1, m->name, -1,
	    SQLITE_STATIC)) == SQLITE_OK &&
	    (rc = sqlite3_bind_int64(st_rename, 2, m->id)) == SQLITE_OK)
		rc = sqlite3_step(st_rename);
	sqlite3_reset(st_rename);
	if (rc != SQLITE_DONE) {
		log_warnx("index: rename: %s", sqlite3_errmsg(db));
		return (index_status(rc));
	}
	return (IDX_OK);
}

int
index_mbox_state(struct filestate *ms)
{
	return (index_state_get("mboxstate", ms));
}

/* The messages of an unchanged mbox, straight from the index. */
int
index_mbox_rows(struct session *s)
{
	sqlite3_stmt	*st;
	struct msg	*m;
	const void	*hash;
	const char	*uidl;
	int		 rc, rv;

	if ((rv = index_prepare("SELECT id, hash, uidl, size, fromoff, "
	    "msgstart, msgend FROM mbox ORDER BY id", &st)) != IDX_OK)
		return (rv);
	rv = IDX_FAIL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		hash = sqlite3_column_blob(st, 1);
		uidl = (const char *)sqlite3_column_text(st, 2);
		if (hash == NULL || sqlite3_column_bytes(st, 1) !=
		    MBOX_HASHLEN || uidl == NULL || !uidl_valid(uidl)) {
			log_warnx("index: malformed mbox row");
			rv = IDX_REBUILD;
			goto done;
		}
		if ((m = msgs_add(s)) == NULL)
			goto done;
		m->id = sqlite3_column_int64(st, 0);
		memcpy(m->hash, hash, MBOX_HASHLEN);
		m->size = sqlite3_column_int64(st, 3);
		m->off = sqlite3_column_int64(st, 4);
		m->start = sqlite3_column_int64(st, 5);
		m->end = sqlite3_column_int64(st, 6);
		if ((m->uidl = arena_strdup(uidl)) == NULL) {
			log_warn("index: strdup");
			goto done;
		}
	}
	if (rc != SQLITE_DONE) {
		log_warnx("index: mbox rows: %s", sqlite3_errmsg(db));
		rv = index_status(rc);
		goto done;
	}
	rv = IDX_OK;
 done:
	sqlite3_finalize(st);
	return (rv);
}

/*
 * Content hashes and unique-ids the index gave, in message order; the
 * unique-ids in the arena, to be taken over by the messages.
 */
int
index_mbox_old(struct mboxrow **rowsp, size_t *np)
{
	sqlite3_stmt	*st;
	struct mboxrow	*rows = NULL, *tmp;
	const void	*hash;
	const char	*uidl;
	size_t		 n = 0, cap = 0;
	int		 rc, rv;

	if ((rv = index_prepare("SELECT id, hash, uidl FROM mbox "
	    "ORDER BY id", &st)) != IDX_OK)
		return (rv);
	rv = IDX_FAIL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		hash = sqlite3_column_blob(st, 1);
		uidl = (const char *)sqlite3_column_text(st, 2);
		if (hash == NULL || sqlite3_column_bytes(st, 1) !=
		    MBOX_HASHLEN || uidl == NULL || !uidl_valid(uidl)) {
			log_warnx("index: malformed mbox row");
			rv = IDX_REBUILD;
			goto done;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((tmp = reallocarray(rows, cap,
			    sizeof(*rows))) == NULL) {
				log_warn("index: reallocarray");
				goto done;
			}
			rows = tmp;
		}
		rows[n].id = sqlite3_column_int64(st, 0);
		memcpy(rows[n].hash, hash, MBOX_HASHLEN);
		if ((rows[n].uidl = arena_strdup(uidl)) == NULL) {
			log_warn("index: strdup");
			goto done;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		log_warnx("index: mbox rows: %s", sqlite3_errmsg(db));
		rv = index_status(rc);
		goto done;
	}
	rv = IDX_OK;
 done:
	sqlite3_finalize(st);
	if (rv != IDX_OK) {
		free(rows);
		rows = NULL;
		n = 0;
	}
	*rowsp = rows;
	*np = n;
	return (rv);
}

/*
 * The mbox as it is now, in one transaction: every message left (not
 * removed) in file order, and the file's identity.
 */
int
index_mbox_store(struct session *s, const struct filestate *ms)
{
	sqlite3_stmt	*st = NULL;
	struct msg	*m;
	size_t		 i;
	int64_t		 id = 0;
	int		 rc, rv;

	if ((rv = index_exec("BEGIN IMMEDIATE")) != IDX_OK)
		return (rv);
	if ((rv = index_exec("DELETE FROM mbox")) != IDX_OK ||
	    (rv = index_prepare("INSERT INTO mbox (id, hash, uidl, size, "
	    "fromoff, msgstart, msgend) VALUES (?, ?, ?, ?, ?, ?, ?)",
	    &st)) != IDX_OK)
		goto fail;
	for (i = 0; i < s->nmsgs; i++) {
		m = &s->msgs[i];
		if (m->flags & MSG_REMOVED)
			continue;
		m->id = ++id;
		if ((rc = sqlite3_bind_int64(st, 1, m->id)) != SQLITE_OK ||
		    (rc = sqlite3_bind_blob(st, 2, m->hash, MBOX_HASHLEN,
		    SQLITE_STATIC)) != SQLITE_OK ||
		    (rc = sqlite3_bind_text(st, 3, m->uidl, -1,
		    SQLITE_STATIC)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(st, 4, (int64_t)m->size)) !=
		    SQLITE_OK ||
		    (rc = sqlite3_bind_int64(st, 5, (int64_t)m->off)) !=
		    SQLITE_OK ||
		    (rc = sqlite3_bind_int64(st, 6, (int64_t)m->start)) !=
		    SQLITE_OK ||
		    (rc = sqlite3_bind_int64(st, 7, (int64_t)m->end)) !=
		    SQLITE_OK)
			goto stepfail;
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			goto stepfail;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rv = index_state_put("mboxstate", ms)) != IDX_OK)
		goto fail;
	if ((rv = index_exec("COMMIT")) != IDX_OK)
		goto fail;
	return (IDX_OK);
 stepfail:
	log_warnx("index: mbox insert: %s", sqlite3_errmsg(db));
	rv = index_status(rc);
 fail:
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return (rv);
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
