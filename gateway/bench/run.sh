#!/bin/bash
# The gateway's fan-out benchmark on a throwaway PostgreSQL 15 cluster:
#   gateway/bench/run.sh     (CLIENTS, USERS, ROUNDS, DRIVERS, RATE, SECONDS override the defaults)
# Prints the figures and writes bench/out/fanout.json.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s jobq-gateway
[ -d test/node_modules ] || (cd test && npm ci --no-audit --no-fund --loglevel=error)
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d /tmp/jobq-gateway-bench.XXXXXX)
chmod 755 "$WORK"
port=$(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0)->sockport')
mode=$(test/pg.sh start "$WORK/pg" "$port")
trap 'test/pg.sh stop "$WORK/pg"; rm -rf "$WORK"' EXIT
GW_PGHOST=127.0.0.1 GW_PGPORT=$port GW_MODE=$mode GW_SCRATCH=$WORK node bench/fanout.mjs
