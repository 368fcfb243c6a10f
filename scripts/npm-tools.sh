#!/usr/bin/env bash
# Installs the pinned npm tools of client generation into .tools/npm and
# prints its bin folder (add it to PATH):
#
#   * ts-proto: the protoc plugin buf.gen.yaml runs for TypeScript
#     (.tools/npm/node_modules/.bin/protoc-gen-ts_proto);
#   * typescript: tsc, which type-checks the generated client
#     (scripts/client-gen-check.sh);
#   * rxjs: what ts-proto's generated client returns for a server-streaming
#     RPC (ControllerService.RunStream), so the check type-checks it too;
#   * redoc: the reference page's standalone bundle; the copy committed under
#     vendor/redoc/ is checked against this one by libs/edge/tests/redoc_vendor.rs;
#   * @modelcontextprotocol/inspector: the MCP Inspector, whose CLI mode
#     scripts/mcp-check.sh uses as a second MCP client; it needs Node.js 22,
#     so the `node` package pins one beside it (.bin/node), which that
#     check runs it with.
#
# Exact versions, no lockfile: the packages' own dependencies resolve as
# npm picks them at install time. Idempotent: with the same pins already
# installed it does nothing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$root/.tools/npm"

# Pins: bump deliberately, in one place.
pins=(
  "ts-proto@2.18.0"
  "typescript@5.9.3"
  "rxjs@7.8.2"
  "redoc@2.5.4"
  "@modelcontextprotocol/inspector@2.12.0"
  "node@22.23.3"
)
stamp="$prefix/pins.txt"
bin="$prefix/node_modules/.bin"

want="$(printf '%s\n' "${pins[@]}")"
redoc_bundle="$prefix/node_modules/redoc/bundles/redoc.standalone.js"
if [[ -x "$bin/protoc-gen-ts_proto" && -x "$bin/tsc" && -f "$redoc_bundle" && -d "$prefix/node_modules/rxjs" \
  && -x "$bin/mcp-inspector" && -x "$bin/node" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$bin"
  exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "npm-tools.sh: npm (Node.js) is required" >&2; exit 1; }
mkdir -p "$prefix"
# A package.json of its own keeps npm from walking up into the repository.
[[ -f "$prefix/package.json" ]] || echo '{"private": true}' >"$prefix/package.json"
npm install --prefix "$prefix" --no-package-lock --save-exact --no-audit --no-fund --silent "${pins[@]}" >&2
"$bin/tsc" --version >/dev/null 2>&1 || { echo "npm-tools.sh: typescript did not install correctly" >&2; exit 1; }
[[ -x "$bin/protoc-gen-ts_proto" ]] || { echo "npm-tools.sh: ts-proto did not install correctly" >&2; exit 1; }
[[ -f "$redoc_bundle" ]] || { echo "npm-tools.sh: redoc did not install its standalone bundle" >&2; exit 1; }
[[ -d "$prefix/node_modules/rxjs" ]] || { echo "npm-tools.sh: rxjs did not install" >&2; exit 1; }
[[ -x "$bin/mcp-inspector" ]] || { echo "npm-tools.sh: the MCP Inspector did not install" >&2; exit 1; }
"$bin/node" --version | grep -q '^v22\.' || { echo "npm-tools.sh: node 22 did not install" >&2; exit 1; }
printf '%s\n' "$want" >"$stamp"
echo "$bin"
