/*
 * A short-lived cache of successful password checks.  Mail clients poll
 * every few minutes with the same password, and each check costs tens
 * of milliseconds of crypt(3) on purpose; the cache answers a repeat at
 * once.  It keeps no password: a keyed SHA-256 digest of the user, the
 * password and the stored hash, under a key made at start.  Any change
 * of the stored hash misses, and a reload empties it.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sha2.h>
#include <time.h>

#include "log.h"
#include "master.h"
#include "pop3d.h"

#define CACHE_BUCKETS		4096
#define CACHE_MAX		65536
#define HMAC_BLOCK		64

struct cache_entry {
	LIST_ENTRY(cache_entry)	 entry;
	uint8_t			 digest[SHA256_DIGEST_LENGTH];
	time_t			 expires;
};

static LIST_HEAD(, cache_entry)	 buckets[CACHE_BUCKETS];
static size_t			 nentries;
static uint8_t			 cache_key[HMAC_BLOCK];
static int			 keyed;

static void	 cache_expire(time_t, int);

/* HMAC-SHA256 (RFC 2104) of user, password and hash; thread safe. */
void
auth_cache_digest(const char *user, const char *pass, const char *hash,
    uint8_t *out)
{
	SHA2_CTX	 ctx;
	uint8_t		 pad[HMAC_BLOCK], inner[SHA256_DIGEST_LENGTH];
	size_t		 i;

	for (i = 0; i < HMAC_BLOCK; i++)
		pad[i] = cache_key[i] ^ 0x36;
	SHA256Init(&ctx);
	SHA256Update(&ctx, pad, sizeof(pad));
	SHA256Update(&ctx, (const uint8_t *)user, strlen(user) + 1);
	SHA256Update(&ctx, (const uint8_t *)pass, strlen(pass) + 1);
	SHA256Update(&ctx, (const uint8_t *)hash, strlen(hash));
	SHA256Final(inner, &ctx);
	for (i = 0; i < HMAC_BLOCK; i++)
		pad[i] = cache_key[i] ^ 0x5c;
	SHA256Init(&ctx);
	SHA256Update(&ctx, pad, sizeof(pad));
	SHA256Update(&ctx, inner, sizeof(inner));
	SHA256Final(out, &ctx);
	explicit_bzero(pad, sizeof(pad));
	explicit_bzero(inner, sizeof(inner));
	explicit_bzero(&ctx, sizeof(ctx));
}

void
auth_cache_init(void)
{
	arc4random_buf(cache_key, sizeof(cache_key));
	keyed = 1;
}

/* 1 if this digest was a good password within the cache's lifetime. */
int
auth_cache_hit(const uint8_t *digest)
{
	struct cache_entry	*e;
	uint32_t		 h;

	if (!keyed || conf->auth_cache == 0)
		return (0);
	memcpy(&h, digest, sizeof(h));
	LIST_FOREACH(e, &buckets[h % CACHE_BUCKETS], entry)
		if (memcmp(e->digest, digest, sizeof(e->digest)) == 0)
			return (e->expires > time(NULL));
	return (0);
}

void
auth_cache_add(const uint8_t *digest)
{
	struct cache_entry	*e;
	time_t			 now = time(NULL);
	uint32_t		 h;

	if (!keyed || conf->auth_cache == 0)
		return;
	memcpy(&h, digest, sizeof(h));
	LIST_FOREACH(e, &buckets[h % CACHE_BUCKETS], entry)
		if (memcmp(e->digest, digest, sizeof(e->digest)) == 0)
			break;
	if (e == NULL) {
		if (nentries >= CACHE_MAX)
			cache_expire(now, 0);
		if (nentries >= CACHE_MAX)
			cache_expire(now, 1);
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return;
		memcpy(e->digest, digest, sizeof(e->digest));
		LIST_INSERT_HEAD(&buckets[h % CACHE_BUCKETS], e, entry);
		nentries++;
	}
	e->expires = now + conf->auth_cache;
}

/* Drop what has expired; with all set, everything. */
static void
cache_expire(time_t now, int all)
{
	struct cache_entry	*e, *next;
	size_t			 i;

	for (i = 0; i < CACHE_BUCKETS; i++) {
		for (e = LIST_FIRST(&buckets[i]); e != NULL; e = next) {
			next = LIST_NEXT(e, entry);
			if (all || e->expires <= now) {
				LIST_REMOVE(e, entry);
				freezero(e, sizeof(*e));
				nentries--;
			}
		}
	}
}

void
auth_cache_flush(void)
{
	cache_expire(0, 1);
}
