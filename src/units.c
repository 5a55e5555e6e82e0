/*-------------------------------------------------------------------------
 *
 * units.c
 *	  Running a multi-unit job with checkpoint/resume (SPEC sections 5, 6).
 *
 * A unit job runs outside the batch transaction, one unit at a time:
 *
 *	  txn A	  unit_handler(job, n) as the registering role -> output;
 *			  record (n, uri, bytes, sha256, stored = false); commit
 *	  no txn  upload the output to the store (retries, interrupts checked)
 *	  txn B	  mark the record stored; recount units_done and progress,
 *			  only while the job is still Processing under our token; commit
 *
 * and after the last unit, fetches and verifies every output (outside any
 * transaction), then in txn C runs the finalizer and completes the job.
 *
 * No transaction or row lock is held during a transfer.  Recording the
 * hash before the upload is what lets a restart adopt a blob whose upload
 * finished just before a crash: on (re)start the runner checks each stored
 * record's blob size and each unstored record's blob hash; blobs that are
 * missing or corrupt have their records dropped, and those units run again.
 * A finalizer that finds a corrupt blob (XX001 from checkpoint_data) gets
 * that unit re-run, a bounded number of times.
 *
 * Txn A commits asynchronously (losing it loses only a unit that has not
 * been reported done); txn B and the completion commit synchronously, so a
 * unit counted in units_done never runs again, even after a crash.
 * Unit handlers should be pure computations or idempotent: a unit whose
 * txn A committed but whose upload never happened runs again.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "common/jsonapi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "checkpoint.h"
#include "provider.h"
#include "dispatch.h"
#include "spi_plans.h"
#include "store.h"

/* prefetch unit outputs for the finalizer up to this many bytes in all */
#define PREFETCH_MAX_BYTES	(64 * 1024 * 1024)
/* how many times a corrupt blob found by the finalizer may re-run units */
#define MAX_REPAIRS			3

typedef struct UnitRun
{
	JobqJob    *job;
	MemoryContext cxt;			/* lives as long as the job runs here */
	JobqStore  *store;
	int			units;
	bool	   *stored;			/* [units]: unit has a stored checkpoint */
	int64	   *bytes;			/* [units] */
	char	  **sha;			/* [units] */
	char	  **uri;			/* [units]: where each recorded checkpoint is */
	int			done;			/* units stored */
	int64		timeout_ms;
	bytea	  **outputs;		/* prefetched for the finalizer */
	bool		gone;			/* the job stopped being ours */
	ErrorData  *error;			/* why the attempt failed */
	/* provider jobs */
	bool		via_providers;
	List	   *providers;		/* of JobqProvider, in chain order */
	char	   *auth_token;		/* forwarded as Bearer; erased with the job */
	Jsonb	   *payload;
	JobqCallResult *failed_call;	/* why the chain failed, when it did */
	bool		store_step;		/* the step running talks to the store */
	MemoryContext unit_cxt;		/* one unit's output and calls; reset per unit */
} UnitRun;

typedef void (*UnitStep) (UnitRun *run, int unit);

static void step_verify(UnitRun *run, int unit);
static void step_upload(UnitRun *run, int unit);
static void step_prefetch(UnitRun *run, int unit);

/* the current unit's output, between its txn A and its upload */
static bytea *unit_output;

/* The job's registration in this transaction; an error if it changed kind. */
static JobqRegistration *
unit_registration(UnitRun *run, JobqRegistry **reg)
{
	JobqRegistration *r;

	*reg = jobq_registry();
	r = jobq_registration(*reg, run->job->job_type);
	if (r == NULL || (r->kind != JOBQ_KIND_UNITS && r->kind != JOBQ_KIND_PROVIDERS))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job type \"%s\" is no longer registered with a unit handler or providers",
						run->job->job_type)));
	run->timeout_ms = r->timeout_ms;
	run->via_providers = (r->kind == JOBQ_KIND_PROVIDERS);
	return r;
}

static JobqPlan token_plan = {
	"SELECT token FROM jobq.job_tokens WHERE job_id = $1", 1, {UUIDOID}
};

static JobqPlan drop_token_plan = {
	"DELETE FROM jobq.job_tokens WHERE job_id = $1", 1, {UUIDOID}
};

/* In a txn: load the chain's providers, the job's token and payload. */
static void
load_providers(UnitRun *run, JobqRegistration *r)
{
	MemoryContext old = MemoryContextSwitchTo(run->cxt);
	List	   *missing = NIL;
	Datum		id = UUIDPGetDatum(&run->job->id);
	bool		isnull;

	run->providers = jobq_load_providers(r->providers, &missing);
	if (run->providers == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("none of the providers of job type \"%s\" exists", run->job->job_type)));
	run->payload = DatumGetJsonbPCopy(GetAttributeByName(DatumGetHeapTupleHeader(run->job->row),
														 "payload", &isnull));
	MemoryContextSwitchTo(old);
	if (jobq_plan_exec(&token_plan, &id, NULL, true, 1) > 0)
		run->auth_token = MemoryContextStrdup(run->cxt,
											  SPI_getvalue(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1));
}

/* In a txn: the job is over; its forwarded token goes. */
static void
drop_token(UnitRun *run)
{
	Datum		id = UUIDPGetDatum(&run->job->id);

	if (run->auth_token)
		jobq_plan_exec(&drop_token_plan, &id, NULL, false, 0);
}

/* No txn: one call of the provider chain; raises when it failed. */
static void
call_providers(UnitRun *run, int unit)
{
	MemoryContext old = MemoryContextSwitchTo(run->unit_cxt);
	JobqCallResult *res = palloc0(sizeof(JobqCallResult));
	char	   *request = jobq_provider_request(&run->job->id, run->job->job_type,
											   &run->job->user_id, run->payload, unit,
											   run->job->attempts);

	/* cancel() and the type's timeout interrupt the call like a handler */
	jobq_handler_begin(run->timeout_ms);
	jobq_call_chain(run->providers, request, run->job->trace_id, run->auth_token, res);
	jobq_handler_end();
	if (!res->ok)
	{
		/* kept until the failure is recorded: in the job's memory */
		JobqCallResult *kept = MemoryContextAllocZero(run->cxt, sizeof(JobqCallResult));

		kept->status = res->status;
		kept->code = res->code;
		kept->retry = res->retry;
		kept->message = MemoryContextStrdup(run->cxt, res->message);
		run->failed_call = kept;
		MemoryContextSwitchTo(old);
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("%s", kept->message)));
	}
	run->failed_call = NULL;
	unit_output = palloc(res->body.len + VARHDRSZ);
	SET_VARSIZE(unit_output, res->body.len + VARHDRSZ);
	memcpy(VARDATA(unit_output), res->body.data, res->body.len);
	pfree(res->body.data);
	MemoryContextSwitchTo(old);
}

/*
 * Run one step, catching its error: the open transaction (if any) is
 * rolled back and the error kept in run->error.  False when it failed.
 */
static bool
try_step(UnitStep step, UnitRun *run, int unit)
{
	volatile bool ok = true;

	run->store_step = (step == step_verify || step == step_upload || step == step_prefetch);

	PG_TRY();
	{
		step(run, unit);
	}
	PG_CATCH();
	{
		jobq_handler_end();
		MemoryContextSwitchTo(run->cxt);
		run->error = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		MemoryContextSwitchTo(run->cxt);
		/* a store misconfigured or down is a store failure, worth a retry */
		if (run->store_step && run->error->sqlerrcode != ERRCODE_QUERY_CANCELED)
			run->error->sqlerrcode = JOBQ_ERRCODE_STORE;
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(run->cxt);
	return ok;
}

/* txn: read the job's checkpoint records */
static void
step_load(UnitRun *run, int unit)
{
	List	   *records;
	ListCell   *lc;
	JobqRegistry *reg;
	JobqRegistration *r;

	jobq_begin_txn(JOBQ_COMMIT_DURABLE);
	r = unit_registration(run, &reg);
	if (run->via_providers)
		load_providers(run, r);
	records = jobq_ckpt_list(&run->job->id);
	foreach(lc, records)
	{
		JobqCheckpoint *c = lfirst(lc);
		int			i = c->unit_id - 1;

		if (i < 0 || i >= run->units)
			continue;
		run->bytes[i] = c->bytes;
		run->sha[i] = MemoryContextStrdup(run->cxt, c->sha256);
		run->uri[i] = MemoryContextStrdup(run->cxt, c->uri);
		/* an unstored record is a candidate for adoption: see step_verify */
		run->stored[i] = c->stored;
		if (!c->stored)
			run->bytes[i] = -(c->bytes + 1);
	}
	jobq_commit_txn();
}

/*
 * no txn: on a restart, check what the store holds.  Stored records whose
 * blob is missing or has the wrong size are dropped; unstored ones are
 * adopted when the blob's hash matches.  Then one txn applies the verdicts.
 */
static void
step_verify(UnitRun *run, int unit)
{
	bool	   *drop = palloc0(sizeof(bool) * run->units);
	bool	   *adopt = palloc0(sizeof(bool) * run->units);
	bool		changed = false;

	for (int i = 0; i < run->units; i++)
	{
		const char *key = NULL;
		JobqStore  *store = run->uri[i] ? jobq_store_for_uri(run->uri[i], &key) : NULL;

		CHECK_FOR_INTERRUPTS();
		if (run->stored[i])
		{
			if (jobq_store_size(store, key) != run->bytes[i])
				drop[i] = changed = true;
		}
		else if (run->sha[i] != NULL)
		{
			StringInfoData buf;
			char		got[65];

			initStringInfo(&buf);
			if (jobq_store_get(store, key, &buf) &&
				buf.len == -(run->bytes[i] + 1))
			{
				jobq_sha256_hex(buf.data, buf.len, got);
				adopt[i] = strcmp(got, run->sha[i]) == 0;
			}
			if (adopt[i])
				run->bytes[i] = buf.len;
			else
				drop[i] = true;
			changed = true;
			pfree(buf.data);
		}
	}
	if (!changed)
		return;

	jobq_begin_txn(JOBQ_COMMIT_ASYNC);
	for (int i = 0; i < run->units; i++)
	{
		if (drop[i])
		{
			jobq_ckpt_delete(&run->job->id, i + 1);
			run->stored[i] = false;
			run->sha[i] = NULL;
			run->uri[i] = NULL;
		}
		else if (adopt[i])
		{
			jobq_ckpt_mark_stored(&run->job->id, i + 1);
			run->stored[i] = true;
		}
	}
	run->gone = jobq_ckpt_progress(&run->job->id, jobq_worker->holder) < 0;
	jobq_commit_txn();
}


/* In txn A: the unit handler's output for this unit, as the registering role. */
static void
handler_output(UnitRun *run, int unit)
{
	JobqRegistry *reg;
	JobqRegistration *r = unit_registration(run, &reg);
	Datum		args[2];
	bool		isnull;
	Datum		out;
	bytea	   *data;

	if (r->handler_call == NULL)
	{
		Oid			argtypes[2] = {reg->jobs_type, INT4OID};

		r->handler_call = jobq_callable(r->handler, 2, argtypes, reg->cxt);
	}
	args[0] = run->job->row;
	args[1] = Int32GetDatum(unit);
	out = jobq_call(r->handler_call, r->owner, true, r->timeout_ms, args, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("unit handler of job type \"%s\" returned NULL for unit %d",
						run->job->job_type, unit)));
	data = DatumGetByteaPP(out);
	unit_output = MemoryContextAlloc(run->unit_cxt, VARSIZE_ANY_EXHDR(data) + VARHDRSZ);
	SET_VARSIZE(unit_output, VARSIZE_ANY_EXHDR(data) + VARHDRSZ);
	memcpy(VARDATA(unit_output), VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
}

/*
 * Txn A: produce the unit's output (the unit handler runs inside it; a
 * provider chain is called just before it) and record its hash, unstored.
 */
static void
step_unit(UnitRun *run, int unit)
{
	char		sha[65];
	char	   *key;

	if (run->via_providers)
	{
		call_providers(run, unit);
		jobq_begin_txn(JOBQ_COMMIT_ASYNC);
	}
	else
	{
		jobq_begin_txn(JOBQ_COMMIT_ASYNC);
		handler_output(run, unit);
	}
	if (VARSIZE_ANY_EXHDR(unit_output) > (Size) jobq_max_checkpoint_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("unit %d output of %zu bytes exceeds jobq.max_checkpoint_bytes (%d bytes)",
						unit, VARSIZE_ANY_EXHDR(unit_output), jobq_max_checkpoint_bytes)));

	jobq_sha256_hex(VARDATA(unit_output), VARSIZE_ANY_EXHDR(unit_output), sha);
	key = jobq_store_key(&run->job->user_id, &run->job->id, unit);
	run->uri[unit - 1] = MemoryContextStrdup(run->cxt, jobq_store_uri(run->store, key));
	jobq_ckpt_record(&run->job->id, unit, run->uri[unit - 1],
					 VARSIZE_ANY_EXHDR(unit_output), sha, false);
	run->sha[unit - 1] = MemoryContextStrdup(run->cxt, sha);
	jobq_commit_txn();
}

/* no txn: upload the unit's output */
static void
step_upload(UnitRun *run, int unit)
{
	jobq_store_put(run->store, jobq_store_key(&run->job->user_id, &run->job->id, unit),
				   VARDATA(unit_output), VARSIZE_ANY_EXHDR(unit_output));
}

/* txn B: the checkpoint is stored; count it */
static void
step_record(UnitRun *run, int unit)
{
	int			done;

	/* synchronous: a unit reported done must never run again, even after a crash */
	jobq_begin_txn(JOBQ_COMMIT_DURABLE);
	jobq_ckpt_mark_stored(&run->job->id, unit);
	done = jobq_ckpt_progress(&run->job->id, jobq_worker->holder);
	jobq_commit_txn();
	if (done < 0)
		run->gone = true;
	else
	{
		run->stored[unit - 1] = true;
		run->bytes[unit - 1] = VARSIZE_ANY_EXHDR(unit_output);
		run->done = done;
	}
}

/*
 * no txn: fetch and verify every stored output before the finalizer runs;
 * a missing or corrupt one loses its record so that its unit runs again.
 */
static void
step_prefetch(UnitRun *run, int unit)
{
	int64		total = 0;
	bool		lost = false;

	for (int i = 0; i < run->units; i++)
		total += Max(run->bytes[i], 0);
	if (total > PREFETCH_MAX_BYTES)
		return;					/* the finalizer reads them itself */

	run->outputs = MemoryContextAllocZero(run->cxt, sizeof(bytea *) * run->units);
	for (int i = 0; i < run->units; i++)
	{
		StringInfoData buf;
		char		got[65];

		CHECK_FOR_INTERRUPTS();
		initStringInfo(&buf);
		got[0] = '\0';
		if (run->uri[i] != NULL)
		{
			const char *key;
			JobqStore  *store = jobq_store_for_uri(run->uri[i], &key);

			if (jobq_store_get(store, key, &buf))
				jobq_sha256_hex(buf.data, buf.len, got);
		}
		if (run->sha[i] == NULL || strcmp(got, run->sha[i]) != 0)
		{
			run->stored[i] = false;
			lost = true;
		}
		else
		{
			bytea	   *b = MemoryContextAlloc(run->cxt, buf.len + VARHDRSZ);

			SET_VARSIZE(b, buf.len + VARHDRSZ);
			memcpy(VARDATA(b), buf.data, buf.len);
			run->outputs[i] = b;
		}
		pfree(buf.data);
	}
	if (!lost)
		return;
	jobq_begin_txn(JOBQ_COMMIT_ASYNC);
	for (int i = 0; i < run->units; i++)
		if (!run->stored[i])
			jobq_ckpt_delete(&run->job->id, i + 1);
	run->gone = jobq_ckpt_progress(&run->job->id, jobq_worker->holder) < 0;
	jobq_commit_txn();
}

/* In the open txn: the result completes the job, its token goes; commit. */
static void
complete_job(UnitRun *run, Datum result, bool isnull, const char *what)
{
	if (!isnull)
		jobq_check_payload(result, what);
	if (!jobq_complete_held(&run->job->id, result, isnull, jobq_worker->holder))
		run->gone = true;
	drop_token(run);
	jobq_commit_txn();
}

/* txn C: the finalizer's result completes the job */
static void
step_finalize(UnitRun *run, int unit)
{
	JobqRegistry *reg;
	JobqRegistration *r;
	Datum		result;
	bool		isnull = false;

	jobq_begin_txn(JOBQ_COMMIT_DURABLE);
	r = unit_registration(run, &reg);
	jobq_corrupt_unit = 0;
	if (run->outputs)
		jobq_ckpt_prefetch_set(&run->job->id, run->units, run->outputs);
	if (OidIsValid(r->finalizer))
	{
		if (r->finalizer_call == NULL)
		{
			Oid			argtypes[1] = {reg->jobs_type};

			r->finalizer_call = jobq_callable(r->finalizer, 1, argtypes, reg->cxt);
		}
		result = jobq_call(r->finalizer_call, r->owner, true, r->timeout_ms, &run->job->row, &isnull);
	}
	else
		result = DirectFunctionCall1(jsonb_in,
									 CStringGetDatum(psprintf("{\"units\": %d}", run->units)));
	jobq_ckpt_prefetch_clear();
	complete_job(run, result, isnull, "finalizer result");
}

/* txn: record the attempt's failure with the checkpoint count */
static void
record_error(UnitRun *run)
{
	bool		requeued;

	jobq_begin_txn(JOBQ_COMMIT_DURABLE);
	if (run->failed_call != NULL && !jobq_job_cancelled(run->job))
		jobq_record_failure(&run->job->id, jobq_worker->holder, run->job->trace_id,
							run->job->attempts, run->job->max_attempts, run->done,
							run->failed_call->code,
							run->failed_call->retry ? 0 : (int) run->failed_call->status,
							run->failed_call->message, run->failed_call->retry, &requeued);
	else
		requeued = jobq_record_job_error(run->timeout_ms, run->job, run->error, run->done);
	if (!requeued)
		drop_token(run);
	jobq_commit_txn();
}

/* Run every unit that has no stored checkpoint yet; false to stop. */
static bool
run_missing_units(UnitRun *run)
{
	for (int unit = 1; unit <= run->units; unit++)
	{
		if (run->stored[unit - 1])
			continue;
		CHECK_FOR_INTERRUPTS();
		if (jobq_job_cancelled(run->job))
			return false;		/* cancel() already made it Cancelled */
		if (!try_step(step_unit, run, unit) ||
			!try_step(step_upload, run, unit) ||
			!try_step(step_record, run, unit))
			return false;
		if (run->gone)
			return false;
		unit_output = NULL;
		MemoryContextReset(run->unit_cxt);
	}
	return true;
}

/* Does the job have any checkpoint record, stored or not? */
static bool
any_record(UnitRun *run)
{
	for (int i = 0; i < run->units; i++)
		if (run->sha[i] != NULL)
			return true;
	return false;
}

/* An error of our own making, recorded like a store failure. */
static ErrorData *
store_trouble(const char *message)
{
	ErrorData  *e = palloc0(sizeof(ErrorData));

	e->sqlerrcode = JOBQ_ERRCODE_STORE;
	e->message = pstrdup(message);
	return e;
}

/* The end of a unit or provider job: its failure recorded, its memory freed. */
static void
finish_run(UnitRun *run, MemoryContext old)
{
	if (run->error != NULL && !run->gone)
		record_error(run);
	jobq_job_end();
	jobq_count_jobs(run->error == NULL && !run->gone, run->error != NULL);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(run->cxt);
	unit_output = NULL;
}

/* Run a claimed unit job to completion, failure, or until it is not ours. */
static void
run_unit_job(JobqJob *job)
{
	UnitRun		run = {0};
	MemoryContext old;
	volatile int repairs = 0;

	/* under the worker's per-poll memory, so an error path cannot leak it */
	run.cxt = AllocSetContextCreate(jobq_worker->cxt, "jobq unit job", ALLOCSET_DEFAULT_SIZES);
	run.unit_cxt = AllocSetContextCreate(run.cxt, "jobq unit", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(run.cxt);
	run.job = job;
	run.units = job->units_total;
	jobq_job_begin(job);
	pgstat_report_activity(STATE_RUNNING, "jobq: running a unit job");

	if (run.units <= 0)
	{
		run.error = palloc0(sizeof(ErrorData));
		run.error->sqlerrcode = ERRCODE_INVALID_PARAMETER_VALUE;
		run.error->message = psprintf("job type \"%s\" has a unit handler but the job has no units",
									  job->job_type);
	}
	else
	{
		run.stored = palloc0(sizeof(bool) * run.units);
		run.bytes = palloc0(sizeof(int64) * run.units);
		run.sha = palloc0(sizeof(char *) * run.units);
		run.uri = palloc0(sizeof(char *) * run.units);
		if (try_step(step_load, &run, 0))
		{
			PG_TRY();
			{
				run.store = jobq_store_open();
			}
			PG_CATCH();
			{
				MemoryContextSwitchTo(run.cxt);
				run.error = CopyErrorData();
				run.error->sqlerrcode = JOBQ_ERRCODE_STORE;	/* a bad store setting */
				FlushErrorState();
			}
			PG_END_TRY();
		}
		for (int i = 0; i < run.units; i++)
			run.done += run.stored[i];
		/* a first attempt with no records has nothing in the store to check */
		if (run.error == NULL && (job->attempts > 1 || run.done > 0 || job->units_done > 0 ||
								  any_record(&run)))
			try_step(step_verify, &run, 0);

		while (run.error == NULL && !run.gone)
		{
			if (!run_missing_units(&run) || run.gone || run.error)
				break;
			if (!try_step(step_prefetch, &run, 0) || run.gone)
				break;
			if (run.outputs != NULL && memchr(run.stored, false, run.units) != NULL)
			{
				/* a blob went missing or bad: run those units again */
				run.outputs = NULL;
				if (++repairs > MAX_REPAIRS)
				{
					run.error = store_trouble("checkpoints of job kept disappearing from the store");
					break;
				}
				continue;
			}
			if (try_step(step_finalize, &run, 0))
				break;
			jobq_ckpt_prefetch_clear();
			if (run.error->sqlerrcode == ERRCODE_DATA_CORRUPTED && jobq_corrupt_unit > 0 &&
				++repairs <= MAX_REPAIRS)
			{
				/* the finalizer found a bad blob: drop its record, run it again */
				int			bad = jobq_corrupt_unit;

				run.error = NULL;
				run.stored[bad - 1] = false;
				jobq_begin_txn(JOBQ_COMMIT_ASYNC);
				jobq_ckpt_delete(&job->id, bad);
				jobq_commit_txn();
				continue;
			}
			break;
		}
	}

	finish_run(&run, old);
}

/* ---- whole jobs done by a provider chain ---- */

/* txn: the registration, providers, token and payload */
static void
step_provider_load(UnitRun *run, int unit)
{
	JobqRegistry *reg;
	JobqRegistration *r;

	jobq_begin_txn(JOBQ_COMMIT_DURABLE);
	r = unit_registration(run, &reg);
	load_providers(run, r);
	jobq_commit_txn();
}

/* no txn: the call */
static void
step_provider_call(UnitRun *run, int unit)
{
	call_providers(run, 0);
}

/* txn: the provider's JSON answer completes the job */
static void
step_provider_complete(UnitRun *run, int unit)
{
	char	   *text = pnstrdup(VARDATA(unit_output), VARSIZE_ANY_EXHDR(unit_output));
	JsonLexContext *lex = makeJsonLexContextCstringLen(text, strlen(text), GetDatabaseEncoding(), false);
	Datum		result;

	if (strlen(text) != VARSIZE_ANY_EXHDR(unit_output) ||
		!pg_verify_mbstr(GetDatabaseEncoding(), text, strlen(text), true) ||
		pg_parse_json(lex, &nullSemAction) != JSON_SUCCESS)
	{
		JobqCallResult *bad = MemoryContextAllocZero(run->cxt, sizeof(JobqCallResult));

		bad->code = "UpstreamError";
		bad->message = "the provider's answer is not JSON in the database's encoding";
		bad->retry = true;
		run->failed_call = bad;
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("%s", bad->message)));
	}
	jobq_begin_txn(JOBQ_COMMIT_DURABLE);
	result = DirectFunctionCall1(jsonb_in, CStringGetDatum(text));
	complete_job(run, result, false, "provider result");
}

static void
run_provider_job(JobqJob *job)
{
	UnitRun		run = {0};
	MemoryContext old;

	run.cxt = AllocSetContextCreate(jobq_worker->cxt, "jobq provider job", ALLOCSET_DEFAULT_SIZES);
	run.unit_cxt = AllocSetContextCreate(run.cxt, "jobq provider call", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(run.cxt);
	run.job = job;
	jobq_job_begin(job);
	pgstat_report_activity(STATE_RUNNING, "jobq: calling providers");

	if (try_step(step_provider_load, &run, 0) &&
		!jobq_job_cancelled(job) &&
		try_step(step_provider_call, &run, 0))
		try_step(step_provider_complete, &run, 0);

	finish_run(&run, old);
}

/* Jobs that do I/O run here, between transactions: unit jobs and provider jobs. */
void
jobq_run_solo_job(JobqJob *job, JobqHandlerKind kind)
{
	/* a handler that enqueues may reload the registry: keep ours alive */
	jobq_registry_pin();
	if (kind == JOBQ_KIND_UNITS || job->units_total > 0)
		run_unit_job(job);
	else
		run_provider_job(job);
	jobq_registry_unpin();
}

/* ---- blobs of purged jobs ---- */

#define PURGE_MAX_ATTEMPTS	20

typedef struct PurgedJob
{
	pg_uuid_t	job_id;
	int			nuris;
	char	  **uris;
	int			attempts;		/* this one included */
	bool		failed;
} PurgedJob;

/*
 * The lease counts the attempt: a deletion that takes its worker down is
 * not retried forever.
 */
static JobqPlan purge_lease_plan = {
	"UPDATE jobq.blob_deletions SET next_attempt_at = pg_catalog.now() + interval '10 min',"
	" attempts = attempts + 1"
	" WHERE job_id IN (SELECT job_id FROM jobq.blob_deletions"
	"  WHERE next_attempt_at <= pg_catalog.now() ORDER BY next_attempt_at LIMIT 10"
	"  FOR UPDATE SKIP LOCKED)"
	" RETURNING job_id, uris, attempts",
	0, {}
};

static JobqPlan purge_done_plan = {
	"DELETE FROM jobq.blob_deletions WHERE job_id = $1", 1, {UUIDOID}
};

static JobqPlan purge_backoff_plan = {
	"UPDATE jobq.blob_deletions SET next_attempt_at = pg_catalog.now()"
	" + LEAST(interval '1 hour', interval '30 seconds' * (2 ^ ($2 - 1)))"
	" WHERE job_id = $1",
	2, {UUIDOID, INT4OID}
};

/* Delete one purged job's blobs; false (logged) when the store failed. */
static bool
delete_job_blobs(PurgedJob *job, MemoryContext cxt)
{
	PG_TRY();
	{
		for (int u = 0; u < job->nuris; u++)
		{
			const char *key;
			JobqStore  *store = jobq_store_for_uri(job->uris[u], &key);

			CHECK_FOR_INTERRUPTS();
			jobq_store_delete(store, key);
		}
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		if (e->sqlerrcode != JOBQ_ERRCODE_STORE)
			PG_RE_THROW();
		FlushErrorState();
		ereport(job->attempts >= PURGE_MAX_ATTEMPTS ? WARNING : LOG,
				(errmsg("jobq: could not delete the blobs of purged job %s (attempt %d of %d): %s",
						DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&job->job_id))),
						job->attempts, PURGE_MAX_ATTEMPTS, e->message),
				 job->attempts >= PURGE_MAX_ATTEMPTS ?
				 errhint("They are left in the store; delete them by hand.") : 0));
		job->failed = true;
	}
	PG_END_TRY();
	return !job->failed;
}

/*
 * Delete the blobs of a few purged jobs (queued by jobq.purge()): leased in
 * one transaction (their next attempt moved ten minutes ahead, so a worker
 * that dies meanwhile loses nothing, and the attempt counted), deleted with
 * no transaction open, then removed from the queue, or given their next
 * attempt after a backoff (30 s doubling up to an hour) when the store
 * failed; after PURGE_MAX_ATTEMPTS a WARNING says they were left.  Called by
 * an idle worker.  Returns how many jobs' blobs were handled.
 */
int
jobq_delete_purged_blobs(void)
{
	static TimestampTz next_look = 0;
	MemoryContext cxt;
	MemoryContext old;
	PurgedJob  *jobs = NULL;
	uint64		n = 0;

	/* after finding nothing, look again in a second, not at every idle poll */
	if (GetCurrentTimestamp() < next_look)
		return 0;
	cxt = AllocSetContextCreate(jobq_worker->cxt, "jobq purge", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);

	jobq_begin_txn(JOBQ_COMMIT_DURABLE);
	if (OidIsValid(get_relname_relid("blob_deletions", get_namespace_oid("jobq", true))))
	{
		n = jobq_plan_exec(&purge_lease_plan, NULL, NULL, false, 0);
		jobs = MemoryContextAllocZero(cxt, sizeof(PurgedJob) * Max(n, 1));
		for (uint64 i = 0; i < n; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			Datum	   *elems;
			bool	   *nulls;
			int			nuris;

			jobs[i].job_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
			deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 2, &isnull)),
							  TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &jobs[i].nuris);
			jobs[i].uris = MemoryContextAlloc(cxt, sizeof(char *) * Max(jobs[i].nuris, 1));
			nuris = 0;
			for (int u = 0; u < jobs[i].nuris; u++)
				if (!nulls[u])
					jobs[i].uris[nuris++] = MemoryContextStrdup(cxt, TextDatumGetCString(elems[u]));
			jobs[i].nuris = nuris;
			jobs[i].attempts = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		}
	}
	jobq_commit_txn();
	MemoryContextSwitchTo(cxt);
	if (n == 0)
	{
		next_look = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		return 0;
	}

	for (uint64 i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (jobs[i].attempts <= PURGE_MAX_ATTEMPTS)
			delete_job_blobs(&jobs[i], cxt);
		else
		{
			/* the earlier attempts ended with their worker */
			ereport(WARNING,
					(errmsg("jobq: gave up deleting the blobs of purged job %s after %d attempts",
							DatumGetCString(DirectFunctionCall1(uuid_out,
																UUIDPGetDatum(&jobs[i].job_id))),
							PURGE_MAX_ATTEMPTS),
					 errdetail("The workers that tried were lost while deleting them."),
					 errhint("They are left in the store; delete them by hand.")));
			jobs[i].failed = true;
		}
	}

	jobq_begin_txn(JOBQ_COMMIT_DURABLE);
	for (uint64 i = 0; i < n; i++)
	{
		Datum		values[2] = {UUIDPGetDatum(&jobs[i].job_id), Int32GetDatum(jobs[i].attempts)};

		if (!jobs[i].failed || jobs[i].attempts >= PURGE_MAX_ATTEMPTS)
			jobq_plan_exec(&purge_done_plan, values, NULL, false, 0);
		else
			jobq_plan_exec(&purge_backoff_plan, values, NULL, false, 0);
	}
	jobq_commit_txn();
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return (int) n;
}
