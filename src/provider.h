/*-------------------------------------------------------------------------
 *
 * provider.h
 *	  Providers (HTTP processing behind one interface) and their circuit
 *	  breakers, shared by all workers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_PROVIDER_H
#define JOBQ_PROVIDER_H

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

#define JOBQ_MAX_ENDPOINTS	64	/* providers and pre-warm hooks with a breaker */

/* A provider as read from jobq.providers, copied out of the transaction. */
typedef struct JobqProvider
{
	char	   *name;
	bool		mock;
	char	   *url;
	List	   *headers;		/* of "Name: value" */
	int64		timeout_ms;
	int			failure_threshold;
	int64		open_for_ms;
	/* mock options */
	double		failure_rate;
	int64		latency_ms;
	int			fail_status;
	char	   *output;			/* JSON text, or NULL: echo the request */
} JobqProvider;

/* What one call of the chain produced. */
typedef struct JobqCallResult
{
	bool		ok;
	StringInfoData body;		/* the result (JSON) or unit output (bytes) */
	long		status;			/* last HTTP status seen, 0 if none */
	const char *code;			/* error code when !ok */
	char	   *message;		/* error message when !ok */
	bool		retry;			/* false for a 4xx: the request itself is wrong */
} JobqCallResult;

extern Size jobq_provider_shmem_size(void);
extern void jobq_provider_shmem_init(void);

/* Load the named providers (in this order) from jobq.providers; needs SPI. */
extern List *jobq_load_providers(List *names, List **missing);

/*
 * Call the chain for one job (unit_id 0 for a whole job), falling through
 * open breakers and failing providers.  No transaction may be open: this
 * does network I/O.
 */
extern void jobq_call_chain(List *providers, const char *request_body, const char *trace_id,
							const char *auth_token, JobqCallResult *result);

/* Request body: {"job_id","job_type","user_id","payload","unit_id","attempt"} */
extern char *jobq_provider_request(const pg_uuid_t *job_id, const char *job_type,
								   const pg_uuid_t *user_id, Jsonb *payload, int unit_id,
								   int attempt);

/* Breakers by name: may a call go out now?  Record how it went. */
extern bool jobq_breaker_allow(const char *name, int64 open_for_ms, int64 timeout_ms,
							   bool *trial);
extern void jobq_breaker_record(const char *name, bool success, int failure_threshold);
extern void jobq_breaker_release(const char *name);

/*
 * The pre-warm hooks: in the poll transaction, note those whose queue just
 * became non-empty; after it, fire them.
 */
extern void jobq_prewarm_check(void);
extern void jobq_prewarm_fire(void);

#endif							/* JOBQ_PROVIDER_H */
