/*
 * auth.c
 *	  Verification of the access tokens that clients pass as access_token.
 *
 * The algorithm is chosen by the key the gateway holds, never by the token:
 * the header's alg only selects between the configured keys (HS256 secret,
 * RS256 public key), and a token whose alg has no configured key is refused.
 * So an RS256 public key can never be used as an HMAC secret (the classic
 * algorithm-confusion attack) and "none" is never accepted.  exp is required.
 * Nothing here logs or copies the token.
 */
#include "auth.h"
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TOKEN_LEN 8192

static unsigned char *hs_key;
static int	hs_key_len;
static unsigned char *rs_key;
static int	rs_key_len;

bool
gw_auth_init(void)
{
	if (gw_conf.jwt_secret[0])
	{
		hs_key = (unsigned char *) gw_conf.jwt_secret;
		hs_key_len = (int) strlen(gw_conf.jwt_secret);
		if (hs_key_len < 32)
			gw_log(GW_LOG_WARN, "the JWT secret is %d bytes; HS256 wants at least 32", hs_key_len);
	}
	if (gw_conf.jwt_public_key_file[0])
	{
		FILE	   *f = fopen(gw_conf.jwt_public_key_file, "rb");
		EVP_PKEY   *pkey;
		long		n;

		if (!f)
		{
			gw_log(GW_LOG_ERROR, "cannot open JWT public key %s: %s",
				   gw_conf.jwt_public_key_file, strerror(errno));
			return false;
		}
		/* check it really is a PEM public key, so a bad file fails at start */
		pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
		if (!pkey || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
		{
			gw_log(GW_LOG_ERROR, "%s is not a PEM RSA public key (BEGIN PUBLIC KEY)",
				   gw_conf.jwt_public_key_file);
			EVP_PKEY_free(pkey);
			fclose(f);
			return false;
		}
		EVP_PKEY_free(pkey);
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		rewind(f);
		rs_key = calloc(1, (size_t) n + 1);
		if (!rs_key || fread(rs_key, 1, (size_t) n, f) != (size_t) n)
		{
			gw_log(GW_LOG_ERROR, "cannot read %s", gw_conf.jwt_public_key_file);
			fclose(f);
			return false;
		}
		rs_key_len = (int) n;
		fclose(f);
	}
	return hs_key || rs_key;
}

const char *
gw_auth_reason(gw_auth_result r)
{
	switch (r)
	{
		case GW_AUTH_OK:
			return "ok";
		case GW_AUTH_MISSING:
			return "missing access_token";
		case GW_AUTH_MALFORMED:
			return "malformed token";
		case GW_AUTH_ALGORITHM:
			return "token algorithm not accepted";
		case GW_AUTH_SIGNATURE:
			return "invalid token signature";
		case GW_AUTH_EXPIRED:
			return "token expired or without exp";
		case GW_AUTH_NOT_YET_VALID:
			return "token not yet valid";
		case GW_AUTH_AUDIENCE:
			return "token audience not accepted";
		case GW_AUTH_ISSUER:
			return "token issuer not accepted";
		case GW_AUTH_SUBJECT:
			return "token sub is not a user id (uuid)";
	}
	return "invalid token";
}

/* Decode base64url (no padding) into out; length or -1. */
static int
b64url_decode(const char *in, size_t len, unsigned char *out, size_t outcap)
{
	uint32_t	acc = 0;
	int			bits = 0;
	size_t		n = 0;

	for (size_t i = 0; i < len; i++)
	{
		char		c = in[i];
		int			v;

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '-' || c == '+')
			v = 62;
		else if (c == '_' || c == '/')
			v = 63;
		else if (c == '=')
			break;
		else
			return -1;
		acc = (acc << 6) | (uint32_t) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			if (n >= outcap)
				return -1;
			out[n++] = (unsigned char) (acc >> bits);
		}
	}
	return (int) n;
}

/*
 * The alg of the token's header, unverified, only used to pick a key:
 * JWT_ALG_NONE stands for any algorithm other than HS256 and RS256.
 */
static jwt_alg_t
header_alg(const char *token)
{
	const char *dot = strchr(token, '.');
	unsigned char buf[1024];
	int			n;
	json_t	   *hdr;
	const char *alg;
	jwt_alg_t	result = JWT_ALG_INVAL;

	if (!dot || dot == token || (size_t) (dot - token) > 1300)
		return JWT_ALG_INVAL;
	n = b64url_decode(token, (size_t) (dot - token), buf, sizeof(buf));
	if (n <= 0)
		return JWT_ALG_INVAL;
	hdr = json_loadb((const char *) buf, (size_t) n, 0, NULL);
	if (!hdr)
		return JWT_ALG_INVAL;
	alg = json_string_value(json_object_get(hdr, "alg"));
	if (alg && strcmp(alg, "HS256") == 0)
		result = JWT_ALG_HS256;
	else if (alg && strcmp(alg, "RS256") == 0)
		result = JWT_ALG_RS256;
	else if (alg)
		result = JWT_ALG_NONE;	/* any other algorithm: never accepted */
	json_decref(hdr);
	return result;
}

/* A numeric claim as seconds; false when absent or not a number. */
static bool
claim_time(json_t *claims, const char *name, double *out)
{
	json_t	   *v = json_object_get(claims, name);

	if (!v || !json_is_number(v))
		return false;
	*out = json_number_value(v);
	return true;
}

static bool
audience_ok(json_t *claims, const char *want)
{
	json_t	   *aud = json_object_get(claims, "aud");
	size_t		i;
	json_t	   *v;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (json_is_array(aud))
		json_array_foreach(aud, i, v)
			if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
			return true;
	return false;
}

gw_auth_result
gw_auth_verify(const char *token, gw_uuid sub, double *expiry)
{
	jwt_alg_t	alg;
	jwt_t	   *jwt = NULL;
	char	   *claims_text;
	json_t	   *claims;
	gw_auth_result r = GW_AUTH_OK;
	const unsigned char *key;
	int			key_len;
	double		exp,
				nbf;
	double		now = (double) time(NULL);
	const char *s;

	if (!token || !token[0])
		return GW_AUTH_MISSING;
	if (strlen(token) > MAX_TOKEN_LEN)
		return GW_AUTH_MALFORMED;

	alg = header_alg(token);
	if (alg == JWT_ALG_HS256 && hs_key)
		key = hs_key, key_len = hs_key_len;
	else if (alg == JWT_ALG_RS256 && rs_key)
		key = rs_key, key_len = rs_key_len;
	else
		return alg == JWT_ALG_INVAL ? GW_AUTH_MALFORMED : GW_AUTH_ALGORITHM;

	if (jwt_decode(&jwt, token, key, key_len) != 0 || !jwt)
		return GW_AUTH_SIGNATURE;
	if (jwt_get_alg(jwt) != alg)
	{
		jwt_free(jwt);
		return GW_AUTH_ALGORITHM;
	}
	claims_text = jwt_get_grants_json(jwt, NULL);
	jwt_free(jwt);
	claims = claims_text ? json_loads(claims_text, 0, NULL) : NULL;
	free(claims_text);
	if (!json_is_object(claims))
	{
		json_decref(claims);
		return GW_AUTH_MALFORMED;
	}

	if (!claim_time(claims, "exp", &exp) || now > exp + gw_conf.jwt_leeway)
		r = GW_AUTH_EXPIRED;
	else if (claim_time(claims, "nbf", &nbf) && now + gw_conf.jwt_leeway < nbf)
		r = GW_AUTH_NOT_YET_VALID;
	else if (gw_conf.jwt_audience[0] && !audience_ok(claims, gw_conf.jwt_audience))
		r = GW_AUTH_AUDIENCE;
	else if (gw_conf.jwt_issuer[0] &&
			 (!(s = json_string_value(json_object_get(claims, "iss"))) ||
			  strcmp(s, gw_conf.jwt_issuer) != 0))
		r = GW_AUTH_ISSUER;
	else if (!(s = json_string_value(json_object_get(claims, "sub"))) ||
			 !gw_uuid_parse(s, strlen(s), sub))
		r = GW_AUTH_SUBJECT;
	json_decref(claims);
	if (r == GW_AUTH_OK)
		*expiry = exp;
	return r;
}
