/*-------------------------------------------------------------------------
 *
 * dispatch.c
 *	  Running a claimed batch: each whole-job handler in a subtransaction,
 *	  all the batch's completions in one UPDATE, one commit for many jobs.
 *
 * Ordering, inside one batch transaction:
 *	  for each job:  BEGIN SUBTRANSACTION; run the handler as the
 *					 registering role; RELEASE (keep its result) or, on error,
 *					 ROLLBACK and record the failure (retry rules of fail)
 *	  then:			 one UPDATE completes every successful job, re-checking
 *					 that each is still Processing under our token
 *	  if one is not (cancelled or rescued meanwhile): ROLLBACK the whole
 *					 transaction and run the batch again without it
 * So a SQL handler's writes commit exactly when its job's completion
 * commits, and cancel() never waits for a handler: it touches the row while
 * the batch has not.  A job cancelled while it waits in a claimed batch is
 * skipped (workers remember the cancels of jobs they hold).  The batch
 * commits after jobq.batch_time at the latest, and a job type whose
 * handlers are slow starts a batch of its own, so a slow handler never
 * holds finished jobs back for long.
 *
 * Interrupting a handler: cancel() and the per-type timeout both end in a
 * query cancel, but only while a handler runs: the SIGINT handler and the
 * timeout handler below set QueryCancelPending only when `in_handler` is
 * set, and the worker clears it when the handler returns, so a late signal
 * can never abort the worker's own bookkeeping.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "dispatch.h"
#include "store.h"

TimeoutId	jobq_timeout_id = MAX_TIMEOUTS;

/* Is job id among the cancels this worker's slot has seen? */
static bool
cancelled_now(const pg_uuid_t *id)
{
	JobqWorkerSlot *slot = jobq_worker->slot;
	bool		cancelled;

	SpinLockAcquire(&jobq_shared->mutex);
	cancelled = memcmp(&slot->cancel_job, id, sizeof(pg_uuid_t)) == 0;
	for (int i = 0; i < JOBQ_CANCEL_RING && !cancelled; i++)
		cancelled = memcmp(&slot->cancelled[i], id, sizeof(pg_uuid_t)) == 0;
	SpinLockRelease(&jobq_shared->mutex);
	return cancelled;
}

/* read by the signal handlers */
static volatile sig_atomic_t in_handler = false;
static volatile sig_atomic_t cancel_hit = false;
static volatile sig_atomic_t timeout_hit = false;
static pg_uuid_t running_job;

static const char *release_sql =
"UPDATE jobq.jobs SET status = 0, attempts = attempts - 1, locked_by = NULL"
" WHERE id = $1 AND status = 1 AND locked_by = $2";

/* SIGINT: cancel the running handler (jobq.cancel or pg_cancel_backend) */
void
jobq_sigint_handler(SIGNAL_ARGS)
{
	int			save_errno = errno;

	if (in_handler)
	{
		if (jobq_worker != NULL &&
			memcmp(&jobq_worker->slot->cancel_job, &running_job, sizeof(pg_uuid_t)) == 0)
			cancel_hit = true;
		InterruptPending = true;
		QueryCancelPending = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
}

/* USER_TIMEOUT: the job type's timeout expired */
void
jobq_timeout_handler(void)
{
	timeout_hit = true;
	if (in_handler)
	{
		InterruptPending = true;
		QueryCancelPending = true;
	}
	SetLatch(MyLatch);
}

void
jobq_handler_begin(int64 timeout_ms)
{
	cancel_hit = false;
	timeout_hit = false;
	pg_compiler_barrier();
	in_handler = true;
	pg_memory_barrier();
	/* a cancel that came after job_begin but before in_handler was set */
	if (jobq_worker != NULL && cancelled_now(&running_job))
	{
		cancel_hit = true;
		InterruptPending = true;
		QueryCancelPending = true;
	}
	/* without a timeout of its own, a handler gets jobq.stale_after */
	if (timeout_ms <= 0)
		timeout_ms = (int64) jobq_stale_after_s * 1000;
	if (timeout_ms > 0)
		enable_timeout_after(jobq_timeout_id, (int) Min(timeout_ms, (int64) INT_MAX));
}

void
jobq_handler_end(void)
{
	in_handler = false;
	pg_compiler_barrier();
	if (jobq_timeout_id < MAX_TIMEOUTS)
		disable_timeout(jobq_timeout_id, false);
	/* a cancel that raced with the handler's return is moot now */
	QueryCancelPending = false;
}

/* After an error in the worker's own code: no handler is running any more. */
void
jobq_dispatch_reset(void)
{
	jobq_handler_end();
	jobq_registry_unpin_all();
	if (jobq_worker != NULL)
	{
		SpinLockAcquire(&jobq_shared->mutex);
		jobq_worker->slot->has_job = false;
		SpinLockRelease(&jobq_shared->mutex);
	}
}

/* Publish the job this worker runs now (for cancel and worker_status). */
void
jobq_job_begin(JobqJob *job)
{
	char		idbuf[UUID_LEN * 2 + 5];
	JobqWorkerSlot *slot = jobq_worker->slot;

	running_job = job->id;
	SpinLockAcquire(&jobq_shared->mutex);
	slot->has_job = true;
	slot->job_id = job->id;
	memset(&slot->cancel_job, 0, sizeof(pg_uuid_t));
	SpinLockRelease(&jobq_shared->mutex);

	jobq_uuid_to_cstring(&job->id, idbuf);
	SetConfigOption("jobq.job_id", idbuf, PGC_USERSET, PGC_S_SESSION);
	SetConfigOption("jobq.trace_id", job->trace_id, PGC_USERSET, PGC_S_SESSION);
}

void
jobq_job_end(void)
{
	JobqWorkerSlot *slot = jobq_worker->slot;

	SpinLockAcquire(&jobq_shared->mutex);
	slot->has_job = false;
	SpinLockRelease(&jobq_shared->mutex);
}

/* Count finished jobs in this worker's slot, once they are committed. */
void
jobq_count_jobs(int done, int failed)
{
	JobqWorkerSlot *slot = jobq_worker->slot;

	SpinLockAcquire(&jobq_shared->mutex);
	slot->jobs_done += done;
	slot->jobs_failed += failed;
	SpinLockRelease(&jobq_shared->mutex);
}

/* Log an unexpected failure once, with the job and its trace. */
static bool
unexpected_error(ErrorData *edata)
{
	int			class = ERRCODE_TO_CATEGORY(edata->sqlerrcode);

	return class == ERRCODE_TO_CATEGORY(ERRCODE_INTERNAL_ERROR) ||
		class == ERRCODE_TO_CATEGORY(ERRCODE_INSUFFICIENT_RESOURCES) ||
		class == ERRCODE_TO_CATEGORY(ERRCODE_SYSTEM_ERROR);
}

/* Has a committed cancel() stopped this job, running or waiting in our batch? */
bool
jobq_job_cancelled(JobqJob *job)
{
	return cancelled_now(&job->id);
}

/*
 * Record why an attempt failed, in the current transaction.  The error
 * code follows what happened: cancel, timeout, a store that is down, bad
 * data (SQLSTATE classes 22 and 23: retrying cannot help), an output over
 * the size limits (no retry either), or any other handler error.
 */
bool
jobq_record_job_error(int64 timeout_ms, JobqJob *job, ErrorData *edata, int checkpoints)
{
	bool		requeued = false;

	const char *code = "HandlerError";
	char	   *message = edata->message ? edata->message : "handler failed";
	bool		retry = true;
	int			class = ERRCODE_TO_CATEGORY(edata->sqlerrcode);

	if (cancel_hit || jobq_job_cancelled(job))
	{
		code = "Cancelled";
		retry = false;
	}
	else if (timeout_hit)
	{
		code = "Timeout";
		message = psprintf("handler of job type \"%s\" ran longer than its timeout of %lld ms",
						   job->job_type,
						   (long long) (timeout_ms > 0 ? timeout_ms : (int64) jobq_stale_after_s * 1000));
	}
	else if (edata->sqlerrcode == JOBQ_ERRCODE_STORE)
	{
		code = "StoreError";
		ereport(LOG,
				(errmsg("jobq: job %s: %s", DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&job->id))),
						message),
				 errcontext("jobq job %s, trace %s",
							DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&job->id))),
							job->trace_id)));
	}
	else if (edata->sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED)
	{
		code = "PayloadTooLarge";
		retry = false;
	}
	else if (class == ERRCODE_TO_CATEGORY(ERRCODE_DATA_EXCEPTION) ||
			 class == ERRCODE_TO_CATEGORY(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION))
	{
		code = "ValidationError";
		retry = false;
	}
	else if (unexpected_error(edata))
	{
		code = "InternalError";
		ereport(WARNING,
				(errmsg("jobq: job %s of type \"%s\" failed: %s",
						DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&job->id))),
						job->job_type, message),
				 errcontext("jobq job %s, trace %s",
							DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&job->id))),
							job->trace_id)));
	}

	/* a cancelled job is already Cancelled: this changes nothing then */
	jobq_record_failure(&job->id, jobq_worker->holder, job->trace_id, job->attempts,
						job->max_attempts, checkpoints, code, 0, message, retry, &requeued);
	return requeued;
}

/*
 * Run a whole-job handler in a subtransaction.  On success its result is
 * kept in `keep` for the batch's completion; on failure the failure is
 * recorded at once (retry rules of fail) and false returned.  Also keeps
 * a moving average of how long the job type's handlers take.
 */
static bool
run_handler(JobqRegistry *registry, JobqRegistration *reg, JobqJob *job, MemoryContext keep,
			Datum *result, bool *isnull)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;
	TimestampTz t0 = GetCurrentTimestamp();

	jobq_job_begin(job);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		Datum		out;

		if (reg->handler_call == NULL)
		{
			Oid			argtypes[1];

			argtypes[0] = registry->jobs_type;
			reg->handler_call = jobq_callable(reg->handler, 1, argtypes, registry->cxt);
		}
		out = jobq_call(reg->handler_call, reg->owner, true, reg->timeout_ms, &job->row, isnull);
		if (!*isnull)
		{
			MemoryContext old;

			jobq_check_payload(out, "handler result");
			old = MemoryContextSwitchTo(keep);
			*result = datumCopy(out, false, -1);
			MemoryContextSwitchTo(old);
		}
		/* only a call through SPI left a result of its own to free */
		if (reg->handler_call->via_spi)
		{
			SPI_freetuptable(SPI_tuptable);
			SPI_tuptable = NULL;
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		jobq_handler_end();
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();

	reg->avg_us = (reg->avg_us * 7 + (GetCurrentTimestamp() - t0)) / 8;
	if (edata != NULL)
	{
		jobq_record_job_error(reg->timeout_ms, job, edata, job->units_done);
		FreeErrorData(edata);
	}
	jobq_job_end();
	return edata == NULL;
}

/* Give back a job whose type was unregistered after it was claimed. */
static void
release_job(JobqJob *job)
{
	Datum		values[2] = {UUIDPGetDatum(&job->id), CStringGetTextDatum(jobq_worker->holder)};

	if (SPI_execute_with_args(release_sql, 2, (Oid[]) {UUIDOID, TEXTOID}, values, NULL,
							  false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "jobq: could not release job");
}

/*
 * A worker's own transaction, with SPI and a snapshot, stamped now; `commit`
 * says whether it may commit without waiting for its flush.
 */
void
jobq_begin_txn(JobqCommit commit)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (commit == JOBQ_COMMIT_ASYNC)
		jobq_commit_async();
	else if (commit == JOBQ_COMMIT_DURABLE)
		jobq_commit_durably();
}

void
jobq_commit_txn(void)
{
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

/* A handler type this slow runs at the start of a batch transaction. */
#define SLOW_HANDLER_US ((int64) jobq_batch_time_ms * 250)

/* Give back, in one transaction, the claimed jobs not yet started. */
static void
release_rest(JobqJob *jobs, int n, bool *gone)
{
	jobq_begin_txn(JOBQ_COMMIT_DEFAULT);
	for (int i = 0; i < n; i++)
		if (!gone[i])
			release_job(&jobs[i]);
	jobq_wake_at_commit();		/* an idle worker takes them at once */
	jobq_commit_txn();
}

/*
 * Run a claimed batch; see the file header for the transaction layout.
 *
 * Each batch transaction runs handlers one after another, each in its own
 * subtransaction, and then completes all the successful ones with one
 * UPDATE that re-checks that every job is still Processing under our
 * token.  If one is not (cancelled or rescued meanwhile), the whole
 * transaction is rolled back, so no handler's writes survive without their
 * job's completion, and it runs again without that job.
 */
void
jobq_run_batch(JobqJob *jobs, int njobs)
{
	int			start = 0;
	int			redo = 0;
	MemoryContext batch = AllocSetContextCreate(jobq_worker->cxt, "jobq batch run",
												ALLOCSET_DEFAULT_SIZES);
	MemoryContext keep = AllocSetContextCreate(batch, "jobq batch results",
											   ALLOCSET_DEFAULT_SIZES);
	bool	   *gone = MemoryContextAllocZero(batch, sizeof(bool) * njobs);
	Datum	   *ids = MemoryContextAlloc(batch, sizeof(Datum) * njobs);
	Datum	   *results = MemoryContextAlloc(batch, sizeof(Datum) * njobs);
	bool	   *result_nulls = MemoryContextAlloc(batch, sizeof(bool) * njobs);

	TimestampTz batch_started = GetCurrentTimestamp();

	pgstat_report_activity(STATE_RUNNING, "jobq: running jobs");
	jobq_registry_pin();
	while (start < njobs)
	{
		TimestampTz started;
		JobqRegistry *reg;
		JobqJob    *solo = NULL;
		JobqRegistration *solo_reg = NULL;
		int			i = start;
		int			ndone = 0;
		int			nfailed = 0;
		uint64		completed;

		MemoryContextReset(keep);
		jobq_begin_txn(JOBQ_COMMIT_DEFAULT);
		reg = jobq_registry();
		started = GetCurrentTimestamp();
		while (i < njobs)
		{
			JobqJob    *job = &jobs[i];
			JobqRegistration *r;

			if (gone[i])
			{
				i++;
				continue;
			}
			r = jobq_registration(reg, job->job_type);
			if (r != NULL && r->kind != JOBQ_KIND_HANDLER)
			{
				/* unit and provider jobs do I/O: they run between transactions */
				if (i == start)
				{
					solo = job;
					solo_reg = r;
					i++;
				}
				break;
			}
			/* a slow handler would hold the finished ones back: commit them first */
			if (r != NULL && i > start && r->avg_us > SLOW_HANDLER_US)
				break;
			i++;
			CHECK_FOR_INTERRUPTS();
			if (jobq_job_cancelled(job))
				gone[i - 1] = true;		/* cancelled while it waited in the batch */
			else if (r == NULL)
				release_job(job);
			else if (run_handler(reg, r, job, keep, &results[ndone], &result_nulls[ndone]))
				ids[ndone++] = UUIDPGetDatum(&job->id);
			else
				nfailed++;
			if (TimestampDifferenceExceeds(started, GetCurrentTimestamp(), jobq_batch_time_ms))
				break;
		}

		completed = ndone ? jobq_complete_held_many(ids, results, result_nulls, ndone,
													jobq_worker->holder) : 0;
		if (completed < (uint64) ndone)
		{
			/* some job stopped being ours: note which, undo it all, run again */
			for (int k = 0; k < ndone; k++)
			{
				bool		found = false;

				for (uint64 m = 0; m < completed && !found; m++)
				{
					bool		isnull;

					found = memcmp(DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[m],
																 SPI_tuptable->tupdesc, 1, &isnull)),
								   DatumGetPointer(ids[k]), UUID_LEN) == 0;
				}
				if (!found)
					for (int j = start; j < i; j++)
						if (memcmp(&jobs[j].id, DatumGetPointer(ids[k]), UUID_LEN) == 0)
							gone[j] = true;
			}
			PopActiveSnapshot();
			SPI_finish();
			AbortCurrentTransaction();
			if (++redo > njobs)
				elog(ERROR, "jobq: batch kept changing under the worker");
			continue;
		}
		jobq_commit_txn();
		jobq_count_jobs(ndone, nfailed);
		start = i;
		if (solo != NULL)
		{
			TimestampTz t0 = GetCurrentTimestamp();

			/*
			 * A unit job, or a provider job of a slow type, would hold the
			 * rest of the batch for its whole run: give the rest back first.
			 */
			if (start < njobs &&
				(solo_reg->kind == JOBQ_KIND_UNITS || solo_reg->avg_us > SLOW_HANDLER_US))
			{
				release_rest(jobs + start, njobs - start, gone + start);
				start = njobs;
			}
			jobq_run_solo_job(solo, solo_reg->kind);
			solo_reg->avg_us = (solo_reg->avg_us * 7 + (GetCurrentTimestamp() - t0)) / 8;
		}
		/*
		 * Slow handlers and short provider jobs still add up: past ten
		 * batch times, give the rest back to workers that are free.
		 */
		if (start < njobs &&
			TimestampDifferenceExceeds(batch_started, GetCurrentTimestamp(),
									   Min(jobq_batch_time_ms * 10, INT_MAX / 2)))
		{
			release_rest(jobs + start, njobs - start, gone + start);
			break;
		}
	}
	jobq_registry_unpin();
	MemoryContextDelete(batch);
	SetConfigOption("jobq.job_id", "", PGC_USERSET, PGC_S_SESSION);
	SetConfigOption("jobq.trace_id", "", PGC_USERSET, PGC_S_SESSION);
}
