/*
 * inbox.c
 *	  The one hand-over point between the database threads and the main loop.
 *
 * Events are numbered as they are pushed, in the order the listener received
 * them.  A snapshot records the last number pushed before its query started:
 * an event with a number at or below it committed before the snapshot was
 * taken, so the snapshot already shows its effect (see hub.c).
 */
#include "inbox.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static gw_item *head;
static gw_item *tail;
static uint64_t last_seq;

void
gw_inbox_push(gw_item *item)
{
	bool		was_empty;

	item->next = NULL;
	pthread_mutex_lock(&lock);
	if (item->kind == GW_ITEM_EVENT)
		item->seq = ++last_seq;
	was_empty = (head == NULL);
	if (tail)
		tail->next = item;
	else
		head = item;
	tail = item;
	pthread_mutex_unlock(&lock);
	/* a non-empty inbox has a wake-up pending: the loop takes all at once */
	if (was_empty)
		gw_wake();
}

gw_item *
gw_inbox_take(void)
{
	gw_item    *items;

	pthread_mutex_lock(&lock);
	items = head;
	head = tail = NULL;
	pthread_mutex_unlock(&lock);
	return items;
}

uint64_t
gw_inbox_last_seq(void)
{
	uint64_t	seq;

	pthread_mutex_lock(&lock);
	seq = last_seq;
	pthread_mutex_unlock(&lock);
	return seq;
}

void
gw_item_free(gw_item *item)
{
	gw_msg_unref(item->msg);
	free(item->jobs);
	free(item);
}
