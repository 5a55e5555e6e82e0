/*-------------------------------------------------------------------------
 *
 * notifier.c
 *	  Delivering progress notifications without the NOTIFY commit lock.
 *
 * A transaction that sent NOTIFY takes a cluster-wide lock at commit and
 * holds it until its commit record is flushed, so notifying transactions
 * commit one at a time, without group commit.  Every claim and completion
 * notifies (SPEC section 11), so sending NOTIFY from them would cap the
 * queue at the disk's flush rate, whatever the number of clients.
 *
 * Instead, a transaction queues its events in backend memory, and just
 * before it commits (XACT_EVENT_PRE_COMMIT) appends them, tagged with its
 * transaction id, to a ring in shared memory.  The "jobq notifier" process,
 * connected to jobq.database, reads the ring in order, drops the events of
 * transactions that aborted, waits for those still in progress, and sends
 * the rest with NOTIFY, many per transaction: one commit lock per batch.
 * While events keep coming it sends at most one batch per
 * jobq.notify_interval, so a busy queue costs it one transaction (an xid
 * and a commit record) per interval rather than one per commit.
 * Events of one job keep their order, because a job's changes are
 * serialized by its row lock and each appends before it commits.
 *
 * Without the notifier (jobq not preloaded, another database, a full
 * ring, or no transaction id), events fall back to a plain NOTIFY from the
 * committing transaction: correct, only slower.
 *
 * Locking: JobqRing.lock (an LWLock) guards head and tail.  Only the
 * notifier advances tail; writers advance head.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include "access/parallel.h"
#include "access/transam.h"
#include "access/xact.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "shared.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "common/hashfn.h"
#include "utils/hsearch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#define RING_SIZE		(4 * 1024 * 1024)
#define BATCH_BYTES		(256 * 1024)

typedef struct JobqRing
{
	LWLock	   *lock;
	Oid			dboid;			/* the notifier's database; InvalidOid if none */
	int			procno;			/* the notifier's PGPROC, -1 if none */
	uint64		head;			/* next byte to write */
	uint64		tail;			/* next byte to read */
	char		buf[RING_SIZE];
} JobqRing;

/* Each event: this header, then len payload bytes, padded to 8. */
typedef struct RingEntry
{
	uint32		len;
	TransactionId xid;
} RingEntry;

#define ENTRY_SIZE(len) (MAXALIGN(sizeof(RingEntry)) + MAXALIGN(len))

PGDLLEXPORT void jobq_notifier_main(Datum main_arg);

static JobqRing *ring = NULL;

/* this backend's events, in TopTransactionContext */
typedef struct PendingEvent
{
	int			nest_level;
	char	   *payload;
} PendingEvent;

static List *pending = NIL;
static bool wake_notifier = false;
static bool defer_to_commit = false;

Size
jobq_notifier_shmem_size(void)
{
	return sizeof(JobqRing);
}

void
jobq_notifier_shmem_request(void)
{
	RequestNamedLWLockTranche("jobq notify", 1);
}

/* From the shmem startup hook, under AddinShmemInitLock. */
void
jobq_notifier_shmem_init(void)
{
	bool		found;

	ring = ShmemInitStruct("jobq notify ring", sizeof(JobqRing), &found);
	if (!found)
	{
		ring->lock = &(GetNamedLWLockTranche("jobq notify"))->lock;
		ring->dboid = InvalidOid;
		ring->procno = -1;
		ring->head = ring->tail = 0;
	}
}

void
jobq_register_notifier(void)
{
	BackgroundWorker bgw;

	jobq_bgworker_init(&bgw, "jobq_notifier_main", "jobq notifier");
	RegisterBackgroundWorker(&bgw);
}

/* ---- writers ---- */

static void
ring_write(uint64 off, const void *data, size_t len)
{
	size_t		at = off % RING_SIZE;
	size_t		first = Min(len, RING_SIZE - at);

	memcpy(ring->buf + at, data, first);
	if (first < len)
		memcpy(ring->buf, (const char *) data + first, len - first);
}

static void
ring_read(uint64 off, void *data, size_t len)
{
	size_t		at = off % RING_SIZE;
	size_t		first = Min(len, RING_SIZE - at);

	memcpy(data, ring->buf + at, first);
	if (first < len)
		memcpy((char *) data + first, ring->buf, len - first);
}

/*
 * Queue one progress notification of the current transaction.  Sent with
 * NOTIFY at once when there is no notifier for this database.  In-server
 * workers queue too: the notifier is another process.
 */
void
jobq_queue_notify(const char *payload)
{
	MemoryContext old;
	PendingEvent *ev;

	if (ring == NULL || ring->dboid != MyDatabaseId || IsParallelWorker())
	{
		Async_Notify("jobq_progress", payload);
		return;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	ev = palloc(sizeof(PendingEvent));
	ev->nest_level = GetCurrentTransactionNestLevel();
	ev->payload = pstrdup(payload);
	pending = lappend(pending, ev);
	MemoryContextSwitchTo(old);
}

/* Append the pending events, tagged xid, if they fit; under no lock. */
static bool
append_pending(TransactionId xid)
{
	size_t		need = 0;
	bool		fits;
	ListCell   *lc;

	foreach(lc, pending)
		need += ENTRY_SIZE(strlen(((PendingEvent *) lfirst(lc))->payload));

	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	fits = ring->dboid == MyDatabaseId && ring->head - ring->tail + need <= RING_SIZE;
	if (fits)
	{
		foreach(lc, pending)
		{
			PendingEvent *ev = lfirst(lc);
			RingEntry	hdr;

			hdr.len = strlen(ev->payload);
			hdr.xid = xid;
			ring_write(ring->head, &hdr, sizeof(hdr));
			ring_write(ring->head + MAXALIGN(sizeof(RingEntry)), ev->payload, hdr.len);
			ring->head += ENTRY_SIZE(hdr.len);
		}
	}
	LWLockRelease(ring->lock);
	return fits;
}

/*
 * PRE_COMMIT: into the ring, tagged with our xid, or, when it is full, as
 * plain NOTIFYs.  A transaction without an xid changed nothing, so its
 * events (jobq._notify() of a row it made up) need no row-lock ordering:
 * they go in at COMMIT, tagged as committed.
 */
static void
flush_pending(void)
{
	TransactionId xid = GetTopTransactionIdIfAny();
	ListCell   *lc;

	if (!TransactionIdIsValid(xid))
	{
		defer_to_commit = true;
		return;
	}
	wake_notifier = append_pending(xid);
	if (!wake_notifier)
		foreach(lc, pending)
			Async_Notify("jobq_progress", ((PendingEvent *) lfirst(lc))->payload);
	pending = NIL;
}

static void
notifier_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (pending != NIL)
				flush_pending();
			break;
		case XACT_EVENT_COMMIT:
			if (defer_to_commit && pending != NIL)
			{
				wake_notifier = append_pending(FrozenTransactionId);
				if (!wake_notifier)
					elog(LOG, "jobq: %d progress notifications dropped: the notify ring is full",
						 list_length(pending));
			}
			if (wake_notifier)
				jobq_set_latch_of(ring->procno);
			wake_notifier = false;
			defer_to_commit = false;
			pending = NIL;
			break;
		case XACT_EVENT_PRE_PREPARE:
			/* as NOTIFY itself: the events would belong to no commit */
			if (pending != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that changed jobq jobs")));
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* events already in the ring are dropped by the notifier: xid aborted */
			wake_notifier = false;
			defer_to_commit = false;
			pending = NIL;
			break;
		default:
			break;
	}
}

static void
notifier_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	int			level;
	ListCell   *lc;

	if (pending == NIL || (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB))
		return;
	level = GetCurrentTransactionNestLevel();
	foreach(lc, pending)
	{
		PendingEvent *ev = lfirst(lc);

		if (ev->nest_level < level)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			ev->nest_level = level - 1;
		else
			pending = foreach_delete_current(pending, lc);
	}
}

void
jobq_notifier_register_callbacks(void)
{
	RegisterXactCallback(notifier_xact_callback, NULL);
	RegisterSubXactCallback(notifier_subxact_callback, NULL);
}

/* ---- the notifier process ---- */

/*
 * Writers keep queueing while the notifier restarts (a second later); a
 * ring that fills meanwhile falls back to plain NOTIFY.
 */
static void
notifier_detach(int code, Datum arg)
{
	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	ring->procno = -1;
	LWLockRelease(ring->lock);
}

/* The notifier's pid, or 0 when it is not connected. */
pid_t
jobq_notifier_pid(void)
{
	int			procno;

	if (ring == NULL)
		return 0;
	LWLockAcquire(ring->lock, LW_SHARED);
	procno = ring->procno;
	LWLockRelease(ring->lock);
	return procno >= 0 ? GetPGProcByNumber(procno)->pid : 0;
}

/* Bytes written to the ring and not yet read. */
static uint64
ring_used(void)
{
	uint64		used;

	LWLockAcquire(ring->lock, LW_SHARED);
	used = ring->head - ring->tail;
	LWLockRelease(ring->lock);
	return used;
}

/*
 * Send what the ring holds, in order, up to the first event whose
 * transaction is still running.  Returns whether anything was consumed.
 *
 * NOTIFY folds identical payloads sent by one transaction into one, so a
 * payload already in this batch (by hash: a collision only ends the batch
 * early) waits for the next one.
 */
static bool
drain(char *batch)
{
	uint64		tail,
				head;
	size_t		len;
	size_t		pos = 0;
	size_t		consumed = 0;
	HASHCTL		ctl;
	HTAB	   *seen;

	LWLockAcquire(ring->lock, LW_SHARED);
	tail = ring->tail;
	head = ring->head;
	LWLockRelease(ring->lock);
	if (head == tail)
		return false;

	/* only this process moves tail, and writers never overwrite [tail, head) */
	len = Min(head - tail, BATCH_BYTES);
	ring_read(tail, batch, len);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint32);
	ctl.entrysize = sizeof(uint32);
	ctl.hcxt = CurrentMemoryContext;
	seen = hash_create("jobq notifier batch", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	while (pos + MAXALIGN(sizeof(RingEntry)) <= len)
	{
		RingEntry	hdr;
		size_t		size;

		memcpy(&hdr, batch + pos, sizeof(hdr));
		size = ENTRY_SIZE(hdr.len);
		if (pos + size > len)
			break;				/* the rest of it is in the next batch */
		if (TransactionIdIsInProgress(hdr.xid))
			break;				/* keep the order: wait for it */
		if (TransactionIdDidCommit(hdr.xid))
		{
			const char *payload = batch + pos + MAXALIGN(sizeof(RingEntry));
			uint32		h = hash_bytes((const unsigned char *) payload, hdr.len);
			bool		dup;

			(void) hash_search(seen, &h, HASH_ENTER, &dup);
			if (dup)
				break;
			Async_Notify("jobq_progress", pnstrdup(payload, hdr.len));
		}
		pos += size;
		consumed = pos;
	}
	CommitTransactionCommand();

	if (consumed > 0)
	{
		LWLockAcquire(ring->lock, LW_EXCLUSIVE);
		ring->tail += consumed;
		LWLockRelease(ring->lock);
	}
	return consumed > 0;
}

void
jobq_notifier_main(Datum main_arg)
{
	char	   *batch;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	jobq_wait_while_parked();
	BackgroundWorkerInitializeConnection(jobq_database, NULL, 0);
	SetConfigOption("application_name", "jobq notifier", PGC_USERSET, PGC_S_SESSION);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);

	/*
	 * NOTIFY assigns each batch transaction an xid, so its commit writes a
	 * commit record.  Notifications do not survive a crash anyway: do not
	 * wait for that record's flush, and leave the disk to the job commits.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION);
	batch = MemoryContextAlloc(TopMemoryContext, BATCH_BYTES);

	/* events queued for another database (jobq.database changed) are dropped */
	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	if (ring->dboid != MyDatabaseId)
		ring->tail = ring->head;
	ring->dboid = MyDatabaseId;
	ring->procno = MyProc->pgprocno;
	LWLockRelease(ring->lock);
	before_shmem_exit(notifier_detach, (Datum) 0);

	for (;;)
	{
		bool		more;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		more = drain(batch);
		pgstat_report_stat(false);
		if (more)
		{
			/*
			 * Let the next events gather for a moment: a busy queue then
			 * costs one NOTIFY transaction (an xid, a commit record, the
			 * commit lock) per interval instead of one per commit.  Not
			 * while the ring is half full.
			 */
			if (jobq_notify_interval_ms > 0 && ring_used() < RING_SIZE / 2)
				(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 jobq_notify_interval_ms, PG_WAIT_EXTENSION);
			continue;
		}
		/* wake at a commit that queued events; poll a little for in-progress ones */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ring->head != ring->tail ? 2 : 1000, PG_WAIT_EXTENSION);
	}
}
