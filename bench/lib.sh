# Shared helpers for bench/run.sh and bench/plans.sh (source it; bash).
#
# start_cluster [EXTRA_CONF]: initdb a throwaway cluster under a new temp dir,
# start it as the postgres OS user (PostgreSQL refuses to run as root), create
# database $DB with the jobq extension.  The EXIT trap stops it and removes the
# directory (BENCH_KEEP=1 keeps the directory).
set -euo pipefail
shopt -s inherit_errexit

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
DB=jobq_bench
PORT=${BENCH_PORT:-54329}
NPROC=$(nproc)
PGPID=
WORK=

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ $(id -u) == 0 ]]; then
  aspg() { runuser -u postgres -- "$@"; }
else
  aspg() { "$@"; }
fi

cleanup() {
  local rc=$?
  if [[ -n $PGPID ]] && kill -0 "$PGPID" 2>/dev/null; then
    kill -INT "$PGPID" 2>/dev/null || true          # fast shutdown of the postmaster we started
    for _ in $(seq 1 120); do kill -0 "$PGPID" 2>/dev/null || break; sleep 0.5; done
  fi
  if [[ -n $WORK ]]; then
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "cluster directory kept: $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sql() { PGOPTIONS="-c client_min_messages=warning" aspg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -U postgres -At -d "$DB" "$@"; }

# pgb ARGS...: pgbench against the bench database (prepared statements)
# (BENCH_PGOPTIONS: session settings for the benchmark clients, e.g. "-c jobq.notify_progress=off")
pgb() { PGOPTIONS="${BENCH_PGOPTIONS:-}" aspg "$PGBIN/pgbench" -h "$WORK" -p "$PORT" -U postgres -n -M prepared "$@" "$DB"; }

start_cluster() {
  [[ -x $PGBIN/postgres ]] || die "no PostgreSQL binaries in $PGBIN"
  [[ -f $("$PGBIN/pg_config" --sharedir)/extension/jobq.control ]] \
    || die "jobq is not installed for $PGBIN (make install)"
  WORK=$(mktemp -d /tmp/jobq-bench.XXXXXX)
  chmod 755 "$WORK"
  [[ $(id -u) == 0 ]] && chown postgres: "$WORK"
  aspg "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
  cat >>"$WORK/data/postgresql.conf" <<CONF

# ---- jobq bench (bench/lib.sh); the peer harness's settings ----
listen_addresses = ''
port = $PORT
unix_socket_directories = '$WORK'
max_connections = 200
shared_buffers = 1GB
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
max_wal_size = 8GB
checkpoint_timeout = 30min
autovacuum = on
jit = off
log_min_messages = warning
log_checkpoints = on
shared_preload_libraries = 'jobq'
jobq.workers = 0              # no in-server worker: only the benchmark touches the queue
jobq.database = '$DB'
${1:-}
CONF
  aspg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 60 start >/dev/null \
    || { cat "$WORK/server.log" >&2 || true; die "postgres did not start"; }
  PGPID=$(head -1 "$WORK/data/postmaster.pid")
  log "postgres started (pid $PGPID) in $WORK"
  aspg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -U postgres -d postgres \
    -c "CREATE DATABASE $DB" >/dev/null
  sql -c "CREATE EXTENSION jobq" >/dev/null
  # the pgbench scripts, where the postgres OS user can read them
  S=$WORK/scripts
  mkdir -p "$S"
  cp "$BENCH_ROOT"/bench/sql/*.sql "$S/"
  [[ $(id -u) == 0 ]] && chown -R postgres: "$S"
  return 0
}

# empty_table: TRUNCATE, VACUUM ANALYZE, CHECKPOINT (the start of every enqueue run)
empty_table() {
  sql -c "TRUNCATE jobq.jobs CASCADE" -c "VACUUM ANALYZE jobq.jobs" -c "CHECKPOINT" >/dev/null
}

# prefill N: a queue of N queued jobs (the start of every claim run).  CHECKPOINT comes before
# the fill, as in the peer harness: a busy queue claims jobs in the checkpoint cycle that
# inserted them, so the timed claims do not pay a full-page write for the first touch of
# every page.  The fill uses enqueue_many, 10,000 jobs per call and transaction.
prefill() {
  local n=$1 cmds=(-c "TRUNCATE jobq.jobs CASCADE" -c "CHECKPOINT")
  for _ in $(seq 1 $(( (n + 9999) / 10000 ))); do
    cmds+=(-c "SELECT count(*) FROM jobq.enqueue_many('noop', array_fill('{\"task\": \"noop\"}'::jsonb, ARRAY[10000]))")
  done
  sql "${cmds[@]}" -c "VACUUM ANALYZE jobq.jobs" >/dev/null
}

# median VALUES...: "nan" for none
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# CPU (USER_HZ ticks), to flag runs disturbed by other work.  machine_ticks: user+nice+system
# of the whole machine.  bench_ticks [PID...]: this benchmark's share: the postmaster and its
# live children (with the backends it reaped), this script's shell with the children it reaped
# (pgbench, psql), and PID...  Read from /proc/$$: `times` inside $(...) runs in a subshell,
# which has reaped nothing.
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4}' /proc/stat; }
bench_ticks() {
  local t=0 p f
  for p in "$PGPID" $(ps -o pid= --ppid "$PGPID" 2>/dev/null) "$$" "$@"; do
    f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
    # after "pid (comm)": fields 12..15 = utime stime cutime cstime
    t=$(( t + $(awk '{print $12 + $13 + $14 + $15}' <<<"$f") ))
  done
  echo "$t"
}
