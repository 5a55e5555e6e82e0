/*
 * server.c
 *	  The libwebsockets side: one protocol serves the page, /healthz and the
 *	  WebSocket endpoint /hubs/jobs.
 *
 * A WebSocket is authenticated before it is accepted: the upgrade request is
 * checked in LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, and a bad request gets a
 * plain HTTP answer (401 for a missing, invalid or expired token, 400 for bad
 * parameters, 404 for another path, 429/503 for limits) instead of a
 * WebSocket.  The token travels as the access_token query parameter because
 * browsers cannot set headers on a WebSocket; it is never logged, and lws
 * logs only errors and warnings, which do not include URIs.
 */
#include "server.h"
#include "auth.h"
#include "config.h"
#include "hub.h"
#include "www.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HUB_PATH "/hubs/jobs"

typedef struct session
{
	gw_client  *client;			/* WebSocket connections */
	unsigned char *body;		/* HTTP: LWS_PRE headroom, then the body */
	size_t		body_len;
} session;

typedef struct hub_request
{
	gw_auth_result auth;
	gw_uuid		sub;
	double		exp;			/* the token's exp, Unix time */
	int			njobs;
	gw_uuid    *jobs;			/* gw_conf.max_jobs_per_client entries */
	const char *bad;			/* a 400 reason, or NULL */
} hub_request;

static struct lws_context *context;
static lws_sorted_usec_list_t tick_sul;

void
gw_wake(void)
{
	if (context)
		lws_cancel_service(context);
}

/* The client's address for logs. */
static const char *
peer(struct lws *wsi, char *buf, size_t len)
{
	if (!lws_get_peer_simple(wsi, buf, len))
		snprintf(buf, len, "?");
	return buf;
}

/*
 * Read access_token and job_id arguments of the upgrade request and verify
 * the token.  The caller frees req->jobs.
 */
static void
read_hub_request(struct lws *wsi, hub_request *req)
{
	char		arg[8300];
	bool		have_token = false;

	memset(req, 0, sizeof(*req));
	req->auth = GW_AUTH_MISSING;
	req->jobs = calloc((size_t) gw_conf.max_jobs_per_client, sizeof(gw_uuid));
	if (!req->jobs)
	{
		req->bad = "out of memory";
		return;
	}
	for (int i = 0;; i++)
	{
		int			n = lws_hdr_copy_fragment(wsi, arg, sizeof(arg), WSI_TOKEN_HTTP_URI_ARGS, i);

		if (n < 0)
		{
			/* past the last fragment, or one longer than arg */
			if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0)
				req->bad = "query argument too long";
			break;
		}
		if (strncmp(arg, "access_token=", 13) == 0)
		{
			if (have_token)
			{
				req->bad = "more than one access_token";
				continue;
			}
			have_token = true;
			req->auth = gw_auth_verify(arg + 13, req->sub, &req->exp);
		}
		else if (strncmp(arg, "job_id=", 7) == 0)
		{
			if (req->njobs >= gw_conf.max_jobs_per_client)
				req->bad = "too many job_id arguments";
			else if (!gw_uuid_parse(arg + 7, strlen(arg + 7), req->jobs[req->njobs]))
				req->bad = "job_id is not a uuid";
			else
				req->njobs++;
		}
		/* other arguments (cache busters) are ignored */
	}
	/* the token may be cut from arg's copy; make sure none stays on the stack */
	lws_explicit_bzero(arg, sizeof(arg));
}

/* Answer an HTTP request at once with a small JSON error body. */
static int
respond(struct lws *wsi, unsigned int status, const char *error, const char *detail)
{
	unsigned char buf[LWS_PRE + 2048];
	unsigned char *start = buf + LWS_PRE,
			   *p = start,
			   *end = buf + sizeof(buf) - 1;
	char		body[512];
	int			len;

	len = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"detail\":\"%s\"}\n", error, detail);
	if (lws_add_http_header_status(wsi, status, &p, end) ||
		lws_add_http_header_by_name(wsi, (const unsigned char *) "content-type:",
									(const unsigned char *) "application/json", 16, &p, end) ||
		lws_add_http_header_by_name(wsi, (const unsigned char *) "cache-control:",
									(const unsigned char *) "no-store", 8, &p, end) ||
		(status == 401 &&
		 lws_add_http_header_by_name(wsi, (const unsigned char *) "www-authenticate:",
									 (const unsigned char *) "Bearer error=\"invalid_token\"", 28, &p, end)) ||
		(status == 426 &&
		 lws_add_http_header_by_name(wsi, (const unsigned char *) "upgrade:",
									 (const unsigned char *) "websocket", 9, &p, end)) ||
		lws_add_http_header_content_length(wsi, (lws_filepos_t) len, &p, end) ||
		lws_finalize_http_header(wsi, &p, end) ||
		end - p < len)
		return -1;
	memcpy(p, body, (size_t) len);
	p += len;
	if (lws_write(wsi, start, (size_t) (p - start), LWS_WRITE_HTTP_HEADERS) < 0)
		return -1;
	return 1;
}

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: say no, with a status, or 0 to go on. */
static int
confirm_upgrade(struct lws *wsi, const char *protocol)
{
	char		uri[256];
	char		addr[64];
	hub_request req;
	int			rc = 0;

	if (strcmp(protocol, "websocket") != 0)
		return respond(wsi, 400, "bad_request", "only WebSocket upgrades");
	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, HUB_PATH) != 0)
		return respond(wsi, 404, "not_found", "WebSockets are served at " HUB_PATH);
	if (gw_stopping)
		return respond(wsi, 503, "unavailable", "the gateway is shutting down");
	if (gw_stats.clients >= gw_conf.max_clients)
	{
		gw_log(GW_LOG_WARN, "refused a client from %s: max-clients (%d) reached",
			   peer(wsi, addr, sizeof(addr)), gw_conf.max_clients);
		return respond(wsi, 503, "unavailable", "too many clients");
	}
	read_hub_request(wsi, &req);
	if (req.auth != GW_AUTH_OK)
	{
		gw_log(GW_LOG_INFO, "refused a client from %s: %s", peer(wsi, addr, sizeof(addr)),
			   gw_auth_reason(req.auth));
		rc = respond(wsi, 401, "unauthorized", gw_auth_reason(req.auth));
	}
	else if (req.bad)
		rc = respond(wsi, 400, "bad_request", req.bad);
	else if (gw_hub_user_connections(req.sub) >= gw_conf.max_connections_per_user)
	{
		gw_log(GW_LOG_WARN, "refused a client of user %s from %s: max-connections-per-user (%d) reached",
			   req.sub, peer(wsi, addr, sizeof(addr)), gw_conf.max_connections_per_user);
		rc = respond(wsi, 429, "too_many_connections", "too many connections for this user");
	}
	free(req.jobs);
	return rc;
}

/* LWS_CALLBACK_ESTABLISHED: register the client, or close it. */
static int
established(struct lws *wsi, session *s)
{
	hub_request req;
	char		addr[64];

	/* verified again: the upgrade check and this callback share no state */
	read_hub_request(wsi, &req);
	if (req.auth != GW_AUTH_OK || req.bad)
	{
		free(req.jobs);
		return -1;
	}
	s->client = gw_hub_add(wsi, req.sub, req.exp, req.jobs, req.njobs);
	if (!s->client)
	{
		free(req.jobs);
		lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *) "limit reached", 13);
		return -1;
	}
	gw_log(GW_LOG_DEBUG, "client of user %s connected from %s (%d job filters)",
		   req.sub, peer(wsi, addr, sizeof(addr)), req.njobs);
	free(req.jobs);
	return 0;
}

static const gw_asset *
find_asset(const char *path)
{
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	else if (strcmp(path, "/favicon.ico") == 0)
		path = "/favicon.svg";
	for (const gw_asset *a = gw_assets; a->path; a++)
		if (strcmp(a->path, path) == 0)
			return a;
	return NULL;
}

/* Start an HTTP 200 answer whose body HTTP_WRITEABLE sends. */
static int
serve_body(struct lws *wsi, session *s, unsigned int status, const char *type,
		   const void *data, size_t len)
{
	static const char *csp = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
		"style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'";
	unsigned char buf[LWS_PRE + 2048];
	unsigned char *start = buf + LWS_PRE,
			   *p = start,
			   *end = buf + sizeof(buf) - 1;

	free(s->body);
	s->body = malloc(LWS_PRE + len + 1);
	if (!s->body)
		return -1;
	memcpy(s->body + LWS_PRE, data, len);
	s->body_len = len;
	if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t) len, &p, end) ||
		lws_add_http_header_by_name(wsi, (const unsigned char *) "cache-control:",
									(const unsigned char *) "no-store", 8, &p, end) ||
		lws_add_http_header_by_name(wsi, (const unsigned char *) "x-content-type-options:",
									(const unsigned char *) "nosniff", 7, &p, end) ||
		lws_add_http_header_by_name(wsi, (const unsigned char *) "referrer-policy:",
									(const unsigned char *) "no-referrer", 11, &p, end) ||
		lws_add_http_header_by_name(wsi, (const unsigned char *) "content-security-policy:",
									(const unsigned char *) csp, (int) strlen(csp), &p, end) ||
		lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

/* LWS_CALLBACK_HTTP: the page, /healthz, or an error. */
static int
http_request(struct lws *wsi, session *s, const char *path)
{
	const gw_asset *a;
	int			rc;

	if (!lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
		rc = respond(wsi, 405, "method_not_allowed", "only GET");
	else if (strcmp(path, "/healthz") == 0)
	{
		char		body[512];
		int			n = snprintf(body, sizeof(body),
								 "{\"status\":\"%s\",\"database\":\"%s\",\"clients\":%d,\"users\":%d,"
								 "\"events\":%llu,\"delivered\":%llu,\"dropped_slow\":%llu,\"dropped_ping\":%llu,"
								 "\"expired\":%llu}\n",
								 gw_stats.database_up ? "ok" : "degraded",
								 gw_stats.database_up ? "up" : "down",
								 gw_stats.clients, gw_stats.users,
								 (unsigned long long) gw_stats.events,
								 (unsigned long long) gw_stats.delivered,
								 (unsigned long long) gw_stats.dropped_slow,
								 (unsigned long long) gw_stats.dropped_ping,
								 (unsigned long long) gw_stats.expired);

		return serve_body(wsi, s, gw_stats.database_up ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE,
						  "application/json", body, (size_t) n);
	}
	else if (strcmp(path, HUB_PATH) == 0)
		rc = respond(wsi, 426, "upgrade_required", "connect with a WebSocket");
	else if ((a = find_asset(path)) != NULL)
		return serve_body(wsi, s, HTTP_STATUS_OK, a->content_type, a->data, a->len);
	else
		rc = respond(wsi, 404, "not_found", "no such page");
	if (rc < 0)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	session    *s = (session *) user;

	switch (reason)
	{
		case LWS_CALLBACK_HTTP:
			return http_request(wsi, s, (const char *) in);

		case LWS_CALLBACK_HTTP_WRITEABLE:
			if (!s || !s->body)
				break;
			if (lws_write(wsi, s->body + LWS_PRE, s->body_len, LWS_WRITE_HTTP_FINAL) != (int) s->body_len)
				return -1;
			free(s->body);
			s->body = NULL;
			return lws_http_transaction_completed(wsi) ? -1 : 0;

		case LWS_CALLBACK_CLOSED_HTTP:
			if (s)
			{
				free(s->body);
				s->body = NULL;
			}
			break;

		case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
			return confirm_upgrade(wsi, (const char *) in);

		case LWS_CALLBACK_ESTABLISHED:
			return established(wsi, s);

		case LWS_CALLBACK_SERVER_WRITEABLE:
			return s->client ? gw_hub_writeable(s->client) : -1;

		case LWS_CALLBACK_RECEIVE_PONG:
			if (s->client)
				gw_hub_pong(s->client);
			break;

		case LWS_CALLBACK_RECEIVE:
			/* clients have nothing to say; any frame still shows liveness */
			if (s->client)
				gw_hub_pong(s->client);
			break;

		case LWS_CALLBACK_CLOSED:
			if (s->client)
			{
				gw_hub_remove(s->client);
				s->client = NULL;
			}
			break;

		case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
			gw_hub_dispatch();
			break;

		default:
			break;
	}
	(void) len;
	return 0;
}

static const struct lws_protocols protocols[] = {
	{"jobq", callback, sizeof(session), 1024, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

static void
lws_logger(int level, const char *line)
{
	size_t		n = strlen(line);

	while (n > 0 && line[n - 1] == '\n')
		n--;
	gw_log(level == LLL_ERR ? GW_LOG_ERROR : GW_LOG_WARN, "lws: %.*s", (int) n, line);
}

static void
tick(lws_sorted_usec_list_t *sul)
{
	gw_hub_tick();
	lws_sul_schedule(context, 0, sul, tick, 1 * LWS_US_PER_SEC);
}

bool
gw_server_start(void)
{
	struct lws_context_creation_info info;

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_logger);
	memset(&info, 0, sizeof(info));
	info.port = gw_conf.port;
	info.iface = gw_conf.listen;
	info.protocols = protocols;
	info.vhost_name = "jobq-gateway";
	info.max_http_header_data = 16384;
	info.timeout_secs = 10;
	info.fd_limit_per_thread = (unsigned int) gw_conf.max_clients + 64;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.server_string = "jobq-gateway";
	context = lws_create_context(&info);
	if (!context)
	{
		gw_log(GW_LOG_ERROR, "cannot listen on %s:%d", gw_conf.listen, gw_conf.port);
		return false;
	}
	lws_sul_schedule(context, 0, &tick_sul, tick, 1 * LWS_US_PER_SEC);
	gw_log(GW_LOG_INFO, "jobq-gateway " GW_VERSION " listening on http://%s:%d (WebSocket " HUB_PATH ")",
		   gw_conf.listen, gw_conf.port);
	return true;
}

static void
drain_tick(lws_sorted_usec_list_t *sul)
{
	lws_sul_schedule(context, 0, sul, drain_tick, 50 * LWS_US_PER_MS);
}

void
gw_server_run(int drain_ms)
{
	static lws_sorted_usec_list_t drain_sul;
	int64_t		deadline;

	while (!gw_stopping)
		if (lws_service(context, 0) < 0)
			break;

	gw_log(GW_LOG_INFO, "shutting down: closing %d clients", gw_stats.clients);
	gw_hub_close_all();
	lws_sul_schedule(context, 0, &drain_sul, drain_tick, 50 * LWS_US_PER_MS);
	deadline = gw_now_us() + (int64_t) drain_ms * 1000;
	while (gw_stats.clients > 0 && gw_now_us() < deadline)
		if (lws_service(context, 0) < 0)
			break;
	lws_sul_cancel(&drain_sul);
	lws_sul_cancel(&tick_sul);
	gw_hub_dispatch();			/* free what the threads left */
	lws_context_destroy(context);
	context = NULL;
}
