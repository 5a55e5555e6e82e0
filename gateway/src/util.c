/*
 * util.c
 *	  Logging, uuids and clocks.
 */
#include "gateway.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int			gw_log_level = GW_LOG_INFO;
volatile int gw_stopping;

void
gw_log(enum gw_log_level level, const char *fmt,...)
{
	static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
	char		line[2048];
	char		stamp[32];
	struct timespec ts;
	struct tm	tm;
	va_list		ap;

	if ((int) level > gw_log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one write per line, so threads do not interleave */
	fprintf(stderr, "%s.%03ldZ %s %s\n", stamp, ts.tv_nsec / 1000000, names[level], line);
}

bool
gw_uuid_parse(const char *s, size_t len, gw_uuid out)
{
	if (len != GW_UUID_LEN)
		return false;
	for (size_t i = 0; i < GW_UUID_LEN; i++)
	{
		bool		dash = (i == 8 || i == 13 || i == 18 || i == 23);

		if (dash ? s[i] != '-' : !isxdigit((unsigned char) s[i]))
			return false;
		out[i] = (char) tolower((unsigned char) s[i]);
	}
	out[GW_UUID_LEN] = '\0';
	return true;
}

int64_t
gw_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
