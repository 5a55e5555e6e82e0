/*-------------------------------------------------------------------------
 *
 * dispatch.h
 *	  What the worker loop hands to the code that runs jobs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_DISPATCH_H
#define JOBQ_DISPATCH_H

#include <signal.h>

#include "utils/timeout.h"

#include "registry.h"
#include "shared.h"

/* A claimed job, copied out of the claim's SPI result. */
typedef struct JobqJob
{
	pg_uuid_t	id;
	pg_uuid_t	user_id;
	char	   *job_type;
	char		trace_id[JOBQ_TRACE_ID_LEN + 1];
	int			attempts;
	int			max_attempts;
	int			units_total;	/* 0 for whole jobs */
	int			units_done;
	int			priority;
	TimestampTz run_at;
	Datum		row;			/* the whole row, type jobq.jobs */
} JobqJob;

/* The running worker: its slot and the holder name it claims with. */
typedef struct JobqWorker
{
	int			slotno;
	JobqWorkerSlot *slot;
	char		holder[64];
	MemoryContext cxt;			/* reset at every poll: jobs' memory lives below it */
} JobqWorker;

extern JobqWorker *jobq_worker;
extern TimeoutId jobq_timeout_id;	/* the per-type handler timeout */

/* How a worker's transaction commits: see jobq_begin_txn(). */
typedef enum JobqCommit
{
	JOBQ_COMMIT_DEFAULT,		/* as the server says (synchronous_commit) */
	JOBQ_COMMIT_ASYNC,			/* without waiting for the WAL flush */
	JOBQ_COMMIT_DURABLE			/* on the local disk at least */
} JobqCommit;

/* dispatch.c */
extern void jobq_begin_txn(JobqCommit commit);
extern void jobq_commit_txn(void);
extern void jobq_run_batch(JobqJob *jobs, int njobs);
extern void jobq_job_begin(JobqJob *job);
extern void jobq_job_end(void);
extern void jobq_count_jobs(int done, int failed);
extern bool jobq_job_cancelled(JobqJob *job);
extern void jobq_handler_begin(int64 timeout_ms);
extern void jobq_handler_end(void);
extern bool jobq_record_job_error(int64 timeout_ms, JobqJob *job, ErrorData *edata,
								  int checkpoints);

/* claims.c: the claim journal */
extern void jobq_claims_open(int slotno);
extern void jobq_claims_write(const JobqJob *jobs, int n);
extern void jobq_claims_clear(void);
extern uint64 jobq_claims_rescue(void);

/* units.c: unit jobs and provider jobs, run between transactions */
extern void jobq_run_solo_job(JobqJob *job, JobqHandlerKind kind);
extern int	jobq_delete_purged_blobs(void);
extern void jobq_sigint_handler(SIGNAL_ARGS);
extern void jobq_timeout_handler(void);
extern void jobq_dispatch_reset(void);

#endif							/* JOBQ_DISPATCH_H */
