/*
 * event.h
 *	  Messages to clients: shared, reference-counted, framed for lws_write.
 */
#ifndef GW_EVENT_H
#define GW_EVENT_H

#include "gateway.h"

#include <libwebsockets.h>

/*
 * One message as clients receive it.  A progress event goes to every entitled
 * client from this one buffer: lws writes its frame header into the LWS_PRE
 * bytes in front of the payload, which is safe because all writes happen on
 * the main thread, one at a time.  refs is touched only by the main thread
 * once the message has been handed over through the inbox.
 */
typedef struct gw_msg
{
	int			refs;
	size_t		len;
	unsigned char buf[];		/* LWS_PRE bytes, then len bytes of JSON, NUL */
} gw_msg;

static inline unsigned char *
gw_msg_payload(gw_msg *m)
{
	return m->buf + LWS_PRE;
}

gw_msg	   *gw_msg_new(const char *text, size_t len);
gw_msg	   *gw_msg_ref(gw_msg *m);
void		gw_msg_unref(gw_msg *m);

/* A parsed NOTIFY payload: who may see it, and the message to send. */
typedef struct gw_event
{
	gw_uuid		job_id;
	gw_uuid		user_id;
	gw_msg	   *msg;
} gw_event;

/*
 * Validate a jobq_progress payload (SPEC section 11) and build the client
 * message from the validated fields only; false when it is not one.
 */
bool		gw_event_parse(const char *payload, gw_event *out);

/* {"type":"gateway","database":"up"|"down"} */
gw_msg	   *gw_msg_database(bool up);

#endif
