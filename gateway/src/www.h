/*
 * www.h
 *	  The progress page, compiled in (build/www.c from www/ by tools/embed.sh).
 */
#ifndef GW_WWW_H
#define GW_WWW_H

#include <stddef.h>

typedef struct gw_asset
{
	const char *path;			/* "/index.html" */
	const char *content_type;
	const unsigned char *data;
	size_t		len;
} gw_asset;

extern const gw_asset gw_assets[];	/* ends with a NULL path */

#endif
