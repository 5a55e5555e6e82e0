/*
 * db.h
 *	  Database connections of the gateway's threads (db.c).
 */
#ifndef GW_DB_H
#define GW_DB_H

#include "gateway.h"

#include <libpq-fe.h>

/* Connect with gw_conf.database_url; NULL (logged once per outage) on failure. */
PGconn	   *gw_db_connect(const char *purpose, bool *logged);

/* Sleep up to ms, returning early (true) when the gateway is stopping. */
bool		gw_sleep_ms(int ms);

/* Wake every gw_sleep_ms (at shutdown). */
void		gw_sleep_interrupt(void);

/* The next backoff delay: 100 ms doubling to gw_conf.reconnect_max_ms. */
int			gw_backoff_next(int current);

#endif
