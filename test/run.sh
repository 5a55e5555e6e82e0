#!/bin/bash
# Run jobq's test suites against real PostgreSQL 15 servers started here, and
# end with one line "N passed, N failed".
#
#   test/run.sh                      every suite
#   SUITES="regress pgtap" test/run.sh   some of them
#   SUITES=node NODE_TESTS=test/node/stores.test.mjs test/run.sh   one node file
#
# Suites: regress (pg_regress), isolation (pg_isolation_regress), pgtap
# (pg_prove), tap (prove + PostgreSQL::Test::Cluster: crashes, restarts),
# node (node --test: NOTIFY, blob stores, HTTP providers), gateway
# (gateway/test/run.sh: jobq-gateway, WebSocket clients, headless Chromium),
# fuzz (test/fuzz/run.sh: thousands of hostile calls of every function).
#
# PostgreSQL refuses to run as root, so as root every server and every test
# client runs as the postgres OS user.  Scratch space is a fresh directory
# under /tmp, kept when something fails (its path is printed).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PGBIN=$(pg_config --bindir)
PGXS_SRC=$(dirname "$(dirname "$(pg_config --pgxs)")")
SUITES=${SUITES:-"regress isolation pgtap tap node gateway fuzz"}

WORK=$(mktemp -d /tmp/jobq-test.XXXXXX)
chmod 755 "$WORK"
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$WORK"
  asuser() { runuser -u postgres -- env PATH="$PGBIN:$PATH" "$@"; }
else
  asuser() { env PATH="$PGBIN:$PATH" "$@"; }
fi
export ROOT WORK PGBIN PGXS_SRC

# a free TCP port on 127.0.0.1, so parallel runs do not collide
free_port() {
  perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0)->sockport'
}

PASSED=0
FAILED=0
FAILURES=()

# add PASS FAIL NAME: fold one suite's counts into the totals
add() {
  PASSED=$((PASSED + $1))
  FAILED=$((FAILED + $2))
  if [ "$2" -gt 0 ]; then FAILURES+=("$3"); fi
  echo "== $3: $1 passed, $2 failed"
}

# count_tap FILE: "passed failed" from TAP output lines; a skipped test is not a pass
count_tap() {
  local ok notok
  ok=$(grep -E '^\s*ok [0-9]+' "$1" | grep -cviE '#\s*skip' || true)
  notok=$(grep -cE '^\s*not ok [0-9]+' "$1")
  echo "$ok $notok"
}

# add_pg_regress LOG NAME: counts of a pg_regress run; a run that stopped
# early (missing expected file, server failure) counts as one more failure
add_pg_regress() {
  local ok failed
  ok=$(grep -cE '\.\.\. +ok' "$1")
  failed=$(grep -cE '\.\.\. +FAILED' "$1")
  grep -qE 'All [0-9]+ tests passed|[0-9]+ of [0-9]+ tests failed' "$1" || failed=$((failed + 1))
  add "$ok" "$failed" "$2"
}

suite_regress() {
  local tests out=$WORK/regress
  tests=$(cd test/sql && ls *.sql 2>/dev/null | sed 's/\.sql$//' | sort)
  [ -n "$tests" ] || return 0
  asuser mkdir -p "$out"
  asuser "$PGXS_SRC/test/regress/pg_regress" --bindir="$PGBIN" \
    --inputdir="$ROOT/test" --outputdir="$out" \
    --temp-instance="$out/tmp_check" --temp-config="$ROOT/test/jobq.conf" \
    --dbname=contrib_regression $tests 2>&1 | tee "$WORK/regress.log"
  [ -f "$out/regression.diffs" ] && head -200 "$out/regression.diffs"
  add_pg_regress "$WORK/regress.log" regress
}

suite_isolation() {
  local tests out=$WORK/isolation
  tests=$(cd test/specs && ls *.spec 2>/dev/null | sed 's/\.spec$//' | sort)
  [ -n "$tests" ] || return 0
  asuser mkdir -p "$out"
  asuser "$PGXS_SRC/test/isolation/pg_isolation_regress" --bindir="$PGBIN" \
    --inputdir="$ROOT/test" --outputdir="$out" \
    --temp-instance="$out/tmp_check" --temp-config="$ROOT/test/jobq.conf" \
    --dbname=contrib_regression $tests 2>&1 | tee "$WORK/isolation.log"
  [ -f "$out/regression.diffs" ] && head -200 "$out/regression.diffs"
  add_pg_regress "$WORK/isolation.log" isolation
}

suite_pgtap() {
  local files
  files=$(ls test/pgtap/*.sql 2>/dev/null | sort)
  [ -n "$files" ] || return 0
  local port; port=$(free_port)
  test/cluster.sh start pgtap "$port" || { add 0 1 "pgtap (cluster start)"; return; }
  (cd "$ROOT" && asuser pg_prove -v -h "$WORK/pgtap/sock" -p "$port" -U postgres \
    -d contrib_regression $files) > "$WORK/pgtap.log" 2>&1
  cat "$WORK/pgtap.log"
  test/cluster.sh stop pgtap
  # shellcheck disable=SC2046
  add $(count_tap "$WORK/pgtap.log") pgtap
}

suite_tap() {
  local files
  files=$(ls test/t/*.pl 2>/dev/null | sort)
  [ -n "$files" ] || return 0
  asuser mkdir -p "$WORK/tap"
  (cd "$WORK/tap" && asuser env TESTDIR="$WORK/tap" PG_REGRESS="$PGXS_SRC/test/regress/pg_regress" \
     JOBQ_ROOT="$ROOT" prove -v -I "$PGXS_SRC/test/perl" -I "$ROOT/test/t" \
     $(for f in $files; do echo "$ROOT/$f"; done)) > "$WORK/tap.log" 2>&1
  cat "$WORK/tap.log"
  # shellcheck disable=SC2046
  add $(count_tap "$WORK/tap.log") tap
}

suite_node() {
  local files
  # NODE_TESTS="test/node/stores.test.mjs ..." runs only those files
  files=${NODE_TESTS:-$(ls test/node/*.test.mjs 2>/dev/null | sort)}
  [ -n "$files" ] || return 0
  local port; port=$(free_port)
  test/cluster.sh start node "$port" || { add 0 1 "node (cluster start)"; return; }
  (cd "$ROOT" && asuser env JOBQ_PGHOST="$WORK/node/sock" JOBQ_PGPORT="$port" \
     node --test --test-concurrency=1 --test-reporter=tap $files) > "$WORK/node.log" 2>&1
  cat "$WORK/node.log"
  test/cluster.sh stop node
  # shellcheck disable=SC2046
  add $(count_tap "$WORK/node.log") node
}

suite_gateway() {
  [ -x gateway/test/run.sh ] || return 0
  # it runs its own cluster and switches to the postgres user itself
  gateway/test/run.sh > "$WORK/gateway.log" 2>&1
  grep -vE '^[0-9]+ passed, [0-9]+ failed$' "$WORK/gateway.log"
  local p f
  read -r p f < <(sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p' "$WORK/gateway.log" | tail -1)
  add "${p:-0}" "${f:-1}" gateway
}

suite_fuzz() {
  [ -x test/fuzz/run.sh ] || return 0
  local rc p f
  test/fuzz/run.sh > "$WORK/fuzz.log" 2>&1
  rc=$?
  cat "$WORK/fuzz.log"
  read -r p f < <(count_tap "$WORK/fuzz.log")
  # a run that died before printing its checks still counts as a failure
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  add "$p" "$f" fuzz
}

for s in $SUITES; do
  echo "== suite $s"
  "suite_$s"
done

if [ "$FAILED" -gt 0 ]; then
  echo "failed suites: ${FAILURES[*]}; scratch kept in $WORK"
else
  rm -rf "$WORK"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
