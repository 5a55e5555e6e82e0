/*-------------------------------------------------------------------------
 *
 * spi_plans.h
 *	  Saved SPI plans, prepared once per backend on first use.
 *
 * Plans take only built-in types as parameters, so they survive DROP and
 * CREATE EXTENSION: the plan cache re-analyzes the query text when the
 * tables it names are replaced.  Every query names jobq's objects with their
 * schema; the SQL functions that run them pin search_path, and the worker
 * runs them with pg_catalog first, so no look-alike object can be picked up.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_SPI_PLANS_H
#define JOBQ_SPI_PLANS_H

#include "executor/spi.h"

#define JOBQ_PLAN_MAX_ARGS 12

typedef struct JobqPlan
{
	const char *sql;
	int			nargs;
	Oid			argtypes[JOBQ_PLAN_MAX_ARGS];
	SPIPlanPtr	plan;
} JobqPlan;

/* Run a saved plan; returns SPI_processed.  nulls as for SPI_execute_plan. */
extern uint64 jobq_plan_exec(JobqPlan *plan, Datum *values, const char *nulls,
							 bool read_only, long count);

/* Copy row `row` of SPI_tuptable into values/nulls laid out for tupdesc. */
extern void jobq_spi_row_to(TupleDesc tupdesc, uint64 row, Datum *values, bool *nulls);

#endif							/* JOBQ_SPI_PLANS_H */
