/*-------------------------------------------------------------------------
 *
 * util.c
 *	  Argument checks shared by the SQL functions (SPEC section 14).
 *
 * NULL for an argument with a default means that default; NULL for one that
 * is needed, an empty name, or a value out of range is 22023 with a message
 * that names the argument and the bad value.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include "access/detoast.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

/*
 * Fetch a name argument (job type, queue, worker, provider): the default when
 * NULL and dflt is given, else 22023 for NULL, empty or overlong names.
 */
char *
jobq_arg_name(FunctionCallInfo fcinfo, int argno, const char *what, const char *dflt)
{
	char	   *name;
	size_t		len;

	if (PG_ARGISNULL(argno))
	{
		if (dflt)
			return pstrdup(dflt);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be NULL", what)));
	}
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	len = strlen(name);
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	if (len > JOBQ_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s \"%.*s...\" is %zu bytes long, more than the limit of %d",
						what, pg_mbcliplen(name, len, 40), name, len, JOBQ_NAME_MAX)));
	return name;
}

/* 54000 when a payload is larger than jobq.max_payload_bytes. */
void
jobq_check_payload(Datum payload, const char *what)
{
	Size		size = toast_raw_datum_size(payload) - VARHDRSZ;

	if (size > (Size) jobq_max_payload_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s of %zu bytes exceeds jobq.max_payload_bytes (%d bytes)",
						what, size, jobq_max_payload_bytes),
				 errhint("Store large inputs elsewhere and pass a reference, or raise jobq.max_payload_bytes.")));
}

/* Human name of a status code, for messages. */
const char *
jobq_status_name(int status)
{
	switch (status)
	{
		case JOBQ_QUEUED:
			return "Queued";
		case JOBQ_PROCESSING:
			return "Processing";
		case JOBQ_COMPLETED:
			return "Completed";
		case JOBQ_FAILED:
			return "Failed";
		case JOBQ_CANCELLED:
			return "Cancelled";
	}
	return "Unknown";
}
