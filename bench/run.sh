#!/usr/bin/env bash
# jobq queue-core benchmark: jobq's SQL API against plain SQL doing the same
# work on the same table (jobq.jobs), measured in the same run on a throwaway
# cluster.  Prints a markdown report (machine, then a table of medians and
# ratios) on stdout; progress goes to stderr.  See bench/README.md.
#
#   ./bench/run.sh                                   full run (about 12 min on a quiet 2-core machine)
#   BENCH_SECONDS=2 BENCH_RUNS=1 ./bench/run.sh      smoke run (about 3 min)
#
# Knobs (environment):
#   BENCH_SECONDS        seconds per pgbench run (default 7)
#   BENCH_RUNS           runs per figure; the table shows medians (default 3)
#   BENCH_CLIENTS        client counts for single enqueue and claims (default "1 4 8")
#   BENCH_BATCH_CLIENTS  client counts for the 100-row enqueue (default "1 4")
#   BENCH_WORKLOADS      subset of "enqueue enqueue_many claim_1 claim_10" (default: all)
#   BENCH_PREFILL        minimum queued jobs at the start of every claim run (default 200000)
#   BENCH_CLAIM1_RATE / BENCH_CLAIM10_RATE
#                        assumed upper bound of the claim rate (jobs/s), which sizes the
#                        prefill: max(BENCH_PREFILL, rate * seconds * 1.25) (defaults 12000
#                        and 30000).  A run that empties the queue anyway is discarded and
#                        repeated with the bound doubled.
#   BENCH_MAX_OTHER      a run during which processes outside the bench used this much CPU
#                        (% of one core, default 30) is repeated, up to BENCH_RETRIES times
#                        (default 2), after waiting up to BENCH_QUIET_WAIT s (default 20) for
#                        the machine to calm down; the last attempt is kept and counted
#   BENCH_FSYNC_TEST=0   skip pg_test_fsync (machine yardstick, about 16 s)
#   BENCH_OUT            directory for logs and the report (default bench/out/<UTC run id>)
#   BENCH_PGOPTIONS      session settings for the pgbench clients (e.g. "-c jobq.notify_progress=off")
#   BENCH_KEEP=1         keep the temporary cluster directory (it is stopped either way)
#   PGBIN                PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$BENCH_ROOT"

SECS=${BENCH_SECONDS:-7}
RUNS=${BENCH_RUNS:-3}
CLIENTS=${BENCH_CLIENTS:-"1 4 8"}
BATCH_CLIENTS=${BENCH_BATCH_CLIENTS:-"1 4"}
WORKLOADS=${BENCH_WORKLOADS:-"enqueue enqueue_many claim_1 claim_10"}
PREFILL_MIN=${BENCH_PREFILL:-200000}
CLAIM1_RATE=${BENCH_CLAIM1_RATE:-12000}
CLAIM10_RATE=${BENCH_CLAIM10_RATE:-30000}
MAX_OTHER=${BENCH_MAX_OTHER:-30}
RETRIES=${BENCH_RETRIES:-2}
QUIET_WAIT=${BENCH_QUIET_WAIT:-20}
RUN_ID=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=${BENCH_OUT:-$BENCH_ROOT/bench/out/$RUN_ID}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/pgbench.log
RESULTS=$OUT/results.tsv
: >"$LOG"
: >"$RESULTS"

start_cluster
cp "$S"/*.sql "$OUT/"

# ---- machine ---------------------------------------------------------------

CPU_MODEL=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
[[ -n $CPU_MODEL ]] || CPU_MODEL=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
CPU_FAM=$(lscpu 2>/dev/null | sed -n 's/^CPU family: *//p' | head -1)
CPU_MOD=$(lscpu 2>/dev/null | sed -n 's/^Model: *//p' | head -1)
HYPER=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p' | head -1)
MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
PGVER=$(sql -c "SELECT version()")
SO=$("$PGBIN/pg_config" --pkglibdir)/jobq.so
JOBQ_SO="jobq.so of $(stat -c '%y' "$SO" | cut -d. -f1), md5 $(md5sum "$SO" | cut -c1-12)"
JOBQVER=$(sql -c "SELECT extversion FROM pg_extension WHERE extname = 'jobq'")
OTHER_PG=$(pgrep -x postgres | grep -vx "$PGPID" | while read -r p; do
             [[ $(ps -o ppid= -p "$p" | tr -d ' ') == "$PGPID" ]] || echo "$p"; done | wc -l)

FSYNC="not measured"
if [[ ${BENCH_FSYNC_TEST:-1} == 1 ]]; then
  log "pg_test_fsync -s 1 (yardstick for the WAL disk)"
  FSYNC=$(aspg "$PGBIN/pg_test_fsync" -s 1 -f "$WORK/fsync.test" 2>&1 | tee "$OUT/pg_test_fsync.log" \
          | awk '/one 8kB write/ {f=1} f && $1 == "fdatasync" {printf "%s ops/s (fdatasync, one 8 kB write)", $2; exit}')
  rm -f "$WORK/fsync.test"
fi

# cpu_sample -> "busy total" jiffies from /proc/stat (all CPUs)
cpu_sample() { awk '/^cpu / {t=0; for (i=2; i<=NF; i++) t+=$i; print t-$5-$6, t}' /proc/stat; }
read -r CPU_BUSY0 CPU_TOT0 < <(cpu_sample)
T0=$(date +%s)

# ---- measurement -------------------------------------------------------------

declare -A PER=([enqueue]=1 [enqueue_many]=100 [claim_1]=1 [claim_10]=10)
# assumed upper bound of the claim rate (jobs/s), which sizes the prefill; doubled when a run
# finds the queue empty (that run is then repeated)
declare -A RATE_GUESS=([claim_1]=$CLAIM1_RATE [claim_10]=$CLAIM10_RATE)

prefill_for() {
  local n=$(( ${RATE_GUESS[$1]} * SECS * 5 / 4 ))
  (( n > PREFILL_MIN )) || n=$PREFILL_MIN
  echo $(( (n + 9999) / 10000 * 10000 ))
}

# reset_table WORKLOAD: the table as each run starts
reset_table() {
  if [[ $1 == claim_* ]]; then
    local n; n=$(prefill_for "$1")
    prefill "$n"
    echo "prefill: $n queued jobs" >>"$LOG"
  else
    empty_table
  fi
}

# one_run WORKLOAD VARIANT CLIENTS: sets RATE (jobs/s) and WALB (WAL bytes per job), or
# DRY=1 when a claim run found the queue empty (the figure would be wrong)
one_run() {
  local w=$1 v=$2 c=$3 j lsn tmp rc=0 txns tps wal per=${PER[$1]}
  RATE= WALB= DRY=0
  j=$(( c < NPROC ? c : NPROC ))
  reset_table "$w"
  lsn=$(sql -c "SELECT pg_current_wal_lsn()")
  tmp=$(mktemp)
  echo "### $w $v c=$c (loadavg $(cut -d' ' -f1-3 /proc/loadavg))" >>"$LOG"
  local m0 o0 t0 m1 o1 t1
  m0=$(machine_ticks); o0=$(bench_ticks); t0=$(date +%s.%N)
  pgb -f "$S/${w}_$v.sql" -c "$c" -j "$j" -T "$SECS" >"$tmp" 2>&1 || rc=$?
  sleep 0.2                                   # let the postmaster reap the pgbench backends
  m1=$(machine_ticks); o1=$(bench_ticks); t1=$(date +%s.%N)
  FOREIGN_PCT=$(awk -v m=$((m1 - m0)) -v o=$((o1 - o0)) -v d="$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" \
                    -v hz="$(getconf CLK_TCK)" 'BEGIN {f = (m - o) / hz / d * 100; printf "%.0f", f < 0 ? 0 : f}')
  echo "other processes' CPU during the run: ${FOREIGN_PCT}% of one core" >>"$LOG"
  wal=$(sql -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn')")
  cat "$tmp" >>"$LOG"
  if [[ $w == claim_* ]]; then
    # every script must have claimed and completed exactly $per jobs, and the queue must not
    # have run dry (jobq's scripts fail on an empty queue; the raw ones would complete nothing)
    local left done_ proc
    read -r left done_ proc <<<"$(sql -F ' ' -c "SELECT count(*) FILTER (WHERE status = 0), count(*) FILTER (WHERE status = 2), count(*) FILTER (WHERE status = 1) FROM jobq.jobs")"
    echo "queue after run: queued=$left completed=$done_ processing=$proc" >>"$LOG"
    if (( left == 0 )); then rm -f "$tmp"; DRY=1; return; fi
  fi
  if (( rc != 0 )); then
    tail -5 "$tmp" >&2; rm -f "$tmp"
    die "pgbench failed ($w $v c=$c), see $LOG"
  fi
  txns=$(grep -oP '^number of transactions actually processed: \K[0-9]+' "$tmp")
  tps=$(grep -oP '^tps = \K[0-9.]+(?= \(without initial connection time\))' "$tmp")
  rm -f "$tmp"
  [[ -n $txns && -n $tps ]] || die "could not read pgbench output ($w $v c=$c), see $LOG"
  if [[ $w == claim_* ]] && (( done_ != txns * per || proc != 0 )); then
    die "$w $v c=$c: $txns scripts but $done_ completed and $proc processing jobs (expected $(( txns * per )) and 0)"
  fi
  RATE=$(awk -v t="$tps" -v p="$per" 'BEGIN {printf "%.1f", t * p}')
  WALB=$(awk -v b="$wal" -v n="$txns" -v p="$per" 'BEGIN {printf "%.0f", b / (n * p)}')
}

FOREIGN=()   # per run: CPU% of one core used by other processes

# measure WORKLOAD CLIENTS: RUNS pairs, jobq and raw interleaved, the order alternating
# other_cpu SECONDS: CPU% of one core used by processes outside this bench over SECONDS
other_cpu() {
  local m0 o0 m1 o1
  m0=$(machine_ticks); o0=$(bench_ticks)
  sleep "$1"
  m1=$(machine_ticks); o1=$(bench_ticks)
  awk -v x=$(( (m1 - m0) - (o1 - o0) )) -v hz="$(getconf CLK_TCK)" -v d="$1" 'BEGIN {f = x / hz / d * 100; printf "%.0f", f < 0 ? 0 : f}'
}

# wait_quiet: wait (up to QUIET_WAIT seconds) until other processes use less than MAX_OTHER
wait_quiet() {
  local waited=0 o=?
  while (( waited < QUIET_WAIT )); do
    o=$(other_cpu 2)
    (( o < MAX_OTHER )) && return 0
    waited=$(( waited + 2 ))
  done
  log "still busy after ${QUIET_WAIT}s (other processes: $o% of a core); going on"
}

REPEATED=0     # runs repeated because other work disturbed them
DISTURBED=0    # runs kept although disturbed (every attempt was)

# measure WORKLOAD CLIENTS: RUNS pairs, jobq and raw interleaved, the order alternating
measure() {
  local w=$1 c=$2 r v order attempt jd=0 rd=0
  local -a jv=() rv=() jw=() rw=()
  for r in $(seq 1 "$RUNS"); do
    if (( r % 2 )); then order="jobq raw"; else order="raw jobq"; fi
    for v in $order; do
      for attempt in $(seq 0 "$RETRIES"); do
        while :; do
          one_run "$w" "$v" "$c"
          (( DRY )) || break
          RATE_GUESS[$w]=$(( ${RATE_GUESS[$w]} * 2 ))
          log "$w $v c=$c: the queue ran dry; repeating the run with a prefill of $(prefill_for "$w")"
        done
        (( FOREIGN_PCT < MAX_OTHER )) && break
        if (( attempt < RETRIES )); then
          REPEATED=$(( REPEATED + 1 ))
          log "$w $v c=$c: $RATE jobs/s, but other processes used ${FOREIGN_PCT}% of a core; repeating the run"
          wait_quiet
        else
          DISTURBED=$(( DISTURBED + 1 ))
          if [[ $v == jobq ]]; then jd=$(( jd + 1 )); else rd=$(( rd + 1 )); fi
        fi
      done
      FOREIGN+=("$FOREIGN_PCT")
      log "$w c=$c run $r $v: $RATE jobs/s, $WALB B/job (other processes: ${FOREIGN_PCT}% of a core)"
      if [[ $v == jobq ]]; then jv+=("$RATE"); jw+=("$WALB"); else rv+=("$RATE"); rw+=("$WALB"); fi
    done
  done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$c" \
    "$(median "${jv[@]}")" "${jv[*]}" "$(median "${rv[@]}")" "${rv[*]}" \
    "$(median "${jw[@]}")" "$(median "${rw[@]}")" "$jd" "$rd" >>"$RESULTS"
}

o=$(other_cpu 2)
if (( o >= MAX_OTHER )); then log "other processes use $o% of a core; waiting up to ${QUIET_WAIT}s for quiet"; wait_quiet; fi
log "output: $OUT ($RUNS runs x ${SECS}s per figure and variant)"
for w in $WORKLOADS; do
  case $w in
    enqueue|claim_1|claim_10) cl=$CLIENTS ;;
    enqueue_many) cl=$BATCH_CLIENTS ;;
    *) die "unknown workload $w" ;;
  esac
  for c in $cl; do measure "$w" "$c"; done
done

read -r CPU_BUSY1 CPU_TOT1 < <(cpu_sample)
JOBQ_SO_END="jobq.so of $(stat -c '%y' "$SO" | cut -d. -f1), md5 $(md5sum "$SO" | cut -c1-12)"
ELAPSED=$(( $(date +%s) - T0 ))
OTHER_PG_END=$(pgrep -x postgres | while read -r p; do
             [[ $p == "$PGPID" || $(ps -o ppid= -p "$p" | tr -d ' ') == "$PGPID" ]] || echo "$p"; done | wc -l)

# ---- report ------------------------------------------------------------------

{
  echo "# jobq queue-core benchmark ($RUN_ID)"
  echo
  echo '```'
  echo "nproc:      $NPROC"
  echo "cpu:        $CPU_MODEL${CPU_FAM:+ (family $CPU_FAM model $CPU_MOD)}${HYPER:+, $HYPER guest}"
  echo "memory:     $MEM"
  echo "kernel:     $(uname -r)"
  echo "disk:       pg_test_fsync $FSYNC"
  echo "postgres:   $PGVER"
  echo "jobq:       $JOBQVER installed; $JOBQ_SO; repo HEAD $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  if [[ $JOBQ_SO_END != "$JOBQ_SO" ]]; then
    echo "note:       jobq.so was replaced during the run (now: $JOBQ_SO_END). The figures are for the"
    echo "            build above: the postmaster preloaded it at start, its backends inherit it (PostgreSQL"
    echo "            does not reload a library path it has loaded), and CREATE EXTENSION ran at start."
  fi
  echo "settings:   shared_buffers=1GB max_wal_size=8GB checkpoint_timeout=30min synchronous_commit=on fsync=on autovacuum=on jit=off max_connections=200 jobq.workers=0"
  echo "pgbench:    -M prepared, -T $SECS, -j min(clients, nproc), $RUNS runs per figure, jobq/raw runs interleaved${BENCH_PGOPTIONS:+, PGOPTIONS=$BENCH_PGOPTIONS}"
  echo "other postgres processes: $OTHER_PG at start, $OTHER_PG_END at end"
  echo "other work: $(printf '%s\n' "${FOREIGN[@]}" | sort -g | awk '{a[NR]=$1; s+=$1} END {printf "mean %.0f%%, max %.0f%% of one core during the timed runs", s/NR, a[NR]}') (CPU not used by this bench)"
  echo "            runs repeated because other processes used >= ${MAX_OTHER}% of a core: $REPEATED; kept although disturbed: $DISTURBED"
  echo "elapsed:    ${ELAPSED}s; CPU busy over the run: $(awk -v b=$((CPU_BUSY1-CPU_BUSY0)) -v t=$((CPU_TOT1-CPU_TOT0)) 'BEGIN {printf "%.0f%%", 100*b/t}')"
  echo '```'
  echo
  echo "| workload | clients | jobq | raw SQL | ratio | target | jobq runs | raw runs | ratio per run pair | WAL B/job jobq / raw |"
  echo "|---|---:|---:|---:|---:|---:|---|---|---|---:|"
  while IFS=$'\t' read -r w c jm jr rm_ rr jw rw jd rd; do
    case $w in
      enqueue)      name='enqueue 1 job/txn: `enqueue()` vs INSERT (jobs/s)'; target=0.9 ;;
      enqueue_many) name='enqueue 100 jobs/txn: `enqueue_many()` vs INSERT..SELECT (jobs/s)'; target=0.8 ;;
      claim_1)      name='claim 1 + complete, 2 txns/job (jobs/s)'; target=0.8 ;;
      claim_10)     name='claim 10 + complete_many, 2 txns/10 jobs (jobs/s)'; target=0.8 ;;
    esac
    ratio=$(awk -v a="$jm" -v b="$rm_" 'BEGIN {printf "%.2f", a / b}')
    mark=$(awk -v r="$ratio" -v t="$target" 'BEGIN {print (r >= t) ? "" : " **below**"}')
    fmt() { awk '{for (i=1; i<=NF; i++) printf "%s%d", (i>1 ? " / " : ""), $i + 0.5}' <<<"$1"; }
    jn=""; (( jd == 0 )) || jn=" ($jd disturbed)"
    rn=""; (( rd == 0 )) || rn=" ($rd disturbed)"
    pairs=$(paste -d' ' <(tr ' ' '\n' <<<"$jr") <(tr ' ' '\n' <<<"$rr") \
            | awk '{printf "%s%.2f", (NR>1 ? " / " : ""), $1 / $2}')
    printf '| %s | %s | %s | %s | %s%s | ≥ %s | %s%s | %s%s | %s | %s / %s |\n' \
      "$name" "$c" "$(fmt "$jm")" "$(fmt "$rm_")" "$ratio" "$mark" "$target" "$(fmt "$jr")" "$jn" "$(fmt "$rr")" "$rn" "$pairs" "$(fmt "$jw")" "$(fmt "$rw")"
  done <"$RESULTS"
  echo
  echo "ratio = median jobq / median raw; ratio per run pair = jobq / raw of the runs made back to back."
  echo "WAL B/job = cluster-wide WAL written during the timed run / jobs (median)."
  echo "Logs and scripts: $OUT"
} | tee "$OUT/report.md"
