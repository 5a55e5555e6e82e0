/*-------------------------------------------------------------------------
 *
 * claims.c
 *	  The claim journal: what each in-server worker is running, kept where a
 *	  crash of the server cannot take it back.
 *
 * A worker's claim commits asynchronously, so that the WAL flush it would
 * wait for is not on the path from a committed enqueue to the handler's
 * start.  What makes that safe is this journal.  The attempt that a claim
 * counts only matters when the handler takes the server down with it (a
 * crash in C code, the OOM killer): then the claim may die with the WAL
 * buffers, the job would be Queued again with its old attempts, and a
 * handler that crashes the server would crash it forever.
 *
 * So after each claim a worker writes the ids and new attempt numbers of
 * its batch to pg_stat_tmp/jobq_claims.<slot>, and after the batch it
 * writes the file empty again.  Both are plain writes, no fsync: the
 * kernel keeps them through a crash of the server (not of the machine, but
 * a machine's crash is no crash loop).  On start, after a crash or not,
 * every worker reads every journal before its first claim and counts the
 * attempt of each job that is Queued again with one attempt fewer than the
 * journal says (jobq_count_lost_claims), failing the jobs that had no
 * attempt left.  A claim that did reach the disk leaves the job Processing
 * under a dead holder, which the orphan rescue handles; either way the
 * attempt is counted once.  The journals are outside base backups
 * (pg_stat_tmp), so a standby made from one never counts the primary's
 * jobs.
 *
 * File format (text, so that a test or a person can read it):
 *		jobq claims 1
 *		<job id> <attempts>
 *		...
 *		end
 * A file without its "end" line (a torn write after a machine crash) is
 * ignored.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include <fcntl.h>
#include <unistd.h>

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "storage/fd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "dispatch.h"

#define CLAIMS_DIR		"pg_stat_tmp"
#define CLAIMS_PREFIX	"jobq_claims."
#define CLAIMS_HEADER	"jobq claims 1\n"
#define CLAIMS_END		"end\n"
/* "<36-char uuid> <int>\n" */
#define CLAIMS_LINE_MAX	(UUID_LEN * 2 + 4 + 1 + 11 + 1)

static int	claims_fd = -1;
static StringInfoData claims_buf;

static void
claims_path(char *path, size_t size, int slotno)
{
	snprintf(path, size, "%s/%s%d", CLAIMS_DIR, CLAIMS_PREFIX, slotno);
}

/* Open this worker's journal; called once at worker start. */
void
jobq_claims_open(int slotno)
{
	char		path[MAXPGPATH];

	claims_path(path, sizeof(path), slotno);
	(void) MakePGDirectory(CLAIMS_DIR);
	initStringInfo(&claims_buf);
	claims_fd = BasicOpenFile(path, O_RDWR | O_CREAT | PG_BINARY);
	if (claims_fd < 0)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not open jobq claim journal \"%s\": %m", path),
				 errdetail("Claims wait for their WAL flush instead.")));
}

/* Write the journal; false (logged once) if it could not be written. */
static bool
claims_put(const char *data, int len)
{
	static bool warned = false;

	if (claims_fd >= 0 && pg_pwrite(claims_fd, data, len, 0) == len)
		return true;
	if (!warned)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write jobq claim journal of worker %d: %m",
						jobq_worker ? jobq_worker->slotno : -1),
				 errdetail("Claims wait for their WAL flush instead.")));
	warned = true;
	return false;
}

/*
 * Record a batch just claimed, before any of its handlers runs.  Call right
 * after the claim's commit.
 */
void
jobq_claims_write(const JobqJob *jobs, int n)
{
	resetStringInfo(&claims_buf);
	appendStringInfoString(&claims_buf, CLAIMS_HEADER);
	for (int i = 0; i < n; i++)
	{
		char		id[UUID_LEN * 2 + 5];

		jobq_uuid_to_cstring(&jobs[i].id, id);
		appendStringInfo(&claims_buf, "%s %d\n", id, jobs[i].attempts);
	}
	appendStringInfoString(&claims_buf, CLAIMS_END);
	/* without the journal, the claim itself must be on disk */
	if (!claims_put(claims_buf.data, claims_buf.len))
		XLogFlush(XactLastCommitEnd);
}

/* The batch is over: nothing of this worker's is running. */
void
jobq_claims_clear(void)
{
	static const char empty[] = CLAIMS_HEADER CLAIMS_END;

	(void) claims_put(empty, sizeof(empty) - 1);
}

/* Parse one journal into the arrays; false (and nothing added) if torn. */
static bool
claims_parse(char *text, Datum **ids, Datum **attempts, int *n, int *size)
{
	int			start = *n;
	char	   *line;
	char	   *next;

	if (strncmp(text, CLAIMS_HEADER, strlen(CLAIMS_HEADER)) != 0)
		return false;
	for (line = text + strlen(CLAIMS_HEADER); *line != '\0'; line = next)
	{
		char	   *nl = strchr(line, '\n');
		char	   *sp;
		char	   *end;
		long		a;
		pg_uuid_t	id;

		if (nl == NULL)
			break;
		*nl = '\0';
		next = nl + 1;
		if (strcmp(line, "end") == 0)
			return true;
		sp = strchr(line, ' ');
		if (sp == NULL || sp - line != UUID_LEN * 2 + 4)
			break;
		*sp = '\0';
		errno = 0;
		a = strtol(sp + 1, &end, 10);
		if (errno != 0 || *end != '\0' || a < 1 || a > PG_INT32_MAX)
			break;
		if (*n == *size)
		{
			*size *= 2;
			*ids = repalloc(*ids, sizeof(Datum) * *size);
			*attempts = repalloc(*attempts, sizeof(Datum) * *size);
		}
		if (!jobq_parse_uuid(line, &id))
			break;
		(*ids)[*n] = UUIDPGetDatum(memcpy(palloc(sizeof(pg_uuid_t)), &id, sizeof(pg_uuid_t)));
		(*attempts)[*n] = Int32GetDatum((int32) a);
		(*n)++;
	}
	*n = start;
	return false;
}

/*
 * Count the attempts that a crash took back, from every worker's journal
 * (see the file header).  Journals of slots beyond jobq.workers are removed
 * once read.  Needs SPI, in a transaction.  Returns the jobs changed.
 */
uint64
jobq_claims_rescue(void)
{
	DIR		   *dir;
	struct dirent *de;
	int			size = 64;
	int			n = 0;
	Datum	   *ids = palloc(sizeof(Datum) * size);
	Datum	   *attempts = palloc(sizeof(Datum) * size);
	List	   *stale = NIL;
	ListCell   *lc;
	uint64		changed = 0;

	dir = AllocateDir(CLAIMS_DIR);
	while ((de = ReadDirExtended(dir, CLAIMS_DIR, LOG)) != NULL)
	{
		char		path[MAXPGPATH];
		char	   *end;
		long		slotno;
		int			fd;
		char	   *text;
		int			cap;
		int			len = 0;
		ssize_t		rc;

		if (strncmp(de->d_name, CLAIMS_PREFIX, strlen(CLAIMS_PREFIX)) != 0)
			continue;
		slotno = strtol(de->d_name + strlen(CLAIMS_PREFIX), &end, 10);
		if (*end != '\0' || slotno < 0 || slotno > INT_MAX)
			continue;
		snprintf(path, sizeof(path), "%s/%s", CLAIMS_DIR, de->d_name);
		fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
		if (fd < 0)
		{
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not open jobq claim journal \"%s\": %m", path)));
			continue;
		}
		/* a journal holds one batch, of jobq.batch_size lines at most */
		cap = strlen(CLAIMS_HEADER) + strlen(CLAIMS_END) + CLAIMS_LINE_MAX * JOBQ_BATCH_SIZE_MAX;
		text = palloc(cap + 1);
		while (len < cap && (rc = read(fd, text + len, cap - len)) > 0)
			len += rc;
		CloseTransientFile(fd);
		text[len] = '\0';
		if (!claims_parse(text, &ids, &attempts, &n, &size) && len > 0)
			ereport(LOG,
					(errmsg("jobq: ignoring the incomplete claim journal \"%s\"", path)));
		pfree(text);
		if (jobq_shared != NULL && slotno >= jobq_shared->nslots)
			stale = lappend(stale, pstrdup(path));
	}
	FreeDir(dir);

	if (n > 0)
		changed = jobq_count_lost_claims(
			PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR)),
			PointerGetDatum(construct_array(attempts, n, INT4OID, 4, true, TYPALIGN_INT)));
	foreach(lc, stale)
		(void) unlink((char *) lfirst(lc));
	return changed;
}
