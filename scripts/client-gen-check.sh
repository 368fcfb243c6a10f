#!/usr/bin/env bash
# Checks the clients buf.gen.yaml generates: installs the pinned tools
# (scripts/tools.sh, scripts/npm-tools.sh), runs `buf generate` into
# target/gen/, checks that the Python and TypeScript files are there,
# imports the Python modules, type-checks the TypeScript with tsc, and
# finally calls ControllerService/Run with the generated Python client
# against a mesh of its own (debug binaries, a scratch database), expecting
# a SUPPORTED answer for principal dev. The Go targets run only where
# protoc-gen-go and protoc-gen-go-grpc are on PATH.
#
# Usage: scripts/client-gen-check.sh     (after cargo build of the three services)
# Environment (optional):
#   CLIENT_GEN_PORT_BASE  ports BASE+1..3 (gRPC) and BASE+81..83 (HTTP) of the
#                         mesh (default 24150; outside the ephemeral range)
#   CLIENT_GEN_DB_ADMIN_URL  admin connection (default postgres on 127.0.0.1:5432)
#   CARGO_TARGET_DIR      where the debug binaries are (default target/)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

gen="$PECR_ROOT/target/gen"
out_dir="$PECR_ROOT/target/client-gen"
bin_dir="${CARGO_TARGET_DIR:-$PECR_ROOT/target}/debug"
admin_url="${CLIENT_GEN_DB_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db_name="pecr_client_gen"
db_url="${admin_url%/*}/$db_name"
query="What is the customer status and plan tier?"
# start, stop_services, mesh_ports and the service tokens (bin_dir, out_dir).
source "$PECR_ROOT/perf/bench-lib.sh"
source "$PECR_ROOT/scripts/scratch-mesh.sh"
rm -rf "$out_dir"
mkdir -p "$out_dir"

say "==> tools (pinned: scripts/tools.sh, scripts/npm-tools.sh)"
venv_bin="$("$PECR_ROOT/scripts/tools.sh")"
npm_bin="$("$PECR_ROOT/scripts/npm-tools.sh")"

say "==> buf generate into target/gen/"
if command -v protoc-gen-go >/dev/null 2>&1 && command -v protoc-gen-go-grpc >/dev/null 2>&1; then
  template="$("$venv_bin/python" scripts/client-gen/local_template.py buf.gen.yaml)"
  go=1
else
  say "    protoc-gen-go / protoc-gen-go-grpc not on PATH: the Go targets are skipped"
  template="$("$venv_bin/python" scripts/client-gen/local_template.py buf.gen.yaml --without-go)"
  go=0
fi
"$venv_bin/buf" generate --template "$template"

say "==> generated files"
expected=()
for file in common controller errors gateway ledger options replay; do
  expected+=("python/pecr/v1/${file}_pb2.py" "python/pecr/v1/${file}_pb2.pyi" "ts/pecr/v1/$file.ts")
  [[ "$go" == 1 ]] && expected+=("go/pecr/v1/$file.pb.go")
done
for file in controller gateway ledger; do
  expected+=("python/pecr/v1/${file}_pb2_grpc.py")
  [[ "$go" == 1 ]] && expected+=("go/pecr/v1/${file}_grpc.pb.go")
done
expected+=("python/google/api/annotations_pb2.py" "ts/google/api/annotations.ts")
for file in "${expected[@]}"; do
  [[ -s "$gen/$file" ]] || die "buf generate wrote no target/gen/$file"
done
say "    ${#expected[@]} files present"

say "==> Python: every generated module imports"
"$venv_bin/python" - "$gen/python" <<'PY'
import importlib, pathlib, sys
root = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(root))
modules = sorted(".".join(p.relative_to(root).with_suffix("").parts) for p in root.rglob("*.py"))
for name in modules:
    importlib.import_module(name)
from pecr.v1 import controller_pb2_grpc, gateway_pb2_grpc, ledger_pb2_grpc
for stub in (controller_pb2_grpc.ControllerServiceStub, gateway_pb2_grpc.GatewayServiceStub,
             ledger_pb2_grpc.LedgerServiceStub):
    assert callable(stub), stub
print(f"    {len(modules)} modules imported")
PY

say "==> TypeScript: tsc --noEmit --strict"
# On a copy, beside a link to the packages ts-proto brought
# (@bufbuild/protobuf): buf's clean would follow a link left in its output.
ts="$out_dir/ts"
cp -R "$gen/ts" "$ts"
ln -s "$PECR_ROOT/.tools/npm/node_modules" "$ts/node_modules"
cat >"$ts/tsconfig.json" <<'JSON'
{
  "compilerOptions": {
    "strict": true,
    "noEmit": true,
    "target": "es2020",
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "skipLibCheck": true
  },
  "include": ["pecr/**/*.ts", "google/**/*.ts"]
}
JSON
"$npm_bin/tsc" -p "$ts/tsconfig.json"
say "    $(find "$ts/pecr" "$ts/google" -name '*.ts' | wc -l) files type-check"

scratch_mesh_start "${CLIENT_GEN_PORT_BASE:-24150}" CLIENT_GEN_PORT_BASE

say "==> ControllerService/Run and RunStream through the generated Python client (principal dev)"
"$venv_bin/python" scripts/client-gen/run_controller.py "$gen/python" "$ct_grpc" dev "$query"
say "client generation: passed"
