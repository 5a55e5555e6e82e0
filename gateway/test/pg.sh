#!/bin/bash
# A throwaway PostgreSQL 15 cluster for the gateway's tests and benchmark.
#
#   test/pg.sh start DIR PORT   initdb DIR/data, start it on 127.0.0.1:PORT (socket in DIR/sock),
#                               create database gwtest with jobq (the installed extension, or
#                               a minimal stand-in schema when it cannot be created) and a
#                               login role jobq_gateway that sees jobs only through the
#                               tenancy policy; prints "extension" or "schema"
#   test/pg.sh stop DIR
#
# GW_STANDIN=1 uses the stand-in schema even when jobq is installed.
#
# As root, the server and psql run as the postgres OS user (PostgreSQL refuses root).
set -euo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
if [ "$(id -u)" = 0 ]; then
  asuser() { runuser -u postgres -- env PATH="$PGBIN:$PATH" "$@"; }
else
  asuser() { env PATH="$PGBIN:$PATH" "$@"; }
fi
cmd=$1 dir=$2

psql_db() { asuser psql -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U postgres "$@"; }

# The stand-in: the columns the gateway reads and the same tenancy rule as jobq's.
STANDIN_SQL="
CREATE SCHEMA jobq;
CREATE TABLE jobq.jobs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  job_type text NOT NULL,
  status int NOT NULL DEFAULT 0,
  progress_percent int DEFAULT 0,
  status_message text,
  units_done int,
  units_total int);
ALTER TABLE jobq.jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_tenant ON jobq.jobs FOR SELECT
  USING (user_id = nullif(current_setting('jobq.user_id', true), '')::uuid);
GRANT USAGE ON SCHEMA jobq TO jobq_gateway;
GRANT SELECT ON jobq.jobs TO jobq_gateway;
"

case $cmd in
start)
  port=$3
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  asuser mkdir -p "$dir/sock"
  asuser initdb -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1
  preload=""
  [ -f "$(pg_config --pkglibdir)/jobq.so" ] && preload="shared_preload_libraries = 'jobq'"
  {
    echo "$preload"
    echo "jobq.database = 'gwtest'"
    echo "jobq.workers = 1"
    echo "jobq.poll_interval_min = 10ms"
    echo "jobq.poll_interval_max = 200ms"
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$dir/sock'"
    echo "max_connections = 200"
    echo "fsync = off"
    echo "synchronous_commit = off"
  } | asuser tee -a "$dir/data/postgresql.conf" >/dev/null
  if ! asuser pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null; then
    # a jobq.so that will not preload must not stop the gateway's tests
    asuser sed -i "s/^shared_preload_libraries.*//" "$dir/data/postgresql.conf"
    asuser pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
  fi
  psql_db -d postgres -c "CREATE DATABASE gwtest" -c "CREATE ROLE jobq_gateway LOGIN"
  if [ -z "${GW_STANDIN:-}" ] && psql_db -d gwtest -c "CREATE EXTENSION jobq" -c "SELECT jobq.grant_client('jobq_gateway')" \
      >"$dir/extension.log" 2>&1; then
    echo extension
  else
    psql_db -d gwtest -c "$STANDIN_SQL" >/dev/null
    echo schema
  fi
  ;;
stop)
  asuser pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  ;;
*)
  echo "usage: $0 start DIR PORT | stop DIR" >&2
  exit 2
  ;;
esac
