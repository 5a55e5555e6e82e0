/*
 * main.c
 *	  jobq-gateway: pushes jobq job progress (NOTIFY jobq_progress, SPEC
 *	  section 11) to WebSocket clients entitled to it, and serves a page
 *	  that shows it.  Stateless: every instance LISTENs on its own, so any
 *	  number can run behind a load balancer.
 */
#include "auth.h"
#include "config.h"
#include "db.h"
#include "gateway.h"
#include "listener.h"
#include "server.h"
#include "snapshot.h"

#include <signal.h>
#include <stdlib.h>

static void
on_signal(int sig)
{
	(void) sig;
	gw_stopping = 1;
	gw_wake();
}

int
main(int argc, char **argv)
{
	struct sigaction sa = {0};
	int			rc = gw_config_load(argc, argv);

	if (rc != 0)
		return rc > 0 ? 0 : 2;
	if (!gw_auth_init())
		return 2;

	signal(SIGPIPE, SIG_IGN);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if (!gw_server_start())
		return 1;
	if (!gw_listener_start() || !gw_snapshot_start())
	{
		gw_log(GW_LOG_ERROR, "cannot start the database threads");
		return 1;
	}
	gw_server_run(2000);

	gw_sleep_interrupt();
	gw_listener_join();
	gw_snapshot_join();
	gw_log(GW_LOG_INFO, "stopped");
	return 0;
}
