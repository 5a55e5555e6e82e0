/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The in-server background workers: registration, the polling loop with
 *	  exponential backoff, claiming, and crash rescue.
 *
 * Loop: a worker that found jobs polls again at once; an idle one sleeps on
 * its latch for jobq.poll_interval_min, doubling after each empty poll up to
 * jobq.poll_interval_max.  A committed enqueue sets the latch of one idle
 * worker (jobq.c), so pickup does not wait for the backoff, and an idle
 * database is not polled more than once per poll_interval_max per worker.
 *
 * One poll: in one transaction, check that the extension exists, load the
 * registry if it changed, and claim up to jobq.batch_size due jobs of the
 * registered types from one queue; commit.  The claim commits without
 * waiting for its WAL flush, which would otherwise be on the path from a
 * committed enqueue to the handler's start; the claim journal (claims.c)
 * keeps its attempt through a crash of the server, so that a handler that
 * crashes the server still uses up its attempts.  Then dispatch.c runs the
 * batch in transactions of its own.  Committing the claim before any
 * handler runs keeps every job either done with its effects or, after a
 * crash, Processing under a dead holder token or Queued again with its
 * attempt counted.
 *
 * Rescue: each worker claims as "jobq:<slot>:<pid>:<token>" with a token new
 * at every start.  On start, after DROP/CREATE EXTENSION, and after an error
 * in its own SQL (when it also takes a new token), a worker requeues or
 * fails, per attempts, every job held by an in-server token that is no
 * longer alive, and counts the attempts of claims that a crash took back
 * (claims.c): after kill -9 of any backend the postmaster restarts all
 * workers, so orphans are rescued at once, not after jobq.stale_after.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include <malloc.h>

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "dispatch.h"
#include "provider.h"
#include "registry.h"
#include "shared.h"

PGDLLEXPORT void jobq_worker_main(Datum main_arg);

PG_FUNCTION_INFO_V1(jobq_worker_status);

JobqWorker *jobq_worker = NULL;

static JobqWorker worker_state;
static MemoryContext batch_cxt = NULL;
static Oid	seen_extension = InvalidOid;
static Oid	seen_jobs = InvalidOid;	/* jobq.jobs when seen_extension was read */
static bool need_rescue = true;
static bool warned_old_version = false;
static int	queue_rotor = 0;

/* the result of one poll */
#define POLL_WAITING	(-1)	/* extension missing: sleep long */
#define POLL_ERROR		(-2)	/* our own SQL failed: back off */

/* A jobq background process in jobq.database, restarted a second after it exits. */
void
jobq_bgworker_init(BackgroundWorker *bgw, const char *function, const char *type)
{
	memset(bgw, 0, sizeof(*bgw));
	bgw->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw->bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw->bgw_restart_time = 1;
	snprintf(bgw->bgw_library_name, BGW_MAXLEN, "jobq");
	snprintf(bgw->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(bgw->bgw_type, BGW_MAXLEN, "%s", type);
	snprintf(bgw->bgw_name, BGW_MAXLEN, "%s", type);
}

void
jobq_register_workers(void)
{
	BackgroundWorker bgw;

	jobq_bgworker_init(&bgw, "jobq_worker_main", "jobq worker");
	for (int i = 0; i < jobq_workers; i++)
	{
		snprintf(bgw.bgw_name, BGW_MAXLEN, "jobq worker %d", i);
		bgw.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&bgw);
	}
}

/* Take a fresh holder token; jobs held under the old one become orphans. */
static void
new_token(void)
{
	uint64		token;
	JobqWorkerSlot *slot = worker_state.slot;

	if (!pg_strong_random(&token, sizeof(token)))
		token = (uint64) GetCurrentTimestamp() ^ ((uint64) MyProcPid << 32);
	SpinLockAcquire(&jobq_shared->mutex);
	slot->token = token;
	SpinLockRelease(&jobq_shared->mutex);
	jobq_holder_format(worker_state.holder, sizeof(worker_state.holder),
					   worker_state.slotno, MyProcPid, token);
}

static void
set_state(JobqWorkerState state, int poll_delay_ms)
{
	JobqWorkerSlot *slot = worker_state.slot;

	SpinLockAcquire(&jobq_shared->mutex);
	slot->state = state;
	slot->poll_delay_ms = poll_delay_ms;
	SpinLockRelease(&jobq_shared->mutex);
}

/* before_shmem_exit: free the slot, which makes our token dead */
static void
slot_detach(int code, Datum arg)
{
	JobqWorkerSlot *slot = worker_state.slot;

	SpinLockAcquire(&jobq_shared->mutex);
	slot->state = JOBQ_WS_STOPPED;
	slot->pid = 0;
	slot->pgprocno = -1;
	slot->token = 0;
	slot->has_job = false;
	SpinLockRelease(&jobq_shared->mutex);
}

static void
slot_attach(int slotno)
{
	JobqWorkerSlot *slot;

	if (jobq_shared == NULL || slotno < 0 || slotno >= jobq_shared->nslots)
		elog(FATAL, "jobq worker %d has no shared memory slot (of %d)", slotno,
			 jobq_shared ? jobq_shared->nslots : -1);
	slot = &jobq_shared->slots[slotno];
	worker_state.slotno = slotno;
	worker_state.slot = slot;
	SpinLockAcquire(&jobq_shared->mutex);
	slot->pid = MyProcPid;
	slot->pgprocno = MyProc->pgprocno;
	slot->state = JOBQ_WS_STARTING;
	slot->has_job = false;
	slot->jobs_done = 0;
	slot->jobs_failed = 0;
	slot->started_at = GetCurrentTimestamp();
	SpinLockRelease(&jobq_shared->mutex);
	new_token();
	before_shmem_exit(slot_detach, (Datum) 0);
	jobq_worker = &worker_state;
}

/*
 * Is the extension there, at a version with registrations?  Notices
 * DROP/CREATE EXTENSION: caches are dropped and orphans rescued again.
 * The OID of jobq.jobs (two syscache lookups) tells whether anything
 * changed; only then is pg_extension read (an index scan, at every wake-up
 * otherwise).
 */
static bool
extension_ready(void)
{
	Oid			jobs = jobq_relid("jobs");
	Oid			ext;

	if (OidIsValid(jobs) && jobs == seen_jobs && OidIsValid(seen_extension))
		ext = seen_extension;
	else
		ext = get_extension_oid("jobq", true);
	seen_jobs = jobs;

	if (ext != seen_extension)
	{
		seen_extension = ext;
		jobq_registry_invalidate();
		need_rescue = true;
		warned_old_version = false;
	}
	if (!OidIsValid(ext))
		return false;
	if (jobq_registry() == NULL)
	{
		if (!warned_old_version)
			ereport(LOG,
					(errmsg("jobq worker %d: the jobq extension in database \"%s\" is older than its library",
							worker_state.slotno, jobq_database),
					 errhint("Run ALTER EXTENSION jobq UPDATE.")));
		warned_old_version = true;
		return false;
	}
	return true;
}

/*
 * Requeue or fail the jobs of dead in-server holders, and count the attempts
 * of claims lost in a crash; see the file header.  Returns the jobs changed.
 */
static uint64
rescue_orphans(void)
{
	uint64		n;
	uint64		lost;
	bool		isnull;

	if (SPI_execute("SELECT jobq._rescue_orphans()", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "jobq: could not rescue orphaned jobs");
	n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (n > 0)
		ereport(LOG,
				(errmsg("jobq worker %d rescued %d job%s whose worker was lost",
						worker_state.slotno, (int) n, n == 1 ? "" : "s")));
	lost = jobq_claims_rescue();
	if (lost > 0)
		ereport(LOG,
				(errmsg("jobq worker %d counted the attempt of %d job%s whose claim was lost in a crash",
						worker_state.slotno, (int) lost, lost == 1 ? "" : "s")));
	need_rescue = false;
	return n + lost;
}

static int
job_cmp(const void *a, const void *b)
{
	const JobqJob *x = a;
	const JobqJob *y = b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	if (x->run_at != y->run_at)
		return x->run_at < y->run_at ? -1 : 1;
	return memcmp(&x->id, &y->id, sizeof(pg_uuid_t));
}

/* Copy the claimed rows out of SPI_tuptable into batch_cxt, in claim order. */
static JobqJob *
copy_claimed(uint64 n)
{
	MemoryContext old = MemoryContextSwitchTo(batch_cxt);
	JobqJob    *jobs = palloc0(sizeof(JobqJob) * n);
	TupleDesc	desc = SPI_tuptable->tupdesc;

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		JobqJob    *job = &jobs[i];
		bool		isnull;
		Datum		d;

		job->row = datumCopy(SPI_getbinval(tup, desc, 1, &isnull), false, -1);
		job->id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull));
		job->job_type = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		strlcpy(job->trace_id, TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull)),
				sizeof(job->trace_id));
		job->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		job->max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		d = SPI_getbinval(tup, desc, 7, &isnull);
		job->units_total = isnull ? 0 : DatumGetInt32(d);
		job->units_done = DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull));
		job->priority = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));
		job->run_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 10, &isnull));
		job->user_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 11, &isnull));
	}
	qsort(jobs, n, sizeof(JobqJob), job_cmp);
	MemoryContextSwitchTo(old);

	/*
	 * A job claimed now was queued again since any cancel we remember of it
	 * (retry): forget those, or it would be skipped and left Processing.
	 */
	SpinLockAcquire(&jobq_shared->mutex);
	for (uint64 i = 0; i < n; i++)
	{
		for (int k = 0; k < JOBQ_CANCEL_RING; k++)
			if (memcmp(&worker_state.slot->cancelled[k], &jobs[i].id, sizeof(pg_uuid_t)) == 0)
				memset(&worker_state.slot->cancelled[k], 0, sizeof(pg_uuid_t));
		if (memcmp(&worker_state.slot->cancel_job, &jobs[i].id, sizeof(pg_uuid_t)) == 0)
			memset(&worker_state.slot->cancel_job, 0, sizeof(pg_uuid_t));
	}
	SpinLockRelease(&jobq_shared->mutex);
	return jobs;
}

/* One poll: claim a batch and run it.  Returns jobs run, or POLL_WAITING. */
static int
poll_and_run(void)
{
	JobqRegistry *reg;
	JobqJob    *jobs = NULL;
	uint64		n = 0;
	bool		full = false;

	MemoryContextReset(batch_cxt);
	jobq_begin_txn(JOBQ_COMMIT_DEFAULT);
	pgstat_report_activity(STATE_RUNNING, "jobq: polling");

	if (!extension_ready())
	{
		jobq_commit_txn();
		pgstat_report_activity(STATE_IDLE, NULL);
		return POLL_WAITING;
	}
	/*
	 * The claim need not wait for its WAL flush (see the file header), but
	 * what a rescue changed must be on disk before the next crash.
	 */
	if (need_rescue && rescue_orphans() > 0)
		jobq_commit_durably();
	else
		jobq_commit_async();
	reg = jobq_registry();
	for (int k = 0; reg != NULL && k < reg->nqueues && n == 0; k++)
	{
		JobqQueue  *q = &reg->queues[(queue_rotor + k) % reg->nqueues];

		/* a unit job runs for long: a batch of them would wait behind the first */
		int			limit = q->units_only ? 1 : jobq_batch_size;

		n = jobq_claim_rows(q->name, worker_state.holder, limit, q->job_types);
		full = n == (uint64) limit;
		if (n > 0)
			jobs = copy_claimed(n);
	}
	queue_rotor++;
	jobq_prewarm_check();
	jobq_commit_txn();

	/*
	 * A queue just got work: wake what serves it now, not after a batch
	 * that may hold a unit job for minutes.  The call is bounded by the
	 * hook's timeout and its circuit breaker.
	 */
	jobq_prewarm_fire();
	if (n > 0)
	{
		/* a full claim means more work: another worker can take it */
		if (full)
			jobq_wake_idle_worker(worker_state.slotno);
		set_state(JOBQ_WS_RUNNING, 0);
		jobq_claims_write(jobs, (int) n);
		jobq_run_batch(jobs, (int) n);
		jobq_claims_clear();
	}
	else
	{
		/* nothing to run: use the time to delete blobs of purged jobs */
		(void) jobq_delete_purged_blobs();
	}
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return (int) n;
}

/* After an error: is the extension gone from the database? */
static bool
extension_gone(void)
{
	bool		gone;

	StartTransactionCommand();
	gone = !OidIsValid(get_extension_oid("jobq", true));
	CommitTransactionCommand();
	return gone;
}

/*
 * One poll, with errors in the worker's own SQL caught: the transaction is
 * rolled back, the error logged once, and the worker takes a new token so
 * that the jobs it held are rescued like any orphan.
 */
static int
poll_once(void)
{
	volatile int n = 0;
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		n = poll_and_run();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		jobq_dispatch_reset();
		jobq_registry_invalidate();
		jobq_claims_clear();
		new_token();
		need_rescue = true;
		RESUME_INTERRUPTS();

		/* DROP EXTENSION under a poll is not worth more than a debug line */
		edata->elevel = extension_gone() ? DEBUG1 : LOG;
		ThrowErrorData(edata);
		n = POLL_ERROR;
	}
	PG_END_TRY();
	return n;
}

void
jobq_worker_main(Datum main_arg)
{
	int			delay;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	pqsignal(SIGINT, jobq_sigint_handler);
	BackgroundWorkerUnblockSignals();

	/*
	 * Every statement builds and frees executor memory; with glibc's default
	 * trim threshold the heap top is returned to the kernel and faulted in
	 * again thousands of times a second.  Keep it.
	 */
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TOP_PAD, 16 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);

	slot_attach(DatumGetInt32(main_arg));
	jobq_claims_open(worker_state.slotno);
	if (pg_atomic_read_u32(&jobq_shared->parked) != 0)
	{
		set_state(JOBQ_WS_WAITING, 0);
		jobq_wait_while_parked();
		set_state(JOBQ_WS_STARTING, 0);
	}
	BackgroundWorkerInitializeConnection(jobq_database, NULL, 0);
	SetConfigOption("application_name", MyBgworkerEntry->bgw_name, PGC_USERSET, PGC_S_SESSION);

	/*
	 * The worker runs its own queries as superuser: nothing a user can
	 * create may be on their search_path.  Registered functions run with
	 * the database's default search_path instead (call.c).
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
	jobq_timeout_id = RegisterTimeout(USER_TIMEOUT, jobq_timeout_handler);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "jobq batch", ALLOCSET_DEFAULT_SIZES);
	worker_state.cxt = batch_cxt;

	delay = jobq_poll_interval_min_ms;
	for (;;)
	{
		int			n;
		int			wait_ms;
		int			rc;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		delay = Max(Min(delay, jobq_poll_interval_max_ms), jobq_poll_interval_min_ms);

		set_state(JOBQ_WS_IDLE, delay);
		n = poll_once();
		if (n > 0)
		{
			delay = jobq_poll_interval_min_ms;
			continue;
		}
		if (n == POLL_WAITING)
		{
			set_state(JOBQ_WS_WAITING, 0);
			wait_ms = Max(jobq_poll_interval_max_ms, 1000);
		}
		else if (n == POLL_ERROR)
			wait_ms = Max(delay, 1000);
		else
		{
			set_state(JOBQ_WS_IDLE, delay);
			wait_ms = delay;
		}
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   wait_ms, PG_WAIT_EXTENSION);
		/* only a poll that slept its full delay and found nothing doubles it */
		if ((rc & WL_TIMEOUT) && n == 0)
			delay = (int) Min((int64) delay * 2, (int64) jobq_poll_interval_max_ms);
	}
}

static const char *
state_name(JobqWorkerState state)
{
	switch (state)
	{
		case JOBQ_WS_STOPPED:
			return "stopped";
		case JOBQ_WS_STARTING:
			return "starting";
		case JOBQ_WS_WAITING:
			return "waiting for extension";
		case JOBQ_WS_IDLE:
			return "idle";
		case JOBQ_WS_RUNNING:
			return "running";
	}
	return "unknown";
}

/* SQL: jobq._worker_status() behind the view jobq.worker_status */
Datum
jobq_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (jobq_shared == NULL)
		return (Datum) 0;
	for (int i = 0; i < jobq_shared->nslots; i++)
	{
		JobqWorkerSlot copy;
		Datum		values[6];
		bool		nulls[6] = {false};

		SpinLockAcquire(&jobq_shared->mutex);
		copy = jobq_shared->slots[i];
		SpinLockRelease(&jobq_shared->mutex);
		if (copy.state == JOBQ_WS_STOPPED)
			continue;
		values[0] = Int32GetDatum(copy.pid);
		values[1] = CStringGetTextDatum(state_name(copy.state));
		if (copy.has_job)
		{
			pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

			*id = copy.job_id;
			values[2] = UUIDPGetDatum(id);
		}
		else
			nulls[2] = true;
		values[3] = Int32GetDatum(copy.poll_delay_ms);
		values[4] = Int64GetDatum(copy.jobs_done);
		values[5] = TimestampTzGetDatum(copy.started_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
