/*-------------------------------------------------------------------------
 *
 * shared.h
 *	  jobq's shared memory: one slot per in-server worker.
 *
 * Locking: JobqShared.mutex guards every slot field written after start-up.
 * A worker writes its own slot; other backends read slots (worker_status,
 * wake-up, holder liveness) and write only cancel_job.  Two fields are read
 * without the lock on purpose: `state` and `pgprocno` for a wake-up (a stale
 * read costs one spurious or one missed wake-up; a missed one is covered by
 * the worker's own poll), and `cancel_job` from the worker's signal handler.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_SHARED_H
#define JOBQ_SHARED_H

#include "port/atomics.h"
#include "storage/spin.h"

#define JOBQ_MAX_WORKERS	64
#define JOBQ_CANCEL_RING	16	/* recent cancels of jobs a worker holds */

/* What a worker is doing: shown by jobq.worker_status. */
typedef enum JobqWorkerState
{
	JOBQ_WS_STOPPED = 0,		/* slot unused */
	JOBQ_WS_STARTING,
	JOBQ_WS_WAITING,			/* extension not (yet) in jobq.database */
	JOBQ_WS_IDLE,				/* polling or sleeping between polls */
	JOBQ_WS_RUNNING				/* running a batch of jobs */
} JobqWorkerState;

typedef struct JobqWorkerSlot
{
	pid_t		pid;
	int			pgprocno;		/* for SetLatch; -1 when stopped */
	uint64		token;			/* new at every start of this worker */
	JobqWorkerState state;
	bool		has_job;
	pg_uuid_t	job_id;			/* job whose handler runs now, if has_job */
	pg_uuid_t	cancel_job;		/* set by a committed cancel() of job_id */
	pg_uuid_t	cancelled[JOBQ_CANCEL_RING];	/* cancelled jobs it holds, waiting */
	uint32		cancelled_next;
	int			poll_delay_ms;
	int64		jobs_done;
	int64		jobs_failed;
	TimestampTz started_at;
} JobqWorkerSlot;

/* Server-wide counters for jobq.metrics(), since the last shared memory reset. */
typedef enum JobqCounter
{
	JOBQ_C_ENQUEUED,
	JOBQ_C_COMPLETED,
	JOBQ_C_ATTEMPTS_FAILED,		/* every failed attempt, retried or not */
	JOBQ_C_FAILED,				/* jobs that ended Failed */
	JOBQ_C_CANCELLED,
	JOBQ_C_RETRIED,
	JOBQ_C_CHECKPOINTS,			/* uploads that finished */
	JOBQ_C_CHECKPOINT_BYTES,
	JOBQ_C_CHECKPOINT_FAILURES, /* store requests that failed for good */
	JOBQ_NCOUNTERS
} JobqCounter;

typedef struct JobqShared
{
	slock_t		mutex;
	uint64		incarnation;	/* random, new at each shared memory reset */
	pg_atomic_uint32 registry_generation;	/* bumped when registrations change */
	pg_atomic_uint32 parked;	/* jobq.database dropped or busy: see dropdb.c */
	pg_atomic_uint64 counters[JOBQ_NCOUNTERS];
	int			nslots;
	JobqWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} JobqShared;

extern JobqShared *jobq_shared;

/* shared.c */
extern Size jobq_shared_size(void);
extern void jobq_shared_init(JobqShared *shared);
extern void jobq_holder_format(char *out, size_t outlen, int slotno, pid_t pid, uint64 token);
extern bool jobq_holder_is_worker(const char *holder);
extern bool jobq_holder_alive(const char *holder);
extern void jobq_interrupt_job(const char *holder, const pg_uuid_t *job_id);

/* jobq.c */
extern void jobq_count(JobqCounter counter, int64 n);	/* at commit */
extern void jobq_count_now(JobqCounter counter, int64 n);

/* worker.c */
extern void jobq_register_workers(void);
struct BackgroundWorker;
extern void jobq_bgworker_init(struct BackgroundWorker *bgw, const char *function,
							   const char *type);

#endif							/* JOBQ_SHARED_H */
