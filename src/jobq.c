/*-------------------------------------------------------------------------
 *
 * jobq.c
 *	  Module load: settings, shared memory, worker registration, and the
 *	  actions that must wait for a transaction's commit.
 *
 * Shared memory holds one slot per in-server worker.  A worker owns its slot
 * (pid, latch, token, state, current job); other backends read it to wake an
 * idle worker after an enqueue commits, to interrupt a handler whose job was
 * cancelled, and to tell whether the holder named in a job's locked_by is
 * still alive.  JobqShared.mutex (a spinlock) guards every slot field that is
 * written after start-up; critical sections are a few loads and stores.
 *
 * Commit-time actions: enqueue, retry and a requeueing fail() ask for a
 * wake-up, cancel() of a running job asks for an interrupt.  Both are queued
 * in backend-local state and carried out by an XactCallback at
 * XACT_EVENT_COMMIT, after the commit is visible, so a woken worker always
 * sees the new job and a cancelled handler's job is already Cancelled.  They
 * are dropped on abort, and those queued in an aborted subtransaction are
 * dropped with it.  NOTIFY is deliberately not used for wake-ups: PostgreSQL
 * serializes every committing transaction that sent one.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include <signal.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "provider.h"
#include "shared.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* ---- settings ---- */
char	   *jobq_database = NULL;
int			jobq_workers = 2;
int			jobq_poll_interval_min_ms = 10;
int			jobq_poll_interval_max_ms = 5000;
int			jobq_notify_interval_ms = 5;
int			jobq_stale_after_s = 300;
int			jobq_default_max_attempts = 3;
int			jobq_max_payload_bytes = 1024 * 1024;
int			jobq_max_units = 100000;
int			jobq_max_checkpoint_bytes = 64 * 1024 * 1024;
int			jobq_retry_delay_ms = 1000;
int			jobq_retry_delay_max_ms = 3600 * 1000;
int			jobq_batch_size = 100;
int			jobq_batch_time_ms = 100;
char	   *jobq_user_id_setting = NULL;
char	   *jobq_traceparent_setting = NULL;
char	   *jobq_auth_token_setting = NULL;
static char *jobq_job_id_setting = NULL;
static char *jobq_trace_id_setting = NULL;

/* ---- shared memory ---- */
JobqShared *jobq_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* ---- commit-time actions of this backend ---- */
typedef struct PendingCancel
{
	int			nest_level;
	char		holder[JOBQ_NAME_MAX + 1];
	pg_uuid_t	job_id;
} PendingCancel;

static bool wake_pending = false;

/*
 * Counts that become true at commit, per transaction nesting level, so an
 * aborted subtransaction takes its counts with it.  Level 0 is unused.
 */
static int64 (*pending_counts)[JOBQ_NCOUNTERS] = NULL;
static int	pending_levels = 0;
static bool counts_pending = false;
static List *pending_cancels = NIL;		/* of PendingCancel, in TopTransactionContext */
static uint32 wake_rotor = 0;

static emit_log_hook_type prev_emit_log_hook = NULL;

static void jobq_define_settings(void);
static void jobq_emit_log(ErrorData *edata);
static void jobq_shmem_request(void);
static void jobq_shmem_startup(void);
static void jobq_xact_callback(XactEvent event, void *arg);
static void jobq_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								  SubTransactionId parentSubid, void *arg);

void
_PG_init(void)
{
	jobq_define_settings();

	RegisterXactCallback(jobq_xact_callback, NULL);
	RegisterSubXactCallback(jobq_subxact_callback, NULL);
	jobq_notifier_register_callbacks();

	/* Without preloading there are no workers; the SQL API still works. */
	if (!process_shared_preload_libraries_in_progress)
		return;

	/* installed in the postmaster, which logs configuration reloads */
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = jobq_emit_log;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = jobq_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = jobq_shmem_startup;

	jobq_dropdb_install();
	jobq_register_workers();
	jobq_register_notifier();
}

/*
 * PostgreSQL logs the new value of every setting a reload changes, and the
 * rejected value of a bad one, superuser-only settings included.  Keep
 * jobq's secrets out of the log: the line stays, the value goes.
 */
static const char *const secret_settings[] = {
	"\"jobq.s3_secret_access_key\"", "\"jobq.s3_access_key_id\"",
	"\"jobq.azure_account_key\"", "\"jobq.azure_sas_token\"",
	"\"jobq.http_store_headers\"", "\"jobq.auth_token\""
};

static void
jobq_emit_log(ErrorData *edata)
{
	if (edata->message_id != NULL && edata->message != NULL &&
		(strcmp(edata->message_id, "parameter \"%s\" changed to \"%s\"") == 0 ||
		 strcmp(edata->message_id, "invalid value for parameter \"%s\": \"%s\"") == 0))
	{
		for (int i = 0; i < lengthof(secret_settings); i++)
			if (strstr(edata->message, secret_settings[i]) != NULL)
			{
				edata->message = psprintf("parameter %s changed (value not logged)",
										  secret_settings[i]);
				edata->detail = NULL;
				break;
			}
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* True when shared memory is set up, i.e. jobq was preloaded. */
bool
jobq_shared_available(void)
{
	return jobq_shared != NULL;
}

static void
jobq_define_settings(void)
{
	/* postmaster settings can only be defined while preloading */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomStringVariable("jobq.database",
								   "Database whose queue the in-server workers serve.",
								   NULL, &jobq_database, "postgres",
								   PGC_POSTMASTER, 0, NULL, NULL, NULL);
		DefineCustomIntVariable("jobq.workers",
								"Number of in-server worker processes.",
								"Needs jobq in shared_preload_libraries.",
								&jobq_workers, 2, 0, JOBQ_MAX_WORKERS,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
	}
	DefineCustomIntVariable("jobq.poll_interval_min",
							"Idle workers first sleep this long between polls.",
							NULL, &jobq_poll_interval_min_ms, 10, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.poll_interval_max",
							"Idle workers double their sleep up to this bound.",
							NULL, &jobq_poll_interval_max_ms, 5000, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.stale_after",
							"A Processing job whose holder has not shown a sign of life for this long is rescued by jobq.sweep().",
							NULL, &jobq_stale_after_s, 300, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.default_max_attempts",
							"Attempts a job gets when enqueue() is not told.",
							NULL, &jobq_default_max_attempts, 3, 1, 1000000,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.max_payload_bytes",
							"Largest payload or result accepted.",
							NULL, &jobq_max_payload_bytes, 1024 * 1024, 0, MaxAllocSize,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.max_units",
							"Largest number of units one job may have.",
							NULL, &jobq_max_units, 100000, 1, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.max_checkpoint_bytes",
							"Largest unit output (checkpoint) accepted.",
							NULL, &jobq_max_checkpoint_bytes, 64 * 1024 * 1024, 0, MaxAllocSize / 2,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.retry_delay",
							"Delay before the first retry of a failed attempt; doubles with each attempt.",
							NULL, &jobq_retry_delay_ms, 1000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.retry_delay_max",
							"Upper bound of the retry delay.",
							NULL, &jobq_retry_delay_max_ms, 3600 * 1000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.batch_size",
							"Jobs an in-server worker claims at once.",
							NULL, &jobq_batch_size, 100, 1, JOBQ_BATCH_SIZE_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.batch_time",
							"An in-server worker commits finished jobs at least this often.",
							NULL, &jobq_batch_time_ms, 100, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.user_id",
							   "Tenant of this session (a uuid); see jobq.current_user_id().",
							   NULL, &jobq_user_id_setting, "",
							   PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.traceparent",
							   "W3C traceparent whose trace id new jobs take.",
							   NULL, &jobq_traceparent_setting, "",
							   PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.auth_token",
							   "Bearer token forwarded to the provider calls of jobs enqueued while it is set.",
							   "Set it with SET LOCAL or set_config(..., true); it is kept apart from jobq.jobs and erased when the job ends.",
							   &jobq_auth_token_setting, "",
							   PGC_USERSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.job_id",
							   "Set by the worker while a handler runs: the job's id.",
							   NULL, &jobq_job_id_setting, "",
							   PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.trace_id",
							   "Set by the worker while a handler runs: the job's trace id.",
							   NULL, &jobq_trace_id_setting, "",
							   PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomBoolVariable("jobq.notify_progress",
							 "Send NOTIFY jobq_progress on every status change and progress update.",
							 NULL, &jobq_notify_progress, true,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.notify_interval",
							"The notifier sends at most one batch of progress notifications per interval.",
							"The first event after a quiet interval goes out at once; 0 sends every event as soon as its transaction commits.",
							&jobq_notify_interval_ms, 5, 0, 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	jobq_store_define_settings();
	MarkGUCPrefixReserved("jobq");
}

static void
jobq_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(jobq_shared_size());
	RequestAddinShmemSpace(jobq_provider_shmem_size());
	RequestAddinShmemSpace(jobq_notifier_shmem_size());
	jobq_notifier_shmem_request();
}

static void
jobq_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	jobq_shared = ShmemInitStruct("jobq", jobq_shared_size(), &found);
	if (!found)
		jobq_shared_init(jobq_shared);
	jobq_provider_shmem_init();
	jobq_notifier_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Make the current transaction's commit reach the local disk at least (a
 * worker's claims and unit records), without weakening a stronger server
 * setting such as remote_apply.
 */
void
jobq_commit_durably(void)
{
	if (synchronous_commit < SYNCHRONOUS_COMMIT_LOCAL_FLUSH)
		(void) set_config_option("synchronous_commit", "local", PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
}

/* Let the current transaction commit without waiting for its WAL flush. */
void
jobq_commit_async(void)
{
	(void) set_config_option("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/* Wake one idle in-server worker when the current transaction commits. */
void
jobq_wake_at_commit(void)
{
	wake_pending = true;
}

/*
 * Interrupt the in-server handler of job_id, run by holder, when the current
 * transaction commits.  Holders that are not in-server workers are ignored:
 * external workers learn of the cancel from heartbeat() returning false.
 */
void
jobq_cancel_at_commit(const char *holder, const pg_uuid_t *job_id)
{
	MemoryContext old;
	PendingCancel *pc;

	if (holder == NULL || !jobq_holder_is_worker(holder) || strlen(holder) > JOBQ_NAME_MAX)
		return;
	old = MemoryContextSwitchTo(TopTransactionContext);
	pc = palloc(sizeof(PendingCancel));
	pc->nest_level = GetCurrentTransactionNestLevel();
	strlcpy(pc->holder, holder, sizeof(pc->holder));
	pc->job_id = *job_id;
	pending_cancels = lappend(pending_cancels, pc);
	MemoryContextSwitchTo(old);
}

/* Add n to a counter when the current (sub)transaction commits. */
void
jobq_count(JobqCounter counter, int64 n)
{
	int			level = GetCurrentTransactionNestLevel();

	if (jobq_shared == NULL)
		return;
	if (level >= pending_levels)
	{
		int			newlevels = Max(level + 1, 8);

		if (pending_counts == NULL)
			pending_counts = MemoryContextAllocZero(TopMemoryContext,
													sizeof(*pending_counts) * newlevels);
		else
		{
			pending_counts = repalloc(pending_counts, sizeof(*pending_counts) * newlevels);
			memset(pending_counts[pending_levels], 0,
				   sizeof(*pending_counts) * (newlevels - pending_levels));
		}
		pending_levels = newlevels;
	}
	pending_counts[level][counter] += n;
	counts_pending = true;
}

/* Add n to a counter now (for things that happened whatever the transaction does). */
void
jobq_count_now(JobqCounter counter, int64 n)
{
	if (jobq_shared != NULL)
		pg_atomic_fetch_add_u64(&jobq_shared->counters[counter], n);
}

static void
flush_counts(bool commit)
{
	for (int level = 0; level < pending_levels; level++)
		for (int c = 0; c < JOBQ_NCOUNTERS; c++)
		{
			if (commit && pending_counts[level][c] != 0 && jobq_shared != NULL)
				pg_atomic_fetch_add_u64(&jobq_shared->counters[c], pending_counts[level][c]);
			pending_counts[level][c] = 0;
		}
	counts_pending = false;
}

/* Set the latch of the process with this PGPROC number (-1: none). */
void
jobq_set_latch_of(int procno)
{
	if (procno >= 0)
		SetLatch(&GetPGProcByNumber(procno)->procLatch);
}

/*
 * Set the latch of one idle worker other than slot `except` (-1: any),
 * rotating so wake-ups spread out.
 */
void
jobq_wake_idle_worker(int except)
{
	int			n = jobq_shared->nslots;

	for (int i = 0; i < n; i++)
	{
		int			k = (wake_rotor + i) % n;
		JobqWorkerSlot *slot = &jobq_shared->slots[k];

		/* unlocked reads: a stale state costs one spurious or one missed wake */
		int			procno = slot->pgprocno;

		pg_read_barrier();
		if (k != except && (slot->state == JOBQ_WS_IDLE || slot->state == JOBQ_WS_WAITING) &&
			procno >= 0)
		{
			jobq_set_latch_of(procno);
			wake_rotor = (k + 1) % n;
			return;
		}
	}
}

/* Carry out the pending cancels; called after commit, must not throw. */
static void
signal_cancels(void)
{
	ListCell   *lc;

	foreach(lc, pending_cancels)
	{
		PendingCancel *pc = lfirst(lc);

		jobq_interrupt_job(pc->holder, &pc->job_id);
	}
}

static void
jobq_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (jobq_shared != NULL)
			{
				if (pending_cancels != NIL)
					signal_cancels();
				if (wake_pending)
					jobq_wake_idle_worker(-1);
			}
			if (counts_pending)
				flush_counts(true);
			wake_pending = false;
			pending_cancels = NIL;
			break;
		case XACT_EVENT_PRE_PREPARE:
			/* the interrupt must follow the commit, which PREPARE gives away */
			if (pending_cancels != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that cancelled a running jobq job")));
			break;
		case XACT_EVENT_PREPARE:
			/* the prepared transaction commits elsewhere: nothing here follows it */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (counts_pending)
				flush_counts(false);
			wake_pending = false;
			pending_cancels = NIL;
			break;
		default:
			break;
	}
}

static void
jobq_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	/* a committed subtransaction's counts move to its parent; an aborted one's go */
	if (counts_pending && level < pending_levels &&
		(event == SUBXACT_EVENT_COMMIT_SUB || event == SUBXACT_EVENT_ABORT_SUB))
	{
		for (int c = 0; c < JOBQ_NCOUNTERS; c++)
		{
			if (event == SUBXACT_EVENT_COMMIT_SUB && level > 0)
				pending_counts[level - 1][c] += pending_counts[level][c];
			pending_counts[level][c] = 0;
		}
	}
	if (pending_cancels == NIL)
		return;
	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* a released savepoint's cancels now belong to its parent */
		foreach(lc, pending_cancels)
		{
			PendingCancel *pc = lfirst(lc);

			if (pc->nest_level >= level)
				pc->nest_level = level - 1;
		}
		return;
	}
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	foreach(lc, pending_cancels)
	{
		PendingCancel *pc = lfirst(lc);

		if (pc->nest_level >= level)
			pending_cancels = foreach_delete_current(pending_cancels, lc);
	}
}
