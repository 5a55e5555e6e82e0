/*-------------------------------------------------------------------------
 *
 * store.h
 *	  Checkpoint blob stores behind one small interface (SPEC section 6).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_STORE_H
#define JOBQ_STORE_H

#include "lib/stringinfo.h"
#include "utils/uuid.h"

typedef struct JobqStore JobqStore;

/*
 * Every store failure is raised with this SQLSTATE (io_error), after the
 * store's bounded retries, so callers can tell a store that is down from
 * any other error.
 */
#define JOBQ_ERRCODE_STORE ERRCODE_IO_ERROR

/* The store jobq.checkpoint_url names; 22023 when the URL is bad. */
extern JobqStore *jobq_store_open(void);

/* The store and key of a recorded checkpoint URI, whatever the setting says now. */
extern JobqStore *jobq_store_for_uri(const char *uri, const char **key);

/* "{user_id}/jobs/{job_id}/units/unit_{n}.output": uuids and an integer only */
extern char *jobq_store_key(const pg_uuid_t *user_id, const pg_uuid_t *job_id, int unit);
extern char *jobq_store_uri(JobqStore *store, const char *key);

extern void jobq_store_put(JobqStore *store, const char *key, const char *data, size_t len);
extern bool jobq_store_get(JobqStore *store, const char *key, StringInfo out);
extern int64 jobq_store_size(JobqStore *store, const char *key);	/* -1: absent */
extern void jobq_store_delete(JobqStore *store, const char *key);

/* sha256 of data as 64 lowercase hex digits into out[65] */
extern void jobq_sha256_hex(const char *data, size_t len, char *out);

#endif							/* JOBQ_STORE_H */
