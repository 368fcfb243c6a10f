#!/usr/bin/env bash
# Brings up the whole PECR mesh on this machine: builds the three services,
# makes sure the ledger database exists, starts ledger-writer, gateway and
# controller in the background, waits until each is ready, and answers a
# first query. Stop everything with scripts/dev-down.sh.
#
# Environment (all optional):
#   PECR_DB_URL   ledger database (default: database "pecr" on 127.0.0.1:5432, created if missing)
#   PECR_*_ADDR   listen addresses (see README.md / RUNBOOK.md)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

command -v cargo >/dev/null 2>&1 || die "cargo is required (the Rust toolchain)"
command -v curl >/dev/null 2>&1 || die "curl is required"

run_dir="$PECR_ROOT/target/dev"
mkdir -p "$run_dir"

# Already running? Start from a clean slate so the ports are free.
"$PECR_ROOT/scripts/dev-down.sh" --quiet

say "==> building (cargo build --workspace --bins)"
cargo build --workspace --bins --quiet

say "==> preparing the ledger database"
if [[ -z "${PECR_DB_URL:-}" ]]; then
  admin_url="postgres://postgres@127.0.0.1:5432/postgres"
  ensure_postgres "$admin_url"
  if [[ "$(psql "$admin_url" -tAc "SELECT 1 FROM pg_database WHERE datname = 'pecr'")" != "1" ]]; then
    psql "$admin_url" -qc 'CREATE DATABASE pecr' >/dev/null
    say "    created database pecr"
  fi
  export PECR_DB_URL="postgres://postgres@127.0.0.1:5432/pecr"
else
  ensure_postgres "$PECR_DB_URL"
fi
say "==> loading the safe-view fixture (fixtures/pg/safeview_fixtures.sql; re-runnable)"
psql "$PECR_DB_URL" -v ON_ERROR_STOP=1 -q -f "$PECR_ROOT/fixtures/pg/safeview_fixtures.sql" >/dev/null
export PECR_FS_CORPUS_PATH="${PECR_FS_CORPUS_PATH:-$PECR_ROOT/fixtures/fs_corpus}"
export PECR_POLICY_BUNDLE_DIR="${PECR_POLICY_BUNDLE_DIR:-$PECR_ROOT/opa/bundle}"

export PECR_LEDGER_GRPC_ADDR="${PECR_LEDGER_GRPC_ADDR:-127.0.0.1:50053}"
export PECR_LEDGER_HTTP_ADDR="${PECR_LEDGER_HTTP_ADDR:-127.0.0.1:8082}"
export PECR_GATEWAY_GRPC_ADDR="${PECR_GATEWAY_GRPC_ADDR:-127.0.0.1:50051}"
export PECR_BIND_ADDR="${PECR_BIND_ADDR:-127.0.0.1:8080}"
export PECR_CONTROLLER_GRPC_ADDR="${PECR_CONTROLLER_GRPC_ADDR:-127.0.0.1:50052}"
export PECR_CONTROLLER_BIND_ADDR="${PECR_CONTROLLER_BIND_ADDR:-127.0.0.1:8081}"
export PECR_LEDGER_URL="${PECR_LEDGER_URL:-http://$PECR_LEDGER_GRPC_ADDR}"
export PECR_GATEWAY_URL="${PECR_GATEWAY_URL:-http://$PECR_GATEWAY_GRPC_ADDR}"
# The budget a run gets when its request names none (spec 30 §2.2: required).
default_budget='{"max_operator_calls":10,"max_bytes":1048576,"max_wallclock_ms":10000,"max_recursion_depth":5,"max_parallelism":4}'
export PECR_BUDGET_DEFAULTS="${PECR_BUDGET_DEFAULTS:-$default_budget}"

start() {
  local name="$1" http_addr="$2"
  say "==> starting $name"
  nohup "$PECR_ROOT/target/debug/$name" >"$run_dir/$name.log" 2>&1 &
  echo $! >"$run_dir/$name.pid"
  for _ in $(seq 1 120); do
    if [[ "$(http_status "http://$http_addr/readyz")" == "200" ]]; then return 0; fi
    if ! kill -0 "$(cat "$run_dir/$name.pid")" 2>/dev/null; then
      say "$name exited; the end of $run_dir/$name.log:" >&2
      tail -n 20 "$run_dir/$name.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  say "$name did not become ready in 60 s; the end of $run_dir/$name.log:" >&2
  tail -n 20 "$run_dir/$name.log" >&2
  "$PECR_ROOT/scripts/dev-down.sh" --quiet
  exit 1
}

start pecr-ledger-writer "$PECR_LEDGER_HTTP_ADDR"
start pecr-gateway "$PECR_BIND_ADDR"
start pecr-controller "$PECR_CONTROLLER_BIND_ADDR"

tools_bin="$("$PECR_ROOT/scripts/tools.sh")"
say
say "==> which gRPC services does the controller serve?"
say "\$ grpcurl -plaintext $PECR_CONTROLLER_GRPC_ADDR list"
"$tools_bin/grpcurl" -plaintext "$PECR_CONTROLLER_GRPC_ADDR" list

say
say "==> first query: principal dev asks a question; the controller runs it through the gateway"
say "\$ pecr --principal dev run \"What is the customer status and plan tier?\""
PECR_CONTROLLER_URL="http://$PECR_CONTROLLER_GRPC_ADDR" "$PECR_ROOT/target/debug/pecr" \
  --principal dev run "What is the customer status and plan tier?"

say
say "PECR is up."
printf '  %-20s %-18s %s\n' service gRPC "HTTP (/healthz /readyz /metrics)" \
  pecr-gateway "$PECR_GATEWAY_GRPC_ADDR" "http://$PECR_BIND_ADDR" \
  pecr-controller "$PECR_CONTROLLER_GRPC_ADDR" "http://$PECR_CONTROLLER_BIND_ADDR" \
  pecr-ledger-writer "$PECR_LEDGER_GRPC_ADDR" "http://$PECR_LEDGER_HTTP_ADDR"
say "  ledger database: ${PECR_DB_URL%%\?*}"
say "Logs: $run_dir/*.log    grpcurl: $tools_bin/grpcurl    CLI: target/debug/pecr --help"
say "Stop: scripts/dev-down.sh"
