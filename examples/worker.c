/*
 * examples/worker.c — an external jobq worker in C with libpq.
 *
 * The loop every external worker runs, in any language:
 *
 *	 claim a batch   SELECT id, payload FROM jobq.claim(queue, worker, 10, job_types)
 *	 for each job    do the work (heartbeat if it takes long); on failure
 *					 SELECT jobq.fail(id, message, worker => me)
 *	 complete        SELECT jobq.complete_many(ids, results, worker => me)
 *	 idle            back off exponentially, like the in-server workers
 *
 * Each statement runs in its own transaction (autocommit), so nothing is
 * held while the work is done.  Passing `worker` makes jobq refuse (55000)
 * a completion for a job that was rescued and claimed by someone else.
 *
 * This worker "processes" a job by summing the numbers in payload->'numbers'.
 *
 *	 usage: worker CONNINFO [QUEUE] [JOB_TYPE] [--exit-when-idle]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

static PGconn *conn;

static void
die(const char *what)
{
	fprintf(stderr, "worker: %s: %s", what, PQerrorMessage(conn));
	PQfinish(conn);
	exit(1);
}

/* Run one statement with text parameters; the caller PQclear()s the result. */
static PGresult *
run(const char *sql, int n, const char *const *params)
{
	PGresult   *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "worker: %s failed: %s", sql, PQresultErrorMessage(res));
		PQclear(res);
		return NULL;
	}
	return res;
}

/* The work: sum payload->'numbers'.  Returns a JSON result, or NULL with *err set. */
static char *
process(PGresult *batch, int row, char **err)
{
	const char *sql = "SELECT jsonb_build_object('sum', sum(x::numeric))::text"
		" FROM jsonb_array_elements_text($1::jsonb -> 'numbers') AS x";
	const char *params[1] = {PQgetvalue(batch, row, 1)};
	PGresult   *res;
	char	   *out;

	if (strstr(params[0], "\"numbers\"") == NULL)
	{
		*err = "payload has no \"numbers\"";
		return NULL;
	}
	res = run(sql, 1, params);
	if (res == NULL)
	{
		*err = "could not add the numbers";
		return NULL;
	}
	out = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return out;
}

int
main(int argc, char **argv)
{
	const char *queue = argc > 2 ? argv[2] : "default";
	const char *job_type = argc > 3 ? argv[3] : NULL;
	int			exit_when_idle = argc > 4 && strcmp(argv[4], "--exit-when-idle") == 0;
	char		me[64];
	int			delay_ms = 10;
	int			idle_polls = 0;
	long		done = 0;

	if (argc < 2)
	{
		fprintf(stderr, "usage: %s CONNINFO [QUEUE] [JOB_TYPE] [--exit-when-idle]\n", argv[0]);
		return 2;
	}
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
		die("connect");
	snprintf(me, sizeof(me), "example-%d", (int) getpid());

	for (;;)
	{
		char		types[256];
		const char *claim_params[3] = {queue, me, NULL};
		PGresult   *batch;
		int			n;
		char		ids[16384] = "{";
		char		results[65536] = "{";

		if (job_type)
		{
			snprintf(types, sizeof(types), "{\"%s\"}", job_type);
			claim_params[2] = types;
		}
		batch = run("SELECT id, payload FROM jobq.claim($1, $2, 10, $3::text[])", 3, claim_params);
		if (batch == NULL)
			die("claim");
		n = PQntuples(batch);
		if (n == 0)
		{
			PQclear(batch);
			if (exit_when_idle && ++idle_polls >= 5)
				break;
			usleep(delay_ms * 1000);
			delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;	/* back off when idle */
			continue;
		}
		idle_polls = 0;
		delay_ms = 10;

		for (int i = 0; i < n; i++)
		{
			char	   *err = NULL;
			char	   *result = process(batch, i, &err);
			const char *id = PQgetvalue(batch, i, 0);

			if (result == NULL)
			{
				const char *params[3] = {id, err, me};
				PGresult   *res = run("SELECT jobq.fail($1, $2, 'ValidationError', false, worker => $3)",
									  3, params);

				PQclear(res);
				continue;
			}
			/* one array of ids and one of results, as text literals */
			snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids), "%s%s",
					 strlen(ids) > 1 ? "," : "", id);
			strncat(results, strlen(results) > 1 ? ",\"" : "\"", sizeof(results) - strlen(results) - 1);
			for (const char *p = result; *p && strlen(results) < sizeof(results) - 4; p++)
			{
				if (*p == '"' || *p == '\\')
					strncat(results, "\\", sizeof(results) - strlen(results) - 1);
				strncat(results, (char[2]) {*p, 0}, sizeof(results) - strlen(results) - 1);
			}
			strncat(results, "\"", sizeof(results) - strlen(results) - 1);
			free(result);
		}
		PQclear(batch);
		strcat(ids, "}");
		strcat(results, "}");
		if (strlen(ids) > 2)
		{
			const char *params[3] = {ids, results, me};
			PGresult   *res = run("SELECT jobq.complete_many($1::uuid[], $2::jsonb[], worker => $3)",
								  3, params);

			if (res == NULL)
				die("complete_many");
			done += atol(PQgetvalue(res, 0, 0));
			PQclear(res);
		}
	}
	printf("worker %s completed %ld jobs\n", me, done);
	PQfinish(conn);
	return 0;
}
