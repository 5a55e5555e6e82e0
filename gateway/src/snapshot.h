/*
 * snapshot.h
 *	  The current state of a client's active jobs, read as that user (snapshot.c).
 */
#ifndef GW_SNAPSHOT_H
#define GW_SNAPSHOT_H

#include "gateway.h"

bool		gw_snapshot_start(void);
void		gw_snapshot_join(void);

/*
 * Ask for the active jobs of user (only those in jobs[0..njobs) when njobs
 * > 0); the answer comes back through the inbox as GW_ITEM_SNAPSHOT for
 * the client with this serial.  Main thread only.
 */
void		gw_snapshot_request(uint64_t client, const gw_uuid user, const gw_uuid *jobs, int njobs);

#endif
