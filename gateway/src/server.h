/*
 * server.h
 *	  The HTTP/WebSocket server (server.c).
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include "gateway.h"

/* Create the lws context and listen; false (logged) on failure. */
bool		gw_server_start(void);

/* Serve until SIGTERM/SIGINT, then close clients (up to drain_ms) and stop. */
void		gw_server_run(int drain_ms);

#endif
