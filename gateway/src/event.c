/*
 * event.c
 *	  From a jobq_progress NOTIFY payload to the message clients receive.
 *
 * Any database role can NOTIFY on any channel, so a payload is checked field
 * by field and the client message is rebuilt from the checked values: an odd
 * payload is dropped (and logged), never forwarded verbatim.
 */
#include "event.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

gw_msg *
gw_msg_new(const char *text, size_t len)
{
	gw_msg	   *m = malloc(sizeof(gw_msg) + LWS_PRE + len + 1);

	if (!m)
		return NULL;
	m->refs = 1;
	m->len = len;
	memcpy(m->buf + LWS_PRE, text, len);
	m->buf[LWS_PRE + len] = '\0';
	return m;
}

gw_msg *
gw_msg_ref(gw_msg *m)
{
	m->refs++;
	return m;
}

void
gw_msg_unref(gw_msg *m)
{
	if (m && --m->refs == 0)
		free(m);
}

/* An integer field that may be null or absent; false when another type. */
static bool
copy_int_or_null(json_t *src, const char *key, json_t *dst, long long min, long long max)
{
	json_t	   *v = json_object_get(src, key);

	if (!v || json_is_null(v))
		return json_object_set_new(dst, key, json_null()) == 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return false;
	return json_object_set_new(dst, key, json_integer(json_integer_value(v))) == 0;
}

static bool
copy_uuid(json_t *src, const char *key, json_t *dst, gw_uuid out)
{
	json_t	   *v = json_object_get(src, key);

	if (!json_is_string(v) ||
		!gw_uuid_parse(json_string_value(v), json_string_length(v), out))
		return false;
	return json_object_set_new(dst, key, json_string(out)) == 0;
}

bool
gw_event_parse(const char *payload, gw_event *out)
{
	json_t	   *in = json_loads(payload, JSON_REJECT_DUPLICATES, NULL);
	json_t	   *msg = json_object();
	json_t	   *v;
	char	   *text = NULL;
	bool		ok;

	out->msg = NULL;
	ok = json_is_object(in) && msg &&
		json_object_set_new(msg, "type", json_string("progress")) == 0 &&
		copy_uuid(in, "job_id", msg, out->job_id) &&
		copy_uuid(in, "user_id", msg, out->user_id);
	if (ok)
	{
		v = json_object_get(in, "job_type");
		ok = (json_is_string(v) || json_is_null(v) || !v) &&
			json_object_set_new(msg, "job_type",
								json_is_string(v) ? json_stringn(json_string_value(v), json_string_length(v))
								: json_null()) == 0;
	}
	if (ok)
	{
		v = json_object_get(in, "status");
		ok = json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 4 &&
			json_object_set_new(msg, "status", json_integer(json_integer_value(v))) == 0;
	}
	ok = ok && copy_int_or_null(in, "percent", msg, 0, 100);
	if (ok)
	{
		v = json_object_get(in, "message");
		ok = (json_is_string(v) || json_is_null(v) || !v) &&
			json_object_set_new(msg, "message",
								json_is_string(v) ? json_stringn(json_string_value(v), json_string_length(v))
								: json_null()) == 0;
	}
	ok = ok && copy_int_or_null(in, "units_done", msg, 0, INT32_MAX) &&
		copy_int_or_null(in, "units_total", msg, 0, INT32_MAX);
	if (ok)
	{
		text = json_dumps(msg, JSON_COMPACT);
		ok = text != NULL;
	}
	if (ok)
	{
		out->msg = gw_msg_new(text, strlen(text));
		ok = out->msg != NULL;
	}
	free(text);
	json_decref(msg);
	json_decref(in);
	return ok;
}

gw_msg *
gw_msg_database(bool up)
{
	const char *text = up ? "{\"type\":\"gateway\",\"database\":\"up\"}"
		: "{\"type\":\"gateway\",\"database\":\"down\"}";

	return gw_msg_new(text, strlen(text));
}
