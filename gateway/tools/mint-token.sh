#!/bin/sh
# mint-token.sh SUB [SECONDS]: print an HS256 access token for user SUB (a uuid),
# valid for SECONDS (default 3600), signed with $JOBQ_GATEWAY_JWT_SECRET.
# For demos and local testing; a real deployment gets tokens from its identity provider.
# Adds aud/iss when JOBQ_GATEWAY_JWT_AUDIENCE / JOBQ_GATEWAY_JWT_ISSUER are set.
set -eu
sub=${1:?usage: mint-token.sh SUB [SECONDS]}
ttl=${2:-3600}
: "${JOBQ_GATEWAY_JWT_SECRET:?set JOBQ_GATEWAY_JWT_SECRET}"
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
claims="{\"sub\":\"$sub\",\"iat\":$now,\"exp\":$((now + ttl))"
[ -n "${JOBQ_GATEWAY_JWT_AUDIENCE:-}" ] && claims="$claims,\"aud\":\"$JOBQ_GATEWAY_JWT_AUDIENCE\""
[ -n "${JOBQ_GATEWAY_JWT_ISSUER:-}" ] && claims="$claims,\"iss\":\"$JOBQ_GATEWAY_JWT_ISSUER\""
claims="$claims}"
input=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url).$(printf '%s' "$claims" | b64url)
sig=$(printf '%s' "$input" | openssl dgst -sha256 -hmac "$JOBQ_GATEWAY_JWT_SECRET" -binary | b64url)
printf '%s.%s\n' "$input" "$sig"
