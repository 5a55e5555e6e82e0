/*
 * auth.h
 *	  Access tokens: HS256/RS256 JWTs whose sub is the user id (auth.c).
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include "gateway.h"

typedef enum gw_auth_result
{
	GW_AUTH_OK,
	GW_AUTH_MISSING,
	GW_AUTH_MALFORMED,
	GW_AUTH_ALGORITHM,
	GW_AUTH_SIGNATURE,
	GW_AUTH_EXPIRED,
	GW_AUTH_NOT_YET_VALID,
	GW_AUTH_AUDIENCE,
	GW_AUTH_ISSUER,
	GW_AUTH_SUBJECT
} gw_auth_result;

/* Load the secret and key named in gw_conf; false (logged) when unusable. */
bool		gw_auth_init(void);

/* Verify a token; on success sub holds the user id and exp its expiry (Unix time). */
gw_auth_result gw_auth_verify(const char *token, gw_uuid sub, double *exp);

/* A short reason for logs and the 401 body (never contains the token). */
const char *gw_auth_reason(gw_auth_result r);

#endif
