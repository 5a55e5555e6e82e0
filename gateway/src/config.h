/*
 * config.h
 *	  Settings from flags and environment (flags win); see config.c.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

typedef struct gw_config
{
	char	   *listen;			/* address to bind, default 127.0.0.1 */
	int			port;
	char	   *database_url;	/* libpq URL or conninfo; empty: PG* env */
	char	   *jwt_secret;		/* HS256 shared secret */
	char	   *jwt_secret_file;
	char	   *jwt_public_key_file;	/* RS256 PEM public key */
	char	   *jwt_audience;
	char	   *jwt_issuer;
	int			jwt_leeway;		/* seconds of clock skew allowed */
	int			max_clients;
	int			max_connections_per_user;
	int			max_jobs_per_client;	/* job_id filters on one connection */
	int			send_queue;		/* messages queued per client before drop */
	int			ping_interval;	/* seconds */
	int			ping_timeout;	/* seconds without pong before close */
	int			reconnect_max_ms;
	int			snapshot_limit; /* rows of active jobs sent on connect */
	char	   *log_level;
} gw_config;

extern gw_config gw_conf;

/* Fill gw_conf from environment then argv; 0 run, 1 exit 0 (--help), -1 exit 2. */
int			gw_config_load(int argc, char **argv);

#endif
