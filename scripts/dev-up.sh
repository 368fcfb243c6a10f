#!/usr/bin/env bash
# Brings up the whole PECR mesh on this machine: builds the three services,
# makes sure the ledger database exists, starts ledger-writer, gateway and
# controller in the background, waits until each is ready, and answers a
# first query. Stop everything with scripts/dev-down.sh.
#
# Usage: scripts/dev-up.sh [--tls]
#   --tls         service-to-service mTLS: a throw-away CA and one certificate
#                 per service are generated into target/dev/tls (pecr-devcerts),
#                 every gRPC port serves TLS, ledger-writer and the gateway
#                 require client certificates, and the services call each
#                 other over https://. Same as PECR_DEV_TLS=1.
#
# Database: by default the PostgreSQL on 127.0.0.1:5432, where the local
# administrator (postgres) provisions, on every start, the database "pecr"
# and its roles (deploy/postgres/provision.sql, new random passwords each
# time): pecr_owner owns the database and runs the migrations,
# ledger-writer serves as pecr_ledger_writer, the gateway reads the safe
# views as pecr_gateway. No service runs as a superuser.
#
# Environment (all optional):
#   PECR_DB_URL   use this database as is instead, for the fixture, the
#                 migrations and both services (PECR_LEDGER_MIGRATE_DB_URL,
#                 when exported, takes over the migrations); no provisioning
#   PECR_*_ADDR   listen addresses (see README.md / RUNBOOK.md)
#   PECR_DEV_TLS  1 turns --tls on
#   PECR_CONTROLLER_ENGINE=rlm (with PECR_RLM_SANDBOX_ACK=1)  builds and runs
#                 the RLM engine instead of the baseline one
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

tls="${PECR_DEV_TLS:-0}"
for arg in "$@"; do
  case "$arg" in
    --tls) tls=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown option $arg (scripts/dev-up.sh --help)" ;;
  esac
done
case "$tls" in
  1 | true | yes) tls=1 ;;
  *) tls=0 ;;
esac

command -v cargo >/dev/null 2>&1 || die "cargo is required (the Rust toolchain)"
command -v curl >/dev/null 2>&1 || die "curl is required"

run_dir="$PECR_ROOT/target/dev"
mkdir -p "$run_dir"
# Where cargo puts the binaries (CARGO_TARGET_DIR is honoured).
bin_dir="${CARGO_TARGET_DIR:-$PECR_ROOT/target}/debug"

# Already running? Start from a clean slate so the ports are free.
"$PECR_ROOT/scripts/dev-down.sh" --quiet

# The RLM engine is a build feature: PECR_CONTROLLER_ENGINE=rlm builds it in
# (the controller then also wants PECR_RLM_SANDBOX_ACK=1).
features=()
[[ "${PECR_CONTROLLER_ENGINE:-}" == rlm ]] && features=(--features pecr-controller/rlm)
say "==> building (cargo build --workspace --bins ${features[*]})"
cargo build --workspace --bins --quiet "${features[@]}"

say "==> preparing the ledger database"
# Per-service database settings, passed to each service only.
ledger_db=()
gateway_db=()
if [[ -z "${PECR_DB_URL:-}" ]]; then
  server="127.0.0.1:5432"
  admin_url="postgres://postgres@$server/postgres"
  ensure_postgres "$admin_url"
  random_password() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
  owner_password="$(random_password)"
  ledger_password="$(random_password)"
  gateway_password="$(random_password)"
  say "==> provisioning database pecr and its roles, loading the safe-view fixture (deploy/postgres/provision.sql)"
  PECR_OWNER_DB_PASSWORD="$owner_password" PECR_LEDGER_DB_PASSWORD="$ledger_password" \
    PECR_GATEWAY_DB_PASSWORD="$gateway_password" \
    PECR_FIXTURE_SQL="$PECR_ROOT/fixtures/pg/safeview_fixtures.sql" \
    psql "$admin_url" -X -q -v ON_ERROR_STOP=1 -f "$PECR_ROOT/deploy/postgres/provision.sql" >/dev/null 2>"$run_dir/provision.log" ||
    { cat "$run_dir/provision.log" >&2; die "provisioning the pecr database failed"; }
  ledger_db=(
    "PECR_LEDGER_MIGRATE_DB_URL=postgres://pecr_owner:$owner_password@$server/pecr"
    "PECR_DB_URL=postgres://pecr_ledger_writer:$ledger_password@$server/pecr"
  )
  gateway_db=("PECR_DB_URL=postgres://pecr_gateway:$gateway_password@$server/pecr")
  db_summary="postgres://$server/pecr (pecr_owner migrates; pecr_ledger_writer, pecr_gateway serve)"
else
  ensure_postgres "$PECR_DB_URL"
  if [[ "$(psql "$PECR_DB_URL" -X -tAc "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")" == "t" ]]; then
    say "warning: PECR_DB_URL logs in as a superuser; see RUNBOOK.md, Database roles" >&2
  fi
  say "==> loading the safe-view fixture (fixtures/pg/safeview_fixtures.sql; re-runnable)"
  psql "$PECR_DB_URL" -X -v ON_ERROR_STOP=1 -q -f "$PECR_ROOT/fixtures/pg/safeview_fixtures.sql" >/dev/null
  db_summary="$(printf '%s' "${PECR_DB_URL%%\?*}" | sed 's#//[^@/]*@#//#')"
fi
export PECR_FS_CORPUS_PATH="${PECR_FS_CORPUS_PATH:-$PECR_ROOT/fixtures/fs_corpus}"
export PECR_POLICY_BUNDLE_DIR="${PECR_POLICY_BUNDLE_DIR:-$PECR_ROOT/opa/bundle}"

export PECR_LEDGER_GRPC_ADDR="${PECR_LEDGER_GRPC_ADDR:-127.0.0.1:50053}"
export PECR_LEDGER_HTTP_ADDR="${PECR_LEDGER_HTTP_ADDR:-127.0.0.1:8082}"
export PECR_GATEWAY_GRPC_ADDR="${PECR_GATEWAY_GRPC_ADDR:-127.0.0.1:50051}"
export PECR_BIND_ADDR="${PECR_BIND_ADDR:-127.0.0.1:8080}"
export PECR_CONTROLLER_GRPC_ADDR="${PECR_CONTROLLER_GRPC_ADDR:-127.0.0.1:50052}"
export PECR_CONTROLLER_BIND_ADDR="${PECR_CONTROLLER_BIND_ADDR:-127.0.0.1:8081}"

# Per-service settings: TLS with --tls (plaintext otherwise), then ledger-writer credentials.
scheme=http
ledger_env=()
gateway_env=()
controller_env=()
grpcurl_tls=(-plaintext)
cli_tls=()
if [[ "$tls" == 1 ]]; then
  tls_dir="$run_dir/tls"
  say "==> generating throw-away dev certificates into ${tls_dir#"$PECR_ROOT"/} (pecr-devcerts)"
  "$bin_dir/pecr-devcerts" "$tls_dir" >/dev/null
  ca="$tls_dir/ca.pem"
  scheme=https
  # Each service has one identity: its certificate serves its gRPC port and
  # is presented as the client certificate on its outgoing calls.
  identity() { # service -> server and client variables
    printf '%s\n' "PECR_TLS_CERT=$tls_dir/$1.pem" "PECR_TLS_KEY=$tls_dir/$1.key" \
      "PECR_TLS_CA=$ca" "PECR_TLS_CLIENT_CERT=$tls_dir/$1.pem" "PECR_TLS_CLIENT_KEY=$tls_dir/$1.key"
  }
  mapfile -t ledger_env < <(identity pecr-ledger-writer)
  mapfile -t gateway_env < <(identity pecr-gateway)
  mapfile -t controller_env < <(identity pecr-controller)
  # ledger-writer admits pecr-gateway and pecr-controller, the gateway only
  # pecr-controller (their defaults). The controller's gRPC port is for end
  # users: TLS only, no client certificate asked.
  ledger_env+=("PECR_TLS_CLIENT_CA=$ca")
  gateway_env+=("PECR_TLS_CLIENT_CA=$ca")
  grpcurl_tls=(-cacert "$ca")
  cli_tls=("PECR_TLS_CA=$ca")
fi
# ledger-writer knows its callers: by certificate with --tls, otherwise by a
# service token each. The tokens are generated once (target/dev/ledger-tokens.env,
# readable by the owner only) and reused; an operator's PECR_LEDGER_*_TOKEN wins.
tokens_file="$run_dir/ledger-tokens.env"
if [[ ! -s "$tokens_file" ]]; then
  random_token() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
  (
    umask 077
    {
      echo "gateway=$(random_token)"
      echo "controller=$(random_token)"
      echo "auditor=$(random_token)"
    } >"$tokens_file"
  )
fi
token_of() { sed -n "s/^$1=//p" "$tokens_file"; }
gateway_token="${PECR_LEDGER_GATEWAY_TOKEN:-$(token_of gateway)}"
controller_token="${PECR_LEDGER_CONTROLLER_TOKEN:-$(token_of controller)}"
auditor_token="${PECR_LEDGER_AUDITOR_TOKEN:-$(token_of auditor)}"
ledger_env+=("PECR_LEDGER_GATEWAY_TOKEN=$gateway_token" "PECR_LEDGER_CONTROLLER_TOKEN=$controller_token"
  "PECR_LEDGER_AUDITOR_TOKEN=$auditor_token")
# Ledger checkpoints are signed with a key made once (its public half beside
# it, for `pecr-ledger-writer verify --public-key`); an operator's
# PECR_LEDGER_SIGNING_KEY_FILE wins.
signing_key="$run_dir/ledger-signing.pem"
if [[ -z "${PECR_LEDGER_SIGNING_KEY_FILE:-}" && ! -s "$signing_key" ]]; then
  (umask 077; openssl genpkey -algorithm ed25519 -out "$signing_key" 2>/dev/null)
  openssl pkey -in "$signing_key" -pubout -out "$run_dir/ledger-signing.pub.pem"
fi
ledger_env+=("PECR_LEDGER_SIGNING_KEY_FILE=${PECR_LEDGER_SIGNING_KEY_FILE:-$signing_key}")
gateway_env+=("PECR_LEDGER_TOKEN=$gateway_token")
controller_env+=("PECR_LEDGER_TOKEN=$controller_token")
export PECR_LEDGER_URL="${PECR_LEDGER_URL:-$scheme://$PECR_LEDGER_GRPC_ADDR}"
export PECR_GATEWAY_URL="${PECR_GATEWAY_URL:-$scheme://$PECR_GATEWAY_GRPC_ADDR}"
# The budget a run gets when its request names none (spec 30 §2.2: required).
default_budget='{"max_operator_calls":10,"max_bytes":1048576,"max_wallclock_ms":10000,"max_recursion_depth":5,"max_parallelism":4}'
export PECR_BUDGET_DEFAULTS="${PECR_BUDGET_DEFAULTS:-$default_budget}"

start() { # name http_addr [VAR=value ...]
  local name="$1" http_addr="$2"
  shift 2
  say "==> starting $name"
  # The settings are exported in the child, so no password shows in a
  # process list; exec keeps the pid.
  (
    for setting in "$@"; do export "${setting?}"; done
    exec nohup "$bin_dir/$name" >"$run_dir/$name.log" 2>&1
  ) &
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

start pecr-ledger-writer "$PECR_LEDGER_HTTP_ADDR" "${ledger_db[@]}" "${ledger_env[@]}"
start pecr-gateway "$PECR_BIND_ADDR" "${gateway_db[@]}" "${gateway_env[@]}"
start pecr-controller "$PECR_CONTROLLER_BIND_ADDR" "${controller_env[@]}"

tools_bin="$("$PECR_ROOT/scripts/tools.sh")"
say
say "==> which gRPC services does the controller serve?"
say "\$ grpcurl ${grpcurl_tls[*]#"$PECR_ROOT"/} $PECR_CONTROLLER_GRPC_ADDR list"
"$tools_bin/grpcurl" "${grpcurl_tls[@]}" "$PECR_CONTROLLER_GRPC_ADDR" list

say
say "==> first query: principal dev asks a question; the controller runs it through the gateway"
say "\$ pecr --principal dev run \"What is the customer status and plan tier?\""
env "${cli_tls[@]}" PECR_CONTROLLER_URL="$scheme://$PECR_CONTROLLER_GRPC_ADDR" "$bin_dir/pecr" \
  --principal dev run "What is the customer status and plan tier?"

say
say "PECR is up."
printf '  %-20s %-18s %s\n' service gRPC "HTTP (/healthz /readyz /metrics)" \
  pecr-gateway "$PECR_GATEWAY_GRPC_ADDR" "http://$PECR_BIND_ADDR" \
  pecr-controller "$PECR_CONTROLLER_GRPC_ADDR" "http://$PECR_CONTROLLER_BIND_ADDR" \
  pecr-ledger-writer "$PECR_LEDGER_GRPC_ADDR" "http://$PECR_LEDGER_HTTP_ADDR"
say "  ledger database: $db_summary"
if [[ "$tls" == 1 ]]; then
  say "  mTLS on: certificates in ${tls_dir#"$PECR_ROOT"/} (throw-away CA, regenerated by every dev-up --tls)."
  say "  CLI: PECR_CONTROLLER_URL=https://$PECR_CONTROLLER_GRPC_ADDR PECR_TLS_CA=${ca#"$PECR_ROOT"/} ${bin_dir#"$PECR_ROOT"/}/pecr …"
  say "  ledger-writer via grpcurl: grpcurl -cacert ${ca#"$PECR_ROOT"/} -cert ${tls_dir#"$PECR_ROOT"/}/pecr-controller.pem -key ${tls_dir#"$PECR_ROOT"/}/pecr-controller.key $PECR_LEDGER_GRPC_ADDR list"
fi
say "Console: http://$PECR_CONTROLLER_BIND_ADDR/ in a browser (principal dev; REST reference at /docs)"
say "MCP (Streamable HTTP; header x-pecr-principal-id: dev): gateway http://$PECR_BIND_ADDR/mcp, controller http://$PECR_CONTROLLER_BIND_ADDR/mcp"
say "Logs: $run_dir/*.log    grpcurl: $tools_bin/grpcurl    CLI: ${bin_dir#"$PECR_ROOT"/}/pecr --help"
say "Stop: scripts/dev-down.sh"
