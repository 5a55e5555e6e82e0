/*-------------------------------------------------------------------------
 *
 * http.h
 *	  One HTTP request through libcurl, checked, interruptible.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOBQ_HTTP_H
#define JOBQ_HTTP_H

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

typedef struct JobqHttpRequest
{
	const char *method;			/* GET, PUT, HEAD, DELETE, POST */
	const char *url;
	List	   *headers;		/* of char *, "Name: value" */
	const char *body;
	size_t		body_len;
	const char *aws_sigv4;		/* "aws:amz:<region>:s3", or NULL */
	const char *userpwd;		/* "key:secret" for SigV4, or NULL */
	long		timeout_ms;
	size_t		max_response;	/* larger responses fail */
} JobqHttpRequest;

typedef struct JobqHttpResponse
{
	long		status;			/* HTTP status; 0 when none came */
	int64		content_length; /* from the headers; -1 when unknown */
	bool		timed_out;
	StringInfoData body;
	char	   *error;			/* what went wrong when status is 0 */
} JobqHttpResponse;

/*
 * Perform a request.  Never throws for network trouble (status 0 and
 * `error` say what happened); throws only for interrupts (query cancel,
 * shutdown), which are checked while the transfer runs.  Must not be called
 * with a transaction or row lock that others may wait on: callers do their
 * transfers between transactions.
 */
extern void jobq_http_perform(const JobqHttpRequest *req, JobqHttpResponse *resp);

/* Is this an answer worth retrying (no answer, 408, 429, 5xx)? */
extern bool jobq_http_retryable(const JobqHttpResponse *resp);

/* Sleep ms on the latch, checking interrupts: for retry backoff. */
extern void jobq_sleep_interruptible(long ms);

#endif							/* JOBQ_HTTP_H */
