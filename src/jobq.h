/*-------------------------------------------------------------------------
 *
 * jobq.h
 *	  Declarations shared by the jobq extension's source files.
 *
 * Terms used throughout:
 *	  job		a row of jobq.jobs; its status is one of the JOBQ_* codes below
 *				(SPEC section 2; the numbers are public and never change).
 *	  holder	whoever claimed a Processing job; its name is in locked_by.
 *				In-server workers write a token (see jobq_holder_format) that
 *				identifies one run of one worker, so a job whose holder died is
 *				told apart from a live one even after a crash restart.
 *	  tenant	the user id of the calling session (jobq.current_user_id());
 *				when set, every job-id function behaves as if other tenants'
 *				jobs did not exist (P0002).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_H
#define JOBQ_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/* Job status codes: SPEC section 2. */
#define JOBQ_QUEUED			0
#define JOBQ_PROCESSING		1
#define JOBQ_COMPLETED		2
#define JOBQ_FAILED			3
#define JOBQ_CANCELLED		4

#define JOBQ_IS_TERMINAL(s)	((s) >= JOBQ_COMPLETED)

/* Longest job type, queue, worker or provider name we accept, in bytes. */
#define JOBQ_NAME_MAX		200

/* A W3C trace id: 32 lowercase hex digits, plus the terminator. */
#define JOBQ_TRACE_ID_LEN	32

/* ---- settings (jobq.c) ---- */
extern char *jobq_database;
extern int	jobq_workers;
extern int	jobq_poll_interval_min_ms;
extern int	jobq_poll_interval_max_ms;
extern int	jobq_notify_interval_ms;
extern int	jobq_stale_after_s;
extern int	jobq_default_max_attempts;
extern int	jobq_max_payload_bytes;
extern int	jobq_max_units;
extern int	jobq_max_checkpoint_bytes;
extern int	jobq_retry_delay_ms;
extern int	jobq_retry_delay_max_ms;
#define JOBQ_BATCH_SIZE_MAX 10000	/* the most jobq.batch_size allows */
extern int	jobq_batch_size;
extern int	jobq_batch_time_ms;
extern char *jobq_user_id_setting;
extern char *jobq_traceparent_setting;
extern char *jobq_auth_token_setting;

/* ---- notify.c ---- */
extern bool jobq_notify_progress;
extern void jobq_notify_job(Datum row);

/* ---- notifier.c ---- */
extern void jobq_queue_notify(const char *payload);
extern Size jobq_notifier_shmem_size(void);
extern void jobq_notifier_shmem_request(void);
extern void jobq_notifier_shmem_init(void);
extern void jobq_register_notifier(void);
extern pid_t jobq_notifier_pid(void);
extern void jobq_notifier_register_callbacks(void);

/* ---- metrics.c ---- */
extern void jobq_append_label(StringInfo buf, const char *value);

/* ---- provider.c ---- */
extern void jobq_provider_metrics(StringInfo buf);

/* ---- store.c ---- */
extern void jobq_store_define_settings(void);

/* ---- jobq.c: commit-time actions and shared state ---- */
extern void jobq_commit_durably(void);
extern void jobq_commit_async(void);

/* dropdb.c */
extern void jobq_dropdb_install(void);
extern void jobq_wait_while_parked(void);
extern void jobq_wake_at_commit(void);
extern void jobq_set_latch_of(int procno);
extern void jobq_wake_idle_worker(int except);
extern void jobq_cancel_at_commit(const char *holder, const pg_uuid_t *job_id);
extern bool jobq_shared_available(void);

/* ---- api.c: job transitions shared with the workers (need SPI) ---- */
extern uint64 jobq_count_lost_claims(Datum ids, Datum attempts);
extern uint64 jobq_claim_rows(const char *queue, const char *holder, int max_jobs,
							  Datum job_types);
extern bool jobq_complete_held(const pg_uuid_t *id, Datum result, bool result_null,
							   const char *holder);
extern uint64 jobq_complete_held_many(Datum *ids, Datum *results, bool *result_nulls, int n,
									  const char *holder);
extern bool jobq_record_failure(const pg_uuid_t *id, const char *holder, const char *trace_id,
								int attempts, int max_attempts, int checkpoints,
								const char *code, int http_status, const char *message,
								bool retry, bool *requeued);

/* ---- ids.c ---- */
extern void jobq_uuid_v7(pg_uuid_t *out);
extern void jobq_new_trace_id(char *out);
extern bool jobq_normalize_trace_id(const char *in, char *out);
extern bool jobq_trace_id_from_traceparent(const char *traceparent, char *out);
extern void jobq_uuid_to_cstring(const pg_uuid_t *uuid, char *out);
extern bool jobq_parse_uuid(const char *s, pg_uuid_t *out);

/* ---- tenant.c ---- */
extern bool jobq_current_tenant(pg_uuid_t *out);

/* ---- errors.c: the one shape of a job's `error` ---- */
extern int	jobq_status_for_code(const char *code);
extern Jsonb *jobq_error_json(const char *trace_id, int status, const char *code,
							  const char *message, int attempt, int checkpoints);

/* ---- util.c: argument checking shared by the SQL functions ---- */
extern char *jobq_arg_name(FunctionCallInfo fcinfo, int argno, const char *what,
						   const char *dflt);
extern void jobq_check_payload(Datum payload, const char *what);
extern const char *jobq_status_name(int status);

#endif							/* JOBQ_H */
