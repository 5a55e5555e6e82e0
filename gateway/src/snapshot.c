/*
 * snapshot.c
 *	  Reads the state of a newly connected client's active jobs (status 0 or
 *	  1), so a page opened mid-job shows the right percent at once.
 *
 * Tenancy: each read runs in its own read-only transaction that first sets
 * jobq.user_id to the token's sub with set_config(..., true) (SET LOCAL), so
 * jobq's row-level policy limits what the gateway's role can see to that
 * user's rows; the query also filters on user_id itself, so a gateway that
 * connects as a role exempt from row-level security (a superuser, the
 * table's owner) still sends a user nothing but their own jobs.
 *
 * Requests are served one at a time, in order, on one connection of this
 * thread's own (the LISTEN connection never runs queries).  When the
 * database is down a request waits and is retried after reconnecting.
 */
#include "snapshot.h"
#include "config.h"
#include "db.h"
#include "inbox.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct request
{
	struct request *next;
	uint64_t	client;
	gw_uuid		user;
	int			njobs;
	gw_uuid    *jobs;
} request;

static pthread_t thread;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static request *queue_head;
static request *queue_tail;

static const char *query =
"SELECT id::text, user_id::text, job_type, status, progress_percent, status_message,"
"       units_done, units_total"
"  FROM jobq.jobs"
" WHERE user_id = $1::uuid AND status IN (0, 1)"
"   AND ($2::uuid[] IS NULL OR id = ANY ($2::uuid[]))"
" ORDER BY id"
" LIMIT $3::int";

void
gw_snapshot_request(uint64_t client, const gw_uuid user, const gw_uuid *jobs, int njobs)
{
	request    *r = calloc(1, sizeof(request));

	if (!r)
		return;
	r->client = client;
	memcpy(r->user, user, sizeof(gw_uuid));
	if (njobs > 0)
	{
		r->jobs = malloc(sizeof(gw_uuid) * (size_t) njobs);
		if (!r->jobs)
		{
			free(r);
			return;
		}
		memcpy(r->jobs, jobs, sizeof(gw_uuid) * (size_t) njobs);
		r->njobs = njobs;
	}
	pthread_mutex_lock(&lock);
	if (queue_tail)
		queue_tail->next = r;
	else
		queue_head = r;
	queue_tail = r;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
}

static request *
peek_request(void)
{
	request    *r;

	pthread_mutex_lock(&lock);
	while (!queue_head && !gw_stopping)
		pthread_cond_wait(&cond, &lock);
	r = queue_head;
	pthread_mutex_unlock(&lock);
	return r;
}

static void
pop_request(request *r)
{
	pthread_mutex_lock(&lock);
	queue_head = r->next;
	if (!queue_head)
		queue_tail = NULL;
	pthread_mutex_unlock(&lock);
	free(r->jobs);
	free(r);
}

/* Run one command; false when it did not succeed. */
static bool
exec_ok(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	bool		ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	PQclear(res);
	return ok;
}

static json_t *
int_or_null(PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return json_null();
	return json_integer(atoll(PQgetvalue(res, row, col)));
}

static json_t *
text_or_null(PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return json_null();
	return json_string(PQgetvalue(res, row, col));
}

/* Build the inbox item from the query's rows. */
static gw_item *
build_item(const request *r, PGresult *res, uint64_t seq, const char *error)
{
	int			n = res ? PQntuples(res) : 0;
	gw_item    *item = calloc(1, sizeof(gw_item));
	json_t	   *msg = json_object();
	json_t	   *jobs = json_array();
	char	   *text;

	if (!item || !msg || !jobs)
		goto fail;
	item->kind = GW_ITEM_SNAPSHOT;
	item->seq = seq;
	item->client = r->client;
	memcpy(item->user_id, r->user, sizeof(gw_uuid));
	item->jobs = calloc((size_t) n + 1, sizeof(gw_uuid));
	if (!item->jobs)
		goto fail;
	for (int i = 0; i < n; i++)
	{
		json_t	   *job = json_object();

		if (!job)
			goto fail;
		snprintf(item->jobs[item->njobs++], sizeof(gw_uuid), "%s", PQgetvalue(res, i, 0));
		json_object_set_new(job, "job_id", json_string(PQgetvalue(res, i, 0)));
		json_object_set_new(job, "user_id", json_string(PQgetvalue(res, i, 1)));
		json_object_set_new(job, "job_type", text_or_null(res, i, 2));
		json_object_set_new(job, "status", int_or_null(res, i, 3));
		json_object_set_new(job, "percent", int_or_null(res, i, 4));
		json_object_set_new(job, "message", text_or_null(res, i, 5));
		json_object_set_new(job, "units_done", int_or_null(res, i, 6));
		json_object_set_new(job, "units_total", int_or_null(res, i, 7));
		json_array_append_new(jobs, job);
	}
	json_object_set_new(msg, "type", json_string("snapshot"));
	json_object_set_new(msg, "jobs", jobs);
	jobs = NULL;
	if (error)
		json_object_set_new(msg, "error", json_string(error));
	text = json_dumps(msg, JSON_COMPACT);
	if (!text)
		goto fail;
	item->msg = gw_msg_new(text, strlen(text));
	free(text);
	json_decref(msg);
	if (!item->msg)
	{
		gw_item_free(item);
		return NULL;
	}
	return item;

fail:
	json_decref(jobs);
	json_decref(msg);
	if (item)
		gw_item_free(item);
	return NULL;
}

/* The uuid[] literal of a request's job filter, or NULL for none. */
static char *
jobs_literal(const request *r)
{
	char	   *s;
	size_t		pos = 0;

	if (r->njobs == 0)
		return NULL;
	s = malloc((size_t) r->njobs * (GW_UUID_LEN + 1) + 3);
	if (!s)
		return NULL;
	s[pos++] = '{';
	for (int i = 0; i < r->njobs; i++)
	{
		if (i > 0)
			s[pos++] = ',';
		memcpy(s + pos, r->jobs[i], GW_UUID_LEN);
		pos += GW_UUID_LEN;
	}
	s[pos++] = '}';
	s[pos] = '\0';
	return s;
}

/*
 * Serve one request on conn.  Returns false when the connection failed (the
 * request stays queued); a query error is answered with an empty snapshot
 * carrying an error, so the client is not left waiting.
 */
static bool
serve(PGconn *conn, const request *r)
{
	uint64_t	seq;
	PGresult   *res;
	const char *params[3];
	char		limit[16];
	char	   *jobs = jobs_literal(r);
	gw_item    *item;
	const char *error = NULL;

	snprintf(limit, sizeof(limit), "%d", gw_conf.snapshot_limit);
	seq = gw_inbox_last_seq();
	if (!exec_ok(conn, "BEGIN READ ONLY"))
	{
		free(jobs);
		return false;
	}
	params[0] = r->user;
	res = PQexecParams(conn, "SELECT pg_catalog.set_config('jobq.user_id', $1, true)",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		PQclear(res);
		params[1] = jobs;
		params[2] = limit;
		res = PQexecParams(conn, query, 3, NULL, params, NULL, NULL, 0);
	}
	free(jobs);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		PQclear(res);
		return false;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		gw_log(GW_LOG_ERROR, "reading active jobs of user %s failed: %s", r->user,
			   PQresultErrorMessage(res));
		error = "the current state of your jobs is unavailable";
		PQclear(res);
		res = NULL;
	}
	exec_ok(conn, "ROLLBACK");
	item = build_item(r, res, seq, error);
	PQclear(res);
	if (item)
		gw_inbox_push(item);
	return true;
}

static void *
snapshot_main(void *arg)
{
	PGconn	   *conn = NULL;
	int			delay = 0;
	bool		logged = false;

	(void) arg;
	while (!gw_stopping)
	{
		request    *r = peek_request();

		if (!r)
			break;
		if (!conn)
		{
			conn = gw_db_connect("jobq-gateway snapshot", &logged);
			if (!conn)
			{
				delay = gw_backoff_next(delay);
				gw_sleep_ms(delay);
				continue;
			}
			delay = 0;
		}
		if (serve(conn, r))
			pop_request(r);
		else if (PQstatus(conn) != CONNECTION_OK)
		{
			PQfinish(conn);
			conn = NULL;
		}
		else
		{
			/* BEGIN failed on a live connection: odd; do not spin */
			gw_log(GW_LOG_WARN, "snapshot transaction failed: %s", PQerrorMessage(conn));
			PQfinish(conn);
			conn = NULL;
			gw_sleep_ms(100);
		}
	}
	PQfinish(conn);
	return NULL;
}

bool
gw_snapshot_start(void)
{
	return pthread_create(&thread, NULL, snapshot_main, NULL) == 0;
}

void
gw_snapshot_join(void)
{
	pthread_mutex_lock(&lock);
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
	while (queue_head)
		pop_request(queue_head);
}
