/*-------------------------------------------------------------------------
 *
 * http.c
 *	  libcurl for the checkpoint stores and providers.
 *
 * One easy handle per process, reset before each request and reused, so
 * connections to the same store stay open.  Every setopt is checked.  Only
 * http and https are allowed, redirects are not followed, and every request
 * has a timeout.  The progress callback aborts the transfer as soon as an
 * interrupt is pending; CHECK_FOR_INTERRUPTS then raises it outside curl
 * (never longjmp out of a curl callback).  Response bodies are capped.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "http.h"

static CURL *curl_handle = NULL;

#define CURL_CHECK(call) \
	do { \
		CURLcode	cc_ = (call); \
		if (cc_ != CURLE_OK) \
			elog(ERROR, "jobq: %s failed: %s", #call, curl_easy_strerror(cc_)); \
	} while (0)

typedef struct WriteState
{
	StringInfo	buf;
	size_t		max;
	bool		too_big;
	bool		out_of_memory;
} WriteState;

/*
 * Never throws (an error must not longjmp out of libcurl): the buffer grows
 * with MCXT_ALLOC_NO_OOM, and running out of memory fails the transfer.
 */
static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	WriteState *ws = userdata;
	StringInfo	buf = ws->buf;
	size_t		n = size * nmemb;
	size_t		need = (size_t) buf->len + n + 1;

	if (buf->len + n > ws->max)
	{
		ws->too_big = true;
		return 0;				/* makes curl fail with CURLE_WRITE_ERROR */
	}
	if (need > (size_t) buf->maxlen)
	{
		size_t		newlen = Max(need, (size_t) buf->maxlen * 2);
		char	   *data = MemoryContextAllocExtended(GetMemoryChunkContext(buf->data), newlen,
													  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);

		if (data == NULL)
		{
			ws->out_of_memory = true;
			return 0;
		}
		memcpy(data, buf->data, buf->len + 1);
		pfree(buf->data);
		buf->data = data;
		buf->maxlen = (int) Min(newlen, (size_t) INT_MAX);
	}
	memcpy(buf->data + buf->len, ptr, n);
	buf->len += (int) n;
	buf->data[buf->len] = '\0';
	return n;
}

typedef struct ReadState
{
	const char *data;
	size_t		len;
	size_t		pos;
} ReadState;

static size_t
read_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	ReadState  *rs = userdata;
	size_t		n = Min(size * nitems, rs->len - rs->pos);

	memcpy(buffer, rs->data + rs->pos, n);
	rs->pos += n;
	return n;
}

static int
progress_cb(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
			curl_off_t ultotal, curl_off_t ulnow)
{
	return InterruptPending ? 1 : 0;
}

static CURL *
handle(void)
{
	if (curl_handle == NULL)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			elog(ERROR, "jobq: could not initialize libcurl");
		curl_handle = curl_easy_init();
		if (curl_handle == NULL)
			elog(ERROR, "jobq: could not create a libcurl handle");
	}
	curl_easy_reset(curl_handle);
	return curl_handle;
}

void
jobq_http_perform(const JobqHttpRequest *req, JobqHttpResponse *resp)
{
	CURL	   *c = handle();
	struct curl_slist *headers = NULL;
	char		errbuf[CURL_ERROR_SIZE] = "";
	WriteState ws;
	ReadState	rs = {req->body, req->body_len, 0};
	ListCell   *lc;
	volatile CURLcode rc = CURLE_OK;

	initStringInfo(&resp->body);
	resp->status = 0;
	resp->content_length = -1;
	resp->timed_out = false;
	resp->error = NULL;
	ws.buf = &resp->body;
	ws.max = req->max_response ? req->max_response : MaxAllocSize - 1;
	ws.too_big = false;
	ws.out_of_memory = false;

	foreach(lc, req->headers)
	{
		struct curl_slist *h = curl_slist_append(headers, (char *) lfirst(lc));

		if (h == NULL)
		{
			curl_slist_free_all(headers);
			elog(ERROR, "jobq: out of memory building HTTP headers");
		}
		headers = h;
	}

	PG_TRY();
	{
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_URL, req->url));
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https"));
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"));
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L));
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L));
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf));
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms));
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, Min(req->timeout_ms, 10000L)));
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb));
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_WRITEDATA, &ws));
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L));
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb));
		CURL_CHECK(curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers));
		if (strcmp(req->method, "HEAD") == 0)
			CURL_CHECK(curl_easy_setopt(c, CURLOPT_NOBODY, 1L));
		else if (strcmp(req->method, "PUT") == 0)
		{
			CURL_CHECK(curl_easy_setopt(c, CURLOPT_UPLOAD, 1L));
			CURL_CHECK(curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb));
			CURL_CHECK(curl_easy_setopt(c, CURLOPT_READDATA, &rs));
			CURL_CHECK(curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t) req->body_len));
		}
		else if (strcmp(req->method, "POST") == 0)
		{
			CURL_CHECK(curl_easy_setopt(c, CURLOPT_POST, 1L));
			CURL_CHECK(curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body));
			CURL_CHECK(curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len));
		}
		else if (strcmp(req->method, "GET") != 0)
			CURL_CHECK(curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method));
		if (req->aws_sigv4)
		{
			CURL_CHECK(curl_easy_setopt(c, CURLOPT_AWS_SIGV4, req->aws_sigv4));
			CURL_CHECK(curl_easy_setopt(c, CURLOPT_USERPWD, req->userpwd));
		}

		pgstat_report_wait_start(PG_WAIT_EXTENSION);
		rc = curl_easy_perform(c);
		pgstat_report_wait_end();
	}
	PG_FINALLY();
	{
		curl_slist_free_all(headers);
	}
	PG_END_TRY();

	if (rc == CURLE_ABORTED_BY_CALLBACK)
	{
		/* an interrupt is pending: raise it here, outside libcurl */
		CHECK_FOR_INTERRUPTS();
		resp->error = pstrdup("transfer interrupted");
		return;
	}
	if (rc != CURLE_OK)
	{
		resp->timed_out = (rc == CURLE_OPERATION_TIMEDOUT);
		if (ws.too_big)
			resp->error = psprintf("response larger than %zu bytes", ws.max);
		else if (ws.out_of_memory)
			resp->error = pstrdup("out of memory for the response");
		else
			resp->error = psprintf("%s%s%s", curl_easy_strerror(rc),
								   errbuf[0] ? ": " : "", errbuf);
		return;
	}
	CURL_CHECK(curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status));
	{
		curl_off_t	cl = -1;

		CURL_CHECK(curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl));
		resp->content_length = (int64) cl;
	}
}

bool
jobq_http_retryable(const JobqHttpResponse *resp)
{
	return resp->status == 0 || resp->status == 408 || resp->status == 429 ||
		resp->status >= 500;
}

void
jobq_sleep_interruptible(long ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left;

		CHECK_FOR_INTERRUPTS();
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end);
		if (left <= 0)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
