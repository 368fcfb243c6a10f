#!/usr/bin/env bash
# Checks the MCP servers of the gateway and the controller (`/mcp` on their
# HTTP ports) with two independent clients, against a mesh of its own
# (debug binaries, a scratch database, local auth):
#
#   * the official MCP Python SDK (pinned in scripts/tools.sh,
#     .tools/mcp-venv) runs scripts/mcp/check_mcp.py: tools per principal,
#     operator calls, resources, finalize, refusals, ask with progress and
#     the canary matrix (that file says what it checks);
#   * the MCP Inspector in CLI mode (pinned in scripts/npm-tools.sh, run on
#     the Node.js it pins beside it) lists each server's tools;
#   * the ledger: one fetch_rows made over MCP and the same call made over
#     gRPC (grpcurl) leave the same events (types and payload shapes).
#
# Usage: scripts/mcp-check.sh     (after cargo build of the three services)
# Output: target/mcp-check/ (service logs, the Inspector's answers).
# Environment (optional):
#   MCP_CHECK_PORT_BASE      ports BASE+1..3 (gRPC) and BASE+81..83 (HTTP) of
#                            the mesh (default 24550; outside the ephemeral range)
#   MCP_CHECK_DB_ADMIN_URL   admin connection (default postgres on 127.0.0.1:5432)
#   CARGO_TARGET_DIR         where the debug binaries are (default target/)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

out_dir="$PECR_ROOT/target/mcp-check"
bin_dir="${CARGO_TARGET_DIR:-$PECR_ROOT/target}/debug"
admin_url="${MCP_CHECK_DB_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db_name="pecr_mcp_check"
db_url="${admin_url%/*}/$db_name"
# start, stop_services, mesh_ports and the service tokens (bin_dir, out_dir).
source "$PECR_ROOT/perf/bench-lib.sh"
source "$PECR_ROOT/scripts/scratch-mesh.sh"
rm -rf "$out_dir"
mkdir -p "$out_dir"

say "==> tools (pinned: scripts/tools.sh, scripts/npm-tools.sh)"
tools_bin="$("$PECR_ROOT/scripts/tools.sh")"
npm_bin="$("$PECR_ROOT/scripts/npm-tools.sh")"
mcp_python="$PECR_ROOT/.tools/mcp-venv/bin/python"
[[ -x "$mcp_python" ]] || die "scripts/tools.sh did not install the MCP Python SDK"
node22="$npm_bin/node"
inspector="$npm_bin/mcp-inspector"
[[ -x "$node22" && -x "$inspector" ]] || die "scripts/npm-tools.sh did not install the MCP Inspector and its Node.js"

scratch_mesh_start "${MCP_CHECK_PORT_BASE:-24550}" MCP_CHECK_PORT_BASE
gateway="http://$gw_http"
controller="http://$ct_http"

say "==> the official MCP Python SDK against both servers"
"$mcp_python" scripts/mcp/check_mcp.py "$gateway" "$controller" "$out_dir"

say "==> the MCP Inspector (CLI mode) lists each server's tools"
inspect() {
  local url="$1" principal="$2"
  PATH="$npm_bin:$PATH" MCP_CATALOG_PATH="$out_dir/inspector-catalog.json" \
    "$node22" "$inspector" --cli "$url/mcp" --transport http \
    --header "x-pecr-principal-id: $principal" --method tools/list
}
inspect "$gateway" dev >"$out_dir/inspector-gateway-dev.json"
inspect "$gateway" guest >"$out_dir/inspector-gateway-guest.json"
inspect "$controller" dev >"$out_dir/inspector-controller-dev.json"
"$mcp_python" - "$out_dir" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
names = lambda f: sorted(t["name"] for t in json.loads((out / f).read_text())["tools"])
dev, guest, ask = names("inspector-gateway-dev.json"), names("inspector-gateway-guest.json"), names("inspector-controller-dev.json")
ops = ["aggregate", "diff", "fetch_rows", "fetch_span", "finalize", "list_versions", "redact", "search"]
assert dev == ops, dev
assert guest == ["finalize"], guest
assert ask == ["ask"], ask
print(f"  ok    the Inspector lists {len(dev)} tools for dev, {guest} for guest, {ask} on the controller")
PY

say "==> the ledger: one fetch_rows over MCP and over gRPC leave the same events"
grpcurl="$tools_bin/grpcurl"
session="$("$grpcurl" -plaintext -H 'x-pecr-principal-id: dev' \
  -d '{"budget":{"max_operator_calls":50,"max_bytes":4194304,"max_wallclock_ms":300000,"max_recursion_depth":5},"as_of_time":"2026-06-01T00:00:00Z"}' \
  -v "$gw_grpc" pecr.v1.GatewayService/CreateSession)"
session_id="$(sed -n 's/^ *"sessionId": "\(.*\)",*$/\1/p' <<<"$session")"
token="$(sed -n 's/^x-pecr-session-token: //p' <<<"$session" | tr -d '\r')"
[[ -n "$session_id" && -n "$token" ]] || die "CreateSession over gRPC gave no session: $session"
"$grpcurl" -plaintext -H 'x-pecr-principal-id: dev' -H "x-pecr-session-token: $token" \
  -d "{\"op_name\":\"fetch_rows\",\"session_id\":\"$session_id\",\"params\":\"{\\\"view_id\\\":\\\"safe_customer_view_public\\\",\\\"fields\\\":[\\\"status\\\"],\\\"filter_spec\\\":{\\\"customer_id\\\":\\\"cust_public_1\\\"}}\"}" \
  "$gw_grpc" pecr.v1.GatewayService/CallOperator >/dev/null
snapshot="$("$mcp_python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["policy_snapshot_id"])' "$out_dir/mcp_call.json")"
# psql interpolates variables in scripts read from stdin, not in -c.
mcp_session="$(psql "$db_url" -AtX -v snapshot="$snapshot" \
  <<<"SELECT session_id FROM pecr_sessions WHERE policy_snapshot_id = :'snapshot'")"
[[ -n "$mcp_session" ]] || die "no ledger session for the MCP call's policy snapshot $snapshot"
# Each event: its type and its payload's members with their JSON types, in order.
shape_sql="SELECT string_agg(event_type || '(' || (SELECT string_agg(key || ':' || jsonb_typeof(value), ',' ORDER BY key)
             FROM jsonb_each(payload_json)) || ')', ' ' ORDER BY event_time, event_id)
           FROM pecr_ledger_events WHERE session_id = :'session'"
mcp_shape="$(psql "$db_url" -AtX -v session="$mcp_session" <<<"$shape_sql")"
grpc_shape="$(psql "$db_url" -AtX -v session="$session_id" <<<"$shape_sql")"
printf '%s\n' "$mcp_shape" >"$out_dir/ledger-mcp.txt"
printf '%s\n' "$grpc_shape" >"$out_dir/ledger-grpc.txt"
[[ -n "$mcp_shape" && "$mcp_shape" == "$grpc_shape" ]] \
  || die "the ledger differs: MCP [$mcp_shape] gRPC [$grpc_shape]"
hash_sql="SELECT payload_json->>'params_hash' FROM pecr_ledger_events
          WHERE session_id = :'session' AND event_type = 'OPERATOR_CALL'"
mcp_hash="$(psql "$db_url" -AtX -v session="$mcp_session" <<<"$hash_sql")"
grpc_hash="$(psql "$db_url" -AtX -v session="$session_id" <<<"$hash_sql")"
[[ -n "$mcp_hash" && "$mcp_hash" == "$grpc_hash" ]] \
  || die "the same params were recorded differently: MCP $mcp_hash gRPC $grpc_hash"
say "  ok    the same $(wc -w <<<"$mcp_shape") events, types and payload shapes, the same params hash"
say "mcp check: passed"
