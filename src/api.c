/*-------------------------------------------------------------------------
 *
 * api.c
 *	  The queue's SQL API: enqueue, claim, and every job transition
 *	  (SPEC sections 3, 4 and 14).
 *
 * Who may change a job's status:
 *	  0 -> 1	claim (external workers, and the in-server workers)
 *	  1 -> 2	complete / complete_many, by the holder
 *	  1 -> 0|3	fail (requeue while attempts remain), by the holder; sweep
 *	  0|1 -> 4	cancel
 *	  3|4 -> 0	retry
 * A transition that does not apply raises 55000 and changes nothing; a job
 * the caller cannot see (unknown, or another tenant's) raises P0002.  Every
 * UPDATE re-checks the status it expects in its WHERE clause, so a caller
 * racing with a sweep or a cancel never overwrites the winner's change.
 *
 * These functions are SECURITY DEFINER with a pinned search_path: clients get
 * EXECUTE on them, never write access to the tables.  The tenant filter is
 * applied here because the table owner bypasses row-level security.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "registry.h"
#include "shared.h"
#include "spi_plans.h"

PG_FUNCTION_INFO_V1(jobq_enqueue);
PG_FUNCTION_INFO_V1(jobq_enqueue_many);
PG_FUNCTION_INFO_V1(jobq_claim);
PG_FUNCTION_INFO_V1(jobq_heartbeat);
PG_FUNCTION_INFO_V1(jobq_progress);
PG_FUNCTION_INFO_V1(jobq_complete);
PG_FUNCTION_INFO_V1(jobq_complete_many);
PG_FUNCTION_INFO_V1(jobq_fail);
PG_FUNCTION_INFO_V1(jobq_cancel);
PG_FUNCTION_INFO_V1(jobq_retry);
PG_FUNCTION_INFO_V1(jobq_status);
PG_FUNCTION_INFO_V1(jobq_set_auth_token);

/* ---- saved plans ---- */

#define ENQUEUE_INSERT \
	"INSERT INTO jobq.jobs (id, user_id, job_type, queue, priority, run_at, payload," \
	" units_total, max_attempts, dedupe_key, trace_id)" \
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
#define ENQUEUE_TYPES \
	{UUIDOID, UUIDOID, TEXTOID, TEXTOID, INT4OID, TIMESTAMPTZOID, JSONBOID, \
	INT4OID, INT4OID, TEXTOID, TEXTOID}

static JobqPlan enqueue_plan = {ENQUEUE_INSERT, 11, ENQUEUE_TYPES};

/* the same with dedupe: an active job of the same type, user and key wins */
static JobqPlan enqueue_dedupe_plan = {
	ENQUEUE_INSERT " ON CONFLICT (job_type, user_id, dedupe_key)"
	" WHERE dedupe_key IS NOT NULL AND status < 2 DO NOTHING RETURNING id",
	11, ENQUEUE_TYPES
};

static JobqPlan dedupe_lookup_plan = {
	"SELECT id FROM jobq.jobs WHERE job_type = $1 AND user_id = $2"
	" AND dedupe_key = $3 AND dedupe_key IS NOT NULL AND status < 2",
	3, {TEXTOID, UUIDOID, TEXTOID}
};

static JobqPlan enqueue_many_plan = {
	"INSERT INTO jobq.jobs (id, user_id, job_type, queue, priority, run_at, payload,"
	" max_attempts, trace_id)"
	" SELECT u.id, $2, $3, $4, $5, $6, u.payload, $7, u.trace_id"
	" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($8), pg_catalog.unnest($9))"
	" AS u(id, payload, trace_id)",
	9, {UUIDARRAYOID, UUIDOID, TEXTOID, TEXTOID, INT4OID, TIMESTAMPTZOID, INT4OID,
	JSONBARRAYOID, TEXTARRAYOID}
};

/*
 * Claim: shared by jobq.claim() and the in-server workers.  Column 1 is the
 * whole row (type jobq.jobs); the rest are the fields the workers need.
 */
static JobqPlan claim_plan = {
	"UPDATE jobq.jobs j SET status = 1, attempts = j.attempts + 1, locked_by = $2,"
	"  started_at = pg_catalog.now(), heartbeat_at = pg_catalog.now()"
	" WHERE j.id = ANY (ARRAY (SELECT id FROM jobq.jobs"
	"  WHERE status = 0 AND queue = $1 AND run_at <= pg_catalog.now()"
	"    AND ($4 IS NULL OR job_type = ANY ($4))"
	"  ORDER BY priority DESC, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED))"
	" RETURNING j, j.id, j.job_type, j.trace_id, j.attempts, j.max_attempts,"
	"  j.units_total, j.units_done, j.priority, j.run_at, j.user_id",
	4, {TEXTOID, TEXTOID, INT4OID, TEXTARRAYOID}
};

/* status and holder of a job as the caller sees it ($2: tenant or NULL) */
static JobqPlan state_plan = {
	"SELECT status, locked_by FROM jobq.jobs WHERE id = $1"
	" AND ($2::uuid IS NULL OR user_id = $2)",
	2, {UUIDOID, UUIDOID}
};

static JobqPlan lock_plan = {
	"SELECT status, locked_by, attempts, max_attempts, trace_id, units_done"
	" FROM jobq.jobs WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) FOR UPDATE",
	2, {UUIDOID, UUIDOID}
};

static JobqPlan heartbeat_plan = {
	"UPDATE jobq.jobs SET heartbeat_at = pg_catalog.now() WHERE id = $1 AND status = 1"
	" AND ($2::text IS NULL OR locked_by = $2) AND ($3::uuid IS NULL OR user_id = $3)",
	3, {UUIDOID, TEXTOID, UUIDOID}
};

static JobqPlan progress_plan = {
	"UPDATE jobq.jobs j SET progress_percent = $2,"
	" status_message = COALESCE($3, status_message), heartbeat_at = pg_catalog.now()"
	" WHERE id = $1 AND status = 1 AND ($4::uuid IS NULL OR user_id = $4) RETURNING j",
	4, {UUIDOID, INT4OID, TEXTOID, UUIDOID}
};

static JobqPlan complete_plan = {
	"UPDATE jobq.jobs j SET status = 2, result = $2, completed_at = pg_catalog.clock_timestamp(),"
	" locked_by = NULL, progress_percent = 100"
	" WHERE id = $1 AND status = 1 AND ($3::text IS NULL OR locked_by = $3)"
	" AND ($4::uuid IS NULL OR user_id = $4) RETURNING j",
	4, {UUIDOID, JSONBOID, TEXTOID, UUIDOID}
};

static JobqPlan complete_many_plan = {
	"UPDATE jobq.jobs j SET status = 2, result = ($2)[pg_catalog.array_position($1, j.id)],"
	" completed_at = pg_catalog.clock_timestamp(), locked_by = NULL, progress_percent = 100"
	" WHERE j.id = ANY ($1) AND j.status = 1 AND ($3::text IS NULL OR j.locked_by = $3)"
	" AND ($4::uuid IS NULL OR j.user_id = $4) RETURNING j.id, j",
	4, {UUIDARRAYOID, JSONBARRAYOID, TEXTOID, UUIDOID}
};

/* $6: the holder, or NULL when the caller has locked and checked the row */
static JobqPlan fail_plan = {
	"UPDATE jobq.jobs j SET status = $2, run_at = COALESCE($3, run_at),"
	" completed_at = CASE WHEN $2 = 0 THEN NULL ELSE pg_catalog.clock_timestamp() END,"
	" locked_by = NULL, error_message = $4, error = $5"
	" WHERE id = $1 AND status = 1 AND ($6::text IS NULL OR locked_by = $6) RETURNING j",
	6, {UUIDOID, INT4OID, TIMESTAMPTZOID, TEXTOID, JSONBOID, TEXTOID}
};

static JobqPlan cancel_plan = {
	"UPDATE jobq.jobs j SET status = 4, completed_at = pg_catalog.now(), locked_by = NULL,"
	" error_message = $2, error = $3 WHERE id = $1 RETURNING j",
	3, {UUIDOID, TEXTOID, JSONBOID}
};

static JobqPlan retry_plan = {
	"UPDATE jobq.jobs j SET status = 0, run_at = pg_catalog.now(), completed_at = NULL,"
	" started_at = NULL, heartbeat_at = NULL, locked_by = NULL, attempts = 0,"
	" result = NULL, error = NULL, error_message = NULL WHERE id = $1 RETURNING j",
	1, {UUIDOID}
};

static JobqPlan status_plan = {
	"SELECT * FROM jobq.jobs WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)",
	2, {UUIDOID, UUIDOID}
};

static int64 retry_delay_ms(int attempt);

uint64
jobq_plan_exec(JobqPlan *p, Datum *values, const char *nulls, bool read_only, long count)
{
	int			rc;

	if (p->plan == NULL)
	{
		/*
		 * Always the generic plan: every statement here is a key lookup or
		 * a short index scan, written so that its generic plan is the right
		 * one (ids as "= ANY (array)", never joins that a row estimate could
		 * turn into a hash join), and re-planning each call would cost more
		 * than the statement.
		 */
		SPIPlanPtr	plan = SPI_prepare_cursor(p->sql, p->nargs, p->argtypes,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "jobq: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "jobq: SPI_keepplan failed");
		p->plan = plan;
	}
	rc = SPI_execute_plan(p->plan, values, nulls, read_only, count);
	if (rc < 0)
		elog(ERROR, "jobq: SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

void
jobq_spi_row_to(TupleDesc tupdesc, uint64 row, Datum *values, bool *nulls)
{
	int			src = 1;
	int			nsrc = SPI_tuptable->tupdesc->natts;

	for (int i = 0; i < tupdesc->natts; i++)
	{
		if (TupleDescAttr(tupdesc, i)->attisdropped || src > nsrc)
		{
			values[i] = (Datum) 0;
			nulls[i] = true;
			continue;
		}
		values[i] = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
								  src++, &nulls[i]);
	}
}

/*
 * Claim up to max_jobs due jobs of `queue` for `holder`; job_types is a
 * text[] Datum or 0 for all types.  Needs SPI; leaves the rows (laid out as
 * claim_plan's RETURNING list) in SPI_tuptable and returns their number.
 */
static JobqPlan drop_tokens_plan = {
	"DELETE FROM jobq.job_tokens WHERE job_id = ANY ($1)", 1, {UUIDARRAYOID}
};

/*
 * Erase the forwarded tokens of jobs that just reached a terminal state
 * (jobq.job_tokens exists from version 0.5 on).  Needs SPI.
 */
static void
drop_tokens(Datum *ids, int n)
{
	Oid			nsp = get_namespace_oid("jobq", true);
	Datum		arg;

	if (n == 0 || !OidIsValid(nsp) || !OidIsValid(get_relname_relid("job_tokens", nsp)))
		return;
	arg = PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	jobq_plan_exec(&drop_tokens_plan, &arg, NULL, false, 0);
}

/* Queue the progress notification of every row SPI just returned in column col. */
static void
notify_rows(int col)
{
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		row = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, col, &isnull);

		if (!isnull)
			jobq_notify_job(row);
	}
}

uint64
jobq_claim_rows(const char *queue, const char *holder, int max_jobs, Datum job_types)
{
	Datum		values[4];
	char		nulls[5] = "    ";

	values[0] = CStringGetTextDatum(queue);
	values[1] = CStringGetTextDatum(holder);
	values[2] = Int32GetDatum(max_jobs);
	values[3] = job_types;
	nulls[3] = job_types ? ' ' : 'n';
	if (jobq_plan_exec(&claim_plan, values, nulls, false, 0) > 0)
		notify_rows(1);
	return SPI_processed;
}

/*
 * The attempts of claims that a crash took back (claims.c): a job that is
 * Queued again with one attempt fewer than a worker's journal recorded for
 * it was running when the server went down, and its claim never reached
 * the WAL on disk.  Count that attempt, and fail the job if it was its
 * last.  Once counted, the row no longer matches: every worker reads every
 * journal, and the attempt is counted once.  A job that was retried while
 * it ran has fewer attempts still, and is left alone.
 */
static JobqPlan lost_claims_plan = {
	"UPDATE jobq.jobs j SET attempts = j.attempts + 1,"
	" status = CASE WHEN j.attempts + 1 < j.max_attempts THEN 0 ELSE 3 END,"
	" completed_at = CASE WHEN j.attempts + 1 < j.max_attempts THEN NULL"
	"  ELSE pg_catalog.clock_timestamp() END,"
	" error_message = 'the worker running this job was lost',"
	" error = jobq._error_json(j.trace_id, 'WorkerLost', 'the worker running this job was lost',"
	"  j.attempts + 1, j.units_done)"
	" WHERE j.id = ANY ($1) AND j.status = 0"
	" AND j.attempts + 1 = (SELECT pg_catalog.max(c.a) FROM"
	"  ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS c(id, a) WHERE c.id = j.id)"
	" RETURNING j, j.id, j.status",
	2, {UUIDARRAYOID, INT4ARRAYOID}
};

/*
 * ids: uuid[], attempts: int4[] of the same length (a job may appear more
 * than once).  Needs SPI.  Returns the number of jobs changed.
 */
uint64
jobq_count_lost_claims(Datum ids, Datum attempts)
{
	Datum		values[2] = {ids, attempts};
	uint64		n = jobq_plan_exec(&lost_claims_plan, values, NULL, false, 0);
	Datum	   *failed;
	int			nfailed = 0;

	if (n == 0)
		return 0;
	notify_rows(1);
	failed = palloc(sizeof(Datum) * n);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		if (DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3,
										&isnull)) == 3)
			failed[nfailed++] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2,
											  &isnull);
	}
	drop_tokens(failed, nfailed);
	return n;
}

/* Complete a Processing job held by holder; false if it no longer is one. */
bool
jobq_complete_held(const pg_uuid_t *id, Datum result, bool result_null, const char *holder)
{
	Datum		values[4];
	char		nulls[5] = "   n";

	values[0] = UUIDPGetDatum(id);
	values[1] = result;
	nulls[1] = result_null ? 'n' : ' ';
	values[2] = CStringGetTextDatum(holder);
	values[3] = (Datum) 0;
	if (jobq_plan_exec(&complete_plan, values, nulls, false, 0) == 0)
		return false;
	notify_rows(1);
	jobq_count(JOBQ_C_COMPLETED, 1);
	return true;
}

/*
 * Complete n Processing jobs held by holder, with their results, in one
 * UPDATE.  Returns how many were still ours; their ids are column 1 of
 * SPI_tuptable.  Notifies and counts only when all n were.  Needs SPI.
 */
uint64
jobq_complete_held_many(Datum *ids, Datum *results, bool *result_nulls, int n,
						const char *holder)
{
	Datum		values[4];
	char		nulls[5] = "   n";
	int			dims[1] = {n};
	int			lbs[1] = {1};
	uint64		done;

	values[0] = PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[1] = PointerGetDatum(construct_md_array(results, result_nulls, 1, dims, lbs,
												   JSONBOID, -1, false, TYPALIGN_INT));
	values[2] = CStringGetTextDatum(holder);
	values[3] = (Datum) 0;
	done = jobq_plan_exec(&complete_many_plan, values, nulls, false, 0);
	if (done == (uint64) n)
	{
		notify_rows(2);
		jobq_count(JOBQ_C_COMPLETED, n);
	}
	return done;
}

/*
 * Record a failed attempt of a Processing job (held by holder, or already
 * locked and checked when holder is NULL): back to Queued after a backoff
 * when retry is allowed and attempts remain, else Failed.  Builds the one
 * error JSON, whose status is http_status, or the code's when 0.  Returns
 * false if the job was no longer ours.  Needs SPI.
 */
bool
jobq_record_failure(const pg_uuid_t *id, const char *holder, const char *trace_id,
					int attempts, int max_attempts, int checkpoints,
					const char *code, int http_status, const char *message, bool retry,
					bool *requeued)
{
	bool		requeue = retry && attempts < max_attempts;
	Datum		values[6];
	char		nulls[7] = "      ";
	bool		ok;

	values[0] = UUIDPGetDatum(id);
	values[1] = Int32GetDatum(requeue ? JOBQ_QUEUED : JOBQ_FAILED);
	if (requeue)
		values[2] = TimestampTzGetDatum(TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																	retry_delay_ms(attempts)));
	else
		nulls[2] = 'n';
	values[3] = CStringGetTextDatum(message);
	values[4] = JsonbPGetDatum(jobq_error_json(trace_id,
											   http_status ? http_status : jobq_status_for_code(code),
											   code, message, attempts, checkpoints));
	values[5] = holder ? CStringGetTextDatum(holder) : (Datum) 0;
	nulls[5] = holder ? ' ' : 'n';
	ok = jobq_plan_exec(&fail_plan, values, nulls, false, 0) > 0;
	if (ok)
	{
		notify_rows(1);
		jobq_count(JOBQ_C_ATTEMPTS_FAILED, 1);
		if (!requeue)
		{
			jobq_count(JOBQ_C_FAILED, 1);
			drop_tokens(&values[0], 1);
		}
	}
	if (ok && requeue)
		jobq_wake_at_commit();
	if (requeued)
		*requeued = ok && requeue;
	return ok;
}

/* ---- helpers ---- */

/* A required uuid argument: 22023 when NULL. */
static pg_uuid_t *
arg_job_id(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job_id must not be NULL")));
	return PG_GETARG_UUID_P(argno);
}

/* An optional worker name: NULL, or a name not in the in-server namespace. */
static char *
arg_worker(FunctionCallInfo fcinfo, int argno)
{
	char	   *worker;

	if (PG_ARGISNULL(argno))
		return NULL;
	worker = jobq_arg_name(fcinfo, argno, "worker", NULL);
	if (jobq_holder_is_worker(worker) && !IsBackgroundWorker)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("worker name \"%s\" is reserved for jobq's in-server workers", worker),
				 errhint("Choose a name that does not start with \"jobq:\".")));
	return worker;
}

/* The tenant as a plan parameter: its Datum, or a NULL. */
static void
tenant_param(pg_uuid_t *buf, Datum *value, char *null)
{
	if (jobq_current_tenant(buf))
	{
		*value = UUIDPGetDatum(buf);
		*null = ' ';
	}
	else
	{
		*value = (Datum) 0;
		*null = 'n';
	}
}

static const char *
uuid_str(const pg_uuid_t *id)
{
	char	   *buf = palloc(UUID_LEN * 2 + 5);

	jobq_uuid_to_cstring(id, buf);
	return buf;
}

/* P0002 for a job the caller cannot see. */
static void pg_attribute_noreturn()
no_such_job(const pg_uuid_t *id)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("job %s does not exist", uuid_str(id))));
}

/*
 * After an UPDATE that expected a Processing job (held by `worker`, if
 * given) changed nothing: raise the error that says why.
 */
static void pg_attribute_noreturn()
not_applicable(const char *action, const pg_uuid_t *id, const char *worker,
			   Datum tenant, char tenant_null)
{
	Datum		values[2] = {UUIDPGetDatum(id), tenant};
	char		nulls[3] = {' ', tenant_null, '\0'};
	bool		isnull;
	int			status;
	char	   *holder;

	if (jobq_plan_exec(&state_plan, values, nulls, false, 1) == 0)
		no_such_job(id);
	status = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	holder = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (status != JOBQ_PROCESSING)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s job %s: it is %s, not Processing",
						action, uuid_str(id), jobq_status_name(status))));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s job %s: it is held by \"%s\", not by \"%s\"",
					action, uuid_str(id), holder ? holder : "", worker ? worker : ""),
			 errhint("The job was rescued and claimed again; this worker's result is no longer wanted.")));
}

/* A job locked FOR UPDATE by lock_job(), with what the transitions need. */
typedef struct LockedJob
{
	int			status;
	char	   *holder;
	int			attempts;
	int			max_attempts;
	char	   *trace_id;
	int			units_done;
	pg_uuid_t	tenant;
	Datum		tenant_value;	/* the tenant as a plan parameter */
	char		tenant_null;
} LockedJob;

/* Lock the caller-visible job and read it; P0002 when invisible.  Needs SPI. */
static void
lock_job(pg_uuid_t *id, LockedJob *job)
{
	Datum		values[2];
	char		nulls[3] = "  ";
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;

	values[0] = UUIDPGetDatum(id);
	tenant_param(&job->tenant, &job->tenant_value, &job->tenant_null);
	values[1] = job->tenant_value;
	nulls[1] = job->tenant_null;
	if (jobq_plan_exec(&lock_plan, values, nulls, false, 1) == 0)
		no_such_job(id);
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	job->status = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
	job->holder = SPI_getvalue(row, desc, 2);
	job->attempts = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
	job->max_attempts = DatumGetInt32(SPI_getbinval(row, desc, 4, &isnull));
	job->trace_id = SPI_getvalue(row, desc, 5);
	job->units_done = DatumGetInt32(SPI_getbinval(row, desc, 6, &isnull));
}

/* Delay before retrying a job whose attempt number `attempt` failed. */
static int64
retry_delay_ms(int attempt)
{
	int64		delay = jobq_retry_delay_ms;

	for (int i = 1; i < attempt && delay < jobq_retry_delay_max_ms; i++)
		delay *= 2;
	return Min(delay, (int64) jobq_retry_delay_max_ms);
}

/* The trace id of a new job: given, else from jobq.traceparent, else new. */
static void
new_job_trace_id(FunctionCallInfo fcinfo, int argno, char *out)
{
	if (argno >= 0 && !PG_ARGISNULL(argno))
	{
		char	   *given = text_to_cstring(PG_GETARG_TEXT_PP(argno));

		if (!jobq_normalize_trace_id(given, out))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("trace_id \"%s\" is not 32 hex digits", given),
					 errhint("A W3C trace id is 32 hex digits, not all zero.")));
		return;
	}
	if (jobq_traceparent_setting && jobq_traceparent_setting[0] != '\0')
	{
		if (!jobq_trace_id_from_traceparent(jobq_traceparent_setting, out))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("jobq.traceparent \"%s\" is not a W3C traceparent",
							jobq_traceparent_setting),
					 errhint("Expected \"00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>\".")));
		return;
	}
	jobq_new_trace_id(out);
}

/* The user a new job belongs to: argument argno, checked against the tenant. */
static void
new_job_user(FunctionCallInfo fcinfo, int argno, pg_uuid_t *out)
{
	pg_uuid_t	tenant;
	bool		has_tenant = jobq_current_tenant(&tenant);

	if (PG_ARGISNULL(argno))
	{
		if (has_tenant)
			*out = tenant;
		else
			memset(out, 0, sizeof(pg_uuid_t));
		return;
	}
	*out = *PG_GETARG_UUID_P(argno);
	if (has_tenant && memcmp(out, &tenant, sizeof(pg_uuid_t)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot enqueue a job for user %s: this session acts for user %s",
						uuid_str(out), uuid_str(&tenant))));
}

/* Set up a materialized SETOF uuid result. */
static void
uuid_set_result(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old;
	TupleDesc	tupdesc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTemplateTupleDesc(1);
	TupleDescInitEntry(tupdesc, (AttrNumber) 1, "id", UUIDOID, -1, 0);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(old);
}

/*
 * What the job type's registration says about a new job: its max_attempts
 * when the caller gave none, and that unit-handler types need units.
 */
static JobqRegistration *
type_defaults(const char *job_type, bool no_units, int32 *max_attempts, bool no_max_attempts)
{
	JobqRegistration *reg = jobq_registration(jobq_registry(), job_type);

	if (reg == NULL)
		return NULL;
	if (no_max_attempts && reg->max_attempts > 0)
		*max_attempts = reg->max_attempts;
	if (no_units && reg->kind == JOBQ_KIND_UNITS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job type \"%s\" has a unit handler, so units must be given", job_type),
				 errhint("Pass units => N: the worker runs units 1..N.")));
	return reg;
}

/*
 * Will an in-server worker run a job of this registration in this queue?
 * Only then is it worth waking one: jobs left to external workers would
 * make every idle worker poll for nothing at every enqueue.
 */
static bool
served_in_server(JobqRegistration *reg, const char *queue)
{
	return reg != NULL && strcmp(reg->queue, queue) == 0;
}

/*
 * 23514 when the job type's validators score the payload below its
 * threshold; the detail is the jobq.validate() JSON.  Needs SPI.
 */
static void
check_validation(const char *job_type, Datum payload, int index)
{
	bool		passed;
	Jsonb	   *verdict = jobq_validate_payload(jobq_registry(), job_type, payload, &passed);

	if (verdict == NULL || passed)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 index > 0 ?
			 errmsg("payloads[%d] for job type \"%s\" was rejected by its validators", index, job_type) :
			 errmsg("payload for job type \"%s\" was rejected by its validators", job_type),
			 errdetail("%s", JsonbToCString(NULL, &verdict->root, VARSIZE(verdict))),
			 errhint("jobq.validate(job_type, payload) shows the score of each layer.")));
}

static JobqPlan token_plan = {
	"INSERT INTO jobq.job_tokens (job_id, token) VALUES ($1, $2)"
	" ON CONFLICT (job_id) DO UPDATE SET token = excluded.token",
	2, {UUIDOID, TEXTOID}
};

/*
 * Keep the session's jobq.auth_token for a job whose type runs on
 * providers, apart from jobq.jobs, to be forwarded and then erased.
 */
static void
keep_token(JobqRegistration *reg, pg_uuid_t *ids, int n)
{
	Datum		values[2];

	if (reg == NULL || reg->kind != JOBQ_KIND_PROVIDERS ||
		jobq_auth_token_setting == NULL || jobq_auth_token_setting[0] == '\0')
		return;
	/* it goes into an HTTP header: no control characters (never echo it) */
	for (const char *p = jobq_auth_token_setting; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("jobq.auth_token holds a control character, which cannot go into an HTTP header")));
	values[1] = CStringGetTextDatum(jobq_auth_token_setting);
	for (int i = 0; i < n; i++)
	{
		values[0] = UUIDPGetDatum(&ids[i]);
		jobq_plan_exec(&token_plan, values, NULL, false, 0);
	}
}

/* ---- application API ---- */

/*
 * jobq.enqueue(job_type, payload, user_id, queue, priority, run_at, units,
 *				max_attempts, dedupe_key, trace_id) RETURNS uuid
 */
Datum
jobq_enqueue(PG_FUNCTION_ARGS)
{
	char	   *job_type = jobq_arg_name(fcinfo, 0, "job_type", NULL);
	char	   *queue = jobq_arg_name(fcinfo, 3, "queue", "default");
	Datum		payload;
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));
	pg_uuid_t	user_id;
	int32		priority = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz run_at = PG_ARGISNULL(5) ? now : PG_GETARG_TIMESTAMPTZ(5);
	int32		max_attempts = jobq_default_max_attempts;
	char	   *dedupe_key = NULL;
	char		trace_id[JOBQ_TRACE_ID_LEN + 1];
	JobqRegistration *reg;
	Datum		values[11];
	char		nulls[12] = "           ";

	if (PG_ARGISNULL(1))
		payload = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
	else
		payload = PG_GETARG_DATUM(1);
	jobq_check_payload(payload, "payload");
	new_job_user(fcinfo, 2, &user_id);

	if (!PG_ARGISNULL(6))
	{
		int32		units = PG_GETARG_INT32(6);

		if (units <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("units must be positive, not %d", units)));
		if (units > jobq_max_units)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("units %d exceeds jobq.max_units (%d)", units, jobq_max_units)));
	}
	if (!PG_ARGISNULL(7))
	{
		max_attempts = PG_GETARG_INT32(7);
		if (max_attempts <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_attempts must be positive, not %d", max_attempts)));
	}
	if (!PG_ARGISNULL(8))
	{
		dedupe_key = text_to_cstring(PG_GETARG_TEXT_PP(8));
		if (dedupe_key[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("dedupe_key must not be empty"),
					 errhint("Pass NULL for a job without a dedupe key.")));
	}
	new_job_trace_id(fcinfo, 9, trace_id);
	SPI_connect();
	reg = type_defaults(job_type, PG_ARGISNULL(6), &max_attempts, PG_ARGISNULL(7));
	check_validation(job_type, payload, 0);
	jobq_uuid_v7(id);

	values[0] = UUIDPGetDatum(id);
	values[1] = UUIDPGetDatum(&user_id);
	values[2] = CStringGetTextDatum(job_type);
	values[3] = CStringGetTextDatum(queue);
	values[4] = Int32GetDatum(priority);
	values[5] = TimestampTzGetDatum(run_at);
	values[6] = payload;
	values[7] = PG_ARGISNULL(6) ? (Datum) 0 : PG_GETARG_DATUM(6);
	nulls[7] = PG_ARGISNULL(6) ? 'n' : ' ';
	values[8] = Int32GetDatum(max_attempts);
	values[9] = dedupe_key ? CStringGetTextDatum(dedupe_key) : (Datum) 0;
	nulls[9] = dedupe_key ? ' ' : 'n';
	values[10] = CStringGetTextDatum(trace_id);

	if (dedupe_key == NULL)
		jobq_plan_exec(&enqueue_plan, values, nulls, false, 0);
	else
	{
		/*
		 * ON CONFLICT waits for a concurrent inserter of the same key, so
		 * either our row goes in or the winner's is committed and visible to
		 * the lookup's new snapshot.  Loop for the rare case that the winner
		 * finished (left status 0/1) in between.
		 */
		for (;;)
		{
			Datum		lookup[3] = {values[2], values[1], values[9]};

			CHECK_FOR_INTERRUPTS();
			if (jobq_plan_exec(&enqueue_dedupe_plan, values, nulls, false, 0) > 0)
				break;
			if (jobq_plan_exec(&dedupe_lookup_plan, lookup, NULL, false, 1) > 0)
			{
				bool		isnull;
				Datum		existing = SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull);

				memcpy(id, DatumGetUUIDP(existing), sizeof(pg_uuid_t));
				SPI_finish();
				PG_RETURN_UUID_P(id);
			}
		}
	}
	keep_token(reg, id, 1);
	SPI_finish();

	jobq_count(JOBQ_C_ENQUEUED, 1);
	if (run_at <= GetCurrentTimestamp() && served_in_server(reg, queue))
		jobq_wake_at_commit();
	PG_RETURN_UUID_P(id);
}

/*
 * jobq.enqueue_many(job_type, payloads jsonb[], user_id, queue, priority)
 * RETURNS SETOF uuid: one INSERT for the whole array, ids in array order.
 */
Datum
jobq_enqueue_many(PG_FUNCTION_ARGS)
{
	char	   *job_type = jobq_arg_name(fcinfo, 0, "job_type", NULL);
	char	   *queue = jobq_arg_name(fcinfo, 3, "queue", "default");
	int32		priority = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArrayType  *payloads;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	pg_uuid_t	user_id;
	pg_uuid_t  *ids;
	Datum	   *id_datums;
	Datum	   *trace_datums;
	char		shared_trace[JOBQ_TRACE_ID_LEN + 1];
	bool		one_trace;
	int32		max_attempts = jobq_default_max_attempts;
	JobqRegistration *reg;
	MemoryContext caller = CurrentMemoryContext;
	Datum		values[9];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payloads must not be NULL")));
	payloads = PG_GETARG_ARRAYTYPE_P(1);
	if (ARR_NDIM(payloads) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payloads must be a one-dimensional array, not %d-dimensional",
						ARR_NDIM(payloads))));
	new_job_user(fcinfo, 2, &user_id);
	SPI_connect();
	reg = type_defaults(job_type, true, &max_attempts, true);
	deconstruct_array(payloads, JSONBOID, -1, false, TYPALIGN_INT, &elems, &elem_nulls, &n);

	uuid_set_result(fcinfo);
	if (n == 0)
	{
		SPI_finish();
		return (Datum) 0;
	}

	/* a session traceparent puts the whole batch in one trace */
	one_trace = jobq_traceparent_setting && jobq_traceparent_setting[0] != '\0';
	if (one_trace)
		new_job_trace_id(fcinfo, -1, shared_trace);

	/* the ids outlive SPI_finish: they are the function's result */
	ids = MemoryContextAlloc(caller, sizeof(pg_uuid_t) * n);
	id_datums = MemoryContextAlloc(caller, sizeof(Datum) * n);
	trace_datums = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		char		trace_id[JOBQ_TRACE_ID_LEN + 1];

		if (elem_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("payloads[%d] must not be NULL", i + 1)));
		jobq_check_payload(elems[i], psprintf("payloads[%d]", i + 1));
		check_validation(job_type, elems[i], i + 1);
		jobq_uuid_v7(&ids[i]);
		id_datums[i] = UUIDPGetDatum(&ids[i]);
		if (!one_trace)
			jobq_new_trace_id(trace_id);
		trace_datums[i] = CStringGetTextDatum(one_trace ? shared_trace : trace_id);
	}

	values[0] = PointerGetDatum(construct_array(id_datums, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[1] = UUIDPGetDatum(&user_id);
	values[2] = CStringGetTextDatum(job_type);
	values[3] = CStringGetTextDatum(queue);
	values[4] = Int32GetDatum(priority);
	values[5] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	values[6] = Int32GetDatum(max_attempts);
	values[7] = PointerGetDatum(payloads);
	values[8] = PointerGetDatum(construct_array(trace_datums, n, TEXTOID, -1, false, TYPALIGN_INT));

	jobq_plan_exec(&enqueue_many_plan, values, NULL, false, 0);
	keep_token(reg, ids, n);
	SPI_finish();

	for (int i = 0; i < n; i++)
	{
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &id_datums[i], &isnull);
	}
	jobq_count(JOBQ_C_ENQUEUED, n);
	if (served_in_server(reg, queue))
		jobq_wake_at_commit();
	return (Datum) 0;
}

/* ---- worker API ---- */

/*
 * jobq.claim(queue, worker, max_jobs, job_types) RETURNS SETOF jobq.jobs
 *
 * FOR UPDATE SKIP LOCKED in the CTE: concurrent claimers skip each other's
 * rows instead of waiting, and never get the same job.
 */
Datum
jobq_claim(PG_FUNCTION_ARGS)
{
	char	   *queue = jobq_arg_name(fcinfo, 0, "queue", "default");
	char	   *worker = arg_worker(fcinfo, 1);
	int32		max_jobs = PG_ARGISNULL(2) ? 1 : PG_GETARG_INT32(2);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint64		n;

	if (max_jobs < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_jobs must not be negative, not %d", max_jobs)));
	if (worker == NULL)
		worker = psprintf("backend:%d", MyProcPid);
	if (!PG_ARGISNULL(3))
	{
		Datum	   *types;
		bool	   *tnulls;
		int			nt;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), TEXTOID, -1, false, TYPALIGN_INT,
						  &types, &tnulls, &nt);
		for (int i = 0; i < nt; i++)
			if (tnulls[i] || VARSIZE_ANY_EXHDR(DatumGetPointer(types[i])) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("job_types[%d] must not be %s", i + 1, tnulls[i] ? "NULL" : "empty")));
	}

	InitMaterializedSRF(fcinfo, 0);
	if (max_jobs == 0)
		return (Datum) 0;

	SPI_connect();
	n = jobq_claim_rows(queue, worker, max_jobs, PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		HeapTupleHeader row;
		HeapTupleData tuple;

		row = DatumGetHeapTupleHeader(SPI_getbinval(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 1, &isnull));
		tuple.t_len = HeapTupleHeaderGetDatumLength(row);
		ItemPointerSetInvalid(&tuple.t_self);
		tuple.t_tableOid = InvalidOid;
		tuple.t_data = row;
		tuplestore_puttuple(rsinfo->setResult, &tuple);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * jobq.heartbeat(job_id, worker) RETURNS boolean: false tells the caller to
 * stop, because the job is no longer Processing or no longer its own.
 */
Datum
jobq_heartbeat(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = arg_job_id(fcinfo, 0);
	char	   *worker = arg_worker(fcinfo, 1);
	pg_uuid_t	tenant;
	Datum		values[3];
	char		nulls[4] = "   ";
	bool		beat;

	values[0] = UUIDPGetDatum(id);
	values[1] = worker ? CStringGetTextDatum(worker) : (Datum) 0;
	nulls[1] = worker ? ' ' : 'n';
	tenant_param(&tenant, &values[2], &nulls[2]);

	SPI_connect();
	beat = jobq_plan_exec(&heartbeat_plan, values, nulls, false, 0) > 0;
	if (!beat && jobq_plan_exec(&state_plan, (Datum[2]) {values[0], values[2]},
								(char[3]) {' ', nulls[2], '\0'}, true, 1) == 0)
		no_such_job(id);
	SPI_finish();
	PG_RETURN_BOOL(beat);
}

/* jobq.progress(job_id, percent, message) RETURNS void */
Datum
jobq_progress(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = arg_job_id(fcinfo, 0);
	int32		percent;
	pg_uuid_t	tenant;
	Datum		values[4];
	char		nulls[5] = "    ";

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("percent must not be NULL")));
	percent = PG_GETARG_INT32(1);
	if (percent < 0 || percent > 100)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("percent %d is outside 0..100", percent)));

	values[0] = UUIDPGetDatum(id);
	values[1] = Int32GetDatum(percent);
	values[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	tenant_param(&tenant, &values[3], &nulls[3]);

	SPI_connect();
	if (jobq_plan_exec(&progress_plan, values, nulls, false, 0) == 0)
		not_applicable("report progress of", id, NULL, values[3], nulls[3]);
	notify_rows(1);
	SPI_finish();
	PG_RETURN_VOID();
}

/* jobq.complete(job_id, result, worker) RETURNS void */
Datum
jobq_complete(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = arg_job_id(fcinfo, 0);
	char	   *worker = arg_worker(fcinfo, 2);
	pg_uuid_t	tenant;
	Datum		values[4];
	char		nulls[5] = "    ";

	values[0] = UUIDPGetDatum(id);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	if (!PG_ARGISNULL(1))
		jobq_check_payload(values[1], "result");
	values[2] = worker ? CStringGetTextDatum(worker) : (Datum) 0;
	nulls[2] = worker ? ' ' : 'n';
	tenant_param(&tenant, &values[3], &nulls[3]);

	SPI_connect();
	if (jobq_plan_exec(&complete_plan, values, nulls, false, 0) == 0)
		not_applicable("complete", id, worker, values[3], nulls[3]);
	notify_rows(1);
	jobq_count(JOBQ_C_COMPLETED, 1);
	drop_tokens(&values[0], 1);
	SPI_finish();
	PG_RETURN_VOID();
}

static int
uuid_cmp_qsort(const void *a, const void *b)
{
	return memcmp(DatumGetPointer(*(const Datum *) a),
				  DatumGetPointer(*(const Datum *) b), UUID_LEN);
}

/*
 * jobq.complete_many(job_ids uuid[], results jsonb[], worker) RETURNS int
 *
 * All or nothing: if any job cannot be completed the error names it and the
 * statement's changes are rolled back with it.
 */
Datum
jobq_complete_many(PG_FUNCTION_ARGS)
{
	char	   *worker = arg_worker(fcinfo, 2);
	ArrayType  *ids;
	Datum	   *id_elems;
	bool	   *id_nulls;
	int			n;
	pg_uuid_t	tenant;
	Datum		values[4];
	char		nulls[5] = "    ";
	uint64		done;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job_ids must not be NULL")));
	ids = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(ids) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job_ids must be a one-dimensional array")));
	deconstruct_array(ids, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR, &id_elems, &id_nulls, &n);
	for (int i = 0; i < n; i++)
		if (id_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("job_ids[%d] must not be NULL", i + 1)));
	if (!PG_ARGISNULL(1))
	{
		ArrayType  *results = PG_GETARG_ARRAYTYPE_P(1);
		int			nres = ArrayGetNItems(ARR_NDIM(results), ARR_DIMS(results));

		Datum	   *relems;
		bool	   *rnulls;

		if (ARR_NDIM(results) > 1 || nres != n)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("results has %d elements but job_ids has %d", nres, n),
					 errhint("Pass one result per job id, or NULL for none.")));
		deconstruct_array(results, JSONBOID, -1, false, TYPALIGN_INT, &relems, &rnulls, &nres);
		for (int i = 0; i < nres; i++)
			if (!rnulls[i])
				jobq_check_payload(relems[i], psprintf("results[%d]", i + 1));
	}
	if (n == 0)
		PG_RETURN_INT32(0);

	/* duplicates would make the count ambiguous: refuse them */
	{
		Datum	   *sorted = palloc(sizeof(Datum) * n);

		memcpy(sorted, id_elems, sizeof(Datum) * n);
		qsort(sorted, n, sizeof(Datum), uuid_cmp_qsort);
		for (int i = 1; i < n; i++)
			if (uuid_cmp_qsort(&sorted[i - 1], &sorted[i]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("job_ids lists job %s more than once",
								uuid_str(DatumGetUUIDP(sorted[i])))));
	}

	/* rebuilt from 1, so results[i] goes with job_ids[i] whatever the bounds given */
	values[0] = PointerGetDatum(construct_array(id_elems, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	if (PG_ARGISNULL(1))
	{
		values[1] = (Datum) 0;
		nulls[1] = 'n';
	}
	else
	{
		Datum	   *relems;
		bool	   *rnulls;
		int			nres;
		int			dims[1] = {n};
		int			lbs[1] = {1};

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), JSONBOID, -1, false, TYPALIGN_INT,
						  &relems, &rnulls, &nres);
		values[1] = PointerGetDatum(construct_md_array(relems, rnulls, 1, dims, lbs, JSONBOID,
													   -1, false, TYPALIGN_INT));
	}
	values[2] = worker ? CStringGetTextDatum(worker) : (Datum) 0;
	nulls[2] = worker ? ' ' : 'n';
	tenant_param(&tenant, &values[3], &nulls[3]);

	SPI_connect();
	done = jobq_plan_exec(&complete_many_plan, values, nulls, false, 0);
	if (done < (uint64) n)
	{
		/* name the first job, in argument order, that was not completed */
		Datum	   *got = palloc(sizeof(Datum) * (done + 1));

		for (uint64 i = 0; i < done; i++)
		{
			bool		isnull;

			got[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		}
		qsort(got, done, sizeof(Datum), uuid_cmp_qsort);
		for (int i = 0; i < n; i++)
			if (bsearch(&id_elems[i], got, done, sizeof(Datum), uuid_cmp_qsort) == NULL)
				not_applicable("complete", DatumGetUUIDP(id_elems[i]), worker, values[3], nulls[3]);
		elog(ERROR, "jobq: complete_many completed %llu of %d jobs",
			 (unsigned long long) done, n);
	}
	notify_rows(2);
	jobq_count(JOBQ_C_COMPLETED, n);
	drop_tokens(id_elems, n);
	SPI_finish();
	PG_RETURN_INT32(n);
}

/*
 * jobq.fail(job_id, message, code, retry, worker) RETURNS void
 *
 * With retry and attempts left the job goes back to Queued, due after an
 * exponential backoff; otherwise it becomes Failed.
 */
Datum
jobq_fail(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = arg_job_id(fcinfo, 0);
	char	   *message;
	char	   *code = jobq_arg_name(fcinfo, 2, "code", "HandlerError");
	bool		retry = PG_ARGISNULL(3) ? true : PG_GETARG_BOOL(3);
	char	   *worker = arg_worker(fcinfo, 4);
	LockedJob	job;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("message must not be NULL")));
	message = text_to_cstring(PG_GETARG_TEXT_PP(1));

	SPI_connect();
	lock_job(id, &job);
	if (job.status != JOBQ_PROCESSING ||
		(worker && (job.holder == NULL || strcmp(job.holder, worker) != 0)))
		not_applicable("fail", id, worker, job.tenant_value, job.tenant_null);

	jobq_record_failure(id, NULL, job.trace_id, job.attempts, job.max_attempts, job.units_done,
						code, 0, message, retry, NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * jobq.cancel(job_id) RETURNS boolean: false when the job is already
 * terminal.  A running in-server handler is interrupted once this commits;
 * checkpoints are kept, so retry() resumes.
 */
Datum
jobq_cancel(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = arg_job_id(fcinfo, 0);
	LockedJob	job;
	char	   *message;
	Datum		values[3];

	SPI_connect();
	lock_job(id, &job);
	if (JOBQ_IS_TERMINAL(job.status))
	{
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	message = psprintf("cancelled by %s", GetUserNameFromId(GetOuterUserId(), false));
	values[0] = UUIDPGetDatum(id);
	values[1] = CStringGetTextDatum(message);
	values[2] = JsonbPGetDatum(jobq_error_json(job.trace_id, jobq_status_for_code("Cancelled"),
											   "Cancelled", message, job.attempts, job.units_done));
	jobq_plan_exec(&cancel_plan, values, NULL, false, 0);
	notify_rows(1);
	jobq_count(JOBQ_C_CANCELLED, 1);
	drop_tokens(&values[0], 1);
	if (job.status == JOBQ_PROCESSING && job.holder != NULL)
		jobq_cancel_at_commit(job.holder, id);
	SPI_finish();
	PG_RETURN_BOOL(true);
}

/*
 * jobq.retry(job_id) RETURNS boolean: a Failed or Cancelled job is queued
 * again, due at once, with a fresh set of attempts; false for other states.
 */
Datum
jobq_retry(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = arg_job_id(fcinfo, 0);
	LockedJob	job;
	Datum		value = UUIDPGetDatum(id);

	SPI_connect();
	lock_job(id, &job);
	if (job.status != JOBQ_FAILED && job.status != JOBQ_CANCELLED)
	{
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	jobq_plan_exec(&retry_plan, &value, NULL, false, 0);
	notify_rows(1);
	jobq_count(JOBQ_C_RETRIED, 1);
	SPI_finish();
	jobq_wake_at_commit();
	PG_RETURN_BOOL(true);
}

/* jobq.status(job_id) RETURNS jobq.jobs; P0002 when the job is not visible */
Datum
jobq_status(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = arg_job_id(fcinfo, 0);
	pg_uuid_t	tenant;
	Datum		lv[2];
	char		ln[3] = "  ";
	TupleDesc	tupdesc;
	Datum	   *row;
	bool	   *rownulls;
	HeapTuple	result;
	MemoryContext caller = CurrentMemoryContext;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "jobq.status must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);
	lv[0] = UUIDPGetDatum(id);
	tenant_param(&tenant, &lv[1], &ln[1]);

	SPI_connect();
	if (jobq_plan_exec(&status_plan, lv, ln, false, 1) == 0)
		no_such_job(id);
	row = palloc(sizeof(Datum) * tupdesc->natts);
	rownulls = palloc(sizeof(bool) * tupdesc->natts);
	jobq_spi_row_to(tupdesc, 0, row, rownulls);
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		result = heap_form_tuple(tupdesc, row, rownulls);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(result));
}

/*
 * jobq.set_auth_token(token) RETURNS void: SET LOCAL jobq.auth_token, for
 * a client that passes the token as a bind parameter (so it never shows in
 * pg_stat_activity) and may not read the setting back, as set_config() would.
 */
Datum
jobq_set_auth_token(PG_FUNCTION_ARGS)
{
	char	   *token = PG_ARGISNULL(0) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(0));

	(void) set_config_option("jobq.auth_token", token, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	PG_RETURN_VOID();
}
