/*
 * Counting the sizes of many Maildir files at once: what a session does
 * for every message it has not seen before, 100,000 of them the first
 * time.  The work is open(2), read(2) and close(2) in the kernel, which
 * runs on every core, so a few threads share it.  They touch only the
 * messages they take and the counter that hands them out.
 */

#include <sys/types.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "mailbox.h"

#define MEASURE_THREADS	4	/* past this the disk is the limit */
#define MEASURE_BATCH	64	/* messages taken at a time */
#define MEASURE_ALONE	512	/* fewer are not worth a thread */

struct measure {
	struct msg	**list;
	int		 *errs;
	size_t		  n;
	atomic_size_t	  next;
};

static int	 measure_cpus = 1;

static void *
measure_run(void *arg)
{
	struct measure	*ms = arg;
	struct msg	*m;
	size_t		 i, end;

	for (;;) {
		i = atomic_fetch_add(&ms->next, MEASURE_BATCH);
		if (i >= ms->n)
			break;
		end = ms->n - i < MEASURE_BATCH ? ms->n : i + MEASURE_BATCH;
		for (; i < end; i++) {
			m = ms->list[i];
			ms->errs[i] = maildir_size(m, &m->size, &m->fsize) ==
			    -1 ? errno : 0;
		}
	}
	return (NULL);
}

/* Before the chroot: how many cores there are is read from /sys. */
void
measure_init(void)
{
	long	 n;

	if ((n = sysconf(_SC_NPROCESSORS_ONLN)) > 1)
		measure_cpus = n < MEASURE_THREADS ? n : MEASURE_THREADS;
}

/*
 * Size every message of list; errs[i] gets the errno of one that could
 * not be read, or 0.  A thread that cannot start leaves its share to
 * the others: only slower.
 */
void
measure_sizes(struct msg **list, size_t n, int *errs)
{
	pthread_t	 tids[MEASURE_THREADS];
	struct measure	 ms;
	int		 i, nthreads = 0, want;

	ms.list = list;
	ms.errs = errs;
	ms.n = n;
	atomic_init(&ms.next, 0);

	want = n < MEASURE_ALONE ? 0 : measure_cpus - 1;
	for (i = 0; i < want; i++) {
		if ((errno = pthread_create(&tids[nthreads], NULL,
		    measure_run, &ms)) != 0) {
			log_warn("pthread_create");
			break;
		}
		nthreads++;
	}
	measure_run(&ms);
	for (i = 0; i < nthreads; i++)
		if ((errno = pthread_join(tids[i], NULL)) != 0)
			fatal("pthread_join");
}
