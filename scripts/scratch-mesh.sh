# shellcheck shell=bash
# The three debug services on a scratch database, for the checks that drive
# a mesh with a client of their own (client-gen-check.sh,
# openapi-client-check.sh). Sourced after scripts/lib.sh and
# perf/bench-lib.sh (start, stop_services, mesh_ports, the service tokens),
# with bin_dir, admin_url, db_name and db_url set.
#
#   scratch_mesh_start PORT_BASE PORT_SETTING
#
# checks the binaries and the ports (PORT_SETTING names the variable that
# moves them), creates db_name with the safe-view fixture, starts
# ledger-writer, gateway and controller (lw_*, gw_*, ct_* addresses), and
# on exit stops them and drops the database.

scratch_mesh_start() {
  local port_base="$1" port_setting="$2" bin addr
  say "==> a mesh of its own (debug binaries, database $db_name)"
  for bin in pecr-ledger-writer pecr-gateway pecr-controller; do
    [[ -x "$bin_dir/$bin" ]] || die "$bin_dir/$bin is missing: cargo build -p $bin"
  done
  mesh_ports "$port_base"
  for addr in "$lw_grpc" "$lw_http" "$gw_grpc" "$gw_http" "$ct_grpc" "$ct_http"; do
    port_busy "$addr" && die "port ${addr##*:} is in use; free it or set $port_setting"
  done
  ensure_postgres "$admin_url"
  export PGOPTIONS="--client-min-messages=warning"
  trap scratch_mesh_cleanup EXIT
  trap 'exit 130' INT TERM
  psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" \
    -c "CREATE DATABASE $db_name" >/dev/null
  psql "$db_url" -qX -v ON_ERROR_STOP=1 -f "$PECR_ROOT/fixtures/pg/safeview_fixtures.sql" >/dev/null
  local budget='{"max_operator_calls":10,"max_bytes":1048576,"max_wallclock_ms":10000,"max_recursion_depth":5,"max_parallelism":4}'
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
}

scratch_mesh_cleanup() {
  local status=$?
  stop_services
  psql "$admin_url" -qX -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1 || true
  exit "$status"
}
