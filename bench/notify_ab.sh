#!/usr/bin/env bash
# A/B of jobq's claim rows with jobq.notify_progress on and off, on one cluster and one build:
# runs alternate on, off, off, on, ... and each run samples the backends' wait events.
#
#   ./bench/notify_ab.sh                   claim_1 and claim_10 at 8 clients, 3 pairs of 7 s
#   AB_CLIENTS=4 AB_PAIRS=2 AB_WORKLOADS=claim_1 ./bench/notify_ab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$BENCH_ROOT"

C=${AB_CLIENTS:-8}
PAIRS=${AB_PAIRS:-3}
SECS=${AB_SECONDS:-7}
WORKLOADS=${AB_WORKLOADS:-"claim_1 claim_10"}
PREFILL_N=${AB_PREFILL:-400000}

start_cluster
echo "jobq.so md5 $(md5sum "$("$PGBIN/pg_config" --pkglibdir)/jobq.so" | cut -c1-12), $C clients, ${SECS}s runs"
echo
echo "| workload | notify_progress | jobs/s per run | median | top wait events (10 samples x clients) |"
echo "|---|---|---|---:|---|"
declare -A PER=([claim_1]=1 [claim_10]=10)
for w in $WORKLOADS; do
  declare -A R=([on]="" [off]="") WAITS=([on]="" [off]="")
  for p in $(seq 1 "$PAIRS"); do
    if (( p % 2 )); then order="on off"; else order="off on"; fi
    for n in $order; do
      prefill "$PREFILL_N"
      tmp=$(mktemp)
      BENCH_PGOPTIONS="-c jobq.notify_progress=$n" pgb -f "$S/${w}_jobq.sql" -c "$C" -j $(( C < NPROC ? C : NPROC )) -T "$SECS" >"$tmp" 2>&1 &
      pg=$!
      sleep 2
      for _ in $(seq 1 10); do
        WAITS[$n]+=$(sql -c "SELECT string_agg(coalesce(wait_event_type || ':' || wait_event, 'CPU'), ' ') FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = '$DB'")" "
        sleep 0.3
      done
      wait "$pg" || { cat "$tmp" >&2; die "pgbench failed"; }
      R[$n]+="$(grep -oP '^tps = \K[0-9.]+' "$tmp" | awk -v p="${PER[$w]}" '{printf "%.0f", $1 * p}') "
      rm -f "$tmp"
    done
  done
  for n in on off; do
    med=$(tr ' ' '\n' <<<"${R[$n]}" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    top=$(tr ' ' '\n' <<<"${WAITS[$n]}" | grep . | sort | uniq -c | sort -rn | head -3 | awk '{printf "%s%s %s", (NR>1 ? ", " : ""), $2, $1}')
    echo "| $w | $n | ${R[$n]% } | $med | $top |"
  done
done
