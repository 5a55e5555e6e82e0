/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  jobq.register / jobq.unregister, and the per-backend registry cache.
 *
 * A registration says how the in-server workers run one job type: a SQL
 * handler, a unit handler (+ finalizer), or a provider chain; in which queue;
 * and as which role.  The role is the one that called register(): a worker
 * runs every handler with that role's privileges, never as superuser, so
 * register() is as powerful as its caller and no more.
 *
 * Cache: each backend keeps the whole registry (it is small) and reloads it
 * when the shared registry generation moved (a statement trigger on
 * jobq.registrations bumps it at commit, so pg_restore and hand edits count
 * too) or when jobq.registrations is a different relation (DROP/CREATE
 * EXTENSION).  Without shared memory (jobq not preloaded) it reloads once
 * per transaction.  The generation is read before the load query takes its
 * snapshot, so a cache can be older than its generation only if it was
 * loaded under a transaction snapshot (REPEATABLE READ), which is not kept.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "registry.h"
#include "shared.h"
#include "spi_plans.h"

PG_FUNCTION_INFO_V1(jobq_register);
PG_FUNCTION_INFO_V1(jobq_unregister);
PG_FUNCTION_INFO_V1(jobq_registry_changed);
PG_FUNCTION_INFO_V1(jobq_add_validator);
PG_FUNCTION_INFO_V1(jobq_validate);

static MemoryContext registry_cxt = NULL;	/* the current registry's context */
static JobqRegistry *registry = NULL;
static int	registry_pins = 0;
static List *retired = NIL;		/* older registries still pinned: of JobqRegistry */
static uint32 registry_generation = 0;
static Oid	registry_relid = InvalidOid;
static LocalTransactionId registry_lxid = InvalidLocalTransactionId;

static bool bump_at_commit = false;
static bool xact_callback_registered = false;

static JobqPlan load_plan = {
	"SELECT job_type, queue, handler::oid, unit_handler::oid, finalizer::oid, providers,"
	" max_attempts, (EXTRACT(EPOCH FROM timeout) * 1000)::int8, owner::oid"
	" FROM jobq.registrations ORDER BY queue, job_type",
	0, {}
};

static JobqPlan validators_plan = {
	"SELECT v.job_type, v.name, v.validator::oid, v.weight, v.owner::oid,"
	" coalesce(t.threshold, 0.5)::float8"
	" FROM jobq.validators v LEFT JOIN jobq.validation_thresholds t USING (job_type)"
	" ORDER BY v.job_type, v.name",
	0, {}
};

static JobqPlan upsert_plan = {
	"INSERT INTO jobq.registrations AS r (job_type, queue, handler, unit_handler, finalizer,"
	" providers, max_attempts, timeout, owner)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
	" ON CONFLICT (job_type) DO UPDATE SET queue = excluded.queue, handler = excluded.handler,"
	" unit_handler = excluded.unit_handler, finalizer = excluded.finalizer,"
	" providers = excluded.providers, max_attempts = excluded.max_attempts,"
	" timeout = excluded.timeout, owner = excluded.owner, updated_at = pg_catalog.now()",
	9, {TEXTOID, TEXTOID, REGPROCEDUREOID, REGPROCEDUREOID, REGPROCEDUREOID, TEXTARRAYOID,
	INT4OID, INTERVALOID, REGROLEOID}
};

static JobqPlan delete_plan = {
	"DELETE FROM jobq.registrations WHERE job_type = $1",
	1, {TEXTOID}
};

static JobqPlan provider_exists_plan = {
	"SELECT 1 FROM jobq.providers WHERE name = $1",
	1, {TEXTOID}
};

/* The OID of a relation in schema jobq, or InvalidOid. */
Oid
jobq_relid(const char *relname)
{
	Oid			nsp = get_namespace_oid("jobq", true);

	return OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
}

void
jobq_registry_invalidate(void)
{
	registry_relid = InvalidOid;
	registry_lxid = InvalidLocalTransactionId;
}

/* Free a registry: its saved plans, then its memory. */
static void
free_registry(JobqRegistry *reg)
{
	ListCell   *lc;

	for (int i = 0; i < reg->nregs; i++)
	{
		jobq_callable_free(reg->regs[i].handler_call);
		jobq_callable_free(reg->regs[i].finalizer_call);
	}
	foreach(lc, reg->validations)
	{
		JobqValidation *v = lfirst(lc);
		ListCell   *lc2;

		foreach(lc2, v->validators)
			jobq_callable_free(((JobqValidator *) lfirst(lc2))->call);
	}
	MemoryContextDelete(reg->cxt);
}

/*
 * Pin the registry while code holds pointers into it across calls that
 * may reload it (a handler that enqueues, a validator): a reload then
 * retires the old one instead of freeing it, until the last unpin.
 */
void
jobq_registry_pin(void)
{
	registry_pins++;
}

void
jobq_registry_unpin(void)
{
	if (registry_pins > 0)
		registry_pins--;
	if (registry_pins == 0 && retired != NIL)
	{
		ListCell   *lc;

		foreach(lc, retired)
			free_registry(lfirst(lc));
		list_free(retired);
		retired = NIL;
	}
}

/* After an error: nothing holds the registry any more. */
void
jobq_registry_unpin_all(void)
{
	registry_pins = 1;
	jobq_registry_unpin();
}

/* Load jobq.validators (0.5 and later) into reg; in registry_cxt. */
static void
load_validators(JobqRegistry *reg)
{
	uint64		n;
	JobqValidation *cur = NULL;

	if (!OidIsValid(jobq_relid("validators")))
		return;
	n = jobq_plan_exec(&validators_plan, NULL, NULL, true, 0);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(reg->cxt);
		char	   *type = SPI_getvalue(tup, desc, 1);
		JobqValidator *v = palloc0(sizeof(JobqValidator));
		bool		isnull;

		if (cur == NULL || strcmp(cur->job_type, type) != 0)
		{
			cur = palloc0(sizeof(JobqValidation));
			cur->job_type = type;
			cur->threshold = DatumGetFloat8(SPI_getbinval(tup, desc, 6, &isnull));
			reg->validations = lappend(reg->validations, cur);
		}
		v->name = SPI_getvalue(tup, desc, 2);
		v->fn = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		v->weight = DatumGetFloat4(SPI_getbinval(tup, desc, 4, &isnull));
		v->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
		cur->validators = lappend(cur->validators, v);
		MemoryContextSwitchTo(old);
	}
}

/* Load jobq.registrations into a new registry (and context). */
static void
load_registry(Oid relid)
{
	MemoryContext old;
	uint64		n;
	JobqRegistry *reg;
	int			nq = 0;

	if (registry != NULL)
	{
		if (registry_pins > 0)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			retired = lappend(retired, registry);
			MemoryContextSwitchTo(old);
		}
		else
			free_registry(registry);
		registry = NULL;
	}
	registry_cxt = AllocSetContextCreate(TopMemoryContext, "jobq registry",
										 ALLOCSET_SMALL_SIZES);

	n = jobq_plan_exec(&load_plan, NULL, NULL, false, 0);

	old = MemoryContextSwitchTo(registry_cxt);
	reg = palloc0(sizeof(JobqRegistry));
	reg->cxt = registry_cxt;
	reg->nregs = (int) n;
	reg->regs = palloc0(sizeof(JobqRegistration) * Max(n, 1));
	reg->queues = palloc0(sizeof(JobqQueue) * Max(n, 1));
	reg->jobs_type = get_rel_type_id(jobq_relid("jobs"));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		JobqRegistration *r = &reg->regs[i];
		bool		isnull;
		Datum		d;

		r->job_type = SPI_getvalue(tup, desc, 1);
		r->queue = SPI_getvalue(tup, desc, 2);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		if (!isnull)
		{
			r->kind = JOBQ_KIND_HANDLER;
			r->handler = DatumGetObjectId(d);
		}
		d = SPI_getbinval(tup, desc, 4, &isnull);
		if (!isnull)
		{
			r->kind = JOBQ_KIND_UNITS;
			r->handler = DatumGetObjectId(d);
		}
		d = SPI_getbinval(tup, desc, 5, &isnull);
		r->finalizer = isnull ? InvalidOid : DatumGetObjectId(d);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;
			int			ne;

			r->kind = JOBQ_KIND_PROVIDERS;
			deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &nulls, &ne);
			for (int k = 0; k < ne; k++)
				if (!nulls[k])
					r->providers = lappend(r->providers, TextDatumGetCString(elems[k]));
		}
		d = SPI_getbinval(tup, desc, 7, &isnull);
		r->max_attempts = isnull ? 0 : DatumGetInt32(d);
		d = SPI_getbinval(tup, desc, 8, &isnull);
		r->timeout_ms = isnull ? 0 : DatumGetInt64(d);
		r->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 9, &isnull));

		/* rows come ordered by queue: start a new queue when it changes */
		if (nq == 0 || strcmp(reg->queues[nq - 1].name, r->queue) != 0)
			reg->queues[nq++].name = r->queue;
	}
	reg->nqueues = nq;
	for (int q = 0; q < nq; q++)
	{
		Datum	   *types = palloc(sizeof(Datum) * n);
		int			nt = 0;

		reg->queues[q].units_only = true;
		for (int i = 0; i < reg->nregs; i++)
			if (strcmp(reg->regs[i].queue, reg->queues[q].name) == 0)
			{
				types[nt++] = CStringGetTextDatum(reg->regs[i].job_type);
				if (reg->regs[i].kind != JOBQ_KIND_UNITS)
					reg->queues[q].units_only = false;
			}
		reg->queues[q].job_types =
			PointerGetDatum(construct_array(types, nt, TEXTOID, -1, false, TYPALIGN_INT));
	}
	MemoryContextSwitchTo(old);
	load_validators(reg);

	registry = reg;
	registry_relid = relid;
}

JobqRegistry *
jobq_registry(void)
{
	Oid			relid = jobq_relid("registrations");
	uint32		gen = 0;
	bool		fresh;

	if (!OidIsValid(relid))
	{
		jobq_registry_invalidate();
		return NULL;
	}
	if (jobq_shared != NULL)
	{
		gen = pg_atomic_read_u32(&jobq_shared->registry_generation);
		fresh = registry != NULL && relid == registry_relid && gen == registry_generation;
	}
	else
		fresh = registry != NULL && relid == registry_relid && registry_lxid == MyProc->lxid;

	if (!fresh)
	{
		SPI_connect();
		load_registry(relid);
		SPI_finish();
		registry_generation = gen;
		registry_lxid = MyProc->lxid;
		/* a load under a transaction snapshot may be older than gen */
		if (IsolationUsesXactSnapshot())
			registry_relid = InvalidOid;
	}
	return registry;
}

JobqRegistration *
jobq_registration(JobqRegistry *reg, const char *job_type)
{
	if (reg == NULL)
		return NULL;
	for (int i = 0; i < reg->nregs; i++)
		if (strcmp(reg->regs[i].job_type, job_type) == 0)
			return &reg->regs[i];
	return NULL;
}

/* ---- registration changes ---- */

static void
registry_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_PREPARE && bump_at_commit)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot PREPARE a transaction that changed jobq registrations")));
	if (event == XACT_EVENT_COMMIT && bump_at_commit && jobq_shared != NULL)
		pg_atomic_fetch_add_u32(&jobq_shared->registry_generation, 1);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		bump_at_commit = false;
}

/* Trigger on jobq.registrations: tell every backend at commit. */
Datum
jobq_registry_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "jobq._registry_changed must be called as a trigger");
	if (!xact_callback_registered)
	{
		RegisterXactCallback(registry_xact_callback, NULL);
		xact_callback_registered = true;
	}
	bump_at_commit = true;
	jobq_registry_invalidate();

	/*
	 * Jobs may already wait for a new registration.  This callback was
	 * registered after jobq's own, so it runs first at commit: the
	 * generation moves before the worker's latch is set.
	 */
	jobq_wake_at_commit();
	return PointerGetDatum(NULL);
}

/*
 * 22023 unless function `fn` takes exactly `nargs` arguments of the given
 * types and returns `rettype`; 42501 unless `owner` may execute it.
 */
static void
check_signature(const char *what, Oid fn, int nargs, const Oid *argtypes, Oid rettype,
				const char *expected, Oid owner)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Form_pg_proc proc;
	bool		ok;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s function %u does not exist", what, fn)));
	proc = (Form_pg_proc) GETSTRUCT(tup);
	ok = proc->pronargs == nargs && proc->prorettype == rettype && !proc->proretset &&
		proc->prokind == PROKIND_FUNCTION;
	for (int i = 0; ok && i < nargs; i++)
		ok = proc->proargtypes.values[i] == argtypes[i];
	ReleaseSysCache(tup);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s %s has the wrong signature", what,
						format_procedure(fn)),
				 errdetail("A %s must be a function %s.", what, expected)));
	jobq_check_function_owner(fn, owner);
	if (pg_proc_aclcheck(fn, owner, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not execute %s %s",
						GetUserNameFromId(owner, false), what, format_procedure(fn)),
				 errdetail("Handlers run as the role that registers them.")));
}

/*
 * jobq.register(job_type, handler, unit_handler, finalizer, providers, queue,
 *				 max_attempts, timeout) RETURNS void
 *
 * Registers (or replaces) how the in-server workers run job_type.  The
 * caller's role, seen from outside this SECURITY DEFINER function, becomes
 * the role the handlers run as.
 */
Datum
jobq_register(PG_FUNCTION_ARGS)
{
	char	   *job_type = jobq_arg_name(fcinfo, 0, "job_type", NULL);
	char	   *queue = jobq_arg_name(fcinfo, 5, "queue", "default");
	Oid			owner = GetOuterUserId();
	Oid			jobs_type;
	int			kinds = !PG_ARGISNULL(1) + !PG_ARGISNULL(2) + !PG_ARGISNULL(4);
	Datum		values[9];
	char		nulls[10] = "         ";

	if (kinds != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job type \"%s\" needs exactly one of handler, unit_handler and providers, not %d",
						job_type, kinds)));
	jobs_type = get_rel_type_id(jobq_relid("jobs"));

	if (!PG_ARGISNULL(1))
		check_signature("handler", PG_GETARG_OID(1), 1, (Oid[]) {jobs_type}, JSONBOID,
						"handler(jobq.jobs) RETURNS jsonb", owner);
	if (!PG_ARGISNULL(2))
		check_signature("unit handler", PG_GETARG_OID(2), 2, (Oid[]) {jobs_type, INT4OID},
						BYTEAOID, "unit_handler(jobq.jobs, integer) RETURNS bytea", owner);
	if (!PG_ARGISNULL(3))
	{
		if (!PG_ARGISNULL(1))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a finalizer goes with a unit handler or providers, not with a whole-job handler")));
		check_signature("finalizer", PG_GETARG_OID(3), 1, (Oid[]) {jobs_type}, JSONBOID,
						"finalizer(jobq.jobs) RETURNS jsonb", owner);
	}
	SPI_connect();
	if (!PG_ARGISNULL(4))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(4);
		Datum	   *elems;
		bool	   *enulls;
		int			n;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &n);
		if (n == 0 || ARR_NDIM(arr) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("providers must list at least one provider")));
		if (!OidIsValid(jobq_relid("providers")))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("this version of the jobq extension has no providers"),
					 errhint("Run ALTER EXTENSION jobq UPDATE.")));
		for (int i = 0; i < n; i++)
		{
			if (enulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("providers[%d] must not be NULL", i + 1)));
			if (jobq_plan_exec(&provider_exists_plan, &elems[i], NULL, true, 1) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("provider \"%s\" does not exist", TextDatumGetCString(elems[i])),
						 errhint("Create it with jobq.create_provider().")));
		}
	}
	if (!PG_ARGISNULL(6) && PG_GETARG_INT32(6) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_attempts must be positive, not %d", PG_GETARG_INT32(6))));
	if (!PG_ARGISNULL(7))
	{
		Interval   *iv = PG_GETARG_INTERVAL_P(7);
		Interval	zero = {0};

		if (!DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(iv),
											  IntervalPGetDatum(&zero))))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("timeout must be positive, not %s",
							DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(iv))))));
	}

	values[0] = CStringGetTextDatum(job_type);
	values[1] = CStringGetTextDatum(queue);
	for (int i = 1; i <= 4; i++)
	{
		values[i + 1] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i + 1] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	values[6] = PG_ARGISNULL(6) ? (Datum) 0 : PG_GETARG_DATUM(6);
	nulls[6] = PG_ARGISNULL(6) ? 'n' : ' ';
	values[7] = PG_ARGISNULL(7) ? (Datum) 0 : PG_GETARG_DATUM(7);
	nulls[7] = PG_ARGISNULL(7) ? 'n' : ' ';
	values[8] = ObjectIdGetDatum(owner);
	jobq_plan_exec(&upsert_plan, values, nulls, false, 0);
	SPI_finish();

	if (jobq_shared == NULL)
		ereport(NOTICE,
				(errmsg("jobq is not in shared_preload_libraries: no in-server worker will run \"%s\" jobs",
						job_type),
				 errhint("Add jobq to shared_preload_libraries and restart, or run these jobs with external workers.")));
	PG_RETURN_VOID();
}

/* jobq.unregister(job_type) RETURNS boolean: false when it was not registered */
Datum
jobq_unregister(PG_FUNCTION_ARGS)
{
	char	   *job_type = jobq_arg_name(fcinfo, 0, "job_type", NULL);
	Datum		value = CStringGetTextDatum(job_type);
	bool		found;

	SPI_connect();
	found = jobq_plan_exec(&delete_plan, &value, NULL, false, 0) > 0;
	SPI_finish();
	PG_RETURN_BOOL(found);
}

/* ---- validation before enqueue (SPEC section 10) ---- */

static JobqPlan add_validator_plan = {
	"INSERT INTO jobq.validators (job_type, name, validator, weight, owner)"
	" VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_type, name) DO UPDATE"
	" SET validator = excluded.validator, weight = excluded.weight, owner = excluded.owner",
	5, {TEXTOID, TEXTOID, REGPROCEDUREOID, FLOAT4OID, REGROLEOID}
};

/* Run every validator of val on payload: the "layers" JSON array into buf. */
static void
score_layers(JobqRegistry *reg, JobqValidation *val, const char *job_type, Datum payload,
			 StringInfo buf, double *sum, double *weights)
{
	ListCell   *lc;
	bool		first = true;

	appendStringInfoString(buf, "[");
	foreach(lc, val->validators)
	{
		JobqValidator *v = lfirst(lc);
		bool		isnull;
		double		s;
		Datum		out;

		if (v->call == NULL)
		{
			Oid			argtypes[1] = {JSONBOID};

			v->call = jobq_callable(v->fn, 1, argtypes, reg->cxt);
		}
		/* validators run as the role that added them */
		out = jobq_call(v->call, v->owner, false, 0, &payload, &isnull);
		s = isnull ? 0 : DatumGetFloat4(out);

		if (isnull || isnan(s) || s < 0 || s > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("validator \"%s\" of job type \"%s\" returned %s, not a score in [0, 1]",
							v->name, job_type, isnull ? "NULL" : psprintf("%g", s))));
		*sum += s * v->weight;
		*weights += v->weight;
		appendStringInfo(buf, "%s{\"name\": ", first ? "" : ", ");
		escape_json(buf, v->name);
		appendStringInfo(buf, ", \"score\": %.6g, \"weight\": %.6g}", s, v->weight);
		first = false;
	}
	appendStringInfoString(buf, "]");
}

/* score_layers with the registry pinned: a validator may enqueue, which may reload it */
static void
score_pinned(JobqRegistry *reg, JobqValidation *val, const char *job_type, Datum payload,
			 StringInfo buf, double *sum, double *weights)
{
	jobq_registry_pin();
	PG_TRY();
	{
		score_layers(reg, val, job_type, payload, buf, sum, weights);
	}
	PG_FINALLY();
	{
		jobq_registry_unpin();
	}
	PG_END_TRY();
}

Jsonb *
jobq_validate_payload(JobqRegistry *reg, const char *job_type, Datum payload, bool *passed)
{
	JobqValidation *val = NULL;
	ListCell   *lc;
	StringInfoData buf;
	double		sum = 0,
				weights = 0,
				score;

	if (reg == NULL)
		return NULL;
	foreach(lc, reg->validations)
	{
		JobqValidation *v = lfirst(lc);

		if (strcmp(v->job_type, job_type) == 0)
			val = v;
	}
	if (val == NULL)
		return NULL;

	initStringInfo(&buf);
	score_pinned(reg, val, job_type, payload, &buf, &sum, &weights);
	score = weights > 0 ? sum / weights : 0;
	*passed = score >= val->threshold;
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(
		psprintf("{\"score\": %.6g, \"threshold\": %.6g, \"passed\": %s, \"layers\": %s}",
				 score, val->threshold, *passed ? "true" : "false", buf.data))));
}

/*
 * jobq.add_validator(job_type, validator, weight, name) RETURNS void:
 * validator(jsonb) RETURNS real, run as the role that adds it.
 */
Datum
jobq_add_validator(PG_FUNCTION_ARGS)
{
	char	   *job_type = jobq_arg_name(fcinfo, 0, "job_type", NULL);
	Oid			fn;
	float4		weight = PG_ARGISNULL(2) ? 1.0f : PG_GETARG_FLOAT4(2);
	char	   *name;
	Oid			owner = GetOuterUserId();
	Datum		values[5];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("validator must not be NULL")));
	fn = PG_GETARG_OID(1);
	if (!(weight > 0) || isinf(weight))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("weight must be a positive number, not %g", weight)));
	check_signature("validator", fn, 1, (Oid[]) {JSONBOID}, FLOAT4OID,
					"validator(jsonb) RETURNS real", owner);
	name = PG_ARGISNULL(3) ? get_func_name(fn) : jobq_arg_name(fcinfo, 3, "name", NULL);

	values[0] = CStringGetTextDatum(job_type);
	values[1] = CStringGetTextDatum(name);
	values[2] = ObjectIdGetDatum(fn);
	values[3] = Float4GetDatum(weight);
	values[4] = ObjectIdGetDatum(owner);
	SPI_connect();
	jobq_plan_exec(&add_validator_plan, values, NULL, false, 0);
	SPI_finish();
	PG_RETURN_VOID();
}

/* jobq.validate(job_type, payload) RETURNS jsonb: the score enqueue would compute */
Datum
jobq_validate(PG_FUNCTION_ARGS)
{
	char	   *job_type = jobq_arg_name(fcinfo, 0, "job_type", NULL);
	Jsonb	   *result;
	bool		passed;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload must not be NULL")));
	SPI_connect();
	result = jobq_validate_payload(jobq_registry(), job_type, PG_GETARG_DATUM(1), &passed);
	if (result == NULL)
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(
			"{\"score\": 1, \"threshold\": 0, \"passed\": true, \"layers\": []}")));
	else
	{
		Jsonb	   *copy = SPI_palloc(VARSIZE(result));

		memcpy(copy, result, VARSIZE(result));
		result = copy;
	}
	SPI_finish();
	PG_RETURN_JSONB_P(result);
}
