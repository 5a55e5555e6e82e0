/*-------------------------------------------------------------------------
 *
 * ids.c
 *	  Job ids (UUIDv7) and W3C trace ids.
 *
 * A job id is a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 12
 * bits of sub-millisecond time in rand_a, then 62 random bits.  Using the
 * sub-millisecond fraction (as PostgreSQL 18's uuidv7() does) keeps ids from
 * different sessions close to creation order; treating the 60 time bits as
 * one counter that never goes backwards makes them strictly increasing within
 * a session, even within one millisecond or when the clock steps back.  So
 * FIFO by id holds and primary-key inserts stay at the right edge of the index.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include <time.h>

#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(jobq_gen_uuid_v7);

/* The last 60-bit time value handed out by this backend. */
static uint64 last_uuid_time = 0;

/* Fill *out with a new UUIDv7. */
void
jobq_uuid_v7(pg_uuid_t *out)
{
	struct timespec ts;
	uint64		ms;
	uint64		sub;
	uint64		t;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64) ts.tv_sec * 1000 + (uint64) ts.tv_nsec / 1000000;
	/* nanoseconds within the millisecond, scaled to 12 bits */
	sub = ((uint64) (ts.tv_nsec % 1000000) << 12) / 1000000;
	t = (ms << 12) | sub;
	if (t <= last_uuid_time)
		t = last_uuid_time + 1;
	last_uuid_time = t;

	if (!pg_strong_random(&out->data[8], 8))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a job id")));

	ms = t >> 12;
	out->data[0] = (unsigned char) (ms >> 40);
	out->data[1] = (unsigned char) (ms >> 32);
	out->data[2] = (unsigned char) (ms >> 24);
	out->data[3] = (unsigned char) (ms >> 16);
	out->data[4] = (unsigned char) (ms >> 8);
	out->data[5] = (unsigned char) ms;
	out->data[6] = (unsigned char) (0x70 | ((t >> 8) & 0x0F));
	out->data[7] = (unsigned char) (t & 0xFF);
	out->data[8] = (unsigned char) (0x80 | (out->data[8] & 0x3F));
}

/* SQL: jobq.gen_uuid_v7() */
Datum
jobq_gen_uuid_v7(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *uuid = palloc(sizeof(pg_uuid_t));

	jobq_uuid_v7(uuid);
	PG_RETURN_UUID_P(uuid);
}

static const char hexdigits[] = "0123456789abcdef";

/* Write a new random trace id (32 lowercase hex digits) into out[33]. */
void
jobq_new_trace_id(char *out)
{
	unsigned char raw[16];

	do
	{
		if (!pg_strong_random(raw, sizeof(raw)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random bytes for a trace id")));
	} while (memcmp(raw, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16) == 0);

	for (int i = 0; i < 16; i++)
	{
		out[2 * i] = hexdigits[raw[i] >> 4];
		out[2 * i + 1] = hexdigits[raw[i] & 0x0F];
	}
	out[JOBQ_TRACE_ID_LEN] = '\0';
}

/*
 * Copy a caller's trace id into out[33], lowercased.  False unless it is
 * exactly 32 hex digits and not all zeros (W3C trace context forbids that).
 */
bool
jobq_normalize_trace_id(const char *in, char *out)
{
	bool		nonzero = false;
	int			i;

	for (i = 0; i < JOBQ_TRACE_ID_LEN; i++)
	{
		char		c = in[i];

		if (c >= 'A' && c <= 'F')
			c = c - 'A' + 'a';
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		if (c != '0')
			nonzero = true;
		out[i] = c;
	}
	if (in[i] != '\0' || !nonzero)
		return false;
	out[JOBQ_TRACE_ID_LEN] = '\0';
	return true;
}

/*
 * Take the trace id out of a W3C traceparent header value
 * ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>").
 */
bool
jobq_trace_id_from_traceparent(const char *traceparent, char *out)
{
	char		buf[JOBQ_TRACE_ID_LEN + 1];

	if (traceparent == NULL || strlen(traceparent) < 55 ||
		traceparent[2] != '-' || traceparent[35] != '-' || traceparent[52] != '-')
		return false;
	memcpy(buf, traceparent + 3, JOBQ_TRACE_ID_LEN);
	buf[JOBQ_TRACE_ID_LEN] = '\0';
	return jobq_normalize_trace_id(buf, out);
}

/* Format a uuid into out[37] the way uuid_out does. */
void
jobq_uuid_to_cstring(const pg_uuid_t *uuid, char *out)
{
	char	   *p = out;

	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hexdigits[uuid->data[i] >> 4];
		*p++ = hexdigits[uuid->data[i] & 0x0F];
	}
	*p = '\0';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Parse uuid text in the forms uuid_in accepts (optional braces, a hyphen
 * after any group of four digits); false if it is not one.  Written out so
 * that a bad value can be reported (22023 naming its source) or skipped,
 * without catching uuid_in's error.
 */
bool
jobq_parse_uuid(const char *s, pg_uuid_t *out)
{
	bool		braces = (*s == '{');
	int			n = 0;

	if (braces)
		s++;
	while (n < 32)
	{
		int			hi,
					lo;

		if (*s == '-' && n > 0 && n % 4 == 0)
			s++;
		hi = hexval(s[0]);
		lo = (hi < 0) ? -1 : hexval(s[1]);
		if (hi < 0 || lo < 0)
			return false;
		out->data[n / 2] = (unsigned char) (hi << 4 | lo);
		n += 2;
		s += 2;
	}
	if (braces && *s++ != '}')
		return false;
	return *s == '\0';
}
