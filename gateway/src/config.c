/*
 * config.c
 *	  jobq-gateway's settings: one table gives each its flag, environment
 *	  variable, default and help line, so --help, parsing and the README
 *	  cannot drift apart.  Environment first, then flags override it.
 *
 * Secrets (the JWT secret, a database password) are better passed by
 * environment or file than by flag: flags are visible in ps.
 */
#include "config.h"
#include "gateway.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

gw_config	gw_conf;

typedef enum
{
	OPT_STR,
	OPT_INT
} opt_kind;

typedef struct opt
{
	const char *flag;
	const char *env;
	opt_kind	kind;
	void	   *target;
	const char *def;
	int			min;
	int			max;
	const char *help;
} opt;

static const opt options[] = {
	{"listen", "JOBQ_GATEWAY_LISTEN", OPT_STR, &gw_conf.listen, "127.0.0.1", 0, 0,
	"address to listen on (0.0.0.0 for all)"},
	{"port", "JOBQ_GATEWAY_PORT", OPT_INT, &gw_conf.port, "8080", 1, 65535,
	"TCP port"},
	{"database-url", "JOBQ_GATEWAY_DATABASE_URL", OPT_STR, &gw_conf.database_url, "", 0, 0,
	"libpq URL or conninfo (empty: the PG* environment variables)"},
	{"jwt-secret", "JOBQ_GATEWAY_JWT_SECRET", OPT_STR, &gw_conf.jwt_secret, "", 0, 0,
	"HS256 shared secret (prefer the environment or --jwt-secret-file)"},
	{"jwt-secret-file", "JOBQ_GATEWAY_JWT_SECRET_FILE", OPT_STR, &gw_conf.jwt_secret_file, "", 0, 0,
	"file holding the HS256 secret (a trailing newline is ignored)"},
	{"jwt-public-key-file", "JOBQ_GATEWAY_JWT_PUBLIC_KEY_FILE", OPT_STR, &gw_conf.jwt_public_key_file, "", 0, 0,
	"PEM public key for RS256 tokens"},
	{"jwt-audience", "JOBQ_GATEWAY_JWT_AUDIENCE", OPT_STR, &gw_conf.jwt_audience, "", 0, 0,
	"required aud claim (checked when set)"},
	{"jwt-issuer", "JOBQ_GATEWAY_JWT_ISSUER", OPT_STR, &gw_conf.jwt_issuer, "", 0, 0,
	"required iss claim (checked when set)"},
	{"jwt-leeway", "JOBQ_GATEWAY_JWT_LEEWAY", OPT_INT, &gw_conf.jwt_leeway, "30", 0, 3600,
	"seconds of clock skew allowed for exp and nbf"},
	{"max-clients", "JOBQ_GATEWAY_MAX_CLIENTS", OPT_INT, &gw_conf.max_clients, "10000", 1, 1000000,
	"WebSocket clients at once; more are refused with 503"},
	{"max-connections-per-user", "JOBQ_GATEWAY_MAX_CONNECTIONS_PER_USER", OPT_INT,
		&gw_conf.max_connections_per_user, "32", 1, 1000000,
	"connections of one user (sub) at once; more are refused with 429"},
	{"max-jobs-per-client", "JOBQ_GATEWAY_MAX_JOBS_PER_CLIENT", OPT_INT,
		&gw_conf.max_jobs_per_client, "32", 1, 10000,
	"job_id filters on one connection; more are refused with 400"},
	{"send-queue", "JOBQ_GATEWAY_SEND_QUEUE", OPT_INT, &gw_conf.send_queue, "1024", 1, 1000000,
	"messages queued for one client before it is dropped as too slow"},
	{"ping-interval", "JOBQ_GATEWAY_PING_INTERVAL", OPT_INT, &gw_conf.ping_interval, "30", 1, 86400,
	"seconds between WebSocket pings"},
	{"ping-timeout", "JOBQ_GATEWAY_PING_TIMEOUT", OPT_INT, &gw_conf.ping_timeout, "60", 1, 86400,
	"seconds without a pong before a client is closed"},
	{"reconnect-max-ms", "JOBQ_GATEWAY_RECONNECT_MAX_MS", OPT_INT, &gw_conf.reconnect_max_ms, "5000", 10, 3600000,
	"ceiling of the database reconnect backoff (starts at 100 ms, doubles)"},
	{"snapshot-limit", "JOBQ_GATEWAY_SNAPSHOT_LIMIT", OPT_INT, &gw_conf.snapshot_limit, "500", 1, 100000,
	"active jobs sent to a client on connect"},
	{"log-level", "JOBQ_GATEWAY_LOG_LEVEL", OPT_STR, &gw_conf.log_level, "info", 0, 0,
	"error, warn, info or debug"},
};

#define NOPTIONS ((int) (sizeof(options) / sizeof(options[0])))

/* Store a value into an option's target; false (and a message) when bad. */
static bool
set_option(const opt *o, const char *value, const char *source)
{
	if (o->kind == OPT_STR)
	{
		char	  **dst = (char **) o->target;

		free(*dst);
		*dst = strdup(value);
		return *dst != NULL;
	}
	else
	{
		char	   *end;
		long		v;

		errno = 0;
		v = strtol(value, &end, 10);
		if (errno || end == value || *end != '\0' || v < o->min || v > o->max)
		{
			fprintf(stderr, "jobq-gateway: %s: %s must be an integer in %d..%d, not \"%s\"\n",
					source, o->flag, o->min, o->max, value);
			return false;
		}
		*(int *) o->target = (int) v;
		return true;
	}
}

static void
usage(FILE *out)
{
	fprintf(out,
			"jobq-gateway " GW_VERSION ": job progress from PostgreSQL (NOTIFY jobq_progress) to WebSocket clients\n"
			"\n"
			"Usage: jobq-gateway [OPTION]...\n"
			"\n"
			"Clients connect to ws://HOST:PORT/hubs/jobs?access_token=JWT[&job_id=UUID]...\n"
			"and receive the progress of their own user's jobs (the token's sub claim);\n"
			"GET / serves a progress page (token in the URL fragment: /#access_token=JWT).\n"
			"\n"
			"Options (each also read from the environment variable shown):\n");
	for (int i = 0; i < NOPTIONS; i++)
	{
		const opt  *o = &options[i];
		char		left[64];

		snprintf(left, sizeof(left), "--%s=%s", o->flag, o->kind == OPT_INT ? "N" : "VALUE");
		fprintf(out, "  %-36s %s\n  %-36s [%s", left, o->help, "", o->env);
		if (o->def[0])
			fprintf(out, "; default %s", o->def);
		fprintf(out, "]\n");
	}
	fprintf(out,
			"  %-36s %s\n  %-36s %s\n"
			"\n"
			"At least one of the JWT secret and the public key is required.  SIGTERM or\n"
			"SIGINT closes every client with 1001 (going away) and exits.\n",
			"-h, --help", "show this help and exit",
			"-V, --version", "show the version and exit");
}

/* Read a whole small file into a new string, trailing newlines removed. */
static char *
read_secret_file(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	size_t		n;

	if (!f)
	{
		fprintf(stderr, "jobq-gateway: cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	buf = calloc(1, 65537);
	n = buf ? fread(buf, 1, 65536, f) : 0;
	fclose(f);
	if (!buf)
		return NULL;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return buf;
}

int
gw_config_load(int argc, char **argv)
{
	struct option longopts[NOPTIONS + 3];
	int			c;

	for (int i = 0; i < NOPTIONS; i++)
	{
		const char *env = getenv(options[i].env);

		if (!set_option(&options[i], options[i].def, "default"))
			return -1;
		if (env && env[0] && !set_option(&options[i], env, options[i].env))
			return -1;
		longopts[i] = (struct option)
		{
			options[i].flag, required_argument, NULL, 1000 + i
		};
	}
	longopts[NOPTIONS] = (struct option)
	{
		"help", no_argument, NULL, 'h'
	};
	longopts[NOPTIONS + 1] = (struct option)
	{
		"version", no_argument, NULL, 'V'
	};
	longopts[NOPTIONS + 2] = (struct option)
	{
		NULL, 0, NULL, 0
	};

	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1)
	{
		if (c == 'h')
		{
			usage(stdout);
			return 1;
		}
		if (c == 'V')
		{
			printf("jobq-gateway %s\n", GW_VERSION);
			return 1;
		}
		if (c < 1000 || c >= 1000 + NOPTIONS)
		{
			fprintf(stderr, "Try \"jobq-gateway --help\" for more information.\n");
			return -1;
		}
		if (!set_option(&options[c - 1000], optarg, "flag"))
			return -1;
	}
	if (optind < argc)
	{
		fprintf(stderr, "jobq-gateway: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}

	if (gw_conf.jwt_secret_file[0])
	{
		char	   *s = read_secret_file(gw_conf.jwt_secret_file);

		if (!s)
			return -1;
		free(gw_conf.jwt_secret);
		gw_conf.jwt_secret = s;
	}
	if (!gw_conf.jwt_secret[0] && !gw_conf.jwt_public_key_file[0])
	{
		fprintf(stderr, "jobq-gateway: set a JWT secret (--jwt-secret-file, JOBQ_GATEWAY_JWT_SECRET) "
				"or a public key (--jwt-public-key-file); see --help\n");
		return -1;
	}

	if (strcmp(gw_conf.log_level, "error") == 0)
		gw_log_level = GW_LOG_ERROR;
	else if (strcmp(gw_conf.log_level, "warn") == 0)
		gw_log_level = GW_LOG_WARN;
	else if (strcmp(gw_conf.log_level, "info") == 0)
		gw_log_level = GW_LOG_INFO;
	else if (strcmp(gw_conf.log_level, "debug") == 0)
		gw_log_level = GW_LOG_DEBUG;
	else
	{
		fprintf(stderr, "jobq-gateway: --log-level must be error, warn, info or debug, not \"%s\"\n",
				gw_conf.log_level);
		return -1;
	}
	return 0;
}
