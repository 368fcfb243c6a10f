#!/usr/bin/env bash
# The security gate: brings up a PECR mesh on its own ports, its own
# throw-away PostgreSQL cluster and its own database roles (no superuser
# anywhere), in OIDC mode with a throw-away issuer, tracing into a local
# sink; runs the attack suite against it, then schemathesis over both REST
# ports, then the fault drills; and finally scans every response, log,
# metric, span and replay for the fixtures' canaries. Any finding fails it.
#
# Usage: scripts/security-gate.sh        (scripts/test.sh runs it)
# Environment (optional):
#   PECR_GATE_PG_PORT   port of the private cluster (default: a free one from 25439, below the ephemeral range)
#   PECR_GATE_KEEP=1    keep target/security/work (cluster data) after the run
# Output: target/security/ (logs, spans, metrics, responses, schemathesis and
# drill reports, summary.txt).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

out="$PECR_ROOT/target/security"
bin_dir="${CARGO_TARGET_DIR:-$PECR_ROOT/target}/debug"
rm -rf "$out"
mkdir -p "$out/logs" "$out/metrics"

say "==> security gate: tools and binaries"
tools_bin="$("$PECR_ROOT/scripts/tools.sh")"
export PATH="$tools_bin:$PATH"
features=(--features pecr-controller/rlm)
cargo build --workspace --bins --quiet "${features[@]}"

free_port() { # first free TCP port from $1
  local port="$1"
  while ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; do port=$((port + 1)); done
  echo "$port"
}

# --- the private PostgreSQL cluster ---------------------------------------
pg_dir="$(mktemp -d /tmp/pecr-gate-pg.XXXXXX)"
pg_port="${PECR_GATE_PG_PORT:-$(free_port 25439)}"
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  "$PECR_ROOT/scripts/security/pg-cluster.sh" stop "$pg_dir" "$pg_port" || true
  [[ "${PECR_GATE_KEEP:-0}" == 1 ]] || rm -rf "$pg_dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "==> private PostgreSQL cluster on 127.0.0.1:$pg_port"
admin_url="$("$PECR_ROOT/scripts/security/pg-cluster.sh" start "$pg_dir" "$pg_port")"
server="127.0.0.1:$pg_port"
random_secret() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
owner_password="$(random_secret)"
ledger_password="$(random_secret)"
gateway_password="$(random_secret)"
PECR_OWNER_DB_PASSWORD="$owner_password" PECR_LEDGER_DB_PASSWORD="$ledger_password" \
  PECR_GATEWAY_DB_PASSWORD="$gateway_password" \
  PECR_FIXTURE_SQL="$PECR_ROOT/fixtures/pg/safeview_fixtures.sql" \
  psql "$admin_url" -X -q -v ON_ERROR_STOP=1 -f "$PECR_ROOT/deploy/postgres/provision.sql" \
  >"$out/logs/provision.log" 2>&1 || { cat "$out/logs/provision.log" >&2; die "provisioning failed"; }
owner_url="postgres://pecr_owner:$owner_password@$server/pecr"
ledger_url="postgres://pecr_ledger_writer:$ledger_password@$server/pecr"
gateway_url="postgres://pecr_gateway:$gateway_password@$server/pecr"

# --- issuer, corpus with link tricks, span sink -----------------------------
"$bin_dir/pecr-gate-issuer" keys "$out/issuer"
corpus="$out/corpus"
cp -R "$PECR_ROOT/fixtures/fs_corpus" "$corpus"
ln -s ../restricted/restricted_1.txt "$corpus/public/alias.txt"
ln -s ../restricted "$corpus/public/rdir"
ln -s /etc/hostname "$corpus/public/escape.txt"

python3 "$PECR_ROOT/scripts/security/otlp_sink.py" "$out/spans.bin" >"$out/otlp-port" 2>"$out/logs/otlp-sink.log" &
pids+=($!)
for _ in $(seq 1 50); do [[ -s "$out/otlp-port" ]] && break; sleep 0.1; done
otlp_port="$(head -n 1 "$out/otlp-port")"
[[ -n "$otlp_port" ]] || die "the OTLP sink did not start"

# --- the mesh ---------------------------------------------------------------
gateway_token="$(random_secret)"
controller_token="$(random_secret)"
auditor_token="$(random_secret)"
common=(
  RUST_LOG=info
  PECR_OTEL_ENABLED=1 "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$otlp_port" OTEL_BSP_SCHEDULE_DELAY=200
)
mapfile -t oidc < <("$bin_dir/pecr-gate-issuer" settings "$out/issuer")
[[ "${#oidc[@]}" -gt 0 ]] || die "the issuer printed no settings"
# The suite sends thousands of calls per principal: rate limits stay on, but
# high enough not to hide findings behind 429s.
limits=(
  PECR_RATE_LIMIT_SESSIONS_PER_WINDOW=100000 PECR_RATE_LIMIT_OPERATORS_PER_WINDOW=100000
  PECR_RATE_LIMIT_FINALIZE_PER_WINDOW=100000 PECR_RATE_LIMIT_SIMULATE_PER_WINDOW=100000
  PECR_RATE_LIMIT_RUN_PER_WINDOW=100000 PECR_RATE_LIMIT_EVALUATION_PER_WINDOW=100000
)

# start NAME [VAR=value ...]: starts a binary on ports it picks; sets
# <name>_grpc and <name>_http from its PECR_LISTENING line.
start() {
  local name="$1" key="${1//-/_}"
  shift
  env -i PATH="$PATH" HOME="${HOME:-/root}" "$@" "$bin_dir/$name" \
    >"$out/logs/$name.stdout" 2>"$out/logs/$name.log" &
  pids+=($!)
  local line=""
  for _ in $(seq 1 600); do
    line="$(grep -m1 '^PECR_LISTENING' "$out/logs/$name.stdout" 2>/dev/null || true)"
    [[ -n "$line" ]] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { tail -n 20 "$out/logs/$name.log" >&2; die "$name exited"; }
    sleep 0.1
  done
  [[ -n "$line" ]] || die "$name did not start"
  printf -v "${key}_grpc" '%s' "$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' <<<"$line")"
  printf -v "${key}_http" '%s' "$(sed -n 's/.* http=\([^ ]*\).*/\1/p' <<<"$line")"
  local http_var="${key}_http"
  for _ in $(seq 1 300); do
    [[ "$(http_status "http://${!http_var}/readyz")" == 200 ]] && return 0
    sleep 0.1
  done
  tail -n 20 "$out/logs/$name.log" >&2
  die "$name did not become ready"
}

say "==> mesh: ledger-writer, gateway, controller (OIDC, service tokens, least-privilege roles, tracing)"
start pecr-ledger-writer "${common[@]}" PECR_LEDGER_GRPC_ADDR=127.0.0.1:0 PECR_LEDGER_HTTP_ADDR=127.0.0.1:0 \
  "PECR_LEDGER_MIGRATE_DB_URL=$owner_url" "PECR_DB_URL=$ledger_url" \
  "PECR_LEDGER_GATEWAY_TOKEN=$gateway_token" "PECR_LEDGER_CONTROLLER_TOKEN=$controller_token" \
  "PECR_LEDGER_AUDITOR_TOKEN=$auditor_token"
start pecr-gateway "${common[@]}" "${oidc[@]}" "${limits[@]}" \
  PECR_GATEWAY_GRPC_ADDR=127.0.0.1:0 PECR_BIND_ADDR=127.0.0.1:0 \
  "PECR_DB_URL=$gateway_url" "PECR_LEDGER_URL=http://$pecr_ledger_writer_grpc" \
  "PECR_LEDGER_TOKEN=$gateway_token" "PECR_FS_CORPUS_PATH=$corpus" \
  "PECR_POLICY_BUNDLE_DIR=$PECR_ROOT/opa/bundle" \
  'PECR_MCP_SESSION_BUDGET={"max_operator_calls":1000,"max_bytes":0,"max_wallclock_ms":300000,"max_recursion_depth":10}'
start pecr-controller "${common[@]}" "${oidc[@]}" "${limits[@]}" \
  PECR_CONTROLLER_GRPC_ADDR=127.0.0.1:0 PECR_CONTROLLER_BIND_ADDR=127.0.0.1:0 \
  "PECR_GATEWAY_URL=http://$pecr_gateway_grpc" "PECR_LEDGER_URL=http://$pecr_ledger_writer_grpc" \
  "PECR_LEDGER_TOKEN=$controller_token" \
  'PECR_BUDGET_DEFAULTS={"max_operator_calls":10,"max_bytes":1048576,"max_wallclock_ms":10000,"max_recursion_depth":5,"max_parallelism":4}'

export PECR_GATE_DIR="$out"
export PECR_GATE_GATEWAY_GRPC="$pecr_gateway_grpc" PECR_GATE_GATEWAY_HTTP="$pecr_gateway_http"
export PECR_GATE_CONTROLLER_GRPC="$pecr_controller_grpc" PECR_GATE_CONTROLLER_HTTP="$pecr_controller_http"
export PECR_GATE_LEDGER_GRPC="$pecr_ledger_writer_grpc"
export PECR_GATE_LEDGER_GATEWAY_TOKEN="$gateway_token" PECR_GATE_LEDGER_CONTROLLER_TOKEN="$controller_token"
export PECR_GATE_LEDGER_AUDITOR_TOKEN="$auditor_token"
export PECR_GATE_DB_URL="postgres://postgres@$server/pecr"
export PECR_GATE_CORPUS="$corpus"

findings=0
step() { # name command...: runs one stage, remembers a failure, goes on
  local name="$1"
  shift
  say
  say "==> $name"
  if "$@"; then
    echo "pass  $name" >>"$out/summary.txt"
  else
    echo "FAIL  $name" >>"$out/summary.txt"
    findings=$((findings + 1))
  fi
}

# --workspace with the build's features, so nothing is compiled a second time.
step "attack suite" cargo test --quiet --workspace "${features[@]}" --test attack -- --ignored --test-threads=2

schemathesis_port() { # label base-url
  local token
  token="$("$bin_dir/pecr-gate-issuer" token "$out/issuer" dev)"
  PECR_SCHEMATHESIS_AUTHORIZATION="Bearer $token" \
    "$PECR_ROOT/scripts/security/schemathesis.sh" "$2" "$1"
}
step "schemathesis: gateway REST edge" schemathesis_port gateway "http://$pecr_gateway_http"
step "schemathesis: controller REST edge" schemathesis_port controller "http://$pecr_controller_http"

step "fault drills" env PECR_TEST_DB_URL="$admin_url" \
  PECR_GATE_PG_RESTART="$PECR_ROOT/scripts/security/pg-cluster.sh restart $pg_dir $pg_port" \
  cargo test --quiet --workspace "${features[@]}" --test drills -- --ignored --test-threads=1

# --- the final scan -----------------------------------------------------------
say
say "==> collecting metrics, replays and spans"
for service in pecr_ledger_writer pecr_gateway pecr_controller; do
  http_var="${service}_http"
  curl -s --max-time 5 -H "authorization: Bearer $("$bin_dir/pecr-gate-issuer" token "$out/issuer" dev)" \
    "http://${!http_var}/metrics" >"$out/metrics/$service.txt" || true
done
psql "$PECR_GATE_DB_URL" -X -tAc "SELECT bundle_json FROM pecr_replay_bundles" >"$out/replays.txt"
psql "$PECR_GATE_DB_URL" -X -tAc "SELECT evaluation_json FROM pecr_evaluations" >>"$out/replays.txt"
# Stop the services gracefully so their last spans are exported (pids[0] is
# the span sink, which keeps receiving).
for pid in "${pids[@]:1}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]:1}"; do
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
sleep 0.5
step "canary scan: responses, logs, metrics, spans, replays" \
  python3 "$PECR_ROOT/scripts/security/canary_scan.py" "$out"

say
cat "$out/summary.txt"
if [[ "$findings" -ne 0 ]]; then
  die "security gate: $findings stage(s) failed (details above and in target/security/)"
fi
say "security gate: passed"
