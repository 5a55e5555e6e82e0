#!/usr/bin/env bash
# In-server benchmarks of jobq (issues 3, 4, 5, 6 and 8), each side by side with its raw-SQL
# limit where one exists, on throwaway clusters (bench/lib.sh).  See bench/README.md, section
# "In-server benchmarks", for what each figure means.
#
#   ./bench/inserver.sh                                  # everything, about 30 min on 2 cores
#   INS_SECTIONS="noop latency" ./bench/inserver.sh      # some sections
#   INS_SMOKE=1 ./bench/inserver.sh                      # tiny sizes, a few minutes
#
# Sections (INS_SECTIONS, in this order): noop latency units notify provider scale.
# The report (markdown) goes to stdout and bench/out/inserver-<run id>/report.md; progress to
# stderr; logs, raw figures (results.tsv) and perf data stay in that directory (git-ignored).
: "${BENCH_PORT:=54339}"          # not run.sh's port, so the two never meet
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$BENCH_ROOT"
IDIR=$BENCH_ROOT/bench/inserver

# ---- knobs -------------------------------------------------------------------------------------
SMOKE=${INS_SMOKE:-0}
if [[ $SMOKE == 1 ]]; then small() { echo "$2"; } else small() { echo "$1"; }; fi
SECTIONS=${INS_SECTIONS:-"noop latency units notify provider scale"}
RUNS=${INS_RUNS:-$(small 3 1)}
NOOP_JOBS=${INS_NOOP_JOBS:-$(small 50000 3000)}
NOOP_WORKERS=${INS_NOOP_WORKERS:-"1 2 4"}
RAW_BATCHES=${INS_RAW_BATCHES:-"10 100"}
RAW_CLIENTS=${INS_RAW_CLIENTS:-"1 2"}
LAT_SAMPLES=${INS_LAT_SAMPLES:-$(small 50 5)}
LAT_IDLE_SAMPLES=${INS_LAT_IDLE_SAMPLES:-$(small 15 2)}
LAT_IDLE_WAIT=${INS_LAT_IDLE_WAIT:-11}
LAT_ASYNC_SAMPLES=${INS_LAT_ASYNC_SAMPLES:-$(small 50 5)}
UNITS=${INS_UNITS:-$(small 200 20)}
UNIT_SIZES=${INS_UNIT_SIZES:-"4096 1048576"}
REMOTE_SIZES=${INS_REMOTE_SIZES:-"4096 1048576"}
STORES=${INS_STORES:-"file azurite s3rver"}
CRASH_TRIALS=${INS_CRASH_TRIALS:-$(small 5 1)}
NOTIFY_UNITS=${INS_NOTIFY_UNITS:-$(small 2000 200)}
ENQ_SECONDS=${INS_ENQ_SECONDS:-$(small 15 2)}
ENQ_CLIENTS=${INS_ENQ_CLIENTS:-8}
PROV_JOBS=${INS_PROV_JOBS:-$(small 3000 300)}
PROV_WORKERS=${INS_PROV_WORKERS:-"1 2 4"}
PROV_PERF_JOBS=${INS_PROV_PERF_JOBS:-$(small 10000 500)}
PERF=${INS_PERF:-1}
SCALE_ROWS=${INS_SCALE_ROWS:-$(small "1000000 5000000" "20000 50000")}
SCALE_SECONDS=${INS_SCALE_SECONDS:-$(small 7 2)}
SCALE_CLIENTS=${INS_SCALE_CLIENTS:-1}
SCALE_PREFILL=${INS_SCALE_PREFILL:-$(small 200000 30000)}
SCALE_DEPTH_QUEUED=${INS_SCALE_DEPTH_QUEUED:-1000}
BLOAT_JOBS=${INS_BLOAT_JOBS:-$(small 1000000 20000)}
# INS_EXTRA_CONF: postgresql.conf lines for every cluster (the section's own settings win)
NODE=${NODE:-node}
BIN=$BENCH_ROOT/test/node_modules/.bin

RUN_ID=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=${INS_OUT:-$BENCH_ROOT/bench/out/inserver-$RUN_ID}    # not BENCH_OUT: run.sh writes there
mkdir -p "$OUT"
LOG=$OUT/bench.log
RESULTS=$OUT/results.tsv
: >"$RESULTS"
: >"$LOG"
REPORT_PARTS=()

# ---- helpers -----------------------------------------------------------------------------------

SERVER_PIDS=()    # node servers started by this script (stopped at exit, by pid)
PERF_PID=
on_exit() {
  local rc=$?
  set +e                 # whatever fails here, the cluster must still be stopped
  [[ -n $PERF_PID ]] && kill -INT "$PERF_PID" 2>/dev/null
  for p in "${SERVER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  [[ -n $WORK ]] && cp "$WORK/server.log" "$OUT/server-$CLUSTER_NAME.log" 2>/dev/null
  (exit "$rc")
  cleanup                # bench/lib.sh: stops the postmaster, removes its directory, exits with rc
}
trap on_exit EXIT

note() { echo "$*" >>"$LOG"; }
fmt0() { awk -v x="$1" 'BEGIN {if (x == "nan" || x == "") print "n/a"; else {s = sprintf("%.0f", x); n = length(s); o = ""; for (i = 1; i <= n; i++) {o = o substr(s, i, 1); if ((n - i) % 3 == 0 && i < n && substr(s, i, 1) != "-") o = o ","} print o}}'; }
fmtn() { awk -v x="$2" -v d="$1" 'BEGIN {if (x == "nan" || x == "") print "n/a"; else printf "%.*f\n", d, x}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0 || a == "nan" || b == "nan") print "nan"; else printf "%.3f\n", a / b}'; }
runs_list() { local d=$1; shift; printf '%s\n' "$@" | awk -v d="$d" '{printf "%s%.*f", (NR > 1 ? " / " : ""), d, $1} END {print ""}'; }
# record KEY VALUE [RUNS...]: one figure for the report and the summary
declare -A FIG=() FIGRUNS=()
record() { local k=$1 v=$2; shift 2; FIG[$k]=$v; FIGRUNS[$k]="$*"; printf '%s\t%s\t%s\n' "$k" "$v" "$*" >>"$RESULTS"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

# stop_cluster: stop the cluster started by start_cluster and remove its directory
stop_cluster() {
  if [[ -n $PGPID ]] && kill -0 "$PGPID" 2>/dev/null; then
    kill -INT "$PGPID" 2>/dev/null || true
    for _ in $(seq 1 240); do kill -0 "$PGPID" 2>/dev/null || break; sleep 0.25; done
  fi
  if [[ -n $WORK ]]; then
    cp "$WORK/server.log" "$OUT/server-$CLUSTER_NAME.log" 2>/dev/null || true
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "cluster directory kept: $WORK"; else rm -rf "$WORK"; fi
  fi
  PGPID= WORK=
}

# new_cluster NAME [EXTRA_CONF]: a fresh cluster with the bench functions
CLUSTER_NAME=
new_cluster() {
  stop_cluster
  CLUSTER_NAME=$1
  start_cluster "log_line_prefix = '%m [%p] '
${INS_EXTRA_CONF:-}
$2" 2>>"$LOG"
  cp "$IDIR"/*.sql "$S/"
  [[ $(id -u) == 0 ]] && chown -R postgres: "$S"
  sql -f "$S/setup.sql" >/dev/null
  build_seen "$1"
  note "== cluster $1 ($WORK), jobq.so md5 $SO_MD5; extra conf: $(tr '\n' ';' <<<"$2")"
  return 0
}

# build_seen WHERE: note the md5 of the installed jobq.so each time a postmaster starts (other
# sessions may reinstall it during the run; a postmaster keeps the library it preloaded)
declare -A BUILDS=()
build_seen() {
  SO_MD5=$(md5sum "$("$PGBIN/pg_config" --pkglibdir)/jobq.so" | cut -c1-12)
  BUILDS[$SO_MD5]+="$1 "
}

# restart_with SETTING=VALUE...: ALTER SYSTEM and restart (for postmaster settings)
restart_with() {
  local kv
  for kv in "$@"; do sql -c "ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}'" >/dev/null; done
  aspg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 120 restart -m fast >/dev/null \
    || die "restart failed"
  PGPID=$(head -1 "$WORK/data/postmaster.pid")
  build_seen "$CLUSTER_NAME($*)"
}

# reload_with SETTING=VALUE...: ALTER SYSTEM and reload, then wait until a new session sees it
reload_with() {
  local kv
  for kv in "$@"; do sql -c "ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}'" >/dev/null; done
  sql -c "SELECT pg_reload_conf()" >/dev/null
  for kv in "$@"; do
    for _ in $(seq 1 100); do
      [[ $(sql -c "SELECT current_setting('${kv%%=*}')") == "${kv#*=}" ]] && break
      sleep 0.1
    done
  done
  sleep 1      # the workers reload at the top of their loop (SIGHUP sets their latch)
}

# wait_workers N: until N in-server workers are up and idle
wait_workers() {
  for _ in $(seq 1 300); do
    [[ $(sql -c "SELECT count(*) FROM jobq.worker_status WHERE state = 'idle'" 2>/dev/null || echo 0) == "$1" ]] && return 0
    sleep 0.1
  done
  die "expected $1 idle workers; worker_status: $(sql -c 'SELECT * FROM jobq.worker_status' | tr '\n' ' ')"
}

# fill N TYPE QUEUE: N queued jobs, 1000 per enqueue_many call and transaction
fill() {
  local n=$1 type=$2 q=$3 cmds=() left=$1 b
  while (( left > 0 )); do
    b=$(( left < 1000 ? left : 1000 ))
    cmds+=(-c "SELECT count(*) FROM jobq.enqueue_many('$type', array_fill('{\"task\": \"noop\"}'::jsonb, ARRAY[$b]), queue => '$q')")
    left=$(( left - b ))
  done
  sql "${cmds[@]}" >/dev/null
}

OTHER=()          # per timed window: CPU% of one core used outside this benchmark
other_begin() { OB_M=$(machine_ticks); OB_B=$(bench_ticks "${SERVER_PIDS[@]}"); OB_T=$(now); }
other_end() {
  local m b t pct
  m=$(machine_ticks); b=$(bench_ticks "${SERVER_PIDS[@]}"); t=$(now)
  pct=$(awk -v x=$(( (m - OB_M) - (b - OB_B) )) -v hz="$(getconf CLK_TCK)" -v d="$(elapsed "$OB_T" "$t")" \
        'BEGIN {f = x / hz / d * 100; printf "%.0f", f < 0 ? 0 : f}')
  OTHER+=("$pct")
  note "   other processes' CPU during the window: $pct% of one core"
}

wal_lsn() { sql -c "SELECT pg_current_wal_lsn()"; }
wal_since() { sql -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$1')"; }

# start_server NAME REGEX CMD...: start a node server in the background; sets SRV_PORT
start_server() {
  local name=$1 re=$2; shift 2
  local f=$OUT/$name.out
  "$@" >"$f" 2>&1 &
  local pid=$!
  SERVER_PIDS+=("$pid")
  for _ in $(seq 1 600); do
    SRV_PORT=$(grep -oP "$re" "$f" | head -1 || true)
    [[ -n $SRV_PORT ]] && { log "$name listening on 127.0.0.1:$SRV_PORT (pid $pid)"; return 0; }
    kill -0 "$pid" 2>/dev/null || { cat "$f" >&2; die "$name exited"; }
    sleep 0.1
  done
  die "$name did not start (see $f)"
}
stop_servers() {
  local p
  for p in "${SERVER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SERVER_PIDS=()
}

# pgbench output -> tps (without initial connection time)
pgb_tps() { grep -oP '^tps = \K[0-9.]+(?= \(without initial connection time\))' "$1"; }

section() { log "---- $* ----"; note ""; note "==== $* ($(date -u +%H:%M:%S))"; }

# ================================================================================================
# issue 3: in-server no-op throughput vs the raw batched claim+complete pair
# ================================================================================================

# noop_run HANDLER: fill, VACUUM ANALYZE, CHECKPOINT, register (+1 kick job, so a worker is woken
# at commit), wait until the queue is empty.  Sets RATE (jobs/s, first claim to last completion),
# E2E (jobs/s, register commit to empty queue), WALB.
noop_run() {
  local h=$1 n=$(( NOOP_JOBS + 1 )) t0 t1 lsn span done_ e2e
  sql -c "SELECT jobq.unregister('noop_b')" -c "TRUNCATE jobq.jobs CASCADE" >/dev/null
  fill "$NOOP_JOBS" noop_b bench
  sql -c "VACUUM ANALYZE jobq.jobs" -c "CHECKPOINT" >/dev/null
  lsn=$(wal_lsn)
  other_begin
  read -r t0 t1 <<<"$(sql -c "BEGIN" \
      -c "SELECT jobq.register('noop_b', '$h(jobq.jobs)'::regprocedure, queue => 'bench')" \
      -c "SELECT jobq.enqueue('noop_b', '{\"task\": \"noop\"}', queue => 'bench')" -c "COMMIT" \
      -c "SELECT extract(epoch FROM clock_timestamp())" -c "CALL bench_wait('bench', 900)" | tail -2 | tr '\n' ' ')"
  other_end
  read -r done_ span <<<"$(sql -F ' ' -c "SELECT count(*) FILTER (WHERE status = 2), extract(epoch FROM max(completed_at) - min(started_at)) FROM jobq.jobs WHERE queue = 'bench'")"
  (( done_ == n )) || die "noop $h: $done_ of $n jobs completed"
  RATE=$(awk -v n="$n" -v s="$span" 'BEGIN {printf "%.1f", n / s}')
  E2E=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", n / (b - a)}')
  WALB=$(awk -v w="$(wal_since "$lsn")" -v n="$n" 'BEGIN {printf "%.0f", w / n}')
  note "   noop $h: $n jobs, span ${span}s -> $RATE jobs/s; end to end $(elapsed "$t0" "$t1")s -> $E2E jobs/s; WAL $WALB B/job"
}

# raw_run BATCH CLIENTS: the same fill in queue 'raw', then pgbench -t so that the scripts claim
# the whole fill; the rate uses the same formula as noop_run
raw_run() {
  local b=$1 c=$2 t lsn span done_ tmp t0 t1
  t=$(( NOOP_JOBS / b / c ))
  sql -c "TRUNCATE jobq.jobs CASCADE" >/dev/null
  fill "$NOOP_JOBS" noop_raw raw
  sql -c "VACUUM ANALYZE jobq.jobs" -c "CHECKPOINT" >/dev/null
  lsn=$(wal_lsn)
  tmp=$OUT/pgbench-raw.tmp
  other_begin
  t0=$(now)
  pgb -f "$S/raw_pair_$b.sql" -c "$c" -j "$c" -t "$t" >"$tmp" 2>&1 || { cat "$tmp" >&2; die "pgbench raw failed"; }
  t1=$(now)
  other_end
  cat "$tmp" >>"$LOG"
  read -r done_ span <<<"$(sql -F ' ' -c "SELECT count(*) FILTER (WHERE status = 2), extract(epoch FROM max(completed_at) - min(started_at)) FROM jobq.jobs WHERE queue = 'raw'")"
  RATE=$(awk -v n="$done_" -v s="$span" 'BEGIN {printf "%.1f", n / s}')
  E2E=$(awk -v n="$done_" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", n / (b - a)}')
  WALB=$(awk -v w="$(wal_since "$lsn")" -v n="$done_" 'BEGIN {printf "%.0f", w / n}')
  note "   raw batch $b c=$c: $done_ jobs completed, span ${span}s -> $RATE jobs/s; pgbench wall $(elapsed "$t0" "$t1")s -> $E2E jobs/s; tps $(pgb_tps "$tmp"); WAL $WALB B/job"
}

# register_wake_check: how long jobs enqueued before their type was registered wait
register_wake_check() {
  local t0 first
  sql -c "SELECT jobq.unregister('noop_b')" -c "TRUNCATE jobq.jobs CASCADE" >/dev/null
  fill 1000 noop_b bench
  sleep 7           # the workers' idle sleep reaches poll_interval_max (5 s)
  t0=$(sql -c "SELECT jobq.register('noop_b', 'noop(jobq.jobs)'::regprocedure, queue => 'bench')" \
           -c "SELECT extract(epoch FROM clock_timestamp())" | tail -1)
  sql -c "CALL bench_wait('bench', 60)" >/dev/null
  first=$(sql -c "SELECT extract(epoch FROM min(started_at)) FROM jobq.jobs WHERE queue = 'bench'")
  REG_WAIT=$(awk -v a="$t0" -v b="$first" 'BEGIN {printf "%.0f", (b - a) * 1000}')
  note "   register without an enqueue: first claim ${REG_WAIT} ms after the registration committed"
}

sec_noop() {
  section "issue 3: in-server no-op throughput ($NOOP_JOBS jobs) vs raw batched claim+complete"
  new_cluster noop "jobq.workers = 1"
  local w r h k=0 b c
  declare -A R=() E=() W=()
  for w in $NOOP_WORKERS; do
    (( k == 0 )) || restart_with "jobq.workers=$w"
    k=$(( k + 1 ))
    wait_workers "$w"
    log "jobq.workers = $w"
    for r in $(seq 1 "$RUNS"); do
      local order="noop noop_plpgsql"; (( r % 2 )) || order="noop_plpgsql noop"
      for h in $order; do
        noop_run "$h"
        R[$h/$w]+="$RATE "; E[$h/$w]+="$E2E "; W[$h/$w]+="$WALB "
        log "  $h, $w workers, run $r: $RATE jobs/s (end to end $E2E)"
      done
    done
    # one run of each raw configuration per worker setting: the raw runs are spread over the
    # section like the jobq runs (no job of queue 'raw' is registered; the workers only poll)
    for b in $RAW_BATCHES; do
      for c in $RAW_CLIENTS; do
        raw_run "$b" "$c"
        R[raw$b/$c]+="$RATE "; E[raw$b/$c]+="$E2E "; W[raw$b/$c]+="$WALB "
        log "  raw batch $b, $c clients: $RATE jobs/s"
      done
    done
    if [[ $w == 2 ]]; then register_wake_check; log "  register -> first claim: $REG_WAIT ms"; fi
  done

  local md="$OUT/part-noop.md" best100=0 key
  for b in $RAW_BATCHES; do for c in $RAW_CLIENTS; do
    key=raw$b/$c
    # shellcheck disable=SC2086
    record "noop.raw$b.c$c" "$(median ${R[$key]})" ${R[$key]}
    # shellcheck disable=SC2086
    record "noop.raw$b.c$c.e2e" "$(median ${E[$key]})" ${E[$key]}
    # shellcheck disable=SC2086
    record "noop.raw$b.c$c.wal" "$(median ${W[$key]})"
  done; done
  for c in $RAW_CLIENTS; do
    best100=$(awk -v a="$best100" -v b="${FIG[noop.raw100.c$c]:-0}" 'BEGIN {print (b > a) ? b : a}')
  done
  record noop.raw100.best "$best100"
  for h in noop noop_plpgsql; do for w in $NOOP_WORKERS; do
    # shellcheck disable=SC2086
    record "noop.$h.w$w" "$(median ${R[$h/$w]})" ${R[$h/$w]}
    # shellcheck disable=SC2086
    record "noop.$h.w$w.e2e" "$(median ${E[$h/$w]})" ${E[$h/$w]}
    # shellcheck disable=SC2086
    record "noop.$h.w$w.wal" "$(median ${W[$h/$w]})"
  done; done
  record noop.register_wait_ms "${REG_WAIT:-nan}"
  {
    echo "### Issue 3: in-server no-op throughput ($NOOP_JOBS jobs + 1)"
    echo
    echo "jobs/s = jobs / (max(completed_at) − min(started_at)); end to end = jobs / (register commit → queue empty),"
    echo "for raw: jobs / pgbench wall time. Medians of $RUNS runs (raw: one run per worker setting)."
    echo
    echo "| what | jobs/s (median) | runs | end to end | WAL B/job | vs raw batch-100 best | vs graphile best batched ($(fmt0 "$PEER_GW")) | vs pg-boss best ($(fmt0 "$PEER_PB")) |"
    echo "|---|---:|---|---:|---:|---:|---:|---:|"
    for h in noop noop_plpgsql; do for w in $NOOP_WORKERS; do
      local v=${FIG[noop.$h.w$w]} lang=SQL
      [[ $h == noop_plpgsql ]] && lang=PL/pgSQL
      echo "| jobq, $lang no-op handler, $w worker(s) | $(fmt0 "$v") | $(runs_list 0 ${FIGRUNS[noop.$h.w$w]}) | $(fmt0 "${FIG[noop.$h.w$w.e2e]}") | $(fmt0 "${FIG[noop.$h.w$w.wal]}") | $(fmtn 2 "$(ratio "$v" "$best100")") | $(fmtn 2 "$(ratio "$v" "$PEER_GW")") | $(fmtn 2 "$(ratio "$v" "$PEER_PB")") |"
    done; done
    for b in $RAW_BATCHES; do for c in $RAW_CLIENTS; do
      local v=${FIG[noop.raw$b.c$c]}
      echo "| raw claim+complete, batch $b, $c client(s) (pgbench) | $(fmt0 "$v") | $(runs_list 0 ${FIGRUNS[noop.raw$b.c$c]}) | $(fmt0 "${FIG[noop.raw$b.c$c.e2e]}") | $(fmt0 "${FIG[noop.raw$b.c$c.wal]}") | $(fmtn 2 "$(ratio "$v" "$best100")") | $(fmtn 2 "$(ratio "$v" "$PEER_GW")") | $(fmtn 2 "$(ratio "$v" "$PEER_PB")") |"
    done; done
    echo
    echo "Jobs enqueued before their type is registered: \`jobq.register\` wakes an idle worker at commit. One sample, workers idle 7 s (sleeping up to poll_interval_max = 5 s): first claim ${REG_WAIT:-n/a} ms after the registration committed (the claim transaction may start before the registering session reads its clock)."
    echo
  } >"$md"
  REPORT_PARTS+=("$md")
}

# ================================================================================================
# issue 3: idle pickup latency
# ================================================================================================

# lat_samples VARIANT N SLEEP_SQL [DURABLE]: N enqueues from one session, each after SLEEP_SQL
lat_samples() {
  local v=$1 n=$2 sleep_sql=$3 durable=${4:-true} f=$S/lat-$1.sql i
  : >"$f"
  for i in $(seq 1 "$n"); do
    echo "SELECT pg_sleep($sleep_sql);" >>"$f"
    echo "CALL lat_sample('$v', $durable);" >>"$f"
  done
  echo "SELECT pg_sleep(1);" >>"$f"
  [[ $(id -u) == 0 ]] && chown postgres: "$f"
  sql -f "$f" >/dev/null
  cp "$f" "$OUT/"
}

# lat_stats VARIANT: n, then median p95 min max from the end of the enqueue's COMMIT, then
# median p95 from its commit timestamp, then medians of commit end → claim start and
# claim start → handler
lat_stats() {
  sql -F ' ' -c "SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3),
                        round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 3),
                        round(min(ms)::numeric, 3), round(max(ms)::numeric, 3),
                        round(percentile_cont(0.5) WITHIN GROUP (ORDER BY stamp)::numeric, 3),
                        round(percentile_cont(0.95) WITHIN GROUP (ORDER BY stamp)::numeric, 3),
                        round(percentile_cont(0.5) WITHIN GROUP (ORDER BY wake)::numeric, 3),
                        round(percentile_cont(0.5) WITHIN GROUP (ORDER BY run)::numeric, 3)
                   FROM (SELECT extract(epoch FROM s.at - e.committed) * 1000 AS ms,
                                extract(epoch FROM s.at - pg_xact_commit_timestamp(e.x)) * 1000 AS stamp,
                                extract(epoch FROM s.claimed - e.committed) * 1000 AS wake,
                                extract(epoch FROM s.at - s.claimed) * 1000 AS run
                           FROM lat_enq e JOIN lat_seen s USING (id) WHERE e.variant = '$1') t"
}

# lat_record VARIANT: lat_stats into FIG[lat.VARIANT.*]
lat_record() {
  local v=$1 cnt med p95 mn mx smed sp95 wake run
  read -r cnt med p95 mn mx smed sp95 wake run <<<"$(lat_stats "$v")"
  record "lat.$v.n" "$cnt"; record "lat.$v.median" "$med"; record "lat.$v.p95" "$p95"
  record "lat.$v.min" "$mn"; record "lat.$v.max" "$mx"
  record "lat.$v.stamp_median" "$smed"; record "lat.$v.stamp_p95" "$sp95"
  record "lat.$v.wake" "$wake"; record "lat.$v.run" "$run"
}

sec_latency() {
  section "issue 3: idle pickup latency"
  new_cluster latency "track_commit_timestamp = on
track_wal_io_timing = on
jobq.workers = 2
jobq.poll_interval_max = '5s'
jobq.poll_interval_min = '5s'"
  wait_workers 2
  sql -c "SELECT jobq.register('lat', 'lat_handler(jobq.jobs)'::regprocedure)" >/dev/null
  # warm-up: every worker compiles the handler and caches its plans
  lat_samples warmup 4 "0.3"
  sql -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
  log "min = max = 5 s: $LAT_SAMPLES samples"
  other_begin
  lat_samples max "$LAT_SAMPLES" "0.25 + random() * 0.5"
  other_end
  local walsync
  walsync=$(sql -c "SELECT round((wal_sync_time / nullif(wal_sync, 0))::numeric, 3) FROM pg_stat_wal")
  record lat.walsync_ms "$walsync"
  lat_record max
  local delays
  delays=$(sql -c "SELECT string_agg(DISTINCT poll_delays::text, ' ') FROM lat_enq WHERE variant = 'max'")
  note "   latency (max): n=${FIG[lat.max.n]} median=${FIG[lat.max.median]} p95=${FIG[lat.max.p95]} min=${FIG[lat.max.min]} max=${FIG[lat.max.max]} ms (from the commit timestamp: ${FIG[lat.max.stamp_median]} / ${FIG[lat.max.stamp_p95]}); mean WAL sync $walsync ms; poll delays seen: $delays"
  log "  median ${FIG[lat.max.median]} ms, p95 ${FIG[lat.max.p95]} ms"

  # the same with the enqueue committed asynchronously: its commit timestamp is then the
  # moment the job became visible, with no flush in between and no late clock read
  log "min = max = 5 s, enqueue with synchronous_commit = off: $LAT_ASYNC_SAMPLES samples"
  other_begin
  lat_samples async "$LAT_ASYNC_SAMPLES" "0.25 + random() * 0.5" false
  other_end
  lat_record async
  log "  from its commit timestamp: median ${FIG[lat.async.stamp_median]} ms, p95 ${FIG[lat.async.stamp_p95]} ms"

  log "default min (10 ms), ${LAT_IDLE_WAIT}+ s idle before each of $LAT_IDLE_SAMPLES samples"
  reload_with "jobq.poll_interval_min=10ms"
  other_begin
  lat_samples idle "$LAT_IDLE_SAMPLES" "$LAT_IDLE_WAIT + random()"
  other_end
  lat_record idle
  local delays2
  delays2=$(sql -c "SELECT string_agg(DISTINCT poll_delays::text, ' ') FROM lat_enq WHERE variant = 'idle'")
  note "   latency (idle): n=${FIG[lat.idle.n]} median=${FIG[lat.idle.median]} p95=${FIG[lat.idle.p95]} min=${FIG[lat.idle.min]} max=${FIG[lat.idle.max]} ms; poll delays seen: $delays2"
  log "  median ${FIG[lat.idle.median]} ms, p95 ${FIG[lat.idle.p95]} ms"
  sql -c "SELECT e.variant, round((extract(epoch FROM s.at - e.committed) * 1000)::numeric, 3) AS ms,
                 round((extract(epoch FROM s.at - pg_xact_commit_timestamp(e.x)) * 1000)::numeric, 3) AS from_stamp,
                 round((extract(epoch FROM s.claimed - e.committed) * 1000)::numeric, 3) AS to_claim_start,
                 e.poll_delays FROM lat_enq e JOIN lat_seen s USING (id) ORDER BY e.at" >"$OUT/latency-samples.txt"

  local md="$OUT/part-latency.md" v label
  {
    echo "### Issue 3: idle pickup latency (enqueue commit → handler start)"
    echo
    echo "Each sample is \`CALL lat_sample()\`, a procedure that enqueues one job and COMMITs; the handler reads"
    echo "\`clock_timestamp()\` first thing. All times are read in the server: no client round trip on either end."
    echo "Two ways to time the commit:"
    echo
    echo "- **after COMMIT**: \`clock_timestamp()\` in the procedure as soon as its COMMIT returned (the job is on"
    echo "  disk, visible, and an idle worker has been woken). This reads the clock late when the enqueuing"
    echo "  backend loses its CPU to the woken worker (2 vCPUs), hence the negative minimums: it flatters."
    echo "- **commit timestamp**: \`pg_xact_commit_timestamp\` of the enqueue. PostgreSQL stamps it before the"
    echo "  commit's WAL flush (mean WAL sync in the first variant: ${walsync} ms), so with a durable enqueue it"
    echo "  includes that flush, which no worker can see past. In the second variant the enqueue commits with"
    echo "  \`synchronous_commit = off\`: no flush between stamp and visibility, so this is the pickup time itself."
    echo
    echo "../shared/bench times its peers' \"from commit\" from the client's return of the enqueue call, which is"
    echo "later than either. The split: \`started_at\` of the job is \`now()\` of the worker's claim transaction,"
    echo "which commits without waiting for its flush (the claim journal keeps its attempt) before the handler runs."
    echo "Workers: 2."
    echo
    echo "| variant | samples | after COMMIT: median | p95 | min | max | commit timestamp: median | p95 | median: after COMMIT → claim txn start | median: claim txn start → handler |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for v in max async idle; do
      case $v in
        max) label="poll_interval_min = max = 5 s (every idle sleep is 5 s), 0.25–0.75 s between samples" ;;
        async) label="the same, enqueue with \`synchronous_commit = off\`" ;;
        idle) label="default min 10 ms, max 5 s, ${LAT_IDLE_WAIT}–$(( LAT_IDLE_WAIT + 1 )) s idle before each sample" ;;
      esac
      echo "| $label | ${FIG[lat.$v.n]} | ${FIG[lat.$v.median]} | ${FIG[lat.$v.p95]} | ${FIG[lat.$v.min]} | ${FIG[lat.$v.max]} | ${FIG[lat.$v.stamp_median]} | ${FIG[lat.$v.stamp_p95]} | ${FIG[lat.$v.wake]} | ${FIG[lat.$v.run]} |"
    done
    echo
    echo "Target: median < 1 ms, p95 < 3 ms. Poll delays (ms) of the two workers when each sample was enqueued:"
    echo "first variant $delays; last variant $delays2."
    echo
  } >"$md"
  REPORT_PARTS+=("$md")
}

# ================================================================================================
# issue 4: checkpoints
# ================================================================================================

# unit_run KIND SIZE: one job of UNITS units (KIND=units, on the current store) or one whole job
# computing the same outputs in a loop (KIND=loop).  Sets T (s, claim to done) and TAIL (s, last
# checkpoint record to completion; units only).
unit_run() {
  local kind=$1 size=$2 id
  sql -c "TRUNCATE jobq.jobs CASCADE" -c "TRUNCATE ck_loop_done" >/dev/null
  aspg rm -rf "$WORK/data/jobq_checkpoints"
  sql -c "CHECKPOINT" >/dev/null
  other_begin
  if [[ $kind == units ]]; then
    id=$(sql -c "SELECT jobq.enqueue('ck_units', '{\"size\": $size}', units => $UNITS)")
  else
    id=$(sql -c "SELECT jobq.enqueue('ck_loop', '{\"size\": $size, \"units\": $UNITS}')")
  fi
  sql -c "CALL bench_wait('default', 1800)" >/dev/null
  other_end
  local st
  st=$(sql -c "SELECT status FROM jobq.jobs WHERE id = '$id'")
  [[ $st == 2 ]] || die "checkpoint job $kind $size ended with status $st: $(sql -c "SELECT error FROM jobq.jobs WHERE id = '$id'")"
  if [[ $kind == units ]]; then
    read -r T TAIL <<<"$(sql -F ' ' -c "SELECT extract(epoch FROM j.completed_at - j.started_at),
        extract(epoch FROM j.completed_at - (SELECT max(created_at) FROM jobq.unit_checkpoints c WHERE c.job_id = j.id))
      FROM jobq.jobs j WHERE id = '$id'")"
    local nck; nck=$(sql -c "SELECT count(*) FROM jobq.checkpoints('$id')")
    (( nck == UNITS )) || die "job $id has $nck checkpoints, not $UNITS"
  else
    T=$(sql -c "SELECT extract(epoch FROM d.at - j.started_at) FROM jobq.jobs j JOIN ck_loop_done d USING (id) WHERE j.id = '$id'")
    TAIL=0
  fi
  note "   $kind size=$size store=${STORE:-file}: ${T}s (last checkpoint record -> completion ${TAIL}s)"
}

store_config() {
  case $1 in
    file) reload_with "jobq.checkpoint_url=" ;;
    azurite) reload_with "jobq.checkpoint_url=azure://devstoreaccount1/jobq-bench/ckpt" \
               "jobq.azure_endpoint=http://127.0.0.1:$AZ_PORT/devstoreaccount1" \
               "jobq.azure_account_key=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==" ;;
    s3rver) reload_with "jobq.checkpoint_url=s3://jobq-bench/ckpt" "jobq.s3_endpoint=http://127.0.0.1:$S3_PORT" \
              "jobq.s3_region=us-east-1" "jobq.s3_access_key_id=S3RVER" "jobq.s3_secret_access_key=S3RVER" ;;
  esac
}

# crash_trial: a slow 200-unit job; kill -9 its worker after 30 units; seconds from the kill to
# the first "unit-run" log line of the job's next run
crash_trial() {
  local id pid tk line ts ready rescued
  sql -c "TRUNCATE jobq.jobs CASCADE" >/dev/null
  id=$(sql -c "SELECT jobq.enqueue('ck_crash', units => 200)")
  for _ in $(seq 1 600); do
    (( $(sql -c "SELECT units_done FROM jobq.jobs WHERE id = '$id'") >= 30 )) && break
    sleep 0.05
  done
  pid=$(sql -c "SELECT pid FROM jobq.worker_status WHERE job_id = '$id'")
  [[ -n $pid ]] || die "no worker runs job $id"
  local logsize; logsize=$(stat -c %s "$WORK/server.log")
  tk=$(now)
  kill -9 "$pid"
  CRASH=
  for _ in $(seq 1 600); do
    # the first unit-run line of the job from another process than the one killed
    line=$(tail -c +"$(( logsize + 1 ))" "$WORK/server.log" | grep "LOG:  unit-run .* of job $id" \
           | grep -v "^\S* \S* \S* \[$pid\]" | head -1 || true)
    if [[ -n $line ]]; then
      ts=$(date -d "$(awk '{print $1, $2, $3}' <<<"$line")" +%s.%N)
      CRASH=$(elapsed "$tk" "$ts")
      break
    fi
    sleep 0.05
  done
  [[ -n $CRASH ]] || die "job $id did not run again within 30 s of the kill"
  ready=$(tail -c +"$(( logsize + 1 ))" "$WORK/server.log" | grep -m1 "database system is ready to accept connections" | awk '{print $1, $2, $3}' || true)
  rescued=$(tail -c +"$(( logsize + 1 ))" "$WORK/server.log" | grep -m1 "rescued" | awk '{print $1, $2, $3}' || true)
  READY=$( [[ -n $ready ]] && elapsed "$tk" "$(date -d "$ready" +%s.%N)" || echo nan)
  RESCUED=$( [[ -n $rescued ]] && elapsed "$tk" "$(date -d "$rescued" +%s.%N)" || echo nan)
  note "   crash trial: killed $pid at $tk; ready after ${READY}s, rescue logged after ${RESCUED}s, next unit after ${CRASH}s ($line)"
  for _ in $(seq 1 600); do
    [[ $(sql -c "SELECT status FROM jobq.jobs WHERE id = '$id'" 2>/dev/null || echo x) == 2 ]] && break
    sleep 0.1
  done
  local att; att=$(sql -c "SELECT attempts || ' attempts, ' || units_done || ' units, status ' || status FROM jobq.jobs WHERE id = '$id'")
  note "   crash trial job: $att"
}

sec_units() {
  section "issue 4: checkpoints ($UNITS units)"
  new_cluster units "jobq.workers = 2"
  wait_workers 2
  sql -c "SELECT jobq.register('ck_units', unit_handler => 'ck_unit(jobq.jobs, int)'::regprocedure)" \
      -c "SELECT jobq.register('ck_loop', 'ck_loop(jobq.jobs)'::regprocedure)" \
      -c "SELECT jobq.register('ck_crash', unit_handler => 'ck_crash_unit(jobq.jobs, int)'::regprocedure)" >/dev/null
  local st size r k md="$OUT/part-units.md"
  declare -A TU=() TL=() TT=()
  for st in $STORES; do
    case $st in
      file) STORE=file ;;
      azurite)
        mkdir -p "$OUT/azurite"
        start_server azurite 'listens on http://127\.0\.0\.1:\K[0-9]+' \
          "$BIN/azurite-blob" --blobHost 127.0.0.1 --blobPort 0 --location "$OUT/azurite" \
          --skipApiVersionCheck --disableTelemetry --silent
        AZ_PORT=$SRV_PORT
        "$NODE" "$IDIR/azure-container.mjs" "http://127.0.0.1:$AZ_PORT/devstoreaccount1" jobq-bench >>"$LOG" 2>&1 \
          || die "could not create the Azurite container"
        STORE=azurite ;;
      s3rver)
        mkdir -p "$OUT/s3rver"
        start_server s3rver 'listening on 127\.0\.0\.1:\K[0-9]+' \
          "$BIN/s3rver" -d "$OUT/s3rver" -a 127.0.0.1 -p 0 --configure-bucket jobq-bench
        S3_PORT=$SRV_PORT
        STORE=s3rver ;;
      *) die "unknown store $st" ;;
    esac
    store_config "$st"
    local sizes=$UNIT_SIZES
    [[ $st == file ]] || sizes=$REMOTE_SIZES
    for size in $sizes; do
      for r in $(seq 1 "$RUNS"); do
        unit_run units "$size"; TU[$st/$size]+="$T "; TT[$st/$size]+="$TAIL "
        log "  $st, $size B x $UNITS units, run $r: ${T}s"
        if [[ $st == file ]]; then
          unit_run loop "$size"; TL[$size]+="$T "
          log "  loop without checkpoints, $size B x $UNITS, run $r: ${T}s"
        fi
      done
    done
    [[ $st == file ]] || { stop_servers; store_config file; }
  done
  STORE=
  for st in $STORES; do
    local sizes=$UNIT_SIZES
    [[ $st == file ]] || sizes=$REMOTE_SIZES
    for size in $sizes; do
      # shellcheck disable=SC2086
      record "units.$st.$size" "$(median ${TU[$st/$size]})" ${TU[$st/$size]}
      # shellcheck disable=SC2086
      record "units.$st.$size.tail" "$(median ${TT[$st/$size]})" ${TT[$st/$size]}
    done
  done
  for size in $UNIT_SIZES; do
    # shellcheck disable=SC2086
    record "units.loop.$size" "$(median ${TL[$size]})" ${TL[$size]}
    record "units.overhead_ms.$size" "$(awk -v u="${FIG[units.file.$size]}" -v l="${FIG[units.loop.$size]}" -v n="$UNITS" 'BEGIN {printf "%.3f", (u - l) / n * 1000}')"
  done

  log "crash trials: $CRASH_TRIALS"
  local -a cr=() rd=() rs=()
  for k in $(seq 1 "$CRASH_TRIALS"); do
    crash_trial
    cr+=("$CRASH"); rd+=("$READY"); rs+=("$RESCUED")
    log "  trial $k: next unit ${CRASH}s after the kill (server ready after ${READY}s)"
  done
  record units.crash_s "$(median "${cr[@]}")" "${cr[@]}"
  record units.crash_ready_s "$(median "${rd[@]}")" "${rd[@]}"
  record units.crash_rescue_s "$(median "${rs[@]}")" "${rs[@]}"

  {
    echo "### Issue 4: checkpoints ($UNITS-unit jobs)"
    echo
    echo "Time = claim (\`started_at\`) to completion (\`completed_at\`) of the unit job, or to the end of the loop"
    echo "handler (a whole-job handler that computes the same $UNITS outputs without checkpoints). Medians of $RUNS runs."
    echo "\"tail\" = last checkpoint record → completion: the pre-finalizer fetch and verification of every output."
    echo
    echo "| store | output | $UNITS-unit job (s) | runs | loop without checkpoints (s) | overhead per unit (ms) | tail (s) |"
    echo "|---|---:|---:|---|---:|---:|---:|"
    for st in $STORES; do
      local sizes=$UNIT_SIZES
      [[ $st == file ]] || sizes=$REMOTE_SIZES
      for size in $sizes; do
        local loop="" ov=""
        if [[ $st == file ]]; then loop=$(fmtn 3 "${FIG[units.loop.$size]}"); ov=${FIG[units.overhead_ms.$size]}; fi
        echo "| $st | $size B | $(fmtn 3 "${FIG[units.$st.$size]}") | $(runs_list 3 ${FIGRUNS[units.$st.$size]}) | $loop | $ov | $(fmtn 3 "${FIG[units.$st.$size.tail]}") |"
      done
    done
    echo
    echo "Crash → next unit (kill -9 of the worker running a 200-unit job after 30 units; first \`unit-run\`"
    echo "log line of the job after the kill): median **${FIG[units.crash_s]} s** over $CRASH_TRIALS trials"
    echo "($(runs_list 2 "${cr[@]}") s; target < 2 s). The server said \"ready to accept connections\" after"
    echo "$(runs_list 2 "${rd[@]}") s, and a worker logged the rescue after $(runs_list 2 "${rs[@]}") s."
    echo
  } >"$md"
  REPORT_PARTS+=("$md")
}

# ================================================================================================
# issue 5: cost of progress notifications
# ================================================================================================

# nu_run LAYOUT: LAYOUT=1 one job of NOTIFY_UNITS units; 2: two jobs of half, enqueued apart so
# that each worker takes one.  Sets RATE (units/s, first claim to last completion).
nu_run() {
  local layout=$1 span n
  sql -c "TRUNCATE jobq.jobs CASCADE" -c "CHECKPOINT" >/dev/null
  other_begin
  if [[ $layout == 1 ]]; then
    sql -c "SELECT jobq.enqueue('nu', units => $NOTIFY_UNITS)" >/dev/null
  else
    sql -c "SELECT jobq.enqueue('nu', units => $(( NOTIFY_UNITS / 2 )))" -c "SELECT pg_sleep(0.05)" \
        -c "SELECT jobq.enqueue('nu', units => $(( NOTIFY_UNITS / 2 )))" >/dev/null
  fi
  sql -c "CALL bench_wait('default', 900)" >/dev/null
  other_end
  read -r n span <<<"$(sql -F ' ' -c "SELECT sum(units_done) FILTER (WHERE status = 2), extract(epoch FROM max(completed_at) - min(started_at)) FROM jobq.jobs")"
  (( n == NOTIFY_UNITS )) || die "notify units: $n of $NOTIFY_UNITS units done"
  RATE=$(awk -v n="$n" -v s="$span" 'BEGIN {printf "%.1f", n / s}')
}

# enq_run VARIANT: pgbench enqueue at ENQ_CLIENTS clients for ENQ_SECONDS; VARIANT none (no
# events), notify (a session calling jobq.progress in a loop), silent (the same loop with
# jobq.notify_progress = off in that session).  Sets RATE (enqueues/s) and PROG (progress calls/s).
enq_run() {
  local v=$1 id tmp=$OUT/pgb-enq.tmp ptmp=$OUT/pgb-prog.tmp ppid=
  sql -c "TRUNCATE jobq.jobs CASCADE" -c "VACUUM ANALYZE jobq.jobs" -c "CHECKPOINT" >/dev/null
  PROG=0
  if [[ $v != none ]]; then
    id=$(sql -c "SELECT jobq.enqueue('ext', queue => 'ext')" -c "SELECT id FROM jobq.claim('ext', 'prog', 1)" | tail -1)
    sed "s/JOB_ID/$id/" "$IDIR/progress_loop.sql" >"$S/progress_run.sql"
    [[ $(id -u) == 0 ]] && chown postgres: "$S/progress_run.sql"
    local opt=""
    [[ $v == silent ]] && opt="-c jobq.notify_progress=off"
    BENCH_PGOPTIONS="$opt" pgb -f "$S/progress_run.sql" -c 1 -j 1 -T $(( ENQ_SECONDS + 2 )) >"$ptmp" 2>&1 &
    ppid=$!
    sleep 1
  fi
  other_begin
  pgb -f "$S/enqueue_jobq.sql" -c "$ENQ_CLIENTS" -j "$NPROC" -T "$ENQ_SECONDS" >"$tmp" 2>&1 \
    || { cat "$tmp" >&2; die "pgbench enqueue failed"; }
  other_end
  if [[ -n $ppid ]]; then
    wait "$ppid" || { cat "$ptmp" >&2; die "pgbench progress failed"; }
    PROG=$(pgb_tps "$ptmp")
    cat "$ptmp" >>"$LOG"
  fi
  cat "$tmp" >>"$LOG"
  RATE=$(pgb_tps "$tmp")
  note "   enqueue ($v): $RATE/s; progress calls $PROG/s"
}

sec_notify() {
  section "issue 5: cost of progress notifications"
  new_cluster notify "jobq.workers = 2"
  wait_workers 2
  sql -c "SELECT jobq.register('nu', unit_handler => 'small_unit(jobq.jobs, int)'::regprocedure)" >/dev/null
  local r v layout
  declare -A U=()
  for r in $(seq 1 "$RUNS"); do
    local order="on off"; (( r % 2 )) || order="off on"
    for v in $order; do
      reload_with "jobq.notify_progress=$v"
      for layout in 1 2; do
        nu_run "$layout"
        U[$v/$layout]+="$RATE "
        log "  units, notify $v, $layout job(s), run $r: $RATE units/s"
      done
    done
  done
  reload_with "jobq.notify_progress=on"
  for layout in 1 2; do for v in on off; do
    # shellcheck disable=SC2086
    record "notify.units.$v.j$layout" "$(median ${U[$v/$layout]})" ${U[$v/$layout]}
  done
    record "notify.units.cost.j$layout" "$(awk -v a="${FIG[notify.units.on.j$layout]}" -v b="${FIG[notify.units.off.j$layout]}" 'BEGIN {printf "%.3f", 1 - a / b}')"
  done

  # enqueue at 8 clients with and without progress events; jobq.workers = 0 so that the only
  # other activity is the progress session (side check with 2 idle workers below)
  restart_with "jobq.workers=0"
  declare -A EQ=() PR=()
  for r in $(seq 1 "$RUNS"); do
    local order="none notify silent"; (( r % 2 )) || order="silent notify none"
    for v in $order; do
      enq_run "$v"
      EQ[$v]+="$RATE "; PR[$v]+="$PROG "
      log "  enqueue c=$ENQ_CLIENTS, $v, run $r: $RATE/s (progress $PROG/s)"
    done
  done
  restart_with "jobq.workers=2"
  wait_workers 2
  for r in $(seq 1 "$RUNS"); do
    enq_run none
    EQ[idle2]+="$RATE "
    log "  enqueue c=$ENQ_CLIENTS with 2 idle workers ('nu' registered in the same queue), run $r: $RATE/s"
  done
  sql -c "SELECT jobq.unregister('nu')" >/dev/null
  for r in $(seq 1 "$RUNS"); do
    enq_run none
    EQ[idle2none]+="$RATE "
    log "  enqueue c=$ENQ_CLIENTS with 2 idle workers (nothing registered), run $r: $RATE/s"
  done
  for v in none notify silent idle2 idle2none; do
    # shellcheck disable=SC2086
    record "notify.enq.$v" "$(median ${EQ[$v]})" ${EQ[$v]}
  done
  for v in notify silent; do
    # shellcheck disable=SC2086
    record "notify.prog.$v" "$(median ${PR[$v]})" ${PR[$v]}
  done

  local md="$OUT/part-notify.md"
  {
    echo "### Issue 5: cost of progress notifications"
    echo
    echo "Unit jobs ($NOTIFY_UNITS units of 4 bytes in all; units/s = units / (max(completed_at) − min(started_at)); 2 workers;"
    echo "\`jobq.notify_progress\` switched with ALTER SYSTEM + reload; runs alternate on/off; medians of $RUNS):"
    echo
    echo "| layout | notify on (units/s) | runs | notify off (units/s) | runs | cost of NOTIFY | target |"
    echo "|---|---:|---|---:|---|---:|---|"
    for layout in 1 2; do
      local name="1 job of $NOTIFY_UNITS units (one worker busy)"
      [[ $layout == 2 ]] && name="2 jobs of $(( NOTIFY_UNITS / 2 )) units (both workers busy)"
      echo "| $name | $(fmt0 "${FIG[notify.units.on.j$layout]}") | $(runs_list 0 ${FIGRUNS[notify.units.on.j$layout]}) | $(fmt0 "${FIG[notify.units.off.j$layout]}") | $(runs_list 0 ${FIGRUNS[notify.units.off.j$layout]}) | $(awk -v c="${FIG[notify.units.cost.j$layout]}" 'BEGIN {printf "%.1f%%", c * 100}') | < 5% |"
    done
    echo
    echo "Enqueue throughput (\`jobq.enqueue\`, 1 job per transaction, pgbench, $ENQ_CLIENTS clients, ${ENQ_SECONDS} s, jobq.workers = 0)"
    echo "while another session calls \`jobq.progress()\` on a claimed job in a loop (one call per transaction):"
    echo
    echo "| variant | enqueues/s (median) | runs | vs no events | progress calls/s |"
    echo "|---|---:|---|---:|---:|"
    echo "| no progress events | $(fmt0 "${FIG[notify.enq.none]}") | $(runs_list 0 ${FIGRUNS[notify.enq.none]}) | 1.00 | |"
    echo "| progress loop, NOTIFY on | $(fmt0 "${FIG[notify.enq.notify]}") | $(runs_list 0 ${FIGRUNS[notify.enq.notify]}) | $(fmtn 2 "$(ratio "${FIG[notify.enq.notify]}" "${FIG[notify.enq.none]}")") | $(fmt0 "${FIG[notify.prog.notify]}") |"
    echo "| progress loop, \`notify_progress = off\` in that session | $(fmt0 "${FIG[notify.enq.silent]}") | $(runs_list 0 ${FIGRUNS[notify.enq.silent]}) | $(fmtn 2 "$(ratio "${FIG[notify.enq.silent]}" "${FIG[notify.enq.none]}")") | $(fmt0 "${FIG[notify.prog.silent]}") |"
    echo "| side check: no events, jobq.workers = 2, unit type 'nu' registered in the same queue (the enqueued type is not) | $(fmt0 "${FIG[notify.enq.idle2]}") | $(runs_list 0 ${FIGRUNS[notify.enq.idle2]}) | $(fmtn 2 "$(ratio "${FIG[notify.enq.idle2]}" "${FIG[notify.enq.none]}")") | |"
    echo "| side check: no events, jobq.workers = 2, nothing registered | $(fmt0 "${FIG[notify.enq.idle2none]}") | $(runs_list 0 ${FIGRUNS[notify.enq.idle2none]}) | $(fmtn 2 "$(ratio "${FIG[notify.enq.idle2none]}" "${FIG[notify.enq.none]}")") | |"
    echo
  } >"$md"
  REPORT_PARTS+=("$md")
}

# ================================================================================================
# issue 6: provider jobs
# ================================================================================================

# prov_run TYPE N: N jobs of TYPE (registered with a provider chain) in queue 'prov'; sets RATE
prov_run() {
  local type=$1 n=$2 prov=$3 t0 t1 span done_
  sql -c "SELECT jobq.unregister('$type')" -c "TRUNCATE jobq.jobs CASCADE" >/dev/null
  fill $(( n - 1 )) "$type" prov
  sql -c "VACUUM ANALYZE jobq.jobs" -c "CHECKPOINT" >/dev/null
  other_begin
  read -r t0 t1 <<<"$(sql -c "BEGIN" \
      -c "SELECT jobq.register('$type', providers => ARRAY['$prov'], queue => 'prov')" \
      -c "SELECT jobq.enqueue('$type', '{\"task\": \"noop\"}', queue => 'prov')" -c "COMMIT" \
      -c "SELECT extract(epoch FROM clock_timestamp())" -c "CALL bench_wait('prov', 900)" | tail -2 | tr '\n' ' ')"
  other_end
  read -r done_ span <<<"$(sql -F ' ' -c "SELECT count(*) FILTER (WHERE status = 2), extract(epoch FROM max(completed_at) - min(started_at)) FROM jobq.jobs WHERE queue = 'prov'")"
  (( done_ == n )) || die "provider $type: $done_ of $n jobs completed: $(sql -c "SELECT status, count(*), min(error::text) FROM jobq.jobs GROUP BY 1" | tr '\n' ' ')"
  RATE=$(awk -v n="$n" -v s="$span" 'BEGIN {printf "%.1f", n / s}')
  E2E=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", n / (b - a)}')
  note "   provider $type ($prov): $n jobs, span ${span}s -> $RATE jobs/s, end to end $E2E"
}

sec_provider() {
  section "issue 6: provider jobs ($PROV_JOBS jobs)"
  start_server http-ok 'listening on 127\.0\.0\.1:\K[0-9]+' "$NODE" "$IDIR/http-ok.mjs"
  HTTP_PORT=$SRV_PORT
  new_cluster provider "jobq.workers = 1"
  sql -c "SELECT jobq.create_provider('m', kind => 'mock', options => '{\"output\": {}}')" \
      -c "SELECT jobq.create_provider('h', 'http://127.0.0.1:$HTTP_PORT/')" >/dev/null
  local w r k=0 v
  declare -A P=()
  for w in $PROV_WORKERS; do
    (( k == 0 )) || restart_with "jobq.workers=$w"
    k=$(( k + 1 ))
    wait_workers "$w"
    for r in $(seq 1 "$RUNS"); do
      local order="mock http"; (( r % 2 )) || order="http mock"
      for v in $order; do
        if [[ $v == mock ]]; then prov_run pm "$PROV_JOBS" m; else prov_run ph "$PROV_JOBS" h; fi
        P[$v/$w]+="$RATE "
        log "  $v provider, $w workers, run $r: $RATE jobs/s"
      done
    done
  done
  for v in mock http; do for w in $PROV_WORKERS; do
    # shellcheck disable=SC2086
    record "prov.$v.w$w" "$(median ${P[$v/$w]})" ${P[$v/$w]}
  done; done

  # breaker bookkeeping: perf profile of the workers during a mock run
  local perf_self=nan perf_children=nan perf_samples=0 perf_rate=nan perf_top=""
  if [[ $PERF == 1 ]] && command -v perf >/dev/null; then
    restart_with "jobq.workers=2"
    wait_workers 2
    local pids; pids=$(sql -c "SELECT string_agg(pid::text, ',') FROM jobq.worker_status")
    sql -c "SELECT jobq.unregister('pm')" -c "TRUNCATE jobq.jobs CASCADE" >/dev/null
    fill $(( PROV_PERF_JOBS - 1 )) pm prov
    sql -c "VACUUM ANALYZE jobq.jobs" -c "CHECKPOINT" >/dev/null
    perf record -g -o "$OUT/perf-mock.data" -p "$pids" >"$OUT/perf-record.log" 2>&1 &
    PERF_PID=$!
    sleep 1
    sql -c "BEGIN" -c "SELECT jobq.register('pm', providers => ARRAY['m'], queue => 'prov')" \
        -c "SELECT jobq.enqueue('pm', '{\"task\": \"noop\"}', queue => 'prov')" -c "COMMIT" \
        -c "CALL bench_wait('prov', 900)" >/dev/null
    kill -INT "$PERF_PID"; wait "$PERF_PID" || true; PERF_PID=
    perf_rate=$(sql -c "SELECT round(count(*) / extract(epoch FROM max(completed_at) - min(started_at))) FROM jobq.jobs WHERE queue = 'prov' AND status = 2")
    perf report -i "$OUT/perf-mock.data" --no-children --sort sym -g none --stdio >"$OUT/perf-self.txt" 2>/dev/null || true
    perf report -i "$OUT/perf-mock.data" --children --sort sym -g none --stdio >"$OUT/perf-children.txt" 2>/dev/null || true
    perf_samples=$(grep -m1 -oP '^# Samples: \K[0-9]+[KM]?' "$OUT/perf-self.txt" || echo 0)
    perf_self=$(awk '/jobq_breaker_(allow|record)[[:space:]]*$/ {gsub("%", "", $1); s += $1} END {printf "%.3f", s}' "$OUT/perf-self.txt")
    perf_children=$(awk '/jobq_breaker_(allow|record)[[:space:]]*$/ {gsub("%", "", $1); s += $1} END {printf "%.3f", s}' "$OUT/perf-children.txt")
    perf_top=$(grep -E '^ +[0-9]' "$OUT/perf-self.txt" | head -8 | awk '{$1=$1; print}' | sed 's/\[\.\] //; s/\[k\] /kernel: /' | paste -sd ';' | sed 's/;/; /g' || true)
    note "   perf: $perf_samples samples; breaker self $perf_self%, with children $perf_children%; top: $perf_top"
    log "  perf: breaker self $perf_self%, with callees $perf_children% of $perf_samples samples"
  fi
  record prov.perf.self "$perf_self"; record prov.perf.children "$perf_children"; record prov.perf.rate "$perf_rate"
  stop_servers

  local md="$OUT/part-provider.md"
  {
    echo "### Issue 6: provider jobs ($PROV_JOBS whole jobs per run)"
    echo
    echo "jobs/s = jobs / (max(completed_at) − min(started_at)); medians of $RUNS runs; mock and http runs alternate."
    echo "mock: \`kind => 'mock'\`, \`options => {\"output\": {}}\` (in-process, no latency). http: a node \`http\` server"
    echo "on 127.0.0.1 answering \`200 {}\` at once."
    echo
    echo "| provider | workers | jobs/s (median) | runs |"
    echo "|---|---:|---:|---|"
    for v in mock http; do for w in $PROV_WORKERS; do
      echo "| $v | $w | $(fmt0 "${FIG[prov.$v.w$w]}") | $(runs_list 0 ${FIGRUNS[prov.$v.w$w]}) |"
    done; done
    echo
    echo "Breaker bookkeeping (\`perf record -g -p <both worker pids>\` during a $PROV_PERF_JOBS-job mock run, 2 workers,"
    echo "$perf_rate jobs/s, $perf_samples samples): \`jobq_breaker_allow\` + \`jobq_breaker_record\` = **$perf_self%** of"
    echo "the samples (self), **$perf_children%** with their callees (target < 2%). Top self symbols: $perf_top."
    echo
  } >"$md"
  REPORT_PARTS+=("$md")
}

# ================================================================================================
# issue 8: scale
# ================================================================================================

# depth_figures LABEL: DQ/DA = mean ms per jobq.depth('default') / jobq.depth() call over 2,000 calls
# in one PL/pgSQL loop (in the server, no round trip); DL = pgbench latency of depth('default')
depth_figures() {
  local lbl=$1 t0 t1 tmp=$OUT/pgb-depth.tmp
  # 2000 calls in one DO block: the mean server-side time of one call
  read -r DQ DA <<<"$(sql -F ' ' -c "CREATE OR REPLACE FUNCTION pg_temp.dt(q text, n int) RETURNS float8 LANGUAGE plpgsql AS \$\$
        DECLARE t timestamptz; d bigint;
        BEGIN
          FOR i IN 1..50 LOOP d := jobq.depth(q); END LOOP;      -- warm up
          t := clock_timestamp();
          FOR i IN 1..n LOOP d := jobq.depth(q); END LOOP;
          RETURN extract(epoch FROM clock_timestamp() - t) * 1000 / n;
        END \$\$;
      SELECT round(pg_temp.dt('default', 2000)::numeric, 4), round(pg_temp.dt(NULL, 2000)::numeric, 4)")"
  pgb -f "$S/depth.sql" -c 1 -j 1 -T 3 >"$tmp" 2>&1 || { cat "$tmp" >&2; die "pgbench depth failed"; }
  DL=$(grep -oP '^latency average = \K[0-9.]+' "$tmp")
  sql -c "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM jobq.jobs j WHERE j.status = 0 AND j.queue = 'default' AND j.run_at <= now()" \
      -c "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM jobq.jobs j WHERE j.status = 1 AND j.started_at IS NOT NULL AND j.queue = 'default'" \
      >"$OUT/depth-plans-$lbl.txt"
  note "   depth ($lbl): depth('default') ${DQ} ms, depth() ${DA} ms per call in the server; pgbench latency ${DL} ms"
}

# scale_reset: delete everything but the terminal history rows (job_type 'hist'), vacuum, then
# SCALE_DEPTH_QUEUED queued jobs for depth(); claim_fill adds the prefill for the claim runs
scale_reset() {
  sql -c "DELETE FROM jobq.jobs WHERE job_type <> 'hist'" -c "VACUUM ANALYZE jobq.jobs" -c "CHECKPOINT" >/dev/null
  fill "$SCALE_DEPTH_QUEUED" noop default
  sql -c "ANALYZE jobq.jobs" >/dev/null
}
claim_fill() {
  local n=$1 cmds=() left=$1
  while (( left > 0 )); do
    cmds+=(-c "SELECT count(*) FROM jobq.enqueue_many('noop', array_fill('{\"task\": \"noop\"}'::jsonb, ARRAY[10000]))")
    left=$(( left - 10000 ))
  done
  sql "${cmds[@]}" >/dev/null
}

# claim_runs LABEL MODE: RUNS pgbench runs of claim 10 + complete_many per client count.
# MODE vac: each run from a fresh prefill with VACUUM ANALYZE after it.  MODE row: the runs one
# after another on the table as it is (the caller filled it; no VACUUM, no ANALYZE).
claim_runs() {
  local lbl=$1 mode=$2 c r tmp=$OUT/pgb-claim.tmp rate left
  for c in $SCALE_CLIENTS; do
    local -a v=()
    for r in $(seq 1 "$RUNS"); do
      if [[ $mode == vac ]]; then
        scale_reset
        claim_fill "$SCALE_PREFILL"
        sql -c "VACUUM ANALYZE jobq.jobs" >/dev/null
      fi
      other_begin
      pgb -f "$S/claim_10_jobq.sql" -c "$c" -j "$c" -T "$SCALE_SECONDS" >"$tmp" 2>&1 \
        || { cat "$tmp" >&2; die "pgbench claim failed ($lbl)"; }
      other_end
      cat "$tmp" >>"$LOG"
      left=$(sql -c "SELECT count(*) FROM jobq.jobs WHERE status = 0")
      (( left > 0 )) || die "claim run ($lbl) emptied the queue: raise INS_SCALE_PREFILL"
      rate=$(awk -v t="$(pgb_tps "$tmp")" 'BEGIN {printf "%.1f", t * 10}')
      v+=("$rate")
      log "  claim 10, $lbl, c=$c, run $r: $rate jobs/s"
    done
    record "scale.claim.$lbl.c$c" "$(median "${v[@]}")" "${v[@]}"
  done
}

sec_scale() {
  section "issue 8: scale (terminal rows: 0 $SCALE_ROWS)"
  new_cluster scale "jobq.workers = 0"
  local prev=0 rows t0 t1 lbl
  declare -A DEP=()
  # 0 terminal rows
  scale_reset
  depth_figures 0
  record scale.depth.q.0 "$DQ"; record scale.depth.all.0 "$DA"; record scale.depth.pgb.0 "$DL"
  claim_runs 0 vac
  # control for the bloat row: a fresh table, the same double prefill, no VACUUM after it
  scale_reset
  claim_fill $(( SCALE_PREFILL * 2 * $(wc -w <<<"$SCALE_CLIENTS") ))
  claim_runs 0novac row

  # bloat resistance: BLOAT_JOBS jobs through enqueue_many + claim + complete_many (2 clients),
  # no manual VACUUM (autovacuum is on), then the same figures again
  log "bloat: $BLOAT_JOBS jobs through the jobq API, no manual VACUUM"
  sql -c "TRUNCATE jobq.jobs CASCADE" -c "VACUUM ANALYZE jobq.jobs" -c "CHECKPOINT" >/dev/null
  t0=$(now)
  pgb -f "$S/cycle_100.sql" -c 2 -j 2 -t $(( BLOAT_JOBS / 200 )) >"$OUT/pgb-cycle.log" 2>&1 \
    || { cat "$OUT/pgb-cycle.log" >&2; die "pgbench churn failed"; }
  t1=$(now)
  local churn_rate; churn_rate=$(awk -v n="$BLOAT_JOBS" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
  local vinfo
  vinfo=$(sql -c "SELECT n_live_tup || ' live, ' || n_dead_tup || ' dead tuples; autovacuum ran ' || autovacuum_count || 'x, autoanalyze ' || autoanalyze_count || 'x; table ' || pg_size_pretty(pg_table_size('jobq.jobs')) || ', claim index ' || pg_size_pretty(pg_relation_size('jobq.jobs_claim_idx')) FROM pg_stat_user_tables WHERE relid = 'jobq.jobs'::regclass")
  note "   churn: $BLOAT_JOBS jobs in $(elapsed "$t0" "$t1")s ($churn_rate jobs/s); $vinfo"
  log "  churn done: $churn_rate jobs/s; $vinfo"
  record scale.churn.rate "$churn_rate"
  fill "$SCALE_DEPTH_QUEUED" noop default
  depth_figures bloat
  record scale.depth.q.bloat "$DQ"; record scale.depth.all.bloat "$DA"; record scale.depth.pgb.bloat "$DL"
  claim_fill $(( SCALE_PREFILL * 2 * $(wc -w <<<"$SCALE_CLIENTS") ))
  claim_runs bloat row
  local vinfo2
  vinfo2=$(sql -c "SELECT n_live_tup || ' live, ' || n_dead_tup || ' dead tuples; autovacuum ran ' || autovacuum_count || 'x; claim index ' || pg_size_pretty(pg_relation_size('jobq.jobs_claim_idx')) FROM pg_stat_user_tables WHERE relid = 'jobq.jobs'::regclass")
  note "   after the bloat claim runs: $vinfo2"

  # terminal history rows, inserted directly
  sql -c "TRUNCATE jobq.jobs CASCADE" >/dev/null
  for rows in $SCALE_ROWS; do
    log "terminal rows: $prev -> $rows"
    t0=$(now)
    sql -c "INSERT INTO jobq.jobs (id, job_type, queue, status, payload, result, progress_percent,
                                   created_at, started_at, completed_at, attempts, trace_id)
            SELECT jobq.gen_uuid_v7(), 'hist', 'default', 2, '{\"task\": \"noop\"}', NULL, 100,
                   now() - interval '1 day', now() - interval '1 day', now() - interval '1 day' + g * interval '1 ms', 1,
                   md5(g::text || random()::text)
              FROM generate_series($prev + 1, $rows) g" >/dev/null
    sql -c "VACUUM ANALYZE jobq.jobs" -c "CHECKPOINT" >/dev/null
    t1=$(now)
    note "   inserted $(( rows - prev )) terminal rows + VACUUM ANALYZE + CHECKPOINT in $(elapsed "$t0" "$t1")s; table $(sql -c "SELECT pg_size_pretty(pg_total_relation_size('jobq.jobs'))")"
    prev=$rows
    lbl=$rows
    scale_reset
    depth_figures "$lbl"
    record "scale.depth.q.$lbl" "$DQ"; record "scale.depth.all.$lbl" "$DA"; record "scale.depth.pgb.$lbl" "$DL"
    claim_runs "$lbl" vac
  done

  local md="$OUT/part-scale.md" last c
  last=${SCALE_ROWS##* }
  {
    echo "### Issue 8: scale"
    echo
    echo "depth(): mean time per call of 2,000 calls in one PL/pgSQL loop (server side, no round trip), with"
    echo "$SCALE_DEPTH_QUEUED queued jobs; pgbench: \`SELECT jobq.depth('default')\`, 1 client, 3 s, average latency (with"
    echo "the round trip). Claim: pgbench \`jobq.claim(…, 10)\` + \`jobq.complete_many\`, ${SCALE_SECONDS} s runs from a fresh"
    echo "$SCALE_PREFILL-job prefill (VACUUM ANALYZE after it), medians of $RUNS runs."
    echo
    echo -n "| terminal rows in jobq.jobs | depth('default') ms | depth() ms | depth pgbench latency ms |"
    for c in $SCALE_CLIENTS; do echo -n " claim 10, $c client(s), jobs/s | vs 0 rows |"; done
    echo
    echo -n "|---|---:|---:|---:|"
    for c in $SCALE_CLIENTS; do echo -n "---:|---:|"; done
    echo
    for lbl in 0 $SCALE_ROWS 0novac bloat; do
      local name=$(fmt0 "$lbl")
      [[ $lbl == 0novac ]] && name="0, control for the next row: prefill not vacuumed, $RUNS runs in a row"
      [[ $lbl == bloat ]] && name="after $(fmt0 "$BLOAT_JOBS") jobs through enqueue_many/claim/complete_many, no manual VACUUM; prefill not vacuumed, $RUNS runs in a row"
      echo -n "| $name | ${FIG[scale.depth.q.$lbl]:-—} | ${FIG[scale.depth.all.$lbl]:-—} | ${FIG[scale.depth.pgb.$lbl]:-—} |"
      for c in $SCALE_CLIENTS; do
        echo -n " $(fmt0 "${FIG[scale.claim.$lbl.c$c]}") ($(runs_list 0 ${FIGRUNS[scale.claim.$lbl.c$c]})) | $(fmtn 2 "$(ratio "${FIG[scale.claim.$lbl.c$c]}" "${FIG[scale.claim.0.c$c]}")") |"
      done
      echo
    done
    echo
    echo "Churn: $(fmt0 "$BLOAT_JOBS") jobs at $(fmt0 "$churn_rate") jobs/s (enqueue_many 100 + claim 100 + complete_many, 2 clients)."
    echo "State after the churn: $vinfo. After the bloat claim runs: $vinfo2. The last two rows have no VACUUM or"
    echo "ANALYZE of their own (autovacuum on, as in production); their depth() figures are taken before their prefill."
    echo
  } >"$md"
  REPORT_PARTS+=("$md")
}

# ================================================================================================

# summary_row WHAT VALUE UNIT OP TARGET: one line of the summary (skipped when VALUE is missing)
summary_row() {
  local what=$1 v=$2 unit=$3 op=$4 t=$5 verdict=""
  [[ -z $v || $v == nan ]] && return 0
  if [[ -n $op ]]; then
    verdict=$(awk -v v="$v" -v t="$t" -v op="$op" 'BEGIN {ok = (op == ">=") ? v >= t : v < t; print ok ? "met" : "**missed**"}')
  fi
  echo "| $what | $v$unit | ${op:+$op $t$unit} | $verdict |"
}
summary() {
  local md=$OUT/part-summary.md best=nan bw="" w p
  {
    echo "### Summary: figures against their targets"
    echo
    echo "| figure | measured | target | |"
    echo "|---|---:|---:|---|"
    if [[ -n ${FIG[noop.raw100.best]:-} ]]; then
      for w in $NOOP_WORKERS; do
        best=$(awk -v a="$best" -v b="${FIG[noop.noop.w$w]}" 'BEGIN {print (a == "nan" || b > a) ? b : a}')
        [[ $best == "${FIG[noop.noop.w$w]}" ]] && bw=$w
      done
      summary_row "in-server no-op (SQL handler, best: $bw workers) ÷ raw batch-100 pair (best: $(fmt0 "${FIG[noop.raw100.best]}") jobs/s)" "$(fmtn 2 "$(ratio "$best" "${FIG[noop.raw100.best]}")")" "×" ">=" 0.5
      summary_row "in-server no-op ÷ graphile-worker best batched ($(fmt0 "$PEER_GW") jobs/s, $PEER_SRC)" "$(fmtn 2 "$(ratio "$best" "$PEER_GW")")" "×" ">=" 1.5
      summary_row "in-server no-op ÷ pg-boss best ($(fmt0 "$PEER_PB") jobs/s, $PEER_SRC)" "$(fmtn 2 "$(ratio "$best" "$PEER_PB")")" "×" "" ""
    fi
    summary_row "idle pickup from the commit timestamp, asynchronous enqueue, min = max = 5 s: median" "${FIG[lat.async.stamp_median]:-}" " ms" "<" 1
    summary_row "idle pickup from the commit timestamp, asynchronous enqueue, min = max = 5 s: p95" "${FIG[lat.async.stamp_p95]:-}" " ms" "<" 3
    summary_row "idle pickup after COMMIT, min = max = 5 s: median" "${FIG[lat.max.median]:-}" " ms" "<" 1
    summary_row "idle pickup after COMMIT, min = max = 5 s: p95" "${FIG[lat.max.p95]:-}" " ms" "<" 3
    summary_row "idle pickup after COMMIT, default min, 11 s idle: median" "${FIG[lat.idle.median]:-}" " ms" "<" 1
    summary_row "idle pickup after COMMIT, default min, 11 s idle: p95" "${FIG[lat.idle.p95]:-}" " ms" "<" 3
    for p in $UNIT_SIZES; do
      summary_row "checkpoint overhead per unit, file store, $p B outputs" "${FIG[units.overhead_ms.$p]:-}" " ms" "" ""
    done
    summary_row "worker crash (kill -9) → job runs its next unit" "${FIG[units.crash_s]:-}" " s" "<" 2
    if [[ -n ${FIG[notify.units.cost.j1]:-} ]]; then
      summary_row "cost of NOTIFY on unit-job throughput (1 job)" "$(awk -v c="${FIG[notify.units.cost.j1]}" 'BEGIN {printf "%.1f", c * 100}')" "%" "<" 5
      summary_row "cost of NOTIFY on unit-job throughput (2 jobs in parallel)" "$(awk -v c="${FIG[notify.units.cost.j2]}" 'BEGIN {printf "%.1f", c * 100}')" "%" "<" 5
      summary_row "enqueue at $ENQ_CLIENTS clients with progress events ÷ without" "$(fmtn 2 "$(ratio "${FIG[notify.enq.notify]}" "${FIG[notify.enq.none]}")")" "×" "" ""
    fi
    summary_row "breaker bookkeeping share of worker CPU (perf, with callees)" "${FIG[prov.perf.children]:-}" "%" "<" 2
    local last=${SCALE_ROWS##* }
    if [[ -n ${FIG[scale.depth.q.$last]:-} ]]; then
      summary_row "depth('default') at $(fmt0 "$last") terminal rows" "${FIG[scale.depth.q.$last]}" " ms" "<" 1
      summary_row "depth() (all queues) at $(fmt0 "$last") terminal rows" "${FIG[scale.depth.all.$last]}" " ms" "<" 1
      for c in $SCALE_CLIENTS; do
        summary_row "claim 10 throughput at $(fmt0 "$last") terminal rows ÷ at 0 ($c client(s))" "$(fmtn 2 "$(ratio "${FIG[scale.claim.$last.c$c]}" "${FIG[scale.claim.0.c$c]}")")" "×" ">=" 0.8
        summary_row "claim 10 throughput after $(fmt0 "$BLOAT_JOBS") jobs without manual VACUUM ÷ fresh table, both prefills unvacuumed ($c client(s))" "$(fmtn 2 "$(ratio "${FIG[scale.claim.bloat.c$c]}" "${FIG[scale.claim.0novac.c$c]}")")" "×" "" ""
      done
    fi
    echo
  } >"$md"
  REPORT_PARTS=("$md" "${REPORT_PARTS[@]}")
}

# The peers' best no-op drains: from bench/peers.sh when it ran (make bench runs it first), else
# the last full peer report (another host, with a disk 3-6 times faster: see bench/README.md).
PEER_TSV=${INS_PEERS:-$BENCH_ROOT/bench/out/peers-latest.tsv}
PEER_GW=39036 PEER_PB=28419 PEER_SRC="peer report of 2026-11-27, another host"
if [[ -r $PEER_TSV ]]; then
  gw=$(awk -F'\t' '$1 == "graphile.batched" {print $2}' "$PEER_TSV")
  pb=$(awk -F'\t' '$1 == "pgboss.best" {print $2}' "$PEER_TSV")
  if [[ -n $gw && -n $pb ]]; then
    PEER_GW=$gw PEER_PB=$pb
    PEER_SRC="bench/peers.sh run $(awk -F'\t' '$1 == "run" {print $2}' "$PEER_TSV"), this machine"
  fi
fi

CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 || true)
CPU_FAM=$(lscpu 2>/dev/null | sed -n 's/^CPU family: *//p' | head -1 || true)
CPU_MOD=$(lscpu 2>/dev/null | sed -n 's/^Model: *//p' | head -1 || true)
HYPER=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p' | head -1 || true)
MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
SO=$("$PGBIN/pg_config" --pkglibdir)/jobq.so
JOBQ_SO="jobq.so of $(stat -c '%y' "$SO" | cut -d. -f1), md5 $(md5sum "$SO" | cut -c1-12)"
T_START=$(date +%s)
log "output: $OUT; sections: $SECTIONS; runs: $RUNS$( [[ $SMOKE == 1 ]] && echo ' (smoke sizes)')"
for s in $SECTIONS; do
  case $s in
    noop) sec_noop ;; latency) sec_latency ;; units) sec_units ;; notify) sec_notify ;;
    provider) sec_provider ;; scale) sec_scale ;;
    *) die "unknown section $s" ;;
  esac
done
PGVER=$("$PGBIN/postgres" --version)
stop_cluster
summary
ELAPSED=$(( $(date +%s) - T_START ))

{
  echo "## In-server benchmark run $RUN_ID"
  echo
  echo '```'
  echo "nproc:      $NPROC"
  echo "cpu:        $CPU_MODEL${CPU_FAM:+ (family $CPU_FAM model $CPU_MOD)}${HYPER:+, $HYPER guest}"
  echo "memory:     $MEM; kernel $(uname -r)"
  echo "postgres:   $PGVER"
  echo "jobq:       $JOBQ_SO at the start; repo HEAD $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  for b in "${!BUILDS[@]}"; do echo "            postmaster starts with jobq.so md5 $b: ${BUILDS[$b]}"; done
  echo "settings:   bench/lib.sh (shared_buffers=1GB, fsync=on, synchronous_commit=on, autovacuum=on, ...)${INS_EXTRA_CONF:+; INS_EXTRA_CONF: $(tr '\n' ';' <<<"$INS_EXTRA_CONF")}"
  echo "sections:   $SECTIONS; runs per figure: $RUNS; elapsed ${ELAPSED}s"
  echo "other work: $(printf '%s\n' "${OTHER[@]}" | sort -g | awk '{a[NR]=$1; s+=$1} END {if (NR) printf "mean %.0f%%, max %.0f%% of one core over %d timed windows", s/NR, a[NR], NR}') (CPU used outside this bench)"
  echo '```'
  echo
  for p in "${REPORT_PARTS[@]}"; do cat "$p"; done
  echo "Logs: $OUT"
} | tee "$OUT/report.md"
