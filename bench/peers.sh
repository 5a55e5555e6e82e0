#!/usr/bin/env bash
# The peers on this machine, now: graphile-worker and pg-boss no-op drains through the shared
# peer harness (../shared/bench), so that bench/inserver.sh can divide jobq's in-server no-op
# rate by figures from the same machine and the same hour instead of the last peer report.
#
#   ./bench/peers.sh                      # about 6 min on 2 cores
#   PEER_BENCH=/path/to/bench ./bench/peers.sh
#
# The harness may be read-only and writes beside itself, so it runs from a copy.  Only each
# peer's best setting from the last full peer run is swept (override with the harness's
# GW_SWEEP_CONC, GW_SWEEP_BATCHED, PB_SWEEP).  Writes bench/out/peers-<run id>/peers.tsv
# (figure, jobs/s, runs) and links bench/out/peers-latest.tsv to it; inserver.sh reads that.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=${PEER_BENCH:-$ROOT/../shared/bench}
rm -f "$ROOT/bench/out/peers-latest.tsv"     # never leave an older run for inserver.sh to read
if [[ ! -f $SRC/run-peers.sh ]]; then
  echo "peers: no peer harness at $SRC; skipping (set PEER_BENCH)" >&2
  exit 0
fi
RUN_ID=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=$ROOT/bench/out/peers-$RUN_ID
COPY=$(mktemp -d /tmp/jobq-peers.XXXXXX)
trap 'rm -rf "$COPY"' EXIT
mkdir -p "$OUT"
cp -r "$SRC/." "$COPY/"
rm -rf "$COPY/results"
chmod -R a+rX "$COPY"

export GW_SWEEP_CONC=${GW_SWEEP_CONC:-10}
export GW_SWEEP_BATCHED=${GW_SWEEP_BATCHED:-10:1000}
export PB_SWEEP=${PB_SWEEP:-4:1000}
# its own data directory and port, so it never meets another run of the harness
export BENCH_PGDATA=$COPY/pgdata PGPORT=${PEER_PORT:-5498}
# graphile and pgboss alone expect the database that the physical section creates: use postgres
export BENCH_DB=postgres
BENCH_RESULTS_ROOT=$OUT bash "$COPY/run-peers.sh" graphile pgboss >"$OUT/run.log" 2>&1 || {
  echo "peers: the peer harness failed; see $OUT/run.log" >&2
  tail -20 "$OUT/run.log" >&2
  exit 1
}

jsonls=("$OUT"/*/results.jsonl)
jsonl=${jsonls[0]}
pick() {  # pick SECTION REGEX: "median<TAB>runs" of the figure whose name matches
  jq -r --arg s "$1" --arg re "$2" \
    'select(.section == $s and (.name | test($re))) | "\(.median)\t\(.runs | map(tostring) | join(" "))"' \
    "$jsonl" | head -1
}
{
  printf 'graphile.batched\t%s\n' "$(pick graphile 'best batched')"
  printf 'graphile.plain\t%s\n' "$(pick graphile 'best plain')"
  printf 'pgboss.best\t%s\n' "$(pick pgboss 'best setting')"
  printf 'graphile.single_enqueue\t%s\n' "$(pick graphile '^enqueue single')"
  printf 'pgboss.single_enqueue\t%s\n' "$(pick pgboss '^enqueue single')"
} >"$OUT/peers.tsv"
printf 'run\t%s\n' "$RUN_ID" >>"$OUT/peers.tsv"
ln -sfn "peers-$RUN_ID/peers.tsv" "$ROOT/bench/out/peers-latest.tsv"
cat "$OUT/peers.tsv"
