#!/bin/bash
# make demo: jobq's story on a throwaway cluster under demo/cluster.
#
#  1. jobs enqueued with plain SQL run by themselves in the database;
#  2. a 200-unit job checkpoints every unit to local files; its worker is
#     killed (kill -9) partway; the job resumes where it stopped.
#
# KEEP=1 leaves the cluster (and the gateway) running afterwards (it prints how to connect).
# GATEWAY=0 skips jobq-gateway, which otherwise serves the live progress page of the long job
# (the page's URL is printed; UNITS=2000 KEEP=1 gives you time to open it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PGBIN=$(pg_config --bindir)
DIR=$ROOT/demo/cluster
UNITS=${UNITS:-200}

if [ "$(id -u)" = 0 ]; then
  asuser() { runuser -u postgres -- env PATH="$PGBIN:$PATH" "$@"; }
else
  asuser() { env PATH="$PGBIN:$PATH" "$@"; }
fi
bold() { printf '\033[1m%s\033[0m\n' "$*"; }

GW_PID=
stop() {
  [ -n "$GW_PID" ] && kill -TERM "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  [ -f "$DIR/data/postmaster.pid" ] && asuser pg_ctl -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  [ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"
}

# a fresh cluster
if [ -f "$DIR/data/postmaster.pid" ]; then asuser pg_ctl -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true; fi
rm -rf "$DIR"
mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$DIR"
PORT=$(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0)->sockport')
asuser initdb -D "$DIR/data" -A trust -U postgres >/dev/null
cat <<EOF | asuser tee -a "$DIR/data/postgresql.conf" >/dev/null
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
shared_preload_libraries = 'jobq'
jobq.database = 'postgres'
jobq.workers = 2
jobq.poll_interval_max = '1s'
log_min_messages = log
EOF
trap 'echo; [ "${KEEP:-0}" = 1 ] || echo "(removing demo/cluster)"; stop' EXIT
asuser pg_ctl -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
psql_() { asuser psql -X -q -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
val() { asuser psql -X -A -t -h "$DIR" -p "$PORT" -U postgres -d postgres -c "$1"; }

bold "== jobq demo: PostgreSQL $(val 'SHOW server_version') on port $PORT, data in demo/cluster"
psql_ -c "CREATE EXTENSION jobq"
echo "CREATE EXTENSION jobq; $(val "SELECT count(*) FROM jobq.worker_status") in-server workers are waiting for work."

bold "== 1. Whole jobs: a SQL handler, enqueued inside your own transaction"
psql_ -o /dev/null <<'SQL'
CREATE TABLE thumbnails (image text PRIMARY KEY, size int, made_by text);
CREATE FUNCTION make_thumbnail(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    -- the handler's writes commit exactly when its job completes
    INSERT INTO thumbnails VALUES (j.payload->>'image', 128, current_setting('jobq.job_id'));
    RETURN jsonb_build_object('thumbnail', j.payload->>'image' || '.thumb.png');
END $$;
SELECT jobq.register('thumbnail', 'make_thumbnail(jobq.jobs)');
SQL
echo "SELECT jobq.register('thumbnail', 'make_thumbnail(jobq.jobs)');"
echo "BEGIN; SELECT jobq.enqueue('thumbnail', '{\"image\": \"cat-N.jpg\"}') ...x5; COMMIT;"
psql_ -c "BEGIN" -c "SELECT count(jobq.enqueue('thumbnail', jsonb_build_object('image', 'cat-' || g || '.jpg'))) FROM generate_series(1, 5) g" -c "COMMIT" >/dev/null
for _ in $(seq 50); do
  [ "$(val "SELECT count(*) FROM jobq.jobs WHERE job_type = 'thumbnail' AND status = 2")" = 5 ] && break
  sleep 0.1
done
psql_ -c "SELECT payload->>'image' AS image, status, result->>'thumbnail' AS result, attempts,
                 round(extract(epoch FROM completed_at - created_at) * 1000, 1) AS ms_from_enqueue
            FROM jobq.jobs WHERE job_type = 'thumbnail' ORDER BY id"
echo "No worker process outside the database: the jobs ran by themselves, woken at commit."

bold "== 2. A long job in $UNITS units, checkpointed to blob storage (local files)"
psql_ -o /dev/null <<'SQL'
CREATE FUNCTION render_unit(j jobq.jobs, n int) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
    RAISE LOG 'demo: rendering unit % of job %', n, j.id;   -- counted below
    PERFORM pg_sleep(0.02);                                   -- the expensive part
    RETURN convert_to(format('frame %s of %s: %s', n, j.units_total, md5(n::text)), 'UTF8');
END $$;
CREATE FUNCTION stitch(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE bytes bigint := 0;
BEGIN
    FOR n IN 1..j.units_total LOOP
        bytes := bytes + length(jobq.checkpoint_data(j.id, n));
    END LOOP;
    RETURN jsonb_build_object('video', 'movie.mp4', 'frames', j.units_total, 'bytes', bytes);
END $$;
SELECT jobq.register('render', unit_handler => 'render_unit(jobq.jobs, int)', finalizer => 'stitch(jobq.jobs)');
SQL
DEMO_USER=6f1c2a54-0000-4000-8000-00000000cafe

# jobq-gateway: the same progress, live in a browser (the page follows the demo user's jobs)
GW_URL=
if [ "${GATEWAY:-1}" = 1 ] && make -s -C gateway jobq-gateway >/dev/null 2>&1; then
  GW_PORT=$(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0)->sockport')
  JOBQ_GATEWAY_JWT_SECRET=$(openssl rand -hex 32)
  export JOBQ_GATEWAY_JWT_SECRET
  gateway/jobq-gateway --listen 127.0.0.1 --port "$GW_PORT" \
    --database-url "host=$DIR port=$PORT user=postgres dbname=postgres" >"$DIR/gateway.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 50); do grep -q 'listening on http' "$DIR/gateway.log" && break; sleep 0.1; done
  if grep -q 'listening on http' "$DIR/gateway.log"; then
    GW_URL="http://127.0.0.1:$GW_PORT/#access_token=$(gateway/tools/mint-token.sh "$DEMO_USER" 86400)"
  else
    echo "(jobq-gateway did not start; see demo/cluster/gateway.log)"
  fi
fi

JOB=$(val "SELECT jobq.enqueue('render', '{\"movie\": \"holiday\"}', user_id => '$DEMO_USER', units => $UNITS)")
echo "SELECT jobq.enqueue('render', ..., units => $UNITS) -> $JOB"
if [ -n "$GW_URL" ]; then
  echo "Live in a browser (jobq-gateway on 127.0.0.1:$GW_PORT, a token for user $DEMO_USER):"
  echo "  $GW_URL&job_id=$JOB"
fi

bar() {  # bar DONE TOTAL STATUS NOTE
  local width=40 filled=$(( $1 * 40 / $2 ))
  printf '\r  [%s%s] %3d%%  %3d/%d units  %-10s %s' \
    "$(printf '%*s' "$filled" '' | tr ' ' '#')" "$(printf '%*s' $((width - filled)) '' | tr ' ' '.')" \
    $(( $1 * 100 / $2 )) "$1" "$2" "$3" "$4"
}
status_name() { case $1 in 0) echo Queued;; 1) echo Processing;; 2) echo Completed;; 3) echo Failed;; 4) echo Cancelled;; esac; }

KILL_AT=$(( UNITS * 2 / 5 ))
killed=0
done_at_kill=0
while :; do
  row=$(val "SELECT units_done, status FROM jobq.jobs WHERE id = '$JOB'" 2>/dev/null || echo "")
  if [ -z "$row" ]; then bar "$done_at_kill" "$UNITS" "restarting" ""; sleep 0.1; continue; fi
  d=${row%%|*}; s=${row##*|}
  bar "$d" "$UNITS" "$(status_name "$s")" ""
  if [ "$killed" = 0 ] && [ "$d" -ge "$KILL_AT" ]; then
    pid=$(val "SELECT pid FROM jobq.worker_status WHERE job_id = '$JOB'")
    if [ -n "$pid" ]; then
      kill -9 "$pid"
      killed=1; done_at_kill=$d
      echo
      echo "  kill -9 $pid: the worker dies after unit $d of $UNITS (the server restarts its processes)"
    fi
  fi
  [ "$s" -ge 2 ] && break
  sleep 0.1
done
echo
runs=$(grep -c "demo: rendering unit .* of job $JOB" "$DIR/server.log" || true)
psql_ -c "SELECT status, units_done, attempts, result FROM jobq.jobs WHERE id = '$JOB'"
echo "After the crash the job resumed at unit $((done_at_kill + 1)), not unit 1:"
echo "  $UNITS units, $runs unit-handler runs (only a unit in flight at the kill runs twice)."
echo
echo "Checkpoints (jobq.checkpoint_url is empty: files under \$PGDATA/jobq_checkpoints):"
psql_ -c "SELECT unit_id, bytes, left(sha256, 16) || '…' AS sha256, uri FROM jobq.checkpoints('$JOB') WHERE unit_id IN (1, 2, $UNITS)"
echo "  $(find "$DIR/data/jobq_checkpoints" -name 'unit_*.output' | wc -l) files, for example:"
find "$DIR/data/jobq_checkpoints" -name 'unit_1.output' | sed "s|$ROOT/||; s|^|    |"
echo
bold "== done"
if [ "${KEEP:-0}" = 1 ]; then
  echo "The cluster keeps running: psql -h $DIR -p $PORT -U postgres postgres"
  echo "Stop it with: pg_ctl -D $DIR/data stop"
  if [ -n "$GW_URL" ]; then
    echo "The gateway keeps running (pid $GW_PID): $GW_URL"
    echo "Stop it with: kill $GW_PID"
  fi
  trap - EXIT
fi
