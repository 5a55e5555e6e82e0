/*-------------------------------------------------------------------------
 *
 * call.c
 *	  Calling a registered function exactly, as the role that registered it.
 *
 * The registered function is called by its OID through fmgr, so an overload
 * created later can never be called instead.  One exception, for speed: a
 * LANGUAGE sql function whose name is unique in its schema is called with a
 * saved SPI plan "SELECT schema.fn($1, ...)", which lets the planner inline
 * it (fmgr would parse and plan its body at every call).
 *
 * User code runs with the session's default search_path (never the pinned
 * "pg_catalog, pg_temp" of jobq's own statements), so unqualified names in
 * a handler mean what they mean in a new session; a handler that must not
 * depend on it pins its own with SET search_path.
 *
 * fmgr does not check privileges, so we do: the registering role must
 * still exist and may execute the function, and the call runs with that
 * role's privileges (SECURITY_LOCAL_USERID_CHANGE, like SECURITY DEFINER).
 * Errors unwind the role change with the (sub)transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include "catalog/namespace.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "call.h"
#include "dispatch.h"

/* Is fn a LANGUAGE sql function whose name is the only one in its schema? */
static bool
unique_sql_function(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Form_pg_proc proc;
	CatCList   *list;
	int			same_schema = 0;
	bool		sql;

	if (!HeapTupleIsValid(tup))
		return false;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	sql = proc->prolang == SQLlanguageId;
	list = SearchSysCacheList1(PROCNAMEARGSNSP, CStringGetDatum(NameStr(proc->proname)));
	for (int i = 0; i < list->n_members; i++)
	{
		Form_pg_proc other = (Form_pg_proc) GETSTRUCT(&list->members[i]->tuple);

		if (other->pronamespace == proc->pronamespace)
			same_schema++;
	}
	ReleaseSysCacheList(list);
	ReleaseSysCache(tup);
	return sql && same_schema == 1;
}

/*
 * 42501 unless `role` has the privileges of the function's owner.  The
 * function runs with role's privileges, so whoever can replace its body
 * must already have them: otherwise the owner of a function registered by
 * an administrator could run code as that administrator.
 */
void
jobq_check_function_owner(Oid fn, Oid role)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Oid			proowner;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %u does not exist", fn)));
	proowner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	if (!has_privs_of_role(role, proowner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" does not own %s, and it would run with that role's privileges",
						GetUserNameFromId(role, false), format_procedure(fn)),
				 errhint("Register functions you own (or whose owner you are a member of).")));
}

JobqCallable *
jobq_callable(Oid fn, int nargs, const Oid *argtypes, MemoryContext cxt)
{
	JobqCallable *c;
	char	   *name = get_func_name(fn);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("the registered function %u no longer exists", fn),
				 errhint("Register it again.")));
	c = MemoryContextAllocZero(cxt, sizeof(JobqCallable));
	c->fn = fn;
	c->nargs = nargs;
	if (unique_sql_function(fn))
	{
		char	   *sql = psprintf("SELECT %s(%s)",
								   quote_qualified_identifier(get_namespace_name(get_func_namespace(fn)), name),
								   nargs == 1 ? "$1" : "$1, $2");
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, unconstify(Oid *, argtypes));

		if (plan == NULL)
			elog(ERROR, "jobq: could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		c->plan = plan;
		c->via_spi = true;
	}
	else
		fmgr_info_cxt(fn, &c->flinfo, cxt);
	return c;
}

void
jobq_callable_free(JobqCallable *c)
{
	if (c != NULL && c->plan != NULL)
		SPI_freeplan(c->plan);
}

Datum
jobq_call(JobqCallable *c, Oid owner, bool handler, int64 timeout_ms, Datum *args, bool *isnull)
{
	Oid			save_user;
	int			save_sec;
	int			nest;
	Datum		result;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the role that registered %s no longer exists", format_procedure(c->fn)),
				 errhint("Register it again.")));
	jobq_check_function_owner(c->fn, owner);
	if (pg_proc_aclcheck(c->fn, owner, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may no longer execute %s",
						GetUserNameFromId(owner, false), format_procedure(c->fn))));

	/*
	 * User code runs with the session's default search_path (the database's
	 * and configuration's), not with the pinned one of jobq's own
	 * statements; the GUC nest level undoes it on error too.
	 */
	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", GetConfigOptionResetString("search_path"),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (handler)
		jobq_handler_begin(timeout_ms);
	if (c->via_spi)
	{
		int			rc = SPI_execute_plan(c->plan, args, NULL, false, 1);

		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "jobq: call of %s returned %s", format_procedure(c->fn),
				 SPI_result_code_string(rc));
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	}
	else
	{
		LOCAL_FCINFO(fcinfo, 2);

		InitFunctionCallInfoData(*fcinfo, &c->flinfo, c->nargs, InvalidOid, NULL, NULL);
		for (int i = 0; i < c->nargs; i++)
		{
			fcinfo->args[i].value = args[i];
			fcinfo->args[i].isnull = false;
		}
		result = FunctionCallInvoke(fcinfo);
		*isnull = fcinfo->isnull;
	}
	if (handler)
		jobq_handler_end();
	SetUserIdAndSecContext(save_user, save_sec);
	/* undo every setting the callee changed, even a plain SET: none may leak */
	AtEOXact_GUC(false, nest);
	return result;
}
