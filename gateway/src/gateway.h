/*
 * gateway.h
 *	  Shared declarations of jobq-gateway: logging, ids, the stop flag.
 *
 * Threads: the main thread runs the libwebsockets loop and owns every client
 * (hub.c, server.c).  The listener thread (listener.c) holds the LISTEN
 * connection; the snapshot thread (snapshot.c) reads jobq.jobs for clients
 * that have just connected.  They talk to the main thread only through the
 * inbox (inbox.c), which wakes the loop with lws_cancel_service().
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_UUID_LEN 36			/* canonical text form, without the NUL */

typedef char gw_uuid[GW_UUID_LEN + 1];

enum gw_log_level
{
	GW_LOG_ERROR,
	GW_LOG_WARN,
	GW_LOG_INFO,
	GW_LOG_DEBUG
};

extern int	gw_log_level;

/* One line on stderr with a UTC timestamp; never pass a token here. */
void		gw_log(enum gw_log_level level, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

/* Copy s into out as a lowercase canonical uuid; false when s is not one. */
bool		gw_uuid_parse(const char *s, size_t len, gw_uuid out);

/* Monotonic clock in microseconds. */
int64_t		gw_now_us(void);

/* Set by SIGTERM/SIGINT; read by every thread. */
extern volatile int gw_stopping;

/* Wake the main loop (safe from any thread). */
void		gw_wake(void);

#endif
