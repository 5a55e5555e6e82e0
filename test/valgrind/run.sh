#!/bin/bash
# The pg_regress suite (test/sql) against a server running under Valgrind's
# memcheck: every backend, background worker (jobq's in-server workers
# included) and auxiliary process.  See test/valgrind/README.md.
#
#   test/valgrind/run.sh              (as root or as the postgres user; slow)
#   VALGRIND_TESTS="02_enqueue 06_checkpoint" test/valgrind/run.sh
#   VALGRIND_SUITES="regress pgtap fuzz" test/valgrind/run.sh   what to run
#                                     (default "regress pgtap"; fuzz: test/fuzz
#                                     with FUZZ_CALLS, default 500 here)
#   VALGRIND_OPTS="--track-origins=no" test/valgrind/run.sh  extra valgrind options
#
# Exit status: 0 when Valgrind reported no error whose stack passes through
# jobq.so; 1 otherwise (the errors are printed with their stacks).  Errors
# that do not involve jobq are listed as a summary (Debian's server is not
# built with USE_VALGRIND, so memcheck does not know palloc's chunks and
# reports some PostgreSQL false positives; test/valgrind/postgres.supp
# suppresses the known ones).  Regression diffs (timing under Valgrind) are
# shown but do not fail the run.  Scratch space: a fresh /tmp/jobq-valgrind.*
# directory, kept when the run fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PGBIN=${PGBIN:-$(pg_config --bindir)}
PGXS_SRC=$(dirname "$(dirname "$(pg_config --pgxs)")")
SUITES=${VALGRIND_SUITES:-regress pgtap}

command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 2; }

WORK=$(mktemp -d /tmp/jobq-valgrind.XXXXXX)
chmod 755 "$WORK"
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$WORK"
  asuser() { runuser -u postgres -- env PATH="$PGBIN:$PATH" "$@"; }
else
  asuser() { env PATH="$PGBIN:$PATH" "$@"; }
fi
port=$(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0)->sockport')
DATA=$WORK/data
SOCK=$WORK/sock
VGLOG=$WORK/valgrind

# PostgreSQL's own suppression file when a source tree or package ships it,
# plus ours
SUPPS=(--suppressions="$ROOT/test/valgrind/postgres.supp")
pgsupp=$(find / -xdev -name valgrind.supp -path '*postgres*' 2>/dev/null | head -1)
[ -n "$pgsupp" ] && SUPPS+=(--suppressions="$pgsupp")

asuser mkdir -p "$SOCK" "$VGLOG"
asuser initdb -D "$DATA" -A trust -U postgres --no-sync >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log"; exit 2; }
{
  cat "$ROOT/test/jobq.conf"
  echo "port = $port"
  echo "listen_addresses = ''"
  echo "unix_socket_directories = '$SOCK'"
  echo "fsync = off"
  echo "autovacuum = off"                 # fewer processes under valgrind
  echo "max_connections = 20"
  echo "shared_buffers = 16MB"
  echo "dynamic_shared_memory_type = mmap"
  echo "max_parallel_workers_per_gather = 0"
  echo "log_line_prefix = '%m [%p] '"
  echo "logging_collector = off"
} | asuser tee -a "$DATA/postgresql.conf" >/dev/null

echo "== starting the server under valgrind (logs: $VGLOG)"
asuser valgrind --tool=memcheck --trace-children=yes --track-origins=yes --num-callers=40 \
  --error-limit=no --leak-check=no --read-var-info=no --gen-suppressions=all \
  --error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END \
  "${SUPPS[@]}" --log-file="$VGLOG/%p.log" ${VALGRIND_OPTS:-} \
  "$PGBIN/postgres" -D "$DATA" >"$WORK/server.log" 2>&1 &
for _ in $(seq 1 300); do
  asuser pg_isready -q -h "$SOCK" -p "$port" && break
  sleep 1
done
asuser pg_isready -q -h "$SOCK" -p "$port" || { echo "the server did not start"; tail -50 "$WORK/server.log"; exit 2; }

rc_tests=0
for suite in $SUITES; do
  case $suite in
  regress)
    tests=${VALGRIND_TESTS:-$(cd test/sql && ls *.sql | sed 's/\.sql$//' | sort)}
    asuser mkdir -p "$WORK/regress"
    echo "== pg_regress: $tests"
    # each test gets a fresh database, as in a temporary instance
    asuser psql -X -q -h "$SOCK" -p "$port" -d postgres -c 'DROP DATABASE IF EXISTS contrib_regression WITH (FORCE)'
    asuser psql -X -q -h "$SOCK" -p "$port" -d postgres -c 'CREATE DATABASE contrib_regression'
    # shellcheck disable=SC2086
    asuser "$PGXS_SRC/test/regress/pg_regress" --bindir="$PGBIN" --use-existing \
      --host="$SOCK" --port="$port" --user=postgres \
      --inputdir="$ROOT/test" --outputdir="$WORK/regress" --dbname=contrib_regression \
      $tests 2>&1 | tee "$WORK/regress.log"
    grep -qE 'All [0-9]+ tests passed' "$WORK/regress.log" || rc_tests=1
    [ -f "$WORK/regress/regression.diffs" ] && head -100 "$WORK/regress/regression.diffs"
    ;;
  pgtap)
    echo "== pgTAP"
    asuser psql -X -q -h "$SOCK" -p "$port" -d postgres -c 'DROP DATABASE IF EXISTS contrib_regression WITH (FORCE)'
    asuser psql -X -q -h "$SOCK" -p "$port" -d postgres -c 'CREATE DATABASE contrib_regression'
    asuser psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$port" -d contrib_regression \
      -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION jobq'
    # shellcheck disable=SC2046
    (cd "$ROOT" && asuser pg_prove -h "$SOCK" -p "$port" -U postgres -d contrib_regression \
      $(ls test/pgtap/*.sql | sort)) 2>&1 | tee "$WORK/pgtap.log" | tail -20
    grep -q '^Result: PASS' "$WORK/pgtap.log" || rc_tests=1
    ;;
  fuzz)
    echo "== fuzz (${FUZZ_CALLS:-500} calls)"
    asuser psql -X -q -h "$SOCK" -p "$port" -d postgres -c 'DROP DATABASE IF EXISTS contrib_regression WITH (FORCE)'
    asuser psql -X -q -h "$SOCK" -p "$port" -d postgres -c 'CREATE DATABASE contrib_regression'
    asuser psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$port" -d contrib_regression -c 'CREATE EXTENSION jobq'
    asuser env JOBQ_PGHOST="$SOCK" JOBQ_PGPORT="$port" FUZZ_PGDATA="$DATA" FUZZ_LOG="$WORK/server.log" \
      FUZZ_CALLS="${FUZZ_CALLS:-500}" FUZZ_SEED="${FUZZ_SEED:-20261127}" FUZZ_WORKER_WAIT_S=900 \
      node "$ROOT/test/fuzz/fuzz.mjs" \
      > "$WORK/fuzz.log" 2>&1
    grep -E '^not ok|^# [0-9]+ calls' "$WORK/fuzz.log"
    grep -q '^not ok' "$WORK/fuzz.log" && rc_tests=1
    ;;
  esac
done

echo "== stopping the server"
asuser pg_ctl -D "$DATA" -m fast -w -t 300 stop >/dev/null 2>&1
sleep 2

# Every error block, and whether its stack passes through jobq: a frame in
# jobq.so, or one of jobq's source files (the server itself is stripped)
JOBQ_RE="jobq[.]so|[(]($(cd src && ls *.c | sed 's/[.]c$//' | paste -sd '|'))[.]c:[0-9]+[)]"
errors=$(cat "$VGLOG"/*.log | grep -c 'VALGRINDERROR-BEGIN')
jobq_errors=$(awk -v re="$JOBQ_RE" '/VALGRINDERROR-BEGIN/{b=""; inb=1} inb{b=b $0 "\n"} /VALGRINDERROR-END/{inb=0; if (b ~ re) n++} END{print n+0}' "$VGLOG"/*.log)
echo "== valgrind: $errors error(s) not suppressed, $jobq_errors of them in jobq code"
if [ "$jobq_errors" -gt 0 ]; then
  for f in "$VGLOG"/*.log; do
    awk -v f="$f" -v re="$JOBQ_RE" '/VALGRINDERROR-BEGIN/{b=""; inb=1; next} /VALGRINDERROR-END/{inb=0; if (b ~ re) {print "-- " f; printf "%s", b}; next} inb{b=b $0 "\n"}' "$f"
  done
fi
if [ "$errors" -gt "$jobq_errors" ]; then
  echo "== errors elsewhere (most likely false positives of a server built without USE_VALGRIND), by top frame:"
  awk '/VALGRINDERROR-BEGIN/{inb=1; kind=""; top=""; next} /VALGRINDERROR-END/{inb=0; print kind " | " top; next}
       inb && kind=="" && /==[0-9]+== [A-Z]/ {sub(/^==[0-9]+== /, ""); kind=$0; next}
       inb && top=="" && /(at|by) 0x/ {sub(/^==[0-9]+== +(at|by) 0x[0-9A-F]+: /, ""); top=$0}' "$VGLOG"/*.log |
    sort | uniq -c | sort -rn | head -20
fi
crashes=$(grep -cE 'terminated by signal|PANIC|TRAP:' "$WORK/server.log")
echo "== server log: $crashes crash line(s)"
[ "$rc_tests" = 0 ] || echo "== (the test suite reported differences: expected under valgrind's timing; see $WORK)"

if [ "$jobq_errors" -gt 0 ] || [ "$crashes" -gt 0 ]; then
  echo "valgrind: FAILED (scratch kept in $WORK)"
  exit 1
fi
echo "valgrind: no error in jobq code"
[ -n "${VALGRIND_KEEP:-}" ] || rm -rf "$WORK"
exit 0
