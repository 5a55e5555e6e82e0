/*-------------------------------------------------------------------------
 *
 * tenant.c
 *	  The calling session's tenant (SPEC section 9).
 *
 * jobq.current_user_id() is the uuid in the setting jobq.user_id, else the
 * "sub" claim of request.jwt.claims (the PostgREST / Supabase convention),
 * else NULL: no tenant, the session acts for every user.  The settings are
 * the session's own, so tenancy is exactly as strong as the application's
 * control of them (PostgREST sets the claims from a verified JWT).
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(jobq_current_user_id);

/* Parser state for finding the top-level "sub" of a claims object. */
typedef struct SubSearch
{
	int			depth;
	bool		at_sub;			/* the value being parsed is the top-level "sub" */
	char	   *sub;
} SubSearch;

static void
sub_nest(void *state)
{
	((SubSearch *) state)->depth++;
}

static void
sub_unnest(void *state)
{
	((SubSearch *) state)->depth--;
}

static void
sub_field_start(void *state, char *fname, bool isnull)
{
	SubSearch  *ss = state;

	ss->at_sub = (ss->depth == 1 && strcmp(fname, "sub") == 0);
}

static void
sub_field_end(void *state, char *fname, bool isnull)
{
	((SubSearch *) state)->at_sub = false;
}

static void
sub_scalar(void *state, char *token, JsonTokenType type)
{
	SubSearch  *ss = state;

	if (ss->at_sub && ss->depth == 1 && type == JSON_TOKEN_STRING)
		ss->sub = pstrdup(token);
}

/*
 * The "sub" claim of a JWT claims JSON text, or NULL.  Parsed with the JSON
 * lexer directly (not through jsonb), so any malformed input, an escaped NUL
 * or a lone surrogate included, is 22023 rather than another error.
 */
static char *
claims_sub(const char *claims)
{
	JsonLexContext *lex;
	SubSearch	ss = {0};
	JsonSemAction sem = {0};

	sem.semstate = &ss;
	sem.object_start = sub_nest;
	sem.object_end = sub_unnest;
	sem.array_start = sub_nest;
	sem.array_end = sub_unnest;
	sem.object_field_start = sub_field_start;
	sem.object_field_end = sub_field_end;
	sem.scalar = sub_scalar;
	lex = makeJsonLexContextCstringLen(unconstify(char *, claims), strlen(claims),
									   GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("request.jwt.claims is not valid JSON")));
	return ss.sub;
}

/* The session's tenant into *out; false when none is set. */
bool
jobq_current_tenant(pg_uuid_t *out)
{
	const char *claims;
	char	   *sub;

	if (jobq_user_id_setting && jobq_user_id_setting[0] != '\0')
	{
		if (!jobq_parse_uuid(jobq_user_id_setting, out))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("jobq.user_id \"%s\" is not a uuid", jobq_user_id_setting)));
		return true;
	}

	claims = GetConfigOption("request.jwt.claims", true, false);
	if (claims == NULL || claims[0] == '\0')
		return false;
	sub = claims_sub(claims);
	if (sub == NULL || sub[0] == '\0')
		return false;
	if (!jobq_parse_uuid(sub, out))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the \"sub\" claim \"%s\" of request.jwt.claims is not a uuid", sub)));
	return true;
}

/* SQL: jobq.current_user_id() */
Datum
jobq_current_user_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *uuid = palloc(sizeof(pg_uuid_t));

	if (!jobq_current_tenant(uuid))
		PG_RETURN_NULL();
	PG_RETURN_UUID_P(uuid);
}
