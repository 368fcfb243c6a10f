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
say "==> first query: which gRPC services does the gateway serve?"
say "\$ grpcurl -plaintext $PECR_GATEWAY_GRPC_ADDR list"
"$tools_bin/grpcurl" -plaintext "$PECR_GATEWAY_GRPC_ADDR" list

say
say "==> first query over REST: principal dev opens a session and reads the public customer view"
headers="$run_dir/first-query.headers"
budget='{"max_operator_calls":10,"max_bytes":1048576,"max_wallclock_ms":1000,"max_recursion_depth":3}'
say "\$ curl -D- -H 'content-type: application/json' -H 'x-pecr-principal-id: dev' -d '{\"budget\":$budget}' http://$PECR_BIND_ADDR/v1/sessions"
session="$(curl -sS -D "$headers" -H 'content-type: application/json' -H 'x-pecr-principal-id: dev' \
  -d "{\"budget\":$budget}" "http://$PECR_BIND_ADDR/v1/sessions")"
say "$session"
token="$(grep -i '^x-pecr-session-token:' "$headers" | cut -d' ' -f2 | tr -d '\r')"
session_id="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["session_id"])' <<<"$session")"
[[ -n "$token" && -n "$session_id" ]] || die "the gateway did not open a session"
params='{"view_id":"safe_customer_view_public","fields":["customer_id","status","plan_tier"]}'
say "\$ curl -H 'x-pecr-principal-id: dev' -H 'x-pecr-session-token: <token>' -d '{\"session_id\":\"$session_id\",\"params\":$params}' http://$PECR_BIND_ADDR/v1/operators/fetch_rows"
curl -sS -H 'content-type: application/json' -H 'x-pecr-principal-id: dev' -H "x-pecr-session-token: $token" \
  -d "{\"session_id\":\"$session_id\",\"params\":$params}" "http://$PECR_BIND_ADDR/v1/operators/fetch_rows" \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({"terminal_mode": r["terminal_mode"], "rows": [u["content"] for u in r["result"]], "evidence_unit_ids": [u["evidence_unit_id"] for u in r["result"]]}, indent=2))'

say
say "PECR is up."
printf '  %-20s %-18s %s\n' service gRPC "HTTP (/healthz /readyz /metrics)" \
  pecr-gateway "$PECR_GATEWAY_GRPC_ADDR" "http://$PECR_BIND_ADDR" \
  pecr-controller "$PECR_CONTROLLER_GRPC_ADDR" "http://$PECR_CONTROLLER_BIND_ADDR" \
  pecr-ledger-writer "$PECR_LEDGER_GRPC_ADDR" "http://$PECR_LEDGER_HTTP_ADDR"
say "  ledger database: ${PECR_DB_URL%%\?*}"
say "Logs: $run_dir/*.log    grpcurl: $tools_bin/grpcurl"
say "Stop: scripts/dev-down.sh"
