#!/bin/bash
# Test jobq-gateway end to end and end with one line "N passed, N failed".
#
#   gateway/test/run.sh                  every test file (test/*.test.mjs)
#   gateway/test/run.sh hub auth         some of them
#
# Builds the gateway, starts a throwaway PostgreSQL 15 cluster (test/pg.sh:
# the installed jobq extension when it can be created, else a stand-in
# schema), and runs the node --test files one after another (one of them
# restarts the server), printing TAP.  Each file starts its own gateway on a
# free 127.0.0.1 port with the settings it tests.  PostgreSQL refuses to run
# as root, so as root the server and the tests run as the postgres OS user.
# The browser test saves test/artifacts/progress.png.  Scratch space is kept
# when something fails (its path is printed).
set -uo pipefail
cd "$(dirname "$0")/.."
GW=$PWD
PGBIN=$(pg_config --bindir)

make -s jobq-gateway || { echo "0 passed, 1 failed"; exit 1; }
if [ ! -d test/node_modules ]; then
  (cd test && npm ci --no-audit --no-fund --loglevel=error) || { echo "0 passed, 1 failed"; exit 1; }
fi

WORK=$(mktemp -d /tmp/jobq-gateway-test.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/home" "$WORK/scratch" test/artifacts
if [ "$(id -u)" = 0 ]; then
  chown -R postgres: "$WORK" test/artifacts
  asuser() { runuser -u postgres -- env PATH="$PGBIN:$PATH" "$@"; }
else
  asuser() { env PATH="$PGBIN:$PATH" "$@"; }
fi

port=$(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0)->sockport')
if ! mode=$(test/pg.sh start "$WORK/pg" "$port"); then
  echo "could not start PostgreSQL; see $WORK/pg"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "# PostgreSQL on 127.0.0.1:$port, jobq: $mode"

files=()
if [ $# -gt 0 ]; then
  for f in "$@"; do files+=("test/$f.test.mjs"); done
else
  files=(test/*.test.mjs)
fi

asuser env HOME="$WORK/home" GW_BIN="${GW_BIN:-$GW/jobq-gateway}" GW_PGHOST=127.0.0.1 GW_PGPORT="$port" \
  GW_PGDATA="$WORK/pg/data" GW_MODE="$mode" GW_SCRATCH="$WORK/scratch" GW_ARTIFACTS="$GW/test/artifacts" \
  node --test --test-reporter=tap --test-concurrency=1 "${files[@]}" 2>&1 | tee "$WORK/tap.log"

test/pg.sh stop "$WORK/pg"

passed=$(grep -cE '^ok [0-9]+' "$WORK/tap.log")
failed=$(grep -cE '^not ok [0-9]+' "$WORK/tap.log")
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
if [ "$failed" -gt 0 ]; then
  echo "# scratch kept in $WORK (server log: $WORK/pg/server.log)"
else
  rm -rf "$WORK"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
