/*-------------------------------------------------------------------------
 *
 * provider.c
 *	  Providers: HTTP processing behind one interface, with a circuit
 *	  breaker per provider shared by all workers (SPEC section 7), the
 *	  deterministic `mock` provider, and the per-queue pre-warm hooks.
 *
 * Breaker, per endpoint (a provider, or a pre-warm hook), in shared memory
 * under one spinlock:
 *	  closed	 calls go out; failure_threshold consecutive failures (5xx,
 *				 408, 429, timeout, refused) open it
 *	  open		 calls are skipped, and the chain falls through to the next
 *				 provider, until open_for has passed
 *	  half_open	 exactly one trial call goes out: success closes the
 *				 breaker, failure opens it again
 * A 4xx other than 408/429 is the provider saying the request is wrong: it
 * fails the job at once (no fallback, no retry) and does not count against
 * the provider.
 *
 * Calls are made with no transaction open.  The request carries the job's
 * trace id in `traceparent`, and `Authorization: Bearer <token>` when the
 * job was enqueued with jobq.auth_token set (else the provider's configured
 * headers).  Neither headers nor tokens ever reach a log line or an error.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "http.h"
#include "provider.h"
#include "spi_plans.h"

PG_FUNCTION_INFO_V1(jobq_provider_health);

typedef enum BreakerState
{
	BREAKER_CLOSED,
	BREAKER_OPEN,
	BREAKER_HALF_OPEN
} BreakerState;

static const char *const breaker_names[] = {"closed", "open", "half_open"};

typedef struct Endpoint
{
	bool		used;
	char		name[JOBQ_NAME_MAX + 16];
	BreakerState state;
	int			failures;		/* consecutive */
	bool		trial;			/* the half-open trial call is out */
	TimestampTz trial_at;		/* when it went out */
	TimestampTz opened_at;
	int64		calls;
	int64		call_failures;
	/* pre-warm hooks */
	bool		seen_empty;
	TimestampTz last_fired;
} Endpoint;

typedef struct ProviderShared
{
	slock_t		mutex;
	Endpoint	ep[JOBQ_MAX_ENDPOINTS];
} ProviderShared;

static ProviderShared *pshared = NULL;

Size
jobq_provider_shmem_size(void)
{
	return sizeof(ProviderShared);
}

/* Called from the shmem startup hook, under AddinShmemInitLock. */
void
jobq_provider_shmem_init(void)
{
	bool		found;

	pshared = ShmemInitStruct("jobq providers", sizeof(ProviderShared), &found);
	if (!found)
	{
		memset(pshared, 0, sizeof(ProviderShared));
		SpinLockInit(&pshared->mutex);
	}
}

/* The endpoint named name, created if absent; NULL when the table is full.  Lock held. */
static Endpoint *
endpoint(const char *name, bool create)
{
	Endpoint   *free_ep = NULL;

	for (int i = 0; i < JOBQ_MAX_ENDPOINTS; i++)
	{
		Endpoint   *e = &pshared->ep[i];

		if (e->used && strcmp(e->name, name) == 0)
			return e;
		if (!e->used && free_ep == NULL)
			free_ep = e;
	}
	if (!create || free_ep == NULL)
		return NULL;
	memset(free_ep, 0, sizeof(Endpoint));
	free_ep->used = true;
	free_ep->seen_empty = true;
	strlcpy(free_ep->name, name, sizeof(free_ep->name));
	return free_ep;
}

bool
jobq_breaker_allow(const char *name, int64 open_for_ms, int64 timeout_ms, bool *trial)
{
	Endpoint   *e;
	bool		allow = true;

	*trial = false;
	if (pshared == NULL)
		return true;
	SpinLockAcquire(&pshared->mutex);
	e = endpoint(name, true);
	if (e != NULL)
	{
		if (e->state == BREAKER_OPEN &&
			TimestampDifferenceExceeds(e->opened_at, GetCurrentTimestamp(), (int) Min(open_for_ms, INT_MAX)))
		{
			e->state = BREAKER_HALF_OPEN;
			e->trial = false;
		}
		/* a trial whose caller died or gave up long ago is lost: try again */
		if (e->state == BREAKER_HALF_OPEN && e->trial &&
			TimestampDifferenceExceeds(e->trial_at, GetCurrentTimestamp(),
									   (int) Min(timeout_ms + 1000, INT_MAX)))
			e->trial = false;
		if (e->state == BREAKER_OPEN)
			allow = false;
		else if (e->state == BREAKER_HALF_OPEN)
		{
			allow = !e->trial;
			e->trial = *trial = allow;
			if (allow)
				e->trial_at = GetCurrentTimestamp();
		}
		if (allow)
			e->calls++;
	}
	SpinLockRelease(&pshared->mutex);
	return allow;
}

/* A call that ended in an error of ours (an interrupt): neither success nor failure. */
void
jobq_breaker_release(const char *name)
{
	Endpoint   *e;

	if (pshared == NULL)
		return;
	SpinLockAcquire(&pshared->mutex);
	e = endpoint(name, false);
	if (e != NULL)
		e->trial = false;
	SpinLockRelease(&pshared->mutex);
}

void
jobq_breaker_record(const char *name, bool success, int failure_threshold)
{
	Endpoint   *e;

	if (pshared == NULL)
		return;
	SpinLockAcquire(&pshared->mutex);
	e = endpoint(name, true);
	if (e != NULL)
	{
		if (success)
		{
			e->state = BREAKER_CLOSED;
			e->failures = 0;
		}
		else
		{
			e->call_failures++;
			e->failures++;
			if (e->state == BREAKER_HALF_OPEN || e->failures >= failure_threshold)
			{
				e->state = BREAKER_OPEN;
				e->opened_at = GetCurrentTimestamp();
			}
		}
		e->trial = false;
	}
	SpinLockRelease(&pshared->mutex);
}

/* ---- loading providers ---- */

static JobqPlan load_plan = {
	"SELECT name, kind, url, headers, GREATEST((EXTRACT(EPOCH FROM timeout) * 1000)::int8, 1),"
	" failure_threshold, (EXTRACT(EPOCH FROM open_for) * 1000)::int8, options"
	" FROM jobq.providers WHERE name = ANY ($1)",
	1, {TEXTARRAYOID}
};

/* "Name: value" for each string member of a JSON object */
static List *
header_list(Jsonb *jb)
{
	List	   *headers = NIL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *name = NULL;

	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		return NIL;
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			name = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && v.type == jbvString && name)
			headers = lappend(headers, psprintf("%s: %.*s", name, v.val.string.len, v.val.string.val));
	}
	return headers;
}

/* A member of a JSON object, or NULL */
static JsonbValue *
member(Jsonb *jb, const char *key)
{
	JsonbValue	k;

	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		return NULL;
	k.type = jbvString;
	k.val.string.val = unconstify(char *, key);
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
}

static double
num_member(Jsonb *jb, const char *key, double dflt)
{
	JsonbValue *v = member(jb, key);

	if (v == NULL || v->type != jbvNumeric)
		return dflt;
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

List *
jobq_load_providers(List *names, List **missing)
{
	MemoryContext outer = CurrentMemoryContext;
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(names), 1));
	Datum		arg;
	List	   *result = NIL;
	ListCell   *lc;
	int			i = 0;
	uint64		n;
	JobqProvider **found;

	foreach(lc, names)
		elems[i++] = CStringGetTextDatum((char *) lfirst(lc));
	arg = PointerGetDatum(construct_array(elems, i, TEXTOID, -1, false, TYPALIGN_INT));

	SPI_connect();
	n = jobq_plan_exec(&load_plan, &arg, NULL, true, 0);
	found = MemoryContextAllocZero(outer, sizeof(JobqProvider *) * Max(n, 1));
	for (uint64 r = 0; r < n; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(outer);
		JobqProvider *p = palloc0(sizeof(JobqProvider));
		bool		isnull;
		Datum		d;
		Jsonb	   *options;
		JsonbValue *out;

		p->name = SPI_getvalue(tup, desc, 1);
		p->mock = strcmp(SPI_getvalue(tup, desc, 2), "mock") == 0;
		p->url = SPI_getvalue(tup, desc, 3);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		p->headers = isnull ? NIL : header_list(DatumGetJsonbPCopy(d));
		p->timeout_ms = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		p->failure_threshold = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		p->open_for_ms = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
		d = SPI_getbinval(tup, desc, 8, &isnull);
		options = isnull ? NULL : DatumGetJsonbPCopy(d);
		p->failure_rate = num_member(options, "failure_rate", 0);
		p->latency_ms = (int64) num_member(options, "latency_ms", 0);
		p->fail_status = (int) num_member(options, "fail_status", 503);
		out = member(options, "output");
		if (out != NULL)
		{
			Jsonb	   *o = JsonbValueToJsonb(out);

			p->output = JsonbToCString(NULL, &o->root, VARSIZE(o));
		}
		found[r] = p;
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();

	/* keep the chain's order */
	foreach(lc, names)
	{
		JobqProvider *p = NULL;

		for (uint64 r = 0; r < n && p == NULL; r++)
			if (strcmp(found[r]->name, (char *) lfirst(lc)) == 0)
				p = found[r];
		if (p)
			result = lappend(result, p);
		else if (missing)
			*missing = lappend(*missing, lfirst(lc));
	}
	return result;
}

char *
jobq_provider_request(const pg_uuid_t *job_id, const char *job_type, const pg_uuid_t *user_id,
					  Jsonb *payload, int unit_id, int attempt)
{
	StringInfoData buf;
	char		id[UUID_LEN * 2 + 5];
	char		user[UUID_LEN * 2 + 5];

	jobq_uuid_to_cstring(job_id, id);
	jobq_uuid_to_cstring(user_id, user);
	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"job_id\": \"%s\", \"job_type\": ", id);
	escape_json(&buf, job_type);
	appendStringInfo(&buf, ", \"user_id\": \"%s\", \"payload\": %s, \"unit_id\": ", user,
					 JsonbToCString(NULL, &payload->root, VARSIZE(payload)));
	if (unit_id > 0)
		appendStringInfo(&buf, "%d", unit_id);
	else
		appendStringInfoString(&buf, "null");
	appendStringInfo(&buf, ", \"attempt\": %d}", attempt);
	return buf.data;
}

/* ---- calls ---- */

/* code for a 4xx that fails the job at once */
static const char *
code_for_status(long status)
{
	switch (status)
	{
		case 400:
			return "BadRequest";
		case 401:
			return "Unauthorized";
		case 403:
			return "Forbidden";
		case 404:
			return "NotFound";
		case 409:
			return "Conflict";
		case 413:
			return "PayloadTooLarge";
		case 422:
			return "ValidationError";
	}
	return "BadRequest";
}

/* The mock: deterministic for a given request, provider and options. */
static void
call_mock(JobqProvider *p, const char *request, JobqHttpResponse *resp)
{
	uint32		h = hash_bytes((const unsigned char *) request, strlen(request)) ^
		hash_bytes((const unsigned char *) p->name, strlen(p->name));
	double		draw = (double) h / 4294967296.0;

	initStringInfo(&resp->body);
	resp->content_length = -1;
	resp->timed_out = false;
	resp->error = NULL;
	if (p->latency_ms > 0)
	{
		if (p->latency_ms >= p->timeout_ms)
		{
			jobq_sleep_interruptible((long) p->timeout_ms);
			resp->status = 0;
			resp->timed_out = true;
			resp->error = psprintf("timed out after %lld ms", (long long) p->timeout_ms);
			return;
		}
		jobq_sleep_interruptible((long) p->latency_ms);
	}
	if (draw < p->failure_rate)
	{
		resp->status = p->fail_status;
		appendStringInfoString(&resp->body, "{\"error\": \"mock failure\"}");
		return;
	}
	resp->status = 200;
	if (p->output)
		appendStringInfoString(&resp->body, p->output);
	else
	{
		appendStringInfoString(&resp->body, "{\"provider\": ");
		escape_json(&resp->body, p->name);
		appendStringInfo(&resp->body, ", \"echo\": %s}", request);
	}
}

static void
call_http(JobqProvider *p, const char *request, const char *trace_id, const char *auth_token,
		  JobqHttpResponse *resp)
{
	JobqHttpRequest req = {0};
	List	   *headers = NIL;
	char		span[17];
	ListCell   *lc;

	{
		char		full[JOBQ_TRACE_ID_LEN + 1];

		jobq_new_trace_id(full);
		memcpy(span, full, 16);
		span[16] = '\0';
	}
	headers = lappend(headers, "Content-Type: application/json");
	headers = lappend(headers, "Accept: application/json, application/octet-stream");
	headers = lappend(headers, "Expect:");
	headers = lappend(headers, psprintf("traceparent: 00-%s-%s-01", trace_id, span));
	foreach(lc, p->headers)
	{
		const char *h = lfirst(lc);

		/* a forwarded user token replaces the provider's own credentials */
		if (auth_token && pg_strncasecmp(h, "authorization:", 14) == 0)
			continue;
		headers = lappend(headers, (char *) h);
	}
	if (auth_token)
		headers = lappend(headers, psprintf("Authorization: Bearer %s", auth_token));

	req.method = "POST";
	req.url = p->url;
	req.headers = headers;
	req.body = request;
	req.body_len = strlen(request);
	req.timeout_ms = (long) Min(p->timeout_ms, (int64) LONG_MAX);
	req.max_response = (size_t) jobq_max_checkpoint_bytes + 1;
	jobq_http_perform(&req, resp);
}

/* One provider call; an interrupt mid-call releases a half-open trial. */
static void
call_one(JobqProvider *p, const char *request, const char *trace_id, const char *auth_token,
		 JobqHttpResponse *resp)
{
	PG_TRY();
	{
		if (p->mock)
			call_mock(p, request, resp);
		else
			call_http(p, request, trace_id, auth_token, resp);
	}
	PG_CATCH();
	{
		/* cancelled or shut down mid-call: that says nothing about the provider */
		jobq_breaker_release(p->name);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

void
jobq_call_chain(List *providers, const char *request, const char *trace_id,
				const char *auth_token, JobqCallResult *result)
{
	StringInfoData why;
	ListCell   *lc;
	bool		any_called = false;
	bool		last_timed_out = false;

	initStringInfo(&why);
	initStringInfo(&result->body);
	result->ok = false;
	result->status = 0;
	result->retry = true;
	result->code = NULL;
	result->message = NULL;

	foreach(lc, providers)
	{
		JobqProvider *p = lfirst(lc);
		JobqHttpResponse resp;
		bool		trial;

		CHECK_FOR_INTERRUPTS();
		if (!jobq_breaker_allow(p->name, p->open_for_ms, p->timeout_ms, &trial))
		{
			appendStringInfo(&why, "%s%s: circuit open", why.len ? "; " : "", p->name);
			continue;
		}
		any_called = true;
		call_one(p, request, trace_id, auth_token, &resp);
		result->status = resp.status;

		if (resp.status >= 200 && resp.status < 300)
		{
			jobq_breaker_record(p->name, true, p->failure_threshold);
			appendBinaryStringInfo(&result->body, resp.body.data, resp.body.len);
			result->ok = true;
			return;
		}
		if (resp.status >= 400 && resp.status < 500 && resp.status != 408 && resp.status != 429)
		{
			/* the provider works; the request is what is wrong: no fallback */
			jobq_breaker_record(p->name, true, p->failure_threshold);
			result->code = code_for_status(resp.status);
			result->message = psprintf("provider \"%s\" answered HTTP %ld", p->name, resp.status);
			result->retry = false;
			return;
		}
		jobq_breaker_record(p->name, false, p->failure_threshold);
		last_timed_out = resp.timed_out;
		if (resp.status)
			appendStringInfo(&why, "%s%s: HTTP %ld", why.len ? "; " : "", p->name, resp.status);
		else
			appendStringInfo(&why, "%s%s: %s", why.len ? "; " : "", p->name, resp.error);
	}

	if (!any_called)
		result->code = "CircuitOpen";
	else
		result->code = last_timed_out ? "Timeout" : "UpstreamError";
	result->message = psprintf("no provider could do the job (%s)", why.len ? why.data : "no providers");
}

/* ---- SQL ---- */

static JobqPlan health_plan = {
	"SELECT kind, health_url, headers, GREATEST((EXTRACT(EPOCH FROM timeout) * 1000)::int8, 1), options"
	" FROM jobq.providers WHERE name = $1",
	1, {TEXTOID}
};

/*
 * jobq.provider_health(name) RETURNS jsonb
 *	  {"name","state":"closed|open|half_open","healthy","failures"}
 * healthy: the breaker is not open and, when the provider has a health_url,
 * a GET of it answers 2xx (mock: options.healthy, default true).
 */
Datum
jobq_provider_health(PG_FUNCTION_ARGS)
{
	char	   *name = jobq_arg_name(fcinfo, 0, "name", NULL);
	Datum		arg = CStringGetTextDatum(name);
	BreakerState state = BREAKER_CLOSED;
	int			failures = 0;
	bool		healthy;
	char	   *kind;
	char	   *health_url;
	bool		isnull;
	Datum		d;
	StringInfoData buf;

	SPI_connect();
	if (jobq_plan_exec(&health_plan, &arg, NULL, true, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("provider \"%s\" does not exist", name)));
	kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	health_url = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

	if (pshared != NULL)
	{
		Endpoint   *e;

		SpinLockAcquire(&pshared->mutex);
		e = endpoint(name, false);
		if (e != NULL)
		{
			state = e->state;
			failures = e->failures;
		}
		SpinLockRelease(&pshared->mutex);
	}
	healthy = state != BREAKER_OPEN;
	if (strcmp(kind, "mock") == 0)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull);
		if (!isnull)
		{
			JsonbValue *v = member(DatumGetJsonbP(d), "healthy");

			if (v && v->type == jbvBool && !v->val.boolean)
				healthy = false;
		}
	}
	else if (healthy && health_url != NULL)
	{
		/* an explicit probe, asked for by an administrator; bounded by the provider's timeout */
		JobqHttpRequest req = {0};
		JobqHttpResponse resp;

		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
		req.method = "GET";
		req.url = health_url;
		req.headers = isnull ? NIL : header_list(DatumGetJsonbP(d));
		req.timeout_ms = (long) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
															 SPI_tuptable->tupdesc, 4, &isnull));
		req.max_response = 65536;
		jobq_http_perform(&req, &resp);
		healthy = resp.status >= 200 && resp.status < 300;
	}
	SPI_finish();

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"name\": ");
	escape_json(&buf, name);
	appendStringInfo(&buf, ", \"state\": \"%s\", \"healthy\": %s, \"failures\": %d}",
					 breaker_names[state], healthy ? "true" : "false", failures);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/* Breaker state for jobq.metrics(). */
void
jobq_provider_metrics(StringInfo buf)
{
	Endpoint   *copy;
	int			n = 0;

	if (pshared == NULL)
		return;
	copy = palloc(sizeof(Endpoint) * JOBQ_MAX_ENDPOINTS);
	SpinLockAcquire(&pshared->mutex);
	for (int i = 0; i < JOBQ_MAX_ENDPOINTS; i++)
		if (pshared->ep[i].used)
			copy[n++] = pshared->ep[i];
	SpinLockRelease(&pshared->mutex);

	appendStringInfoString(buf, "# HELP jobq_breaker_state Circuit breaker of each provider and pre-warm hook: 1 for its current state.\n"
						   "# TYPE jobq_breaker_state gauge\n");
	for (int i = 0; i < n; i++)
		for (int s = BREAKER_CLOSED; s <= BREAKER_HALF_OPEN; s++)
		{
			appendStringInfoString(buf, "jobq_breaker_state{endpoint=\"");
			jobq_append_label(buf, copy[i].name);
			appendStringInfo(buf, "\",state=\"%s\"} %d\n", breaker_names[s], copy[i].state == s);
		}
	appendStringInfoString(buf, "# HELP jobq_breaker_calls_total Calls made to each provider and pre-warm hook.\n"
						   "# TYPE jobq_breaker_calls_total counter\n");
	for (int i = 0; i < n; i++)
	{
		appendStringInfoString(buf, "jobq_breaker_calls_total{endpoint=\"");
		jobq_append_label(buf, copy[i].name);
		appendStringInfo(buf, "\"} " INT64_FORMAT "\n", copy[i].calls);
	}
	appendStringInfoString(buf, "# HELP jobq_breaker_failures_total Failed calls (5xx, 408, 429, timeout, refused).\n"
						   "# TYPE jobq_breaker_failures_total counter\n");
	for (int i = 0; i < n; i++)
	{
		appendStringInfoString(buf, "jobq_breaker_failures_total{endpoint=\"");
		jobq_append_label(buf, copy[i].name);
		appendStringInfo(buf, "\"} " INT64_FORMAT "\n", copy[i].call_failures);
	}
}

/* ---- pre-warm hooks ---- */

typedef struct Hook
{
	char	   *queue;
	char	   *url;
	char	   *method;
	List	   *headers;
	char	   *body;
	int64		timeout_ms;
	int			failure_threshold;
	int64		open_for_ms;
} Hook;

static TimestampTz hooks_absent_until = 0;

/* a saved plan: this runs at every wake-up of a worker, parse and plan were most of it */
static JobqPlan hooks_plan = {
	"SELECT h.queue, h.url, h.method, h.headers, h.body,"
	" (EXTRACT(EPOCH FROM h.min_interval) * 1000)::int8,"
	" GREATEST((EXTRACT(EPOCH FROM h.timeout) * 1000)::int8, 1), h.failure_threshold,"
	" (EXTRACT(EPOCH FROM h.open_for) * 1000)::int8,"
	" EXISTS (SELECT 1 FROM jobq.jobs j WHERE j.status = 0 AND j.queue = h.queue"
	"         AND j.run_at <= pg_catalog.now())"
	" FROM jobq.prewarm_hooks h",
	0, {}
};
static MemoryContext hooks_cxt = NULL;	/* the hooks to fire after the poll */

/*
 * Called by a worker at each poll, in a transaction: find hooks whose queue
 * went from empty to non-empty and claim the right to fire them (one
 * worker fires, at most once per min_interval).  The calls themselves are
 * made by jobq_prewarm_fire() after the transaction.
 */
static List *
prewarm_due(void)
{
	List	   *due = NIL;
	uint64		n;
	TimestampTz now = GetCurrentTimestamp();
	Oid			nsp = get_namespace_oid("jobq", true);

	if (pshared == NULL || now < hooks_absent_until || !OidIsValid(nsp) ||
		!OidIsValid(get_relname_relid("prewarm_hooks", nsp)))
		return NIL;
	n = jobq_plan_exec(&hooks_plan, NULL, NULL, true, 0);
	if (n == 0)
	{
		/* look again in a few seconds: new hooks are rare */
		hooks_absent_until = TimestampTzPlusMilliseconds(now, 5000);
		return NIL;
	}
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bool		nonempty = DatumGetBool(SPI_getbinval(tup, desc, 10, &isnull));
		int64		min_interval = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
		char	   *queue = SPI_getvalue(tup, desc, 1);
		char	   *epname = psprintf("prewarm:%s", queue);
		bool		fire = false;
		Endpoint   *e;

		SpinLockAcquire(&pshared->mutex);
		e = endpoint(epname, true);
		if (e != NULL)
		{
			if (!nonempty)
				e->seen_empty = true;
			else if (e->seen_empty &&
					 (e->last_fired == 0 ||
					  TimestampDifferenceExceeds(e->last_fired, now, (int) Min(min_interval, INT_MAX))))
			{
				e->seen_empty = false;
				e->last_fired = now;
				fire = true;
			}
		}
		SpinLockRelease(&pshared->mutex);

		if (fire)
		{
			MemoryContext old;
			Hook	   *h;
			Datum		d;

			if (hooks_cxt == NULL)
				hooks_cxt = AllocSetContextCreate(TopMemoryContext, "jobq pre-warm hooks",
												  ALLOCSET_SMALL_SIZES);
			old = MemoryContextSwitchTo(hooks_cxt);
			h = palloc0(sizeof(Hook));

			h->queue = pstrdup(queue);
			h->url = pstrdup(SPI_getvalue(tup, desc, 2));
			h->method = pstrdup(SPI_getvalue(tup, desc, 3));
			d = SPI_getbinval(tup, desc, 4, &isnull);
			h->headers = isnull ? NIL : header_list(DatumGetJsonbPCopy(d));
			h->body = SPI_getvalue(tup, desc, 5);
			if (h->body)
				h->body = pstrdup(h->body);
			h->timeout_ms = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
			h->failure_threshold = DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull));
			h->open_for_ms = DatumGetInt64(SPI_getbinval(tup, desc, 9, &isnull));
			due = lappend(due, h);
			MemoryContextSwitchTo(old);
		}
	}
	return due;
}

static List *pending_hooks = NIL;

/* In the worker's poll transaction: note which hooks must fire. */
void
jobq_prewarm_check(void)
{
	List	   *due = prewarm_due();
	MemoryContext old;

	if (due == NIL)
		return;
	old = MemoryContextSwitchTo(hooks_cxt);
	pending_hooks = list_concat(pending_hooks, due);
	MemoryContextSwitchTo(old);
}

/* One hook call, breaker-protected; its errors are logged, never thrown. */
static void
fire_hook(Hook *h)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *epname = psprintf("prewarm:%s", h->queue);
	bool		trial;

	if (!jobq_breaker_allow(epname, h->open_for_ms, h->timeout_ms, &trial))
		return;
	PG_TRY();
	{
		JobqHttpRequest req = {0};
		JobqHttpResponse resp;
		bool		ok;

		req.method = h->method;
		req.url = h->url;
		req.headers = h->headers;
		req.body = h->body;
		req.body_len = h->body ? strlen(h->body) : 0;
		req.timeout_ms = (long) h->timeout_ms;
		req.max_response = 65536;
		jobq_http_perform(&req, &resp);
		ok = resp.status >= 200 && resp.status < 300;
		jobq_breaker_record(epname, ok, h->failure_threshold);
		if (!ok)
			ereport(LOG,
					(errmsg("jobq: pre-warm hook of queue \"%s\" failed: %s", h->queue,
							resp.status ? psprintf("HTTP %ld", resp.status) : resp.error)));
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		jobq_breaker_release(epname);
		ereport(LOG,
				(errmsg("jobq: pre-warm hook of queue \"%s\" failed: %s", h->queue, e->message)));
	}
	PG_END_TRY();
}

/* After the poll: fire the noted hooks, in the hooks' own memory. */
void
jobq_prewarm_fire(void)
{
	MemoryContext old;
	ListCell   *lc;

	if (pending_hooks == NIL)
		return;
	old = MemoryContextSwitchTo(hooks_cxt);
	foreach(lc, pending_hooks)
		fire_hook(lfirst(lc));
	MemoryContextSwitchTo(old);
	pending_hooks = NIL;
	MemoryContextReset(hooks_cxt);
}
