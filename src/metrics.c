/*-------------------------------------------------------------------------
 *
 * metrics.c
 *	  jobq.metrics(): Prometheus text exposition (format 0.0.4).
 *
 * Gauges come from the table, but only from the live part of it (the
 * partial indexes on status 0 and 1), so a scrape stays cheap with millions
 * of finished jobs.  Totals are counters in shared memory, counted at
 * commit, that start from zero when the server (re)starts, as Prometheus
 * counters may.  Scrape with one psql line or postgres_exporter; see
 * docs/observability.md.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "shared.h"

PG_FUNCTION_INFO_V1(jobq_metrics);

/* Append a label value escaped for the text format: \\, \" and \n. */
void
jobq_append_label(StringInfo buf, const char *value)
{
	for (const char *p = value; *p; p++)
	{
		if (*p == '\\' || *p == '"')
			appendStringInfoChar(buf, '\\');
		if (*p == '\n')
		{
			appendStringInfoString(buf, "\\n");
			continue;
		}
		appendStringInfoChar(buf, *p);
	}
}

static void
family(StringInfo buf, const char *name, const char *type, const char *help)
{
	appendStringInfo(buf, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *const counter_names[JOBQ_NCOUNTERS][2] = {
	{"jobq_jobs_enqueued_total", "Jobs enqueued."},
	{"jobq_jobs_completed_total", "Jobs completed."},
	{"jobq_attempts_failed_total", "Failed attempts, retried or not."},
	{"jobq_jobs_failed_total", "Jobs that ended Failed."},
	{"jobq_jobs_cancelled_total", "Jobs cancelled."},
	{"jobq_jobs_retried_total", "Jobs queued again by jobq.retry()."},
	{"jobq_checkpoints_total", "Checkpoints uploaded to the store."},
	{"jobq_checkpoint_bytes_total", "Bytes of checkpoints uploaded to the store."},
	{"jobq_checkpoint_failures_total", "Checkpoint store requests that failed after their retries."},
};

/* Per-queue gauges from the live jobs. */
static void
queue_gauges(StringInfo buf)
{
	uint64		n;

	/* each half reads its own partial index */
	if (SPI_execute("SELECT queue, sum(queued), sum(processing), sum(due), coalesce(max(age), 0)"
					" FROM (SELECT queue, count(*) AS queued, 0 AS processing,"
					"        count(*) FILTER (WHERE run_at <= now()) AS due,"
					"        extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now())) AS age"
					"       FROM jobq.jobs WHERE status = 0 GROUP BY queue"
					"       UNION ALL"
					"       SELECT queue, 0, count(*), count(*), NULL FROM jobq.jobs"
					"       WHERE status = 1 AND started_at IS NOT NULL GROUP BY queue) s"
					" GROUP BY queue ORDER BY queue",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "jobq: could not read queue gauges");
	n = SPI_processed;

	family(buf, "jobq_jobs", "gauge", "Jobs waiting (queued) or running (processing), by queue.");
	for (uint64 i = 0; i < n; i++)
	{
		char	   *q = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		appendStringInfoString(buf, "jobq_jobs{queue=\"");
		jobq_append_label(buf, q);
		appendStringInfo(buf, "\",status=\"queued\"} %s\n",
						 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		appendStringInfoString(buf, "jobq_jobs{queue=\"");
		jobq_append_label(buf, q);
		appendStringInfo(buf, "\",status=\"processing\"} %s\n",
						 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3));
	}
	family(buf, "jobq_queue_depth", "gauge", "Due jobs queued or running: what jobq.depth(queue) answers.");
	for (uint64 i = 0; i < n; i++)
	{
		appendStringInfoString(buf, "jobq_queue_depth{queue=\"");
		jobq_append_label(buf, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		appendStringInfo(buf, "\"} %s\n", SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4));
	}
	family(buf, "jobq_oldest_queued_age_seconds", "gauge",
		   "How long the oldest due queued job has waited, by queue.");
	for (uint64 i = 0; i < n; i++)
	{
		appendStringInfoString(buf, "jobq_oldest_queued_age_seconds{queue=\"");
		jobq_append_label(buf, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		appendStringInfo(buf, "\"} %s\n", SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 5));
	}
}

static void
worker_metrics(StringInfo buf)
{
	JobqWorkerSlot slots[JOBQ_MAX_WORKERS];
	int			nslots = Min(jobq_shared->nslots, JOBQ_MAX_WORKERS);
	int			by_state[JOBQ_WS_RUNNING + 1] = {0};
	static const char *const state_label[] = {"stopped", "starting", "waiting", "idle", "running"};

	SpinLockAcquire(&jobq_shared->mutex);
	memcpy(slots, jobq_shared->slots, sizeof(JobqWorkerSlot) * nslots);
	SpinLockRelease(&jobq_shared->mutex);

	family(buf, "jobq_workers", "gauge", "In-server workers by state.");
	for (int i = 0; i < nslots; i++)
		by_state[slots[i].state]++;
	for (int s = 0; s <= JOBQ_WS_RUNNING; s++)
		appendStringInfo(buf, "jobq_workers{state=\"%s\"} %d\n", state_label[s], by_state[s]);

	family(buf, "jobq_worker_jobs_processed_total", "counter",
		   "Jobs an in-server worker completed, by worker slot (from the worker's start).");
	for (int i = 0; i < nslots; i++)
		if (slots[i].state != JOBQ_WS_STOPPED)
			appendStringInfo(buf, "jobq_worker_jobs_processed_total{worker=\"%d\"} " INT64_FORMAT "\n",
							 i, slots[i].jobs_done);
	family(buf, "jobq_worker_jobs_failed_total", "counter",
		   "Attempts that failed in an in-server worker, by worker slot (from the worker's start).");
	for (int i = 0; i < nslots; i++)
		if (slots[i].state != JOBQ_WS_STOPPED)
			appendStringInfo(buf, "jobq_worker_jobs_failed_total{worker=\"%d\"} " INT64_FORMAT "\n",
							 i, slots[i].jobs_failed);

	for (int c = 0; c < JOBQ_NCOUNTERS; c++)
	{
		family(buf, counter_names[c][0], "counter", counter_names[c][1]);
		appendStringInfo(buf, "%s " UINT64_FORMAT "\n", counter_names[c][0],
						 pg_atomic_read_u64(&jobq_shared->counters[c]));
	}
}

/* SQL: jobq.metrics() RETURNS text */
Datum
jobq_metrics(PG_FUNCTION_ARGS)
{
	StringInfoData buf;
	text	   *result;

	initStringInfo(&buf);
	SPI_connect();
	queue_gauges(&buf);
	SPI_finish();
	if (jobq_shared != NULL)
		worker_metrics(&buf);
	jobq_provider_metrics(&buf);
	result = cstring_to_text_with_len(buf.data, buf.len);
	PG_RETURN_TEXT_P(result);
}
