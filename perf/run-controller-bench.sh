#!/usr/bin/env bash
# Load benchmark of the controller's Run, end to end: k6 sends
# `POST /v1/run` (REST) and `pecr.v1.ControllerService/Run` (gRPC) to a
# release controller that runs the default baseline plan through a release
# gateway and ledger-writer on PostgreSQL.
#
# Builds the three release binaries, recreates the scratch database
# `pecr_perf` with the safe-view fixture, starts ledger-writer, gateway and
# controller on fixed loopback ports (not dev-up's), waits for /readyz, runs
# perf/k6/controller_run.js once per mode (closed loop, constant VUs), writes
# target/perf/k6-controller-<mode>-c<vus>.json (k6's figures plus the CPU each
# process burnt per run and the services' own mean times), prints a summary
# table and stops everything (trap, Ctrl-C included).
#
# The run rate limits are off for the benchmark: PECR_RATE_LIMIT_RUN_PER_WINDOW=0
# on the controller; PECR_RATE_LIMIT_{SESSIONS,OPERATORS,FINALIZE}_PER_WINDOW=0
# on the gateway (one run = 1 session + 5 operator calls + 1 finalize).
# Everything else keeps its default (replays stored through ledger-writer).
#
# Environment (all optional):
#   PERF_MODES        k6 modes to run                   (default: "http grpc")
#   PERF_VUS          virtual users, closed loop        (default: 10)
#   PERF_DURATION     measured time per mode            (default: 20s)
#   PERF_WARMUP       warm-up per mode, not measured    (default: 3s)
#   PERF_SKIP_BUILD=1 use the binaries already built
#   PERF_QUIET_WAIT   seconds to wait, before each run, for the machine to be
#                     quiet (>= 85% idle over 3 s)       (default: 180; 0 = don't wait)
#   PERF_KEEP_DB=1    keep database pecr_perf afterwards
#   PERF_BUDGET_DEFAULTS  the controller's PECR_BUDGET_DEFAULTS (default: dev-up's)
#   PERF_CONTROLLER_ENV / PERF_GATEWAY_ENV / PERF_LEDGER_ENV
#                     extra KEY=VALUE words for one service
#   PERF_DB_ADMIN_URL admin connection                  (default: postgres://postgres@127.0.0.1:5432/postgres)
#   PERF_PORT_BASE    ports: ledger gRPC/HTTP BASE+3 / BASE+83, gateway BASE+1 / BASE+81,
#                     controller BASE+2 / BASE+82        (default: 57050)
#   CARGO_TARGET_DIR  where binaries are built          (default: target/)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$PECR_ROOT"

modes="${PERF_MODES:-http grpc}"
vus="${PERF_VUS:-10}"
duration="${PERF_DURATION:-20s}"
warmup="${PERF_WARMUP:-3s}"
admin_url="${PERF_DB_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
base="${PERF_PORT_BASE:-57050}"
lw_grpc="127.0.0.1:$((base + 3))"; lw_http="127.0.0.1:$((base + 83))"
gw_grpc="127.0.0.1:$((base + 1))"; gw_http="127.0.0.1:$((base + 81))"
ct_grpc="127.0.0.1:$((base + 2))"; ct_http="127.0.0.1:$((base + 82))"
budget='{"max_operator_calls":10,"max_bytes":1048576,"max_wallclock_ms":10000,"max_recursion_depth":5,"max_parallelism":4}'
budget="${PERF_BUDGET_DEFAULTS:-$budget}"
target_dir="${CARGO_TARGET_DIR:-$PECR_ROOT/target}"
bin_dir="$target_dir/release"
out_dir="$PECR_ROOT/target/perf"
db_name="pecr_perf"
db_url="${admin_url%/*}/$db_name"

command -v cargo >/dev/null 2>&1 || die "cargo is required"
command -v curl >/dev/null 2>&1 || die "curl is required"
command -v python3 >/dev/null 2>&1 || die "python3 is required (k6 install, summary table)"
mkdir -p "$out_dir"

if [[ "${PERF_SKIP_BUILD:-0}" != "1" ]]; then
  say "==> building release binaries (the first build takes several minutes on 2 cores)"
  cargo build --release --target-dir "$target_dir" -p pecr-ledger-writer -p pecr-gateway -p pecr-controller
fi
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
pg_settings="$(psql "$db_url" -tAX -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('synchronous_commit','fsync','shared_buffers','max_connections')")"
say "    PostgreSQL $(psql "$db_url" -tAX -c 'SHOW server_version'): $pg_settings"

corpus="$(mktemp -d "${TMPDIR:-/tmp}/pecr-perf-corpus.XXXXXX")"
cp -R fixtures/fs_corpus/. "$corpus/"

cleanup() {
  local status=$?
  stop_services
  rm -rf "$corpus" "$out_dir"/.metrics-*
  if [[ "${PERF_KEEP_DB:-0}" != "1" ]]; then
    psql "$admin_url" -qX -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# shellcheck disable=SC2086 # PERF_*_ENV are deliberately split into words
start pecr-ledger-writer "$lw_http" \
  PECR_DB_URL="$db_url" PECR_LEDGER_GRPC_ADDR="$lw_grpc" PECR_LEDGER_HTTP_ADDR="$lw_http" \
  PECR_LEDGER_GATEWAY_TOKEN="$perf_gateway_token" PECR_LEDGER_CONTROLLER_TOKEN="$perf_controller_token" \
  ${PERF_LEDGER_ENV:-}
# shellcheck disable=SC2086
start pecr-gateway "$gw_http" \
  PECR_DB_URL="$db_url" PECR_LEDGER_URL="http://$lw_grpc" PECR_LEDGER_TOKEN="$perf_gateway_token" \
  PECR_GATEWAY_GRPC_ADDR="$gw_grpc" PECR_BIND_ADDR="$gw_http" \
  PECR_FS_CORPUS_PATH="$corpus" PECR_POLICY_BUNDLE_DIR="$PECR_ROOT/opa/bundle" \
  PECR_RATE_LIMIT_SESSIONS_PER_WINDOW=0 PECR_RATE_LIMIT_OPERATORS_PER_WINDOW=0 \
  PECR_RATE_LIMIT_FINALIZE_PER_WINDOW=0 \
  ${PERF_GATEWAY_ENV:-}
# shellcheck disable=SC2086
start pecr-controller "$ct_http" \
  PECR_GATEWAY_URL="http://$gw_grpc" PECR_LEDGER_URL="http://$lw_grpc" \
  PECR_LEDGER_TOKEN="$perf_controller_token" \
  PECR_CONTROLLER_GRPC_ADDR="$ct_grpc" PECR_CONTROLLER_BIND_ADDR="$ct_http" \
  PECR_BUDGET_DEFAULTS="$budget" PECR_RATE_LIMIT_RUN_PER_WINDOW=0 \
  ${PERF_CONTROLLER_ENV:-}

cpu_sample() {
  echo "$(ticks_of "$pecr_controller_pid") $(ticks_of "$pecr_gateway_pid") $(ticks_of "$pecr_ledger_writer_pid") $(postgres_ticks) $(machine_ticks)"
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


say "==> smoke: one POST /v1/run"
smoke="$(curl -s --max-time 30 -H 'content-type: application/json' -H 'x-pecr-principal-id: dev' \
  -d '{"query":"What is the customer status and plan tier?"}' "http://$ct_http/v1/run")"
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("    terminal_mode", r.get("terminal_mode"), "stop_reason", r.get("stop_reason"))' "$smoke" ||
  die "the smoke run failed: $smoke"

clk_tck="$(getconf CLK_TCK)"
reports=()
for mode in $modes; do
  name="k6-controller-$mode-c$vus"
  say
  say "==> $name: k6 run perf/k6/controller_run.js (mode $mode, $vus VUs, warm-up $warmup, measured $duration)"
  wait_quiet
  metrics_sample 0
  read -r -a cpu0 < <(cpu_sample)
  read -r -a pg0 < <(pg_stats)
  "$k6_bin" run -q --no-color \
    -e PECR_K6_MODE="$mode" -e PECR_CONTROLLER_HTTP="$ct_http" -e PECR_CONTROLLER_GRPC="$ct_grpc" \
    -e VUS="$vus" -e WARMUP="$warmup" -e DURATION="$duration" -e PECR_K6_SUMMARY="$out_dir/$name.json" \
    perf/k6/controller_run.js >"$out_dir/$name.txt" 2>&1 || say "    k6 exited non-zero; see $out_dir/$name.txt"
  read -r -a cpu1 < <(cpu_sample)
  metrics_sample 1
  sleep 1
  read -r -a pg1 < <(pg_stats)
  [[ -f "$out_dir/$name.json" ]] || { say "    no k6 summary; see $out_dir/$name.txt"; continue; }
  python3 - "$out_dir/$name.json" "$clk_tck" "$pg_settings" "$out_dir" "${cpu0[@]}" "${cpu1[@]}" "${pg0[@]}" "${pg1[@]}" <<'EOF'
import json, re, sys
path, hz, pg_settings, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
before, after = [int(x) for x in sys.argv[5:11]], [int(x) for x in sys.argv[11:17]]
ct, gw, lw, pg, total, idle = (a - b for a, b in zip(after, before))
report = json.load(open(path))
runs = max(report.get("iterations_all") or report["iterations"], 1)
busy = total - idle
per_run = lambda ticks: round(ticks * 1e6 / hz / runs, 1)
report["server_cpu"] = {
    "note": "CPU time over warm-up + measured time, per run (all iterations), from /proc; rest = every other process (k6 itself, anything else running)",
    "runs": runs,
    "controller_us_per_run": per_run(ct),
    "gateway_us_per_run": per_run(gw),
    "ledger_writer_us_per_run": per_run(lw),
    "postgres_us_per_run": per_run(pg),
    "rest_us_per_run": per_run(max(busy - ct - gw - lw - pg, 0)),
    "machine_busy_pct": round(100.0 * busy / max(total, 1), 1),
}
# A rest far above k6's own share means other work (builds, tests) ran too.
report["server_cpu"]["disturbed"] = busy - ct - gw - lw - pg > 0.6 * (ct + gw + lw + pg)

def scrape(file):
    values = {}
    try:
        for line in open(file):
            m = re.match(r'^(\w+_duration_seconds)_(sum|count)(\{[^}]*\})? ([0-9.eE+-]+)$', line.strip())
            if m:
                values[(m.group(1), m.group(3) or "", m.group(2))] = float(m.group(4))
    except OSError:
        pass
    return values
times = {}
for component in ("controller", "gateway", "ledger"):
    b, a = scrape(f"{out_dir}/.metrics-{component}-0"), scrape(f"{out_dir}/.metrics-{component}-1")
    for (name, labels, kind), value in a.items():
        if kind != "count":
            continue
        count = value - b.get((name, labels, "count"), 0)
        if count <= 0:
            continue
        total_s = a.get((name, labels, "sum"), 0) - b.get((name, labels, "sum"), 0)
        times[f"{name}{labels}"] = {"count": int(count), "mean_ms": round(1000 * total_s / count, 3), "per_run": round(count / runs, 2)}
report["server_time"] = {
    "note": "from the services' own /metrics histograms over warm-up + measured time: calls, mean ms, and calls per run",
    "series": times,
}
pg_before, pg_after = [int(x) for x in sys.argv[17:22]], [int(x) for x in sys.argv[22:27]]
report["postgres_per_run"] = {
    "note": "pg_stat_database deltas of pecr_perf over warm-up + measured time, per run",
    **{name: round((a - b) / runs, 2) for name, a, b in zip(("commits", "rollbacks", "rows_inserted", "rows_updated", "rows_fetched"), pg_after, pg_before)},
}
report["postgres_settings"] = pg_settings
json.dump(report, open(path, "w"), indent=2)
EOF
  sed 's/^/    /' "$out_dir/$name.txt" | grep -v '^    $' | tail -n 8
  reports+=("$out_dir/$name.json")
done

say
say "==> summary ($(nproc) CPUs, $vus VUs closed loop, warm-up $warmup, measured $duration per mode; reports in target/perf/)"
python3 - "${reports[@]}" <<'EOF'
import json, sys
rows = [json.load(open(p)) for p in sys.argv[1:]]
head = f"{'mode':<6}{'VUs':>5}{'runs/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'checks':>9}  {'>=700/s & p99<=15ms':<20}{'CPU us/run ctrl / gw / ledger / pg / rest':>44}{'busy%':>7}"
print(head)
print("-" * len(head))
disturbed = False
for r in rows:
    lat, cpu = r["latency_ms"], r.get("server_cpu", {})
    met = (r["throughput_runs_per_s"] or 0) >= 700 and (lat["p99"] or 1e9) <= 15
    cpu_text = " / ".join(str(cpu.get(k, "-")) for k in ("controller_us_per_run", "gateway_us_per_run", "ledger_writer_us_per_run", "postgres_us_per_run", "rest_us_per_run"))
    mode = r["mode"] + ("!" if cpu.get("disturbed") else "")
    print(f"{mode:<6}{r['vus']:>5}{r['throughput_runs_per_s']:>9.1f}{lat['p50']:>9.2f}{lat['p95']:>9.2f}{lat['p99']:>9.2f}{lat['max']:>9.2f}{(r['check_pass_rate'] or 0):>9.4f}  {('yes' if met else 'NO'):<20}{cpu_text:>44}{cpu.get('machine_busy_pct', '-'):>7}")
    disturbed = disturbed or bool(cpu.get("disturbed"))
if disturbed:
    print("! other processes used much CPU during this run (server_cpu.disturbed): rerun it on a quiet machine")
EOF
