# shellcheck shell=bash
# The controller mesh of the Run benchmarks (run-controller-bench.sh,
# flamegraph.sh, scaling.sh), sourced after scripts/lib.sh and bench-lib.sh:
# settings from PERF_*, the release build, the scratch database, the three
# services, one smoke run, and measuring a k6 load with its per-run
# accounting (perf/run_report.py).
#
# A sourcing script calls mesh_prepare, then mesh_start, then mesh_smoke. It
# may define mesh_extra_cleanup, which runs first on exit.
#
# Environment (all optional):
#   PERF_SKIP_BUILD=1 use the binaries already built
#   PERF_PROFILE      cargo profile of the binaries: release (default) or debug
#                     (the test suite fills a ledger with the debug build)
#   PERF_KEEP_DB=1    keep database pecr_perf afterwards
#   PERF_DB_NAME      the scratch database (default: pecr_perf; dropped and recreated)
#   PERF_BUDGET_DEFAULTS  the controller's PECR_BUDGET_DEFAULTS (default: dev-up's)
#   PERF_CONTROLLER_ENV / PERF_GATEWAY_ENV / PERF_LEDGER_ENV
#                     extra KEY=VALUE words for one service
#   PERF_DB_ADMIN_URL admin connection   (default: postgres://postgres@127.0.0.1:5432/postgres)
#   PERF_PORT_BASE    gateway gRPC/HTTP BASE+1 / BASE+81, controller BASE+2 / BASE+82,
#                     ledger-writer BASE+3 / BASE+83 (default: 24050; every port must
#                     lie outside /proc/sys/net/ipv4/ip_local_port_range)
#   PERF_QUIET_WAIT   seconds to wait, before each measurement, for the machine
#                     to be quiet (>= 85% idle over 3 s) (default: 180; 0 = don't wait)
#   CARGO_TARGET_DIR  where binaries are built (default: target/)

admin_url="${PERF_DB_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
mesh_ports "${PERF_PORT_BASE:-24050}"
budget='{"max_operator_calls":10,"max_bytes":1048576,"max_wallclock_ms":10000,"max_recursion_depth":5,"max_parallelism":4}'
budget="${PERF_BUDGET_DEFAULTS:-$budget}"
target_dir="${CARGO_TARGET_DIR:-$PECR_ROOT/target}"
profile="${PERF_PROFILE:-release}"
[[ "$profile" == release || "$profile" == debug ]] || die "PERF_PROFILE is release or debug, not $profile"
bin_dir="$target_dir/$profile"
out_dir="$PECR_ROOT/target/perf"
db_name="${PERF_DB_NAME:-pecr_perf}"
[[ "$db_name" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "PERF_DB_NAME '$db_name' is not a plain lower-case PostgreSQL name"
db_url="${admin_url%/*}/$db_name"
query='What is the customer status and plan tier?'
corpus=""
pg_settings=""
k6_bin=""
clk_tck="$(getconf CLK_TCK)"

# Build (unless PERF_SKIP_BUILD=1), k6, free ports, a fresh pecr_perf with
# the safe-view fixture, a scratch copy of the corpus, and the exit trap.
mesh_prepare() {
  command -v cargo >/dev/null 2>&1 || die "cargo is required"
  command -v curl >/dev/null 2>&1 || die "curl is required"
  command -v python3 >/dev/null 2>&1 || die "python3 is required (k6 install, reports)"
  mkdir -p "$out_dir"

  if [[ "${PERF_SKIP_BUILD:-0}" != "1" ]]; then
    say "==> building $profile binaries (the first build takes several minutes on 2 cores)"
    local release=(); [[ "$profile" == release ]] && release=(--release)
    cargo build "${release[@]}" --target-dir "$target_dir" -p pecr-ledger-writer -p pecr-gateway -p pecr-controller
  fi
  local bin addr
  for bin in pecr-ledger-writer pecr-gateway pecr-controller; do
    [[ -x "$bin_dir/$bin" ]] || die "$bin_dir/$bin is missing (unset PERF_SKIP_BUILD)"
  done
  k6_bin="$("$PECR_ROOT/perf/k6-install.sh")"

  for addr in "$lw_grpc" "$lw_http" "$gw_grpc" "$gw_http" "$ct_grpc" "$ct_http"; do
    port_busy "$addr" && die "port ${addr##*:} is in use; free it or set PERF_PORT_BASE"
  done

  say "==> scratch database $db_name (drop + create + safe-view fixture)"
  ensure_postgres "$admin_url"
  psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" -c "CREATE DATABASE $db_name" >/dev/null
  psql "$db_url" -qX -v ON_ERROR_STOP=1 -f fixtures/pg/safeview_fixtures.sql >/dev/null
  pg_settings="$(psql "$db_url" -tAX -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('synchronous_commit','fsync','shared_buffers','max_connections','autovacuum')")"
  say "    PostgreSQL $(psql "$db_url" -tAX -c 'SHOW server_version'): $pg_settings"

  corpus="$(mktemp -d "${TMPDIR:-/tmp}/pecr-perf-corpus.XXXXXX")"
  cp -R fixtures/fs_corpus/. "$corpus/"

  trap mesh_cleanup EXIT
  trap 'exit 130' INT TERM
}

mesh_cleanup() {
  local status=$?
  if declare -F mesh_extra_cleanup >/dev/null; then mesh_extra_cleanup || true; fi
  stop_services
  [[ -n "$corpus" ]] && rm -rf "$corpus"
  rm -rf "$out_dir"/.metrics-*
  if [[ "${PERF_KEEP_DB:-0}" != "1" ]]; then
    psql "$admin_url" -qX -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  exit "$status"
}

# The three services on loopback, each also on its own (Suite 7 restarts
# one). The rate limits are off: one run costs one session, its operator
# calls and one finalize.
mesh_start() {
  mesh_start_ledger
  mesh_start_gateway
  mesh_start_controller
}

mesh_start_ledger() {
  # shellcheck disable=SC2086 # PERF_*_ENV are deliberately split into words
  start pecr-ledger-writer "$lw_http" \
    PECR_DB_URL="$db_url" PECR_LEDGER_GRPC_ADDR="$lw_grpc" PECR_LEDGER_HTTP_ADDR="$lw_http" \
    PECR_LEDGER_GATEWAY_TOKEN="$perf_gateway_token" PECR_LEDGER_CONTROLLER_TOKEN="$perf_controller_token" \
    ${PERF_LEDGER_ENV:-}
}

mesh_start_gateway() {
  # shellcheck disable=SC2086
  start pecr-gateway "$gw_http" \
    PECR_DB_URL="$db_url" PECR_LEDGER_URL="http://$lw_grpc" PECR_LEDGER_TOKEN="$perf_gateway_token" \
    PECR_GATEWAY_GRPC_ADDR="$gw_grpc" PECR_BIND_ADDR="$gw_http" \
    PECR_FS_CORPUS_PATH="$corpus" PECR_POLICY_BUNDLE_DIR="$PECR_ROOT/opa/bundle" \
    PECR_RATE_LIMIT_SESSIONS_PER_WINDOW=0 PECR_RATE_LIMIT_OPERATORS_PER_WINDOW=0 \
    PECR_RATE_LIMIT_FINALIZE_PER_WINDOW=0 \
    ${PERF_GATEWAY_ENV:-}
}

mesh_start_controller() {
  # shellcheck disable=SC2086
  start pecr-controller "$ct_http" \
    PECR_GATEWAY_URL="http://$gw_grpc" PECR_LEDGER_URL="http://$lw_grpc" \
    PECR_LEDGER_TOKEN="$perf_controller_token" \
    PECR_CONTROLLER_GRPC_ADDR="$ct_grpc" PECR_CONTROLLER_BIND_ADDR="$ct_http" \
    PECR_BUDGET_DEFAULTS="$budget" PECR_RATE_LIMIT_RUN_PER_WINDOW=0 \
    ${PERF_CONTROLLER_ENV:-}
}

mesh_smoke() {
  say "==> smoke: one POST /v1/run"
  local smoke
  smoke="$(curl -s --max-time 30 -H 'content-type: application/json' -H 'x-pecr-principal-id: dev' \
    -d "{\"query\":\"$query\"}" "http://$ct_http/v1/run")"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("    terminal_mode", r.get("terminal_mode"), "stop_reason", r.get("stop_reason"))' "$smoke" ||
    die "the smoke run failed: $smoke"
}

# CPU ticks: controller, gateway, ledger-writer, then the machine's total
# and idle. PostgreSQL's are taken per process (postgres_pid_ticks).
cpu_sample() {
  echo "$(ticks_of "$pecr_controller_pid") $(ticks_of "$pecr_gateway_pid") $(ticks_of "$pecr_ledger_writer_pid") $(machine_ticks)"
}

# Transactions committed and rows written in pecr_perf so far (PostgreSQL
# flushes these counters at least once a second per busy backend).
pg_stats() {
  psql "$db_url" -tAX -F ' ' -c "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched FROM pg_stat_database WHERE datname = '$db_name'" 2>/dev/null || echo "0 0 0 0 0"
}

metrics_sample() {
  local suffix="$1"
  curl -s --max-time 2 "http://$ct_http/metrics" >"$out_dir/.metrics-controller-$suffix" || true
  curl -s --max-time 2 "http://$gw_http/metrics" >"$out_dir/.metrics-gateway-$suffix" || true
  curl -s --max-time 2 "http://$lw_http/metrics" >"$out_dir/.metrics-ledger-$suffix" || true
}

# k6_load MODE VUS WARMUP DURATION SUMMARY_JSON [k6 -e words...]: runs
# perf/k6/controller_run.js against the mesh; k6's output goes to the
# summary's .txt. Extra arguments (e.g. -e ITERATIONS=…) go to k6 as given.
k6_load() {
  local mode="$1" vus="$2" warmup="$3" duration="$4" summary="$5"
  shift 5
  "$k6_bin" run -q --no-color \
    -e PECR_K6_MODE="$mode" -e PECR_CONTROLLER_HTTP="$ct_http" -e PECR_CONTROLLER_GRPC="$ct_grpc" \
    -e VUS="$vus" -e WARMUP="$warmup" -e DURATION="$duration" -e PECR_K6_SUMMARY="$summary" "$@" \
    perf/k6/controller_run.js >"${summary%.json}.txt" 2>&1
}

# measure_runs NAME MODE VUS WARMUP DURATION: one k6 load with the per-run
# accounting around it (CPU per process from /proc (PostgreSQL: its shared
# processes and the backends of pecr_perf), PostgreSQL commits and
# rows from pg_stat_database, ledger-writer RPCs and the services' mean times
# from /metrics), written into target/perf/NAME.json. Returns 1 when k6
# left no summary.
measure_runs() {
  local name="$1" mode="$2" vus="$3" warmup="$4" duration="$5"
  local cpu0 cpu1 pg0 pg1 i cpu=()
  wait_quiet
  metrics_sample 0
  postgres_pid_ticks "$db_name" >"$out_dir/.metrics-pg-ticks-0"
  read -r -a cpu0 < <(cpu_sample)
  read -r -a pg0 < <(pg_stats)
  k6_load "$mode" "$vus" "$warmup" "$duration" "$out_dir/$name.json" ||
    say "    k6 exited non-zero; see $out_dir/$name.txt"
  read -r -a cpu1 < <(cpu_sample)
  postgres_pid_ticks "$db_name" >"$out_dir/.metrics-pg-ticks-1"
  metrics_sample 1
  # PostgreSQL 15 backends flush their statistics at most once a second while
  # busy and within 10 s once idle (PGSTAT_IDLE_INTERVAL): wait for the tail.
  sleep 11
  read -r -a pg1 < <(pg_stats)
  [[ -f "$out_dir/$name.json" ]] || { say "    no k6 summary; see $out_dir/$name.txt"; return 1; }
  for i in 0 1 2; do cpu+=("$((cpu1[i] - cpu0[i]))"); done
  cpu+=("$(ticks_delta "$out_dir/.metrics-pg-ticks-0" "$out_dir/.metrics-pg-ticks-1")")
  cpu+=("$((cpu1[3] - cpu0[3]))" "$((cpu1[4] - cpu0[4]))")
  python3 "$PECR_ROOT/perf/run_report.py" account "$out_dir/$name.json" "$out_dir" "$clk_tck" "$pg_settings" \
    "${cpu[@]}" "${pg0[@]}" "${pg1[@]}"
  sed 's/^/    /' "$out_dir/$name.txt" | grep -v '^    $' | tail -n 8
}
