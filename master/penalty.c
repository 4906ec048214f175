/*
 * Failed logins per client address, and the delay that answers them:
 * it grows with the failures of the connection and of the address, so
 * guessing passwords gets slower however the guesses are spread.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "log.h"
#include "master.h"
#include "pop3d.h"

#define PENALTY_BUCKETS		1024
#define PENALTY_MAX		65536		/* addresses remembered */
#define PENALTY_WINDOW		(15 * 60)	/* seconds a failure counts */
#define PENALTY_CAP_MS		15000
#define PENALTY_PER_ADDR	10		/* failures per step */

struct penalty {
	LIST_ENTRY(penalty)	 entry;
	char			 addr[POP3D_ADDRLEN];
	uint32_t		 failures;
	time_t			 last;
};

static LIST_HEAD(, penalty)	 buckets[PENALTY_BUCKETS];
static size_t			 npenalties;

static unsigned int	 addr_hash(const char *);
static struct penalty	*penalty_get(const char *, time_t, int);
static void		 penalty_expire(time_t);

static unsigned int
addr_hash(const char *s)
{
	unsigned int	 h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return (h % PENALTY_BUCKETS);
}

static struct penalty *
penalty_get(const char *addr, time_t now, int create)
{
	struct penalty	*p;
	unsigned int	 h = addr_hash(addr);

	LIST_FOREACH(p, &buckets[h], entry)
		if (strcmp(p->addr, addr) == 0)
			break;
	if (p != NULL && now - p->last > PENALTY_WINDOW)
		p->failures = 0;
	if (p != NULL || !create)
		return (p);
	if (npenalties >= PENALTY_MAX)
		penalty_expire(now);
	if (npenalties >= PENALTY_MAX || (p = calloc(1, sizeof(*p))) == NULL)
		return (NULL);
	strlcpy(p->addr, addr, sizeof(p->addr));
	LIST_INSERT_HEAD(&buckets[h], p, entry);
	npenalties++;
	return (p);
}

/* Forget addresses without recent failures; under a flood, all. */
static void
penalty_expire(time_t now)
{
	struct penalty	*p, *next;
	size_t		 i;
	int		 all = 0;

 again:
	for (i = 0; i < PENALTY_BUCKETS; i++) {
		for (p = LIST_FIRST(&buckets[i]); p != NULL; p = next) {
			next = LIST_NEXT(p, entry);
			if (all || now - p->last > PENALTY_WINDOW) {
				LIST_REMOVE(p, entry);
				free(p);
				npenalties--;
			}
		}
	}
	if (npenalties >= PENALTY_MAX && !all) {
		log_warnx("failed logins from over %d addresses; "
		    "forgetting them", PENALTY_MAX);
		all = 1;
		goto again;
	}
}

/*
 * Count a failure of peer's connection, which had failed before
 * conn_failures times, and return how long its reply should wait.
 */
uint32_t
penalty_fail(const char *peer, uint32_t conn_failures)
{
	struct penalty	*p;
	char		 addr[POP3D_ADDRLEN];
	time_t		 now = time(NULL);
	uint64_t	 ms, base = (uint64_t)conf->failure_delay * 1000;
	uint32_t	 addr_failures = 0;

	addr_host(peer, addr, sizeof(addr));
	if ((p = penalty_get(addr, now, 1)) != NULL) {
		addr_failures = p->failures;
		if (p->failures < UINT32_MAX)
			p->failures++;
		p->last = now;
	}
	if (conn_failures > 8)
		conn_failures = 8;
	ms = base * (1ULL << conn_failures) +
	    base * (addr_failures / PENALTY_PER_ADDR);
	return (ms > PENALTY_CAP_MS ? PENALTY_CAP_MS : ms);
}
