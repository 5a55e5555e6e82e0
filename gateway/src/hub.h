/*
 * hub.h
 *	  Connected clients, who may see what, and their send queues (hub.c).
 *	  Main thread only.
 */
#ifndef GW_HUB_H
#define GW_HUB_H

#include "inbox.h"

typedef struct gw_client gw_client;

typedef struct gw_hub_stats
{
	int			clients;
	int			users;
	bool		database_up;
	uint64_t	events;			/* progress events received */
	uint64_t	delivered;		/* messages written to clients */
	uint64_t	dropped_slow;	/* clients closed for a full send queue */
	uint64_t	dropped_ping;	/* clients closed for a missing pong */
	uint64_t	expired;		/* clients closed when their token expired */
} gw_hub_stats;

extern gw_hub_stats gw_stats;

/* Register an authenticated WebSocket; NULL when a limit says no. */
gw_client  *gw_hub_add(struct lws *wsi, const gw_uuid user, double token_exp,
					   const gw_uuid *jobs, int njobs);
void		gw_hub_remove(gw_client *c);

/* Connections the user has now. */
int			gw_hub_user_connections(const gw_uuid user);

/* LWS_CALLBACK_SERVER_WRITEABLE: write what is queued; -1 closes. */
int			gw_hub_writeable(gw_client *c);
void		gw_hub_pong(gw_client *c);

/* Hand everything in the inbox to the clients entitled to it. */
void		gw_hub_dispatch(void);

/* Once a second: pings, pong deadlines, expired tokens. */
void		gw_hub_tick(void);

/* Close every client with 1001 (going away). */
void		gw_hub_close_all(void);

#endif
