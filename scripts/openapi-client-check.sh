#!/usr/bin/env bash
# Checks that the OpenAPI document a live controller serves makes a working
# Python client as it is: installs the pinned openapi-python-client
# (scripts/tools.sh, .tools/openapi-venv), starts a mesh of its own (debug
# binaries, a scratch database), generates the client from the
# controller's /openapi.json and runs scripts/openapi-client/check_client.py
# with it, unmodified: the dev-up question as dev (SUPPORTED), the replay
# listing, and a call without a principal (401 ErrorResponse).
#
# Usage: scripts/openapi-client-check.sh     (after cargo build of the three services)
# Environment (optional):
#   OPENAPI_CLIENT_PORT_BASE  ports BASE+1..3 (gRPC) and BASE+81..83 (HTTP) of
#                             the mesh (default 24350; outside the ephemeral range)
#   OPENAPI_CLIENT_DB_ADMIN_URL  admin connection (default postgres on 127.0.0.1:5432)
#   CARGO_TARGET_DIR          where the debug binaries are (default target/)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

out_dir="$PECR_ROOT/target/openapi-client"
bin_dir="${CARGO_TARGET_DIR:-$PECR_ROOT/target}/debug"
admin_url="${OPENAPI_CLIENT_DB_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db_name="pecr_openapi_client"
db_url="${admin_url%/*}/$db_name"
query="What is the customer status and plan tier?"
# start, stop_services, mesh_ports and the service tokens (bin_dir, out_dir).
source "$PECR_ROOT/perf/bench-lib.sh"
rm -rf "$out_dir"
mkdir -p "$out_dir"

say "==> tools (pinned: scripts/tools.sh)"
"$PECR_ROOT/scripts/tools.sh" >/dev/null
openapi_bin="$PECR_ROOT/.tools/openapi-venv/bin"
[[ -x "$openapi_bin/openapi-python-client" ]] || die "scripts/tools.sh did not install openapi-python-client"

say "==> a mesh of its own (debug binaries, database $db_name)"
for bin in pecr-ledger-writer pecr-gateway pecr-controller; do
  [[ -x "$bin_dir/$bin" ]] || die "$bin_dir/$bin is missing: cargo build -p $bin"
done
mesh_ports "${OPENAPI_CLIENT_PORT_BASE:-24350}"
for addr in "$lw_grpc" "$lw_http" "$gw_grpc" "$gw_http" "$ct_grpc" "$ct_http"; do
  port_busy "$addr" && die "port ${addr##*:} is in use; free it or set OPENAPI_CLIENT_PORT_BASE"
done
ensure_postgres "$admin_url"
export PGOPTIONS="--client-min-messages=warning"
cleanup() {
  local status=$?
  stop_services
  psql "$admin_url" -qX -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1 || true
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" \
  -c "CREATE DATABASE $db_name" >/dev/null
psql "$db_url" -qX -v ON_ERROR_STOP=1 -f fixtures/pg/safeview_fixtures.sql >/dev/null
budget='{"max_operator_calls":10,"max_bytes":1048576,"max_wallclock_ms":10000,"max_recursion_depth":5,"max_parallelism":4}'
start pecr-ledger-writer "$lw_http" \
  PECR_DB_URL="$db_url" PECR_LEDGER_GRPC_ADDR="$lw_grpc" PECR_LEDGER_HTTP_ADDR="$lw_http" \
  PECR_LEDGER_GATEWAY_TOKEN="$perf_gateway_token" PECR_LEDGER_CONTROLLER_TOKEN="$perf_controller_token"
start pecr-gateway "$gw_http" \
  PECR_DB_URL="$db_url" PECR_LEDGER_URL="http://$lw_grpc" PECR_LEDGER_TOKEN="$perf_gateway_token" \
  PECR_GATEWAY_GRPC_ADDR="$gw_grpc" PECR_BIND_ADDR="$gw_http" \
  PECR_FS_CORPUS_PATH="$PECR_ROOT/fixtures/fs_corpus" PECR_POLICY_BUNDLE_DIR="$PECR_ROOT/opa/bundle"
start pecr-controller "$ct_http" \
  PECR_GATEWAY_URL="http://$gw_grpc" PECR_LEDGER_URL="http://$lw_grpc" \
  PECR_LEDGER_TOKEN="$perf_controller_token" \
  PECR_CONTROLLER_GRPC_ADDR="$ct_grpc" PECR_CONTROLLER_BIND_ADDR="$ct_http" \
  PECR_BUDGET_DEFAULTS="$budget"

say "==> generate the client from http://$ct_http/openapi.json"
curl -fsS "http://$ct_http/openapi.json" -o "$out_dir/openapi.json" \
  || die "the controller does not serve /openapi.json"
package="$out_dir/client/pecr_rest_api_client"
# --fail-on-warning: a document the generator has to skip parts of is a failure.
# Its post-generation hook runs ruff, installed beside it.
(cd "$out_dir" && PATH="$openapi_bin:$PATH" "$openapi_bin/openapi-python-client" generate --path openapi.json \
  --meta none --output-path "$package" --fail-on-warning)
[[ -f "$package/client.py" ]] || die "openapi-python-client wrote no $package/client.py"

say "==> the generated client against the controller (unmodified)"
"$openapi_bin/python" scripts/openapi-client/check_client.py "$out_dir/client" "http://$ct_http" "$query"
say "openapi client: passed"
