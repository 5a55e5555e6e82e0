/*-------------------------------------------------------------------------
 *
 * call.h
 *	  Calling a registered function (handler, unit handler, finalizer,
 *	  validator) exactly, as the role that registered it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_CALL_H
#define JOBQ_CALL_H

#include "executor/spi.h"
#include "fmgr.h"

typedef struct JobqCallable
{
	Oid			fn;
	int			nargs;
	bool		via_spi;		/* an inlinable SQL function, called through a saved plan */
	SPIPlanPtr	plan;
	FmgrInfo	flinfo;
} JobqCallable;

/* Look the function up once (in cxt); an error if it no longer exists. */
extern JobqCallable *jobq_callable(Oid fn, int nargs, const Oid *argtypes, MemoryContext cxt);
extern void jobq_callable_free(JobqCallable *c);
extern void jobq_check_function_owner(Oid fn, Oid role);

/*
 * Call it as `owner` (who must still exist and may execute it); with
 * handler set, the interrupt window for cancel and timeout_ms is open
 * during the call.  Needs SPI.
 */
extern Datum jobq_call(JobqCallable *c, Oid owner, bool handler, int64 timeout_ms,
					   Datum *args, bool *isnull);

#endif							/* JOBQ_CALL_H */
