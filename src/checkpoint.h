/*-------------------------------------------------------------------------
 *
 * checkpoint.h
 *	  Checkpoint records (jobq.unit_checkpoints), shared by the SQL API and
 *	  the unit-job runner.  All of these need a transaction and SPI.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_CHECKPOINT_H
#define JOBQ_CHECKPOINT_H

#include "nodes/pg_list.h"
#include "utils/uuid.h"

typedef struct JobqCheckpoint
{
	int			unit_id;
	int64		bytes;
	char		sha256[65];
	bool		stored;			/* false: recorded before its upload finished */
	char	   *uri;			/* where it is, whatever the store setting says now */
} JobqCheckpoint;

extern List *jobq_ckpt_list(const pg_uuid_t *job_id);
extern void jobq_ckpt_record(const pg_uuid_t *job_id, int unit_id, const char *uri,
							 int64 bytes, const char *sha256, bool stored);
extern void jobq_ckpt_mark_stored(const pg_uuid_t *job_id, int unit_id);
extern void jobq_ckpt_delete(const pg_uuid_t *job_id, int unit_id);

/*
 * Recount a job's stored units into units_done and progress_percent, if the
 * job is still Processing (under holder, when given).  Returns units_done,
 * or -1 when the job is no longer that.
 */
extern int	jobq_ckpt_progress(const pg_uuid_t *job_id, const char *holder);

/*
 * The worker's outputs fetched ahead of its finalizer, so that
 * jobq.checkpoint_data() called by the finalizer needs no I/O inside the
 * finalizer's transaction.  Set and cleared by units.c.
 */
extern void jobq_ckpt_prefetch_set(const pg_uuid_t *job_id, int units, bytea **outputs);
extern void jobq_ckpt_prefetch_clear(void);

/* the unit whose blob checkpoint_data() last found missing or corrupt */
extern int	jobq_corrupt_unit;

#endif							/* JOBQ_CHECKPOINT_H */
