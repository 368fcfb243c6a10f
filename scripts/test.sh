#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, buf lint (and buf breaking
# against the previous commit), then all unit and integration tests against
# a real PostgreSQL (cli/tests/release.rs among them: it cuts a signed release
# of the built binaries with scripts/release.sh --binaries and verifies it),
# with grpcurl from the pinned tools, the deploy checks
# (scripts/deploy-check.sh: images, compose, Kubernetes manifests, no Docker
# engine or cluster needed), the generated clients (scripts/client-gen-check.sh,
# scripts/openapi-client-check.sh), the browser console in headless chromium
# (scripts/browser-check.sh), the MCP servers with the MCP Python SDK and
# Inspector (scripts/mcp-check.sh),
# the backup drill on a benchmark-filled ledger (scripts/bench-backup-drill.sh),
# the release checklist's gates (scripts/release-check.sh: regression gate,
# usefulness score, a signed cut verified offline),
# Suite 7 in its short mode (perf/suite7.sh --short: runs per engine, gateway
# operators and three faults on the debug build, compared with
# perf/baselines/suite7_short.summary.json), and finally the security gate
# (scripts/security-gate.sh: attack suite, schemathesis, fault drills and
# canary scan against a mesh of its own).
#
# Environment (optional):
#   PECR_TEST_DB_URL   PostgreSQL the integration tests use (default postgres on 127.0.0.1:5432)
#   PECR_BUF_AGAINST   git ref buf breaking compares with (default HEAD~1)
#   PECR_RELEASE_CHECK_OUTER=1  set by scripts/release-check.sh when it runs this
#                      script: the release checklist stage is left out, as that
#                      run makes the same steps itself afterwards
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

export PECR_TEST_DB_URL="${PECR_TEST_DB_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say "==> tools"
tools_bin="$("$PECR_ROOT/scripts/tools.sh")"
export PATH="$tools_bin:$PATH"

say "==> PostgreSQL"
ensure_postgres "$PECR_TEST_DB_URL"

say "==> cargo fmt --check"
cargo fmt --all -- --check

say "==> buf lint"
buf lint

against="${PECR_BUF_AGAINST:-HEAD~1}"
if git rev-parse --verify --quiet "$against^{commit}" >/dev/null && git cat-file -e "$against:buf.yaml" 2>/dev/null; then
  say "==> buf breaking against $against"
  buf breaking --against ".git#ref=$against"
else
  say "==> buf breaking: $against has no buf.yaml, so there is no earlier contract to compare"
fi

# The RLM engine is a Cargo feature of the controller (off by default). The
# tests run the controller binary with it, so both builds are checked.
rlm=(--features pecr-controller/rlm)

say "==> cargo clippy (default features, then with the RLM engine)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy --workspace --all-targets --quiet "${rlm[@]}" -- -D warnings

say "==> cargo build (the integration tests run the real binaries)"
cargo build --workspace --bins --quiet "${rlm[@]}"

say "==> cargo test"
log="$PECR_ROOT/target/test-output.log"
mkdir -p "$(dirname "$log")"
set +e
cargo test --workspace --no-fail-fast "${rlm[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The controller's own tests once more without the feature (the other build).
cargo test -p pecr-controller --no-fail-fast 2>&1 | tee -a "$log"
status=$(( status | PIPESTATUS[0] ))
set -e
# That test build relinked the controller without the feature; the stages
# below (Suite 7 runs the RLM engine) run the binaries the tests ran.
cargo build --workspace --bins --quiet "${rlm[@]}"

say "==> deploy checks"; bash "$PECR_ROOT/scripts/deploy-check.sh" || status=1

say "==> generated clients (scripts/client-gen-check.sh)"
bash "$PECR_ROOT/scripts/client-gen-check.sh" || status=1

say "==> OpenAPI-generated Python client (scripts/openapi-client-check.sh)"
bash "$PECR_ROOT/scripts/openapi-client-check.sh" || status=1

say "==> browser console in headless chromium (scripts/browser-check.sh)"
bash "$PECR_ROOT/scripts/browser-check.sh" || status=1

say "==> MCP servers with the MCP Python SDK and Inspector (scripts/mcp-check.sh)"
bash "$PECR_ROOT/scripts/mcp-check.sh" || status=1

say "==> backup drill on a ledger filled by the run benchmark"
bash "$PECR_ROOT/scripts/bench-backup-drill.sh" || status=1

# The debug binaries built above; about 1.5 minutes. Its summary, comparison
# and matrix are in target/perf/suite7/.
say "==> Suite 7, short mode (perf/suite7.sh --short)"
SUITE7_SKIP_BUILD=1 bash "$PECR_ROOT/perf/suite7.sh" --short || status=1

# The release checklist's own steps (regression gate, usefulness score, a
# signed cut of the debug binaries verified offline); its tests and Suite 7
# are this script's other stages.
if [[ "${PECR_RELEASE_CHECK_OUTER:-0}" == 1 ]]; then
  say "==> release checklist: skipped (scripts/release-check.sh runs this script and makes those steps itself)"
else
  say "==> release checklist (scripts/release-check.sh --skip-tests --skip-suite7)"
  bash "$PECR_ROOT/scripts/release-check.sh" --skip-tests --skip-suite7 \
    --binaries "${CARGO_TARGET_DIR:-$PECR_ROOT/target}/debug" || status=1
fi

say "==> security gate (scripts/security-gate.sh)"
set +e
bash "$PECR_ROOT/scripts/security-gate.sh" 2>&1 | tee "$PECR_ROOT/target/security-gate.log"
gate_status=${PIPESTATUS[0]}
set -e
status=$(( status | gate_status ))

passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
say
say "tests: $passed passed, $failed failed"
if [[ "$gate_status" -eq 0 ]]; then
  say "security gate: passed (target/security/summary.txt)"
else
  say "security gate: FAILED (target/security/summary.txt, target/security-gate.log)"
fi
if [[ "$status" -ne 0 || "$failed" -ne 0 ]]; then
  exit 1
fi
if [[ "$passed" -eq 0 ]]; then
  die "no test ran"
fi
