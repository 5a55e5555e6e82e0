/*-------------------------------------------------------------------------
 *
 * checkpoint.c
 *	  jobq.checkpoint / checkpoint_data, and the checkpoint records.
 *
 * A record (job, unit, uri, bytes, sha256) says a unit's output is in the
 * store.  `stored` is false for a record written just before its upload (by
 * the in-server runner, so that after a crash the blob can be adopted once
 * its hash matches) and true once the upload is known to have finished.
 * Only stored records count in units_done and in jobq.checkpoints().
 *
 * Reads verify: checkpoint_data() hashes what it downloads, and a missing
 * or corrupt blob raises 'data_corrupted' (XX001) naming the unit, so the
 * runner can run that unit again.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "checkpoint.h"
#include "spi_plans.h"
#include "store.h"

PG_FUNCTION_INFO_V1(jobq_checkpoint);
PG_FUNCTION_INFO_V1(jobq_checkpoint_data);

int			jobq_corrupt_unit = 0;

static pg_uuid_t prefetch_job;
static int	prefetch_units = 0;
static bytea **prefetch_outputs = NULL;

static JobqPlan list_plan = {
	"SELECT unit_id, bytes, sha256, stored, uri FROM jobq.unit_checkpoints WHERE job_id = $1",
	1, {UUIDOID}
};

static JobqPlan record_plan = {
	"INSERT INTO jobq.unit_checkpoints (job_id, unit_id, uri, bytes, sha256, stored)"
	" VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_id, unit_id) DO UPDATE"
	" SET uri = excluded.uri, bytes = excluded.bytes, sha256 = excluded.sha256,"
	" stored = excluded.stored, created_at = pg_catalog.now()",
	6, {UUIDOID, INT4OID, TEXTOID, INT8OID, TEXTOID, BOOLOID}
};

static JobqPlan stored_plan = {
	"UPDATE jobq.unit_checkpoints SET stored = true WHERE job_id = $1 AND unit_id = $2",
	2, {UUIDOID, INT4OID}
};

static JobqPlan delete_plan = {
	"DELETE FROM jobq.unit_checkpoints WHERE job_id = $1 AND unit_id = $2",
	2, {UUIDOID, INT4OID}
};

static JobqPlan progress_plan = {
	"UPDATE jobq.jobs j SET units_done = c.n,"
	" progress_percent = LEAST(100, c.n * 100 / j.units_total), heartbeat_at = pg_catalog.now(),"
	" status_message = pg_catalog.format('%s of %s units done', c.n, j.units_total)"
	" FROM (SELECT count(*)::int AS n FROM jobq.unit_checkpoints"
	"       WHERE job_id = $1 AND stored) c"
	" WHERE j.id = $1 AND j.status = 1 AND ($2::text IS NULL OR j.locked_by = $2)"
	" RETURNING j.units_done, j",
	2, {UUIDOID, TEXTOID}
};

static JobqPlan job_plan = {
	"SELECT status, user_id, units_total FROM jobq.jobs WHERE id = $1"
	" AND ($2::uuid IS NULL OR user_id = $2)",
	2, {UUIDOID, UUIDOID}
};

static JobqPlan unit_lock_plan = {
	"SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended("
	" pg_catalog.concat('jobq checkpoint ', $1, '/', $2), 0))",
	2, {UUIDOID, INT4OID}
};

static JobqPlan get_plan = {
	"SELECT c.bytes, c.sha256, c.uri FROM jobq.unit_checkpoints c WHERE c.job_id = $1"
	" AND c.unit_id = $2 AND c.stored",
	2, {UUIDOID, INT4OID}
};

List *
jobq_ckpt_list(const pg_uuid_t *job_id)
{
	Datum		arg = UUIDPGetDatum(job_id);
	uint64		n = jobq_plan_exec(&list_plan, &arg, NULL, true, 0);
	List	   *result = NIL;

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		JobqCheckpoint *c = palloc(sizeof(JobqCheckpoint));
		bool		isnull;

		c->unit_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		c->bytes = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		strlcpy(c->sha256, SPI_getvalue(tup, desc, 3), sizeof(c->sha256));
		c->stored = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		c->uri = SPI_getvalue(tup, desc, 5);
		result = lappend(result, c);
	}
	return result;
}

void
jobq_ckpt_record(const pg_uuid_t *job_id, int unit_id, const char *uri, int64 bytes,
				 const char *sha256, bool stored)
{
	Datum		values[6] = {UUIDPGetDatum(job_id), Int32GetDatum(unit_id),
	CStringGetTextDatum(uri), Int64GetDatum(bytes), CStringGetTextDatum(sha256),
	BoolGetDatum(stored)};

	jobq_plan_exec(&record_plan, values, NULL, false, 0);
}

void
jobq_ckpt_mark_stored(const pg_uuid_t *job_id, int unit_id)
{
	Datum		values[2] = {UUIDPGetDatum(job_id), Int32GetDatum(unit_id)};

	jobq_plan_exec(&stored_plan, values, NULL, false, 0);
}

void
jobq_ckpt_delete(const pg_uuid_t *job_id, int unit_id)
{
	Datum		values[2] = {UUIDPGetDatum(job_id), Int32GetDatum(unit_id)};

	jobq_plan_exec(&delete_plan, values, NULL, false, 0);
}

int
jobq_ckpt_progress(const pg_uuid_t *job_id, const char *holder)
{
	Datum		values[2] = {UUIDPGetDatum(job_id), holder ? CStringGetTextDatum(holder) : (Datum) 0};
	char		nulls[3] = {' ', holder ? ' ' : 'n', '\0'};
	bool		isnull;

	if (jobq_plan_exec(&progress_plan, values, nulls, false, 0) == 0)
		return -1;
	jobq_notify_job(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

void
jobq_ckpt_prefetch_set(const pg_uuid_t *job_id, int units, bytea **outputs)
{
	prefetch_job = *job_id;
	prefetch_units = units;
	prefetch_outputs = outputs;
}

void
jobq_ckpt_prefetch_clear(void)
{
	prefetch_units = 0;
	prefetch_outputs = NULL;
}

/* Look up the caller-visible job; 22023 unless unit_id is one of its units. */
static Datum
visible_unit_job(pg_uuid_t *id, int32 unit_id, int *status, pg_uuid_t *user_id)
{
	pg_uuid_t	tenant;
	bool		has_tenant = jobq_current_tenant(&tenant);
	Datum		values[2] = {UUIDPGetDatum(id), has_tenant ? UUIDPGetDatum(&tenant) : (Datum) 0};
	char		nulls[3] = {' ', has_tenant ? ' ' : 'n', '\0'};
	bool		isnull;
	Datum		units;
	char		idbuf[UUID_LEN * 2 + 5];

	jobq_uuid_to_cstring(id, idbuf);
	if (jobq_plan_exec(&job_plan, values, nulls, false, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("job %s does not exist", idbuf)));
	*status = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*user_id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	units = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job %s has no units", idbuf),
				 errhint("Checkpoints belong to jobs enqueued with units => N.")));
	if (unit_id < 1 || unit_id > DatumGetInt32(units))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unit_id %d is outside 1..%d for job %s", unit_id,
						DatumGetInt32(units), idbuf)));
	return units;
}

static void
require_unit_args(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job_id must not be NULL")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unit_id must not be NULL")));
}

/* SPI_finish(), returning uri (which lives in SPI memory) as text. */
static Datum
finish_with_uri(const char *uri)
{
	char	   *copy = SPI_palloc(strlen(uri) + 1);

	strcpy(copy, uri);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(copy));
}

/*
 * jobq.checkpoint(job_id, unit_id, data) RETURNS text: store a unit's
 * output for a Processing job and record it; returns the blob's URI.  The
 * upload happens before any row of the job is locked.
 */
Datum
jobq_checkpoint(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	int32		unit_id;
	bytea	   *data;
	int			status;
	pg_uuid_t	user_id;
	char		sha[65];
	char	   *key;
	char	   *uri;
	JobqStore  *store;
	char		idbuf[UUID_LEN * 2 + 5];

	require_unit_args(fcinfo);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("data must not be NULL")));
	id = PG_GETARG_UUID_P(0);
	unit_id = PG_GETARG_INT32(1);
	if (toast_raw_datum_size(PG_GETARG_DATUM(2)) - VARHDRSZ > (Size) jobq_max_checkpoint_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("checkpoint of %zu bytes exceeds jobq.max_checkpoint_bytes (%d bytes)",
						toast_raw_datum_size(PG_GETARG_DATUM(2)) - VARHDRSZ,
						jobq_max_checkpoint_bytes)));
	data = PG_GETARG_BYTEA_PP(2);
	jobq_uuid_to_cstring(id, idbuf);

	SPI_connect();
	visible_unit_job(id, unit_id, &status, &user_id);
	if (status != JOBQ_PROCESSING)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot checkpoint job %s: it is %s, not Processing",
						idbuf, jobq_status_name(status))));

	jobq_sha256_hex(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), sha);

	/* one checkpoint() of a unit at a time, so the check below cannot race */
	{
		Datum		values[2] = {UUIDPGetDatum(id), Int32GetDatum(unit_id)};

		jobq_plan_exec(&unit_lock_plan, values, NULL, false, 0);
	}

	/*
	 * A stored checkpoint is never overwritten: this transaction might roll
	 * back after the upload, and the recorded one would be lost.  The same
	 * output again is a no-op that returns its URI.
	 */
	{
		Datum		values[2] = {UUIDPGetDatum(id), Int32GetDatum(unit_id)};

		if (jobq_plan_exec(&get_plan, values, NULL, false, 1) > 0)
		{
			char	   *old_sha = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
			char	   *old_uri = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

			if (strcmp(old_sha, sha) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("unit %d of job %s already has a different checkpoint", unit_id, idbuf),
						 errhint("Checkpoints are immutable; read it with jobq.checkpoint_data().")));
			return finish_with_uri(old_uri);
		}
	}

	store = jobq_store_open();
	key = jobq_store_key(&user_id, id, unit_id);
	uri = jobq_store_uri(store, key);
	jobq_store_put(store, key, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));

	jobq_ckpt_record(id, unit_id, uri, VARSIZE_ANY_EXHDR(data), sha, true);
	if (jobq_ckpt_progress(id, NULL) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot checkpoint job %s: it stopped Processing during the upload", idbuf)));
	return finish_with_uri(uri);
}

/*
 * jobq.checkpoint_data(job_id, unit_id) RETURNS bytea: a unit's stored
 * output, checked against its sha256; NULL when the unit has none.
 */
Datum
jobq_checkpoint_data(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	int32		unit_id;
	int			status;
	pg_uuid_t	user_id;
	bool		isnull;
	int64		bytes;
	char	   *sha;
	char		got[65];
	JobqStore  *store;
	StringInfoData buf;
	bytea	   *result;
	bool		found;
	char		idbuf[UUID_LEN * 2 + 5];

	require_unit_args(fcinfo);
	id = PG_GETARG_UUID_P(0);
	unit_id = PG_GETARG_INT32(1);
	jobq_uuid_to_cstring(id, idbuf);

	SPI_connect();
	visible_unit_job(id, unit_id, &status, &user_id);
	{
		Datum		values[2] = {UUIDPGetDatum(id), Int32GetDatum(unit_id)};

		if (jobq_plan_exec(&get_plan, values, NULL, true, 1) == 0)
		{
			SPI_finish();
			PG_RETURN_NULL();
		}
	}
	bytes = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	sha = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

	/* the worker fetched (and verified) this job's outputs ahead of its finalizer */
	if (prefetch_outputs != NULL && unit_id <= prefetch_units &&
		memcmp(&prefetch_job, id, sizeof(pg_uuid_t)) == 0 && prefetch_outputs[unit_id - 1] != NULL)
	{
		bytea	   *cached = prefetch_outputs[unit_id - 1];

		result = SPI_palloc(VARSIZE(cached));
		memcpy(result, cached, VARSIZE(cached));
		SPI_finish();
		PG_RETURN_BYTEA_P(result);
	}

	{
		const char *key;

		store = jobq_store_for_uri(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3), &key);
		initStringInfo(&buf);
		found = jobq_store_get(store, key, &buf);
	}
	if (!found)
	{
		jobq_corrupt_unit = unit_id;
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("checkpoint of unit %d of job %s is missing from the store", unit_id, idbuf),
				 errhint("The unit has to run again: jobq.retry() the job.")));
	}
	jobq_sha256_hex(buf.data, buf.len, got);
	if (buf.len != bytes || strcmp(got, sha) != 0)
	{
		jobq_corrupt_unit = unit_id;
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("checkpoint of unit %d of job %s does not match its sha256", unit_id, idbuf),
				 errhint("The unit has to run again: jobq.retry() the job.")));
	}
	result = SPI_palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(result, VARHDRSZ + buf.len);
	memcpy(VARDATA(result), buf.data, buf.len);
	SPI_finish();
	PG_RETURN_BYTEA_P(result);
}
