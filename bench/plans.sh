#!/usr/bin/env bash
# Where the time goes: the statements behind each bench workload, jobq and raw, with
# pg_stat_statements (track = all, so the SPI statements inside jobq's C functions show up)
# and auto_explain plans of jobq.claim's inner statement.  Not a benchmark: the extra
# modules cost time; the figures are for comparing statements with each other.
#
#   ./bench/plans.sh                       every workload, 8 clients, 5 s each
#   PLANS_CLIENTS=1 PLANS_SECONDS=3 PLANS_WORKLOADS="claim_1" ./bench/plans.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$BENCH_ROOT"

SECS=${PLANS_SECONDS:-5}
C=${PLANS_CLIENTS:-8}
WORKLOADS=${PLANS_WORKLOADS:-"enqueue enqueue_many claim_1 claim_10"}

start_cluster "shared_preload_libraries = 'jobq, pg_stat_statements, auto_explain'
pg_stat_statements.track = all
pg_stat_statements.track_planning = on"
sql -c "CREATE EXTENSION pg_stat_statements" >/dev/null

stats() {
  sql -F ' | ' <<'EOF'
SELECT calls, plans, round(mean_plan_time::numeric, 3), round(mean_exec_time::numeric, 3),
       left(regexp_replace(query, '\s+', ' ', 'g'), 90)
  FROM pg_stat_statements
 WHERE calls >= 50 AND query !~* '^(truncate|vacuum|checkpoint|select pg_stat_statements_reset)'
 ORDER BY calls DESC, total_exec_time DESC
EOF
}

for w in $WORKLOADS; do
  for v in jobq raw; do
    if [[ $w == claim_* ]]; then prefill 400000; else empty_table; fi
    sql -c "SELECT pg_stat_statements_reset()" >/dev/null
    tps=$(pgb -f "$S/${w}_$v.sql" -c "$C" -j $(( C < NPROC ? C : NPROC )) -T "$SECS" 2>&1 \
          | grep -oP '^tps = \K[0-9.]+')
    echo "## $w $v, $C clients, ${SECS}s: $tps scripts/s"
    echo
    echo '```'
    echo "calls | plans | mean plan ms | mean exec ms | statement"
    stats
    echo '```'
    echo
  done
done

# The plan that jobq.claim's inner statement runs with: as chosen by the plan cache, and the
# generic plan it would get once the cache stopped replanning.
prefill 200000
echo "## jobq.claim's inner statement: auto_explain of the 6th call (the plan cache's choice) and of a forced generic plan"
echo
echo '```'
: > "$WORK/server.log"
sql <<'EOF' >/dev/null
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET auto_explain.log_timing = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_level = 'LOG';
SELECT count(*) FROM jobq.claim('default', 'plans', 1);
SELECT count(*) FROM jobq.claim('default', 'plans', 1);
SELECT count(*) FROM jobq.claim('default', 'plans', 1);
SELECT count(*) FROM jobq.claim('default', 'plans', 1);
SELECT count(*) FROM jobq.claim('default', 'plans', 1);
SELECT 'sixth call';
SELECT count(*) FROM jobq.claim('default', 'plans', 1);
SET plan_cache_mode = force_generic_plan;
SELECT 'generic plan';
SELECT count(*) FROM jobq.claim('default', 'plans', 1);
EOF
# the server log, one entry per line group: print the first inner statement's plan after each marker
# (auto_explain logs a nested statement before the statement that called it)
awk 'function flush() { if (e != "" && mark != "" && e ~ /Query Text: (WITH|UPDATE)/) { print "-- " mark; printf "%s", e; mark = "" } e = "" }
     /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] / { flush(); sub(/^[^]]*\] /, "") }
     /Query Text: SELECT .sixth call./   { mark = "6th call (plan cache default)" }
     /Query Text: SELECT .generic plan./ { mark = "plan_cache_mode = force_generic_plan" }
     !/^CONTEXT:/ { e = e $0 "\n" }
     END { flush() }' "$WORK/server.log"
echo '```'
