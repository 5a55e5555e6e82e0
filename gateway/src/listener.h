/*
 * listener.h
 *	  The LISTEN jobq_progress thread (listener.c).
 */
#ifndef GW_LISTENER_H
#define GW_LISTENER_H

#include "gateway.h"

bool		gw_listener_start(void);
void		gw_listener_join(void);

#endif
