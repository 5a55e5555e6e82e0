#!/usr/bin/env bash
# CPU profile (perf) of the backends serving one bench workload, on a throwaway cluster.
#
#   ./bench/profile.sh claim_1 jobq        # WORKLOAD VARIANT [CLIENTS (8)] [SECONDS (6)]
#   ./bench/profile.sh enqueue raw 8 6
#
# Prints the top symbols (self time) of the bench backends only, so other servers on the
# machine do not show up, and keeps perf.data in bench/out/profile-<workload>-<variant>/.
# Needs perf (linux-perf) and root or perf_event_paranoid <= 0.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$BENCH_ROOT"

W=${1:?workload: enqueue, enqueue_many, claim_1 or claim_10}
V=${2:?variant: jobq or raw}
C=${3:-8}
SECS=${4:-6}
OUT=$BENCH_ROOT/bench/out/profile-$W-$V
command -v perf >/dev/null || die "perf is not installed"
[[ -f $BENCH_ROOT/bench/sql/${W}_$V.sql ]] || die "no script bench/sql/${W}_$V.sql"
mkdir -p "$OUT"

start_cluster
if [[ $W == claim_* ]]; then prefill 400000; else empty_table; fi

pgb -f "$S/${W}_$V.sql" -c "$C" -j $(( C < NPROC ? C : NPROC )) -T $(( SECS + 2 )) >"$OUT/pgbench.log" 2>&1 &
PGB=$!
sleep 1
pids=$(sql -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = '$DB'")
[[ -n $pids ]] || die "no bench backends found"
perf record -g -o "$OUT/perf.data" -p "$pids" -- sleep "$SECS" 2>"$OUT/perf-record.log" >/dev/null || true
wait "$PGB" || die "pgbench failed, see $OUT/pgbench.log"
grep -E '^tps' "$OUT/pgbench.log"
echo "## $W $V, $C clients: top symbols (self), bench backends only"
perf report -i "$OUT/perf.data" --no-children --sort dso,sym -g none --percent-limit 0.7 2>/dev/null \
  | grep -E '^ +[0-9]' | head -45
