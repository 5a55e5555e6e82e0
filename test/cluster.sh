#!/bin/bash
# Start or stop a throwaway PostgreSQL cluster for the test suites.
#
#   test/cluster.sh start NAME PORT   initdb $WORK/NAME/data, start it on PORT with
#                                     test/jobq.conf (+ pg_cron), create database
#                                     contrib_regression with pgtap, pg_cron and jobq
#   test/cluster.sh stop NAME
#
# Runs the server as the postgres OS user when called as root.
set -euo pipefail
: "${WORK:?WORK must be set (test/run.sh sets it)}"
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
PGBIN=${PGBIN:-$(pg_config --bindir)}
if [ "$(id -u)" = 0 ]; then
  asuser() { runuser -u postgres -- env PATH="$PGBIN:$PATH" "$@"; }
else
  asuser() { env PATH="$PGBIN:$PATH" "$@"; }
fi

cmd=$1 name=$2
dir=$WORK/$name
case $cmd in
start)
  port=$3
  asuser mkdir -p "$dir/sock"
  asuser initdb -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1
  {
    cat "$ROOT/test/jobq.conf"
    echo "shared_preload_libraries = 'jobq, pg_cron'"
    echo "cron.database_name = 'contrib_regression'"
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$dir/sock'"
    echo "fsync = off"
  } | asuser tee -a "$dir/data/postgresql.conf" >/dev/null
  asuser pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
  asuser psql -X -q -h "$dir/sock" -p "$port" -U postgres -d postgres \
    -c "CREATE DATABASE contrib_regression" >/dev/null
  asuser psql -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U postgres -d contrib_regression \
    -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION jobq" >/dev/null
  ;;
stop)
  asuser pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  ;;
esac
