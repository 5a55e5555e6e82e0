/*-------------------------------------------------------------------------
 *
 * dropdb.c
 *	  DROP DATABASE (and the other commands that need a database to
 *	  themselves) on jobq.database.
 *
 * The workers and the notifier stay connected to jobq.database, and
 * PostgreSQL refuses to drop, rename or move a database that another
 * session is connected to.  A ProcessUtility hook, in every backend since
 * jobq is preloaded, sees such a command before PostgreSQL runs it.  If the
 * user may run it, the hook parks jobq's processes: it sets a flag in shared
 * memory and ends them with SIGTERM.  The postmaster starts them again a
 * second later, and a parked process waits, unconnected, until the flag is
 * cleared.  PostgreSQL's own command waits up to 5 s for other sessions to
 * leave, which is time enough.
 *
 * If the command fails, the flag is cleared and the processes connect again
 * (the jobs they were running are rescued like any orphan).  After a DROP
 * or a RENAME the flag stays: the processes wait until CREATE DATABASE (or
 * a RENAME) makes jobq.database again, or until the server restarts.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include <signal.h>

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/acl.h"

#include "shared.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

/* What a utility statement does to jobq.database. */
typedef enum DbAction
{
	DB_NONE,
	DB_GONE,					/* drop or rename away: park until it is back */
	DB_BUSY,					/* needs it to itself, then it is back (tablespace) */
	DB_BACK						/* create or rename to: unpark after */
} DbAction;

static bool
is_jobq_database(const char *name)
{
	return name != NULL && jobq_database != NULL && strcmp(name, jobq_database) == 0;
}

static DbAction
db_action(Node *stmt)
{
	if (IsA(stmt, DropdbStmt))
		return is_jobq_database(((DropdbStmt *) stmt)->dbname) ? DB_GONE : DB_NONE;
	if (IsA(stmt, CreatedbStmt))
		return is_jobq_database(((CreatedbStmt *) stmt)->dbname) ? DB_BACK : DB_NONE;
	if (IsA(stmt, RenameStmt) && ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
	{
		RenameStmt *r = (RenameStmt *) stmt;

		if (is_jobq_database(r->subname))
			return DB_GONE;
		return is_jobq_database(r->newname) ? DB_BACK : DB_NONE;
	}
	if (IsA(stmt, AlterDatabaseStmt) && is_jobq_database(((AlterDatabaseStmt *) stmt)->dbname))
	{
		ListCell   *lc;

		foreach(lc, ((AlterDatabaseStmt *) stmt)->options)
			if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
				return DB_BUSY;
	}
	return DB_NONE;
}

/*
 * Park (or unpark) the workers and the notifier.  Parking ends them; the
 * postmaster starts them again and they wait in jobq_wait_while_parked().
 */
static void
set_parked(bool park)
{
	pid_t		notifier = park ? jobq_notifier_pid() : 0;

	pg_atomic_write_u32(&jobq_shared->parked, park ? 1 : 0);
	for (int i = 0; i < jobq_shared->nslots; i++)
	{
		JobqWorkerSlot *slot = &jobq_shared->slots[i];
		pid_t		pid;
		int			procno;

		SpinLockAcquire(&jobq_shared->mutex);
		pid = slot->pid;
		procno = slot->pgprocno;
		SpinLockRelease(&jobq_shared->mutex);
		if (park && pid > 0)
			(void) kill(pid, SIGTERM);
		else if (!park)
			jobq_set_latch_of(procno);
	}
	if (notifier > 0)
		(void) kill(notifier, SIGTERM);
}

static void
jobq_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	volatile DbAction action = jobq_shared != NULL ? db_action(pstmt->utilityStmt) : DB_NONE;
	volatile bool parked = false;

	if (action == DB_GONE || action == DB_BUSY)
	{
		Oid			db = get_database_oid(jobq_database, true);

		/*
		 * Only for a command that can succeed: not one that PostgreSQL
		 * refuses anyway, which would otherwise stop the workers for any
		 * user who types it.
		 */
		if (IsA(pstmt->utilityStmt, DropdbStmt))
			PreventInTransactionBlock(context == PROCESS_UTILITY_TOPLEVEL, "DROP DATABASE");

		/*
		 * A RENAME can run in a transaction block that later rolls back,
		 * after which nothing would unpark: only one that commits at once.
		 */
		if (OidIsValid(db) && pg_database_ownercheck(db, GetUserId()) && db != MyDatabaseId &&
			context == PROCESS_UTILITY_TOPLEVEL && !IsTransactionBlock())
		{
			ereport(LOG,
					(errmsg("jobq: stopping the workers connected to database \"%s\" for %s",
							jobq_database, GetCommandTagName(CreateCommandTag(pstmt->utilityStmt)))));
			set_parked(true);
			parked = true;
		}
	}
	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
								 dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
									dest, qc);
	}
	PG_CATCH();
	{
		if (parked)
			set_parked(false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if ((parked && action == DB_BUSY) || action == DB_BACK)
		set_parked(false);
}

void
jobq_dropdb_install(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = jobq_process_utility;
}

/*
 * Called by a worker or the notifier before it connects: wait while
 * jobq.database is being dropped or is gone.
 */
void
jobq_wait_while_parked(void)
{
	bool		logged = false;

	while (pg_atomic_read_u32(&jobq_shared->parked) != 0)
	{
		if (!logged)
			ereport(LOG,
					(errmsg("%s: database \"%s\" was dropped, renamed or is being moved; waiting for it",
							MyBgworkerEntry->bgw_name, jobq_database)));
		logged = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}
