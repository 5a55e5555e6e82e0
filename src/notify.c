/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  Progress in real time: NOTIFY jobq_progress (SPEC section 11).
 *
 * Every status change and progress update queues one notification with
 *	  {"job_id","user_id","job_type","status","percent","message",
 *	   "units_done","units_total"}
 * which PostgreSQL delivers at commit (and drops on rollback).  The payload
 * never carries the job's payload, result, error or any secret: any role
 * can LISTEN on any channel.  The message is cut (on a character boundary)
 * so the payload stays under PostgreSQL's 8000-byte limit.
 *
 * Enqueue does not notify: a committing transaction that sent a NOTIFY
 * takes a global lock, and the enqueue path must scale with concurrency.
 * A worker's notifications for one batch all go out with its one commit.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

PG_FUNCTION_INFO_V1(jobq_notify_sql);

bool		jobq_notify_progress = true;

#define PAYLOAD_LIMIT 7900		/* NOTIFY_PAYLOAD_MAX_LENGTH is 8000 */

/* attribute numbers of the fields we send, per row type */
static Oid	cached_type = InvalidOid;
static int	att_id, att_user, att_type, att_status, att_percent, att_message,
			att_done, att_total;

static int
attnum(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return i;
	}
	elog(ERROR, "jobq: jobq.jobs has no column \"%s\"", name);
	return -1;
}

static void
map_columns(TupleDesc desc, Oid type)
{
	att_id = attnum(desc, "id");
	att_user = attnum(desc, "user_id");
	att_type = attnum(desc, "job_type");
	att_status = attnum(desc, "status");
	att_percent = attnum(desc, "progress_percent");
	att_message = attnum(desc, "status_message");
	att_done = attnum(desc, "units_done");
	att_total = attnum(desc, "units_total");
	cached_type = type;
}

static void
append_uuid(StringInfo buf, Datum d)
{
	char		s[UUID_LEN * 2 + 5];

	jobq_uuid_to_cstring(DatumGetUUIDP(d), s);
	appendStringInfo(buf, "\"%s\"", s);
}

/* Queue the progress notification for one row of jobq.jobs (a composite). */
void
jobq_notify_job(Datum row)
{
	HeapTupleHeader th;
	Oid			type;
	TupleDesc	desc;
	HeapTupleData tuple;
	Datum	   *values;
	bool	   *nulls;
	StringInfoData buf;
	char	   *message = NULL;
	int			msglen = 0;

	if (!jobq_notify_progress)
		return;
	th = DatumGetHeapTupleHeader(row);
	type = HeapTupleHeaderGetTypeId(th);
	desc = lookup_rowtype_tupdesc(type, HeapTupleHeaderGetTypMod(th));
	if (type != cached_type)
		map_columns(desc, type);
	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = th;
	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(&tuple, desc, values, nulls);
	ReleaseTupleDesc(desc);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"job_id\": ");
	append_uuid(&buf, values[att_id]);
	appendStringInfoString(&buf, ", \"user_id\": ");
	append_uuid(&buf, values[att_user]);
	appendStringInfoString(&buf, ", \"job_type\": ");
	escape_json(&buf, TextDatumGetCString(values[att_type]));
	appendStringInfo(&buf, ", \"status\": %d, \"percent\": %d",
					 DatumGetInt32(values[att_status]),
					 nulls[att_percent] ? 0 : DatumGetInt32(values[att_percent]));
	appendStringInfo(&buf, ", \"units_done\": %d, \"units_total\": ",
					 nulls[att_done] ? 0 : DatumGetInt32(values[att_done]));
	if (nulls[att_total])
		appendStringInfoString(&buf, "null");
	else
		appendStringInfo(&buf, "%d", DatumGetInt32(values[att_total]));
	appendStringInfoString(&buf, ", \"message\": ");
	if (!nulls[att_message])
	{
		message = TextDatumGetCString(values[att_message]);
		msglen = strlen(message);
	}
	if (message == NULL)
		appendStringInfoString(&buf, "null}");
	else
	{
		/*
		 * Cut the message to what fits once escaped: escape it whole, and if
		 * that is too long, keep the longest prefix (on a character
		 * boundary) whose escaped form fits, found by bisection.
		 */
		int			base = buf.len;
		int			lo = 0,
					hi = msglen;

		escape_json(&buf, message);
		appendStringInfoChar(&buf, '}');
		if (buf.len > PAYLOAD_LIMIT)
		{
			while (lo < hi)
			{
				int			mid = (lo + hi + 1) / 2;
				int			cut = pg_mbcliplen(message, msglen, mid);

				buf.len = base;
				buf.data[base] = '\0';
				escape_json(&buf, pnstrdup(message, cut));
				if (buf.len + 1 <= PAYLOAD_LIMIT)
					lo = mid;
				else
					hi = mid - 1;
			}
			buf.len = base;
			buf.data[base] = '\0';
			escape_json(&buf, pnstrdup(message, pg_mbcliplen(message, msglen, lo)));
			appendStringInfoChar(&buf, '}');
		}
	}
	jobq_queue_notify(buf.data);
}

/* SQL: jobq._notify(j jobq.jobs) RETURNS boolean, for the SQL-language paths */
Datum
jobq_notify_sql(PG_FUNCTION_ARGS)
{
	if (!PG_ARGISNULL(0))
		jobq_notify_job(PG_GETARG_DATUM(0));
	PG_RETURN_BOOL(true);
}
