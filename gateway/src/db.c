/*
 * db.c
 *	  Connecting to PostgreSQL, and the sleeps between attempts.
 *
 * The URL is passed to libpq as an expanded dbname after the gateway's
 * defaults, so anything the URL sets (application_name, timeouts, sslmode)
 * wins.  Error messages from libpq name the host, never a password.
 */
#include "db.h"
#include "config.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cond;
static pthread_once_t sleep_once = PTHREAD_ONCE_INIT;

static void
sleep_init(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&sleep_cond, &attr);
	pthread_condattr_destroy(&attr);
}

bool
gw_sleep_ms(int ms)
{
	struct timespec until;

	pthread_once(&sleep_once, sleep_init);
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long) (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L)
	{
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&sleep_lock);
	while (!gw_stopping)
	{
		if (pthread_cond_timedwait(&sleep_cond, &sleep_lock, &until) != 0)
			break;
	}
	pthread_mutex_unlock(&sleep_lock);
	return gw_stopping;
}

void
gw_sleep_interrupt(void)
{
	pthread_once(&sleep_once, sleep_init);
	pthread_mutex_lock(&sleep_lock);
	pthread_cond_broadcast(&sleep_cond);
	pthread_mutex_unlock(&sleep_lock);
}

int
gw_backoff_next(int current)
{
	if (current <= 0)
		return 100;
	current *= 2;
	return current > gw_conf.reconnect_max_ms ? gw_conf.reconnect_max_ms : current;
}

PGconn *
gw_db_connect(const char *purpose, bool *logged)
{
	const char *keys[] = {"application_name", "connect_timeout", "keepalives",
		"keepalives_idle", "keepalives_interval", "keepalives_count", "dbname", NULL};
	const char *values[] = {purpose, "5", "1", "10", "5", "3", gw_conf.database_url, NULL};
	PGconn	   *conn;

	if (!gw_conf.database_url[0])
		keys[6] = values[6] = NULL;
	conn = PQconnectdbParams(keys, values, 1);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		if (!*logged)
		{
			char	   *msg = PQerrorMessage(conn);
			size_t		n = strlen(msg);

			while (n > 0 && msg[n - 1] == '\n')
				msg[--n] = '\0';
			gw_log(GW_LOG_WARN, "%s: cannot connect to the database (retrying): %s", purpose, msg);
			*logged = true;
		}
		PQfinish(conn);
		return NULL;
	}
	*logged = false;
	return conn;
}
