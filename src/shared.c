/*-------------------------------------------------------------------------
 *
 * shared.c
 *	  Worker slots in shared memory, and the holder tokens in locked_by.
 *
 * An in-server worker claims jobs as "jobq:<slot>:<pid>:<token>", where the
 * token is random and new at every start of the worker.  A crash restart
 * (kill -9 of any backend) resets shared memory but keeps the postmaster, so
 * pids and start times can repeat; tokens do not.  A holder is alive exactly
 * when its slot still carries its token.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/shmem.h"
#include "utils/builtins.h"

#include "shared.h"

#define HOLDER_PREFIX "jobq:"

PG_FUNCTION_INFO_V1(jobq_holder_alive_sql);

Size
jobq_shared_size(void)
{
	return add_size(offsetof(JobqShared, slots),
					mul_size(sizeof(JobqWorkerSlot), Max(jobq_workers, 1)));
}

void
jobq_shared_init(JobqShared *shared)
{
	memset(shared, 0, jobq_shared_size());
	SpinLockInit(&shared->mutex);
	pg_atomic_init_u32(&shared->registry_generation, 1);
	pg_atomic_init_u32(&shared->parked, 0);
	for (int i = 0; i < JOBQ_NCOUNTERS; i++)
		pg_atomic_init_u64(&shared->counters[i], 0);
	if (!pg_strong_random(&shared->incarnation, sizeof(shared->incarnation)))
		shared->incarnation = (uint64) MyStartTimestamp;
	shared->nslots = Max(jobq_workers, 1);
	for (int i = 0; i < shared->nslots; i++)
		shared->slots[i].pgprocno = -1;
}

void
jobq_holder_format(char *out, size_t outlen, int slotno, pid_t pid, uint64 token)
{
	snprintf(out, outlen, HOLDER_PREFIX "%d:%d:%016llx", slotno, (int) pid,
			 (unsigned long long) token);
}

bool
jobq_holder_is_worker(const char *holder)
{
	return strncmp(holder, HOLDER_PREFIX, strlen(HOLDER_PREFIX)) == 0;
}

/* Parse an in-server holder name; false if it is not one. */
static bool
holder_parse(const char *holder, int *slotno, uint64 *token)
{
	int			pid;
	unsigned long long tok;
	char		tail;

	if (!jobq_holder_is_worker(holder) ||
		sscanf(holder + strlen(HOLDER_PREFIX), "%d:%d:%16llx%c",
			   slotno, &pid, &tok, &tail) != 3)
		return false;
	*token = (uint64) tok;
	return true;
}

/*
 * Is this in-server holder still running?  False for names that are not
 * in-server holders, and for every holder when jobq is not preloaded.
 */
bool
jobq_holder_alive(const char *holder)
{
	int			slotno;
	uint64		token;
	bool		alive;

	if (jobq_shared == NULL || !holder_parse(holder, &slotno, &token) ||
		slotno < 0 || slotno >= jobq_shared->nslots)
		return false;
	SpinLockAcquire(&jobq_shared->mutex);
	alive = jobq_shared->slots[slotno].token == token &&
		jobq_shared->slots[slotno].state != JOBQ_WS_STOPPED;
	SpinLockRelease(&jobq_shared->mutex);
	return alive;
}

/* SQL: jobq._holder_alive(holder text) RETURNS boolean */
Datum
jobq_holder_alive_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(jobq_holder_alive(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

/*
 * Interrupt the handler of job_id if the worker named by holder is running it
 * now.  Called after commit: must not throw.  The worker's SIGINT handler
 * turns the signal into a query cancel only while that same job's handler
 * runs (worker.c), so a signal that arrives late is harmless.
 */
void
jobq_interrupt_job(const char *holder, const pg_uuid_t *job_id)
{
	int			slotno;
	uint64		token;
	pid_t		pid = 0;
	JobqWorkerSlot *slot;

	if (jobq_shared == NULL || !holder_parse(holder, &slotno, &token) ||
		slotno < 0 || slotno >= jobq_shared->nslots)
		return;
	slot = &jobq_shared->slots[slotno];
	SpinLockAcquire(&jobq_shared->mutex);
	if (slot->token == token)
	{
		/* remembered, so a job still waiting in the worker's batch is skipped */
		slot->cancelled[slot->cancelled_next++ % JOBQ_CANCEL_RING] = *job_id;
		if (slot->has_job && memcmp(&slot->job_id, job_id, sizeof(pg_uuid_t)) == 0)
		{
			slot->cancel_job = *job_id;
			pid = slot->pid;
		}
	}
	SpinLockRelease(&jobq_shared->mutex);
	if (pid != 0)
		kill(pid, SIGINT);
}
