#!/bin/bash
# The jobq fuzz suite (test/fuzz/fuzz.mjs): thousands of generated calls of
# every public jobq function with hostile arguments, as four roles, then
# checks on the server, its log, the sentinel rows and the checkpoint store;
# then the in-server worker search_path check (worker_hijack.mjs).  Prints
# TAP ("ok N - ..." / "not ok N - ...") and exits non-zero when a check fails.
#
#   test/fuzz/run.sh                         a throwaway cluster of its own
#   JOBQ_PGHOST=/sock JOBQ_PGPORT=5432 test/fuzz/run.sh   an existing server
#                                            (also set FUZZ_PGDATA and FUZZ_LOG
#                                            for the store and log checks)
#   FUZZ_SEED=7 FUZZ_CALLS=20000 test/fuzz/run.sh
#
# Run as root (the server and node then run as the postgres OS user, like
# test/run.sh does) or as the postgres user.  With WORK set (test/run.sh sets
# it) the cluster lives in $WORK/fuzz, else in a fresh directory under /tmp,
# removed when every check passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PGBIN=${PGBIN:-$(pg_config --bindir)}
export ROOT PGBIN

if [ "$(id -u)" = 0 ]; then
  asuser() { runuser -u postgres -- env PATH="$PGBIN:$PATH" "$@"; }
else
  asuser() { env PATH="$PGBIN:$PATH" "$@"; }
fi

own_work=
if [ -z "${JOBQ_PGHOST:-}" ]; then
  if [ -z "${WORK:-}" ]; then
    WORK=$(mktemp -d /tmp/jobq-fuzz.XXXXXX)
    chmod 755 "$WORK"
    [ "$(id -u)" = 0 ] && chown postgres: "$WORK"
    own_work=1
  fi
  export WORK
  port=$(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0)->sockport')
  if ! test/cluster.sh start fuzz "$port"; then
    echo "not ok 1 - start a cluster for the fuzz test (see $WORK/fuzz)"
    echo "1..1"
    exit 1
  fi
  trap 'test/cluster.sh stop fuzz' EXIT
  export JOBQ_PGHOST=$WORK/fuzz/sock JOBQ_PGPORT=$port
  export FUZZ_PGDATA=$WORK/fuzz/data FUZZ_LOG=$WORK/fuzz/server.log
fi

asuser env JOBQ_PGHOST="$JOBQ_PGHOST" JOBQ_PGPORT="$JOBQ_PGPORT" \
  FUZZ_PGDATA="${FUZZ_PGDATA:-}" FUZZ_LOG="${FUZZ_LOG:-}" FUZZ_DB="${FUZZ_DB:-contrib_regression}" \
  FUZZ_SEED="${FUZZ_SEED:-20261127}" FUZZ_CALLS="${FUZZ_CALLS:-5000}" FUZZ_SKIP_HIJACK="${FUZZ_SKIP_HIJACK:-}" \
  FUZZ_WORKER_WAIT_S="${FUZZ_WORKER_WAIT_S:-120}" \
  node "$ROOT/test/fuzz/fuzz.mjs"
rc=$?

if [ -n "$own_work" ]; then
  if [ "$rc" = 0 ]; then
    test/cluster.sh stop fuzz
    trap - EXIT
    rm -rf "$WORK"
  else
    echo "# scratch kept in $WORK"
  fi
fi
exit $rc
