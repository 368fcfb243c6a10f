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
source "$PECR_ROOT/scripts/scratch-mesh.sh"
rm -rf "$out_dir"
mkdir -p "$out_dir"

say "==> tools (pinned: scripts/tools.sh)"
"$PECR_ROOT/scripts/tools.sh" >/dev/null
openapi_bin="$PECR_ROOT/.tools/openapi-venv/bin"
[[ -x "$openapi_bin/openapi-python-client" ]] || die "scripts/tools.sh did not install openapi-python-client"

scratch_mesh_start "${OPENAPI_CLIENT_PORT_BASE:-24350}" OPENAPI_CLIENT_PORT_BASE

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
