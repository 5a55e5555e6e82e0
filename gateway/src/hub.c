/*
 * hub.c
 *	  The clients: an index by user, bounded send queues, the fan-out.
 *
 * Entitlement: a client sees an event only when the event's user_id equals
 * the sub of the client's token, and, when the client named job ids, only
 * events of those jobs.  The index is keyed by user, so an event is only
 * ever looked at against its own user's clients.
 *
 * Fan-out never waits for a client: it appends a reference to the shared
 * message to each entitled client's queue and asks lws for a writeable
 * callback.  A client whose queue is full (it stopped reading, or reads
 * slower than events arrive) is closed at once, not waited for.
 *
 * Joining mid-stream: a new client's events are held back until its
 * snapshot (the current state of its active jobs) arrives, then the snapshot
 * goes first and the held events follow, minus those the snapshot already
 * covers (see inbox.c: an event numbered at or below the snapshot's number
 * committed before the snapshot was read).  After the database connection
 * comes back the same is done for every client, to cover what was missed.
 */
#include "hub.h"
#include "config.h"
#include "snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define USER_BUCKETS 4096
#define WRITES_PER_CALLBACK 64

typedef struct held
{
	gw_msg	   *msg;
	uint64_t	seq;
	gw_uuid		job_id;			/* empty for messages that are not job events */
} held;

typedef struct gw_user
{
	struct gw_user *next;
	gw_uuid		id;
	int			count;
	gw_client  *clients;
} gw_user;

struct gw_client
{
	struct lws *wsi;
	uint64_t	serial;
	gw_user    *user;
	gw_client  *prev;			/* in user->clients */
	gw_client  *next;
	gw_client  *all_prev;		/* in all_clients */
	gw_client  *all_next;
	int			njobs;
	gw_uuid    *jobs;

	gw_msg	  **queue;			/* ring of gw_conf.send_queue entries */
	int			qhead;
	int			qlen;

	bool		holding;		/* waiting for a snapshot: hold events */
	bool		snapshot_asked; /* a request is with the snapshot thread */
	held	   *held;
	int			nheld;

	double		token_exp;		/* Unix time after which the client is closed */
	bool		expiring;		/* close with 1008 when writeable */
	bool		closing;		/* no more queueing; close when writeable */
	bool		ping_due;
	int64_t		ping_sent_us;	/* 0: no ping awaiting its pong */
	int64_t		last_ping_us;
};

gw_hub_stats gw_stats;

static gw_user *buckets[USER_BUCKETS];
static gw_client *all_clients;
static uint64_t next_serial = 1;
static bool ever_up;

static unsigned
user_hash(const char *id)
{
	unsigned	h = 2166136261u;

	for (const char *p = id; *p; p++)
		h = (h ^ (unsigned char) *p) * 16777619u;
	return h % USER_BUCKETS;
}

static gw_user *
find_user(const char *id)
{
	for (gw_user *u = buckets[user_hash(id)]; u; u = u->next)
		if (strcmp(u->id, id) == 0)
			return u;
	return NULL;
}

int
gw_hub_user_connections(const gw_uuid user)
{
	gw_user    *u = find_user(user);

	return u ? u->count : 0;
}

static bool
wants_job(const gw_client *c, const char *job_id)
{
	if (c->njobs == 0)
		return true;
	for (int i = 0; i < c->njobs; i++)
		if (strcmp(c->jobs[i], job_id) == 0)
			return true;
	return false;
}

static void
free_queues(gw_client *c)
{
	while (c->qlen > 0)
	{
		gw_msg_unref(c->queue[c->qhead]);
		c->qhead = (c->qhead + 1) % gw_conf.send_queue;
		c->qlen--;
	}
	for (int i = 0; i < c->nheld; i++)
		gw_msg_unref(c->held[i].msg);
	c->nheld = 0;
	c->holding = false;
}

/* Close a client without writing to it (it is not reading). */
static void
drop(gw_client *c, const char *why)
{
	if (c->closing)
		return;
	gw_log(GW_LOG_WARN, "closing client %llu of user %s: %s",
		   (unsigned long long) c->serial, c->user->id, why);
	c->closing = true;
	free_queues(c);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void
enqueue(gw_client *c, gw_msg *m)
{
	if (c->closing)
		return;
	if (c->qlen >= gw_conf.send_queue)
	{
		gw_stats.dropped_slow++;
		drop(c, "send queue full (slow consumer)");
		return;
	}
	c->queue[(c->qhead + c->qlen) % gw_conf.send_queue] = gw_msg_ref(m);
	if (c->qlen++ == 0)
		lws_callback_on_writable(c->wsi);
}

static void
hold(gw_client *c, gw_msg *m, uint64_t seq, const char *job_id)
{
	if (c->closing)
		return;
	if (c->nheld >= gw_conf.send_queue)
	{
		gw_stats.dropped_slow++;
		drop(c, "too many events while waiting for the snapshot");
		return;
	}
	c->held[c->nheld].msg = gw_msg_ref(m);
	c->held[c->nheld].seq = seq;
	snprintf(c->held[c->nheld].job_id, sizeof(gw_uuid), "%s", job_id ? job_id : "");
	c->nheld++;
}

/* Hold events for c until a fresh snapshot arrives, asking for one. */
static void
resync(gw_client *c)
{
	c->holding = true;
	if (!c->snapshot_asked)
	{
		c->snapshot_asked = true;
		gw_snapshot_request(c->serial, c->user->id, c->jobs, c->njobs);
	}
}

gw_client *
gw_hub_add(struct lws *wsi, const gw_uuid user, double token_exp,
		   const gw_uuid *jobs, int njobs)
{
	gw_user    *u;
	gw_client  *c;

	if (gw_stats.clients >= gw_conf.max_clients ||
		gw_hub_user_connections(user) >= gw_conf.max_connections_per_user)
		return NULL;
	c = calloc(1, sizeof(gw_client));
	if (!c)
		return NULL;
	c->queue = calloc((size_t) gw_conf.send_queue, sizeof(gw_msg *));
	c->held = calloc((size_t) gw_conf.send_queue, sizeof(held));
	if (njobs > 0)
		c->jobs = malloc(sizeof(gw_uuid) * (size_t) njobs);
	if (!c->queue || !c->held || (njobs > 0 && !c->jobs))
	{
		free(c->queue);
		free(c->held);
		free(c->jobs);
		free(c);
		return NULL;
	}
	if (njobs > 0)
		memcpy(c->jobs, jobs, sizeof(gw_uuid) * (size_t) njobs);
	c->njobs = njobs;
	c->token_exp = token_exp;

	u = find_user(user);
	if (!u)
	{
		unsigned	h = user_hash(user);

		u = calloc(1, sizeof(gw_user));
		if (!u)
		{
			free(c->queue);
			free(c->held);
			free(c->jobs);
			free(c);
			return NULL;
		}
		memcpy(u->id, user, sizeof(gw_uuid));
		u->next = buckets[h];
		buckets[h] = u;
		gw_stats.users++;
	}
	c->wsi = wsi;
	c->serial = next_serial++;
	c->user = u;
	c->next = u->clients;
	if (u->clients)
		u->clients->prev = c;
	u->clients = c;
	u->count++;
	c->all_next = all_clients;
	if (all_clients)
		all_clients->all_prev = c;
	all_clients = c;
	gw_stats.clients++;
	c->last_ping_us = gw_now_us();
	resync(c);
	return c;
}

void
gw_hub_remove(gw_client *c)
{
	gw_user    *u = c->user;

	free_queues(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		u->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		all_clients = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	gw_stats.clients--;
	if (--u->count == 0)
	{
		gw_user   **pp = &buckets[user_hash(u->id)];

		while (*pp != u)
			pp = &(*pp)->next;
		*pp = u->next;
		free(u);
		gw_stats.users--;
	}
	free(c->queue);
	free(c->held);
	free(c->jobs);
	free(c);
}

int
gw_hub_writeable(gw_client *c)
{
	int			written = 0;

	if (c->closing)
	{
		if (c->expiring)
			lws_close_reason(c->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
							 (unsigned char *) "token expired", 13);
		else
			lws_close_reason(c->wsi, LWS_CLOSE_STATUS_GOINGAWAY,
							 (unsigned char *) "gateway shutting down", 21);
		return -1;
	}
	if (c->ping_due)
	{
		/* with a payload: lws 4.1 does not report an empty pong */
		unsigned char buf[LWS_PRE + 4] = {[LWS_PRE] = 'j', 'o', 'b', 'q'};

		c->ping_due = false;
		if (lws_write(c->wsi, buf + LWS_PRE, 4, LWS_WRITE_PING) < 4)
			return -1;
		written++;
	}
	while (c->qlen > 0 && written < WRITES_PER_CALLBACK)
	{
		gw_msg	   *m = c->queue[c->qhead];
		int			len = (int) m->len;
		int			n;

		if (written > 0 && lws_send_pipe_choked(c->wsi))
			break;
		c->qhead = (c->qhead + 1) % gw_conf.send_queue;
		c->qlen--;
		n = lws_write(c->wsi, gw_msg_payload(m), (size_t) len, LWS_WRITE_TEXT);
		gw_msg_unref(m);
		if (n < len)
			return -1;
		gw_stats.delivered++;
		written++;
	}
	if (c->qlen > 0)
		lws_callback_on_writable(c->wsi);
	return 0;
}

void
gw_hub_pong(gw_client *c)
{
	c->ping_sent_us = 0;
}

static gw_client *
find_client(const char *user, uint64_t serial)
{
	gw_user    *u = find_user(user);

	for (gw_client *c = u ? u->clients : NULL; c; c = c->next)
		if (c->serial == serial)
			return c;
	return NULL;
}

static bool
in_snapshot(const gw_item *snap, const char *job_id)
{
	for (int i = 0; i < snap->njobs; i++)
		if (strcmp(snap->jobs[i], job_id) == 0)
			return true;
	return false;
}

/* The snapshot goes first, then the held events it does not already cover. */
static void
deliver_snapshot(gw_item *snap)
{
	gw_client  *c = find_client(snap->user_id, snap->client);

	if (!c || c->closing)
		return;
	c->snapshot_asked = false;
	c->holding = false;
	enqueue(c, snap->msg);
	for (int i = 0; i < c->nheld; i++)
	{
		held	   *h = &c->held[i];

		if (!(h->job_id[0] && h->seq <= snap->seq && in_snapshot(snap, h->job_id)))
			enqueue(c, h->msg);
		gw_msg_unref(h->msg);
	}
	c->nheld = 0;
}

static void
deliver_event(gw_item *ev)
{
	gw_user    *u = find_user(ev->user_id);

	gw_stats.events++;
	for (gw_client *c = u ? u->clients : NULL, *next; c; c = next)
	{
		next = c->next;
		if (!wants_job(c, ev->job_id))
			continue;
		if (c->holding)
			hold(c, ev->msg, ev->seq, ev->job_id);
		else
			enqueue(c, ev->msg);
	}
}

static void
broadcast(gw_msg *m)
{
	for (gw_client *c = all_clients; c; c = c->all_next)
	{
		if (c->holding)
			hold(c, m, 0, NULL);
		else
			enqueue(c, m);
	}
}

void
gw_hub_dispatch(void)
{
	gw_item    *item = gw_inbox_take();

	while (item)
	{
		gw_item    *next = item->next;
		gw_msg	   *m;

		switch (item->kind)
		{
			case GW_ITEM_EVENT:
				deliver_event(item);
				break;
			case GW_ITEM_SNAPSHOT:
				deliver_snapshot(item);
				break;
			case GW_ITEM_DB_UP:
				gw_stats.database_up = true;
				if ((m = gw_msg_database(true)) != NULL)
				{
					broadcast(m);
					gw_msg_unref(m);
				}
				/* events may have been missed while the database was away */
				if (ever_up)
					for (gw_client *c = all_clients; c; c = c->all_next)
						if (!c->closing)
							resync(c);
				ever_up = true;
				break;
			case GW_ITEM_DB_DOWN:
				gw_stats.database_up = false;
				if ((m = gw_msg_database(false)) != NULL)
				{
					broadcast(m);
					gw_msg_unref(m);
				}
				break;
		}
		gw_item_free(item);
		item = next;
	}
}

void
gw_hub_tick(void)
{
	int64_t		now = gw_now_us();
	int64_t		interval = (int64_t) gw_conf.ping_interval * 1000000;
	int64_t		timeout = (int64_t) gw_conf.ping_timeout * 1000000;
	double		wall = (double) time(NULL);

	for (gw_client *c = all_clients; c; c = c->all_next)
	{
		if (c->closing)
			continue;
		if (wall > c->token_exp + gw_conf.jwt_leeway)
		{
			/* a token is checked at the handshake; its expiry still ends the stream */
			gw_stats.expired++;
			gw_log(GW_LOG_INFO, "closing client %llu of user %s: token expired",
				   (unsigned long long) c->serial, c->user->id);
			c->closing = true;
			c->expiring = true;
			free_queues(c);
			lws_callback_on_writable(c->wsi);
			/* and if the close frame cannot be written, lws ends it in 5 s */
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
		}
		else if (c->ping_sent_us && now - c->ping_sent_us > timeout)
		{
			gw_stats.dropped_ping++;
			drop(c, "no pong within the ping timeout");
		}
		else if (now - c->last_ping_us >= interval)
		{
			c->last_ping_us = now;
			if (!c->ping_sent_us)
				c->ping_sent_us = now;
			c->ping_due = true;
			lws_callback_on_writable(c->wsi);
		}
	}
}

void
gw_hub_close_all(void)
{
	for (gw_client *c = all_clients; c; c = c->all_next)
	{
		if (c->closing)
			continue;
		c->closing = true;
		free_queues(c);
		lws_callback_on_writable(c->wsi);
	}
}
