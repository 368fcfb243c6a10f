#!/usr/bin/env bash
# A private, throw-away PostgreSQL cluster for the security gate, so its
# fault drills can restart "the database" without touching the machine's
# shared server. Runs as the `postgres` system user when invoked as root
# (initdb refuses root). Default configuration: fsync and synchronous_commit on.
#
# Usage: scripts/security/pg-cluster.sh start|restart|stop|status DIR PORT
#   start    initdb DIR (when empty) and start on 127.0.0.1:PORT; prints the superuser URL
#   restart  stop (fast) and start again
#   stop     stop (fast); DIR stays
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
port="${3:-}"
[[ -n "$cmd" && -n "$dir" && -n "$port" ]] || { echo "usage: $0 start|restart|stop|status DIR PORT" >&2; exit 2; }

bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[[ -x "$bin/initdb" ]] || bin="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
[[ -x "$bin/initdb" ]] || { echo "pg-cluster: no initdb found (PostgreSQL server binaries)" >&2; exit 1; }

as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

ctl() { as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" "$@"; }

start() {
  mkdir -p "$dir"
  if [[ "$(id -u)" == 0 ]]; then chown postgres: "$dir"; fi
  if [[ ! -s "$dir/data/PG_VERSION" ]]; then
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  ctl -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c synchronous_commit=on -c max_connections=200" start >/dev/null
  echo "postgres://postgres@127.0.0.1:$port/postgres"
}

case "$cmd" in
  start) start ;;
  restart)
    ctl -w -t 60 -m fast stop >/dev/null 2>&1 || true
    start >/dev/null
    ;;
  stop) ctl -w -t 60 -m fast stop >/dev/null 2>&1 || true ;;
  status) ctl status >/dev/null ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
