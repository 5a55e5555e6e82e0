/*
 * inbox.h
 *	  What the database threads hand to the main loop (inbox.c).
 */
#ifndef GW_INBOX_H
#define GW_INBOX_H

#include "event.h"

typedef enum gw_item_kind
{
	GW_ITEM_EVENT,				/* a progress event: user_id, job_id, msg */
	GW_ITEM_SNAPSHOT,			/* a client's active jobs: client, seq, jobs, msg */
	GW_ITEM_DB_UP,				/* the LISTEN connection is (re)established */
	GW_ITEM_DB_DOWN				/* the LISTEN connection was lost */
} gw_item_kind;

typedef struct gw_item
{
	struct gw_item *next;
	gw_item_kind kind;
	uint64_t	seq;			/* EVENT: arrival number; SNAPSHOT: last event
								 * number received before the query began */
	gw_uuid		user_id;
	gw_uuid		job_id;
	uint64_t	client;			/* SNAPSHOT: the client's serial */
	int			njobs;			/* SNAPSHOT: jobs in it */
	gw_uuid    *jobs;
	gw_msg	   *msg;
} gw_item;

/* Append an item (events get the next sequence number) and wake the loop. */
void		gw_inbox_push(gw_item *item);

/* Take every item, oldest first (main thread). */
gw_item    *gw_inbox_take(void);

/* The sequence number of the last event pushed. */
uint64_t	gw_inbox_last_seq(void);

void		gw_item_free(gw_item *item);

#endif
