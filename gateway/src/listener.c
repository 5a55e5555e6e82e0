/*
 * listener.c
 *	  One connection that LISTENs on jobq_progress and turns each
 *	  notification into an inbox event.
 *
 * When the connection is lost (server restart, failover, network) the
 * thread tells the main loop (GW_ITEM_DB_DOWN), reconnects with backoff,
 * LISTENs again and says GW_ITEM_DB_UP; the main loop then sends every
 * client a fresh snapshot, which covers whatever was missed meanwhile.
 */
#include "listener.h"
#include "db.h"
#include "inbox.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CHANNEL "jobq_progress"

static pthread_t thread;

static void
push_state(gw_item_kind kind)
{
	gw_item    *item = calloc(1, sizeof(gw_item));

	if (!item)
		return;
	item->kind = kind;
	gw_inbox_push(item);
}

/* Read what arrived; false when the connection is gone. */
static bool
drain(PGconn *conn)
{
	PGnotify   *n;
	PGresult   *res;

	if (!PQconsumeInput(conn))
		return false;
	/* LISTEN's connection runs no queries, but a stray result must not wedge it */
	while (!PQisBusy(conn) && (res = PQgetResult(conn)) != NULL)
		PQclear(res);
	while ((n = PQnotifies(conn)) != NULL)
	{
		gw_event	ev;

		if (strcmp(n->relname, CHANNEL) == 0 && gw_event_parse(n->extra, &ev))
		{
			gw_item    *item = calloc(1, sizeof(gw_item));

			if (item)
			{
				item->kind = GW_ITEM_EVENT;
				memcpy(item->user_id, ev.user_id, sizeof(gw_uuid));
				memcpy(item->job_id, ev.job_id, sizeof(gw_uuid));
				item->msg = ev.msg;
				gw_inbox_push(item);
			}
			else
				gw_msg_unref(ev.msg);
		}
		else
			gw_log(GW_LOG_WARN, "ignored a %s notification that is not a job progress payload (%zu bytes)",
				   n->relname, strlen(n->extra));
		PQfreemem(n);
	}
	return PQstatus(conn) == CONNECTION_OK;
}

static void *
listener_main(void *arg)
{
	int			delay = 0;
	bool		logged = false;

	(void) arg;
	while (!gw_stopping)
	{
		PGconn	   *conn = gw_db_connect("jobq-gateway listener", &logged);
		PGresult   *res;

		if (!conn)
		{
			delay = gw_backoff_next(delay);
			gw_sleep_ms(delay);
			continue;
		}
		res = PQexec(conn, "LISTEN " CHANNEL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			gw_log(GW_LOG_WARN, "LISTEN " CHANNEL " failed: %s", PQerrorMessage(conn));
			PQclear(res);
			PQfinish(conn);
			delay = gw_backoff_next(delay);
			gw_sleep_ms(delay);
			continue;
		}
		PQclear(res);
		delay = 0;
		gw_log(GW_LOG_INFO, "listening on " CHANNEL);
		push_state(GW_ITEM_DB_UP);

		while (!gw_stopping)
		{
			struct pollfd pfd = {.fd = PQsocket(conn),.events = POLLIN};
			int			rc = poll(&pfd, 1, 500);

			if (rc < 0 && errno != EINTR)
				break;
			if (rc > 0 && !drain(conn))
				break;
		}
		PQfinish(conn);
		if (!gw_stopping)
		{
			gw_log(GW_LOG_WARN, "lost the database connection; reconnecting");
			push_state(GW_ITEM_DB_DOWN);
		}
	}
	return NULL;
}

bool
gw_listener_start(void)
{
	return pthread_create(&thread, NULL, listener_main, NULL) == 0;
}

void
gw_listener_join(void)
{
	pthread_join(thread, NULL);
}
