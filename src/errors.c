/*-------------------------------------------------------------------------
 *
 * errors.c
 *	  The one shape of a failed job's `error` column (SPEC section 8).
 *
 *	  {"traceId":"…","success":false,"status":500,
 *	   "errors":[{"code":"…","message":"…"}],"attempt":2,"checkpoints":180}
 *
 * Every failure path (fail(), a handler's error, a provider's answer, a store
 * that is down, the sweep, cancel) builds its JSON here, so the shape cannot
 * drift.  `status` follows HTTP: an error code maps to a status through the
 * table below, the way the seed's exception hierarchy maps exception types.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include "utils/builtins.h"
#include "utils/json.h"

typedef struct CodeStatus
{
	const char *code;
	int			status;
} CodeStatus;

/* Known error codes and the HTTP status each one reports. */
static const CodeStatus code_statuses[] = {
	{"ValidationError", 400},
	{"BadRequest", 400},
	{"Unauthorized", 401},
	{"Forbidden", 403},
	{"NotFound", 404},
	{"ResourceNotFound", 404},
	{"Conflict", 409},
	{"Cancelled", 409},
	{"PayloadTooLarge", 413},
	{"TooManyRequests", 429},
	{"HandlerError", 500},
	{"InternalError", 500},
	{"WorkerLost", 500},
	{"UpstreamError", 502},
	{"StoreError", 502},
	{"Unavailable", 503},
	{"CircuitOpen", 503},
	{"Timeout", 504},
};

/* HTTP status for an error code; 500 for codes we do not know. */
int
jobq_status_for_code(const char *code)
{
	for (int i = 0; i < lengthof(code_statuses); i++)
		if (strcmp(code, code_statuses[i].code) == 0)
			return code_statuses[i].status;
	return 500;
}

/* Build a job's `error` JSON. */
Jsonb *
jobq_error_json(const char *trace_id, int status, const char *code,
				const char *message, int attempt, int checkpoints)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"traceId\": ");
	escape_json(&buf, trace_id ? trace_id : "");
	appendStringInfo(&buf, ", \"success\": false, \"status\": %d, \"errors\": [{\"code\": ",
					 status);
	escape_json(&buf, code);
	appendStringInfoString(&buf, ", \"message\": ");
	escape_json(&buf, message ? message : "");
	appendStringInfo(&buf, "}], \"attempt\": %d, \"checkpoints\": %d}",
					 attempt, checkpoints);

	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

PG_FUNCTION_INFO_V1(jobq_error_json_sql);

/*
 * SQL: jobq._error_json(trace_id, code, message, attempt, checkpoints)
 * lets the SQL-language parts (sweep, purge) use the same builder.
 */
Datum
jobq_error_json_sql(PG_FUNCTION_ARGS)
{
	char	   *trace_id = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *code = PG_ARGISNULL(1) ? "InternalError" : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *message = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	int			attempt = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT32(3);
	int			checkpoints = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4);

	PG_RETURN_JSONB_P(jobq_error_json(trace_id, jobq_status_for_code(code), code,
									  message, attempt, checkpoints));
}
