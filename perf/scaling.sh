#!/usr/bin/env bash
# How the Run path scales with the size of the ledger, in ONE database:
#
#   1. fresh:  throughput of the 10-VU `POST /v1/run` load on a fresh pecr_perf
#              (PERF_WARMUP, then PERF_DURATION measured), with the per-run
#              accounting of run-controller-bench.sh;
#   2. fill:   real runs through the running mesh (k6, PERF_FILL_VUS VUs,
#              exactly the runs still missing) until PERF_SCALE_RUNS runs are
#              stored (rows of pecr_replay_bundles);
#   3. full:   the same measurement as 1, on the filled ledger (after a
#              VACUUM (ANALYZE) when the server's autovacuum is off);
#   4. scans:  how every ledger table was read during 3, from PostgreSQL's
#              own counters (pg_stat_user_tables): a run-path statement
#              that scanned a table instead of using an index shows up as
#              sequential scans and rows read, whatever its SQL text.
#
# Throughout, every PERF_RSS_INTERVAL seconds, the RSS of each service
# (VmRSS from /proc/<pid>/status), the stored-run count and the database size
# go to a CSV, plotted by perf/plot_rss.py.
#
# Outputs (LABEL = PERF_LABEL):
#   target/perf/scaling-LABEL.json          both measurements side by side, RSS at
#                                           start and end, the fill's figures
#   target/perf/scaling-LABEL-fresh.json, -full.json
#                                           k6 reports with the per-run accounting
#   target/perf/scaling-LABEL-fill.json     k6's report of the fill
#   target/perf/scaling-LABEL-rss.csv       the samples
#   target/perf/scaling-LABEL-scans.txt     sequential / index scans per table during 3
#   PERF_RSS_SVG                            the plot (default: perf/scaling-rss.svg)
#
# Environment (all optional):
#   PERF_SCALE_RUNS   stored runs to reach              (default: 100000)
#   PERF_RSS_INTERVAL seconds between samples           (default: 5)
#   PERF_LABEL        names the outputs                 (default: current)
#   PERF_RSS_SVG      where the plot goes               (default: perf/scaling-rss.svg)
#   PERF_MODE         k6 mode, http | grpc              (default: http)
#   PERF_VUS          VUs of the two measurements       (default: 10)
#   PERF_DURATION     measured time of each             (default: 20s)
#   PERF_WARMUP       warm-up before each               (default: 3s)
#   PERF_FILL_VUS     VUs of the fill                   (default: 10)
#   PERF_FILL_MAX     the fill's time limit (k6 units)  (default: 2h)
#   PERF_PORT_BASE, PERF_SKIP_BUILD, PERF_QUIET_WAIT, PERF_KEEP_DB, PERF_BUDGET_DEFAULTS,
#   PERF_CONTROLLER_ENV / PERF_GATEWAY_ENV / PERF_LEDGER_ENV, PERF_DB_ADMIN_URL,
#   CARGO_TARGET_DIR  see perf/controller-mesh.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/controller-mesh.sh"
cd "$PECR_ROOT"

scale_runs="${PERF_SCALE_RUNS:-100000}"
interval="${PERF_RSS_INTERVAL:-5}"
label="${PERF_LABEL:-current}"
svg="${PERF_RSS_SVG:-$PECR_ROOT/perf/scaling-rss.svg}"
mode="${PERF_MODE:-http}"
vus="${PERF_VUS:-10}"
duration="${PERF_DURATION:-20s}"
warmup="${PERF_WARMUP:-3s}"
fill_vus="${PERF_FILL_VUS:-10}"
fill_max="${PERF_FILL_MAX:-2h}"
[[ "$scale_runs" =~ ^[1-9][0-9]*$ ]] || die "PERF_SCALE_RUNS '$scale_runs' is not a positive number"
[[ "$interval" =~ ^[1-9][0-9]*$ ]] || die "PERF_RSS_INTERVAL '$interval' is not a whole number of seconds >= 1"
[[ "$label" =~ ^[A-Za-z0-9._-]+$ ]] || die "PERF_LABEL '$label' may hold only letters, digits, '.', '_' and '-'"

prefix="$out_dir/scaling-$label"
csv="$prefix-rss.csv"
phase_file="$out_dir/.scaling-phase"
sampler_pid=""

stored_runs() { psql "$db_url" -tAX -c 'SELECT count(*) FROM pecr_replay_bundles' 2>/dev/null || echo ""; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

# One CSV line every $interval s until killed.
sample_rss() {
  local start now runs size
  start="$(date +%s)"
  echo "elapsed_s,phase,stored_runs,db_size_bytes,controller_rss_kb,gateway_rss_kb,ledger_writer_rss_kb" >"$csv"
  while true; do
    now="$(date +%s)"
    read -r runs size < <(psql "$db_url" -tAX -F ' ' -c "SELECT (SELECT count(*) FROM pecr_replay_bundles), pg_database_size(current_database())" 2>/dev/null || echo "- -")
    echo "$((now - start)),$(cat "$phase_file" 2>/dev/null),$runs,$size,$(rss_kb "$pecr_controller_pid"),$(rss_kb "$pecr_gateway_pid"),$(rss_kb "$pecr_ledger_writer_pid")" >>"$csv"
    sleep "$interval"
  done
}

mesh_extra_cleanup() {
  if [[ -n "$sampler_pid" ]]; then
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
  fi
  rm -f "$phase_file"
}

mesh_prepare
mesh_start
mesh_smoke
rm -f "$prefix"-*.json "$prefix"-*.txt

echo fresh >"$phase_file"
sample_rss &
sampler_pid=$!
say "==> sampling RSS every ${interval}s into ${csv#"$PECR_ROOT"/}"

fresh_runs="$(stored_runs)"
say
say "==> fresh: $fresh_runs stored runs; k6 $mode, $vus VUs, warm-up $warmup, measured $duration"
measure_runs "scaling-$label-fresh" "$mode" "$vus" "$warmup" "$duration" || die "the fresh measurement failed"

echo fill >"$phase_file"
fill_started="$(date +%s)"
for attempt in 1 2 3; do
  have="$(stored_runs)"
  [[ "$have" =~ ^[0-9]+$ ]] || die "cannot count the stored runs in $db_name"
  missing=$((scale_runs - have))
  if ((missing <= 0)); then
    ((attempt > 1)) || say "==> fill: nothing to do, the fresh measurement already stored $have runs"
    break
  fi
  say
  say "==> fill (attempt $attempt): $have stored runs, $missing more with $fill_vus VUs (at most $fill_max)"
  k6_load "$mode" "$fill_vus" 0s 0s "$prefix-fill.json" -e ITERATIONS="$missing" -e MAX_DURATION="$fill_max" ||
    say "    k6 exited non-zero; see $prefix-fill.txt"
  sed 's/^/    /' "$prefix-fill.txt" | grep -v '^    $' | tail -n 4
done
fill_seconds=$(($(date +%s) - fill_started))
have="$(stored_runs)"
((have >= scale_runs)) || die "the fill stopped at $have of $scale_runs stored runs; see $prefix-fill.txt"

# A server with autovacuum would have vacuumed and analysed these tables
# during the fill; without it, the planner still sees the fresh database.
if [[ "$(psql "$db_url" -tAX -c 'SHOW autovacuum')" != "on" ]]; then
  echo vacuum >"$phase_file"
  say
  say "==> autovacuum is off on this server: VACUUM (ANALYZE) $db_name, as autovacuum would have"
  psql "$db_url" -qX -v ON_ERROR_STOP=1 -c 'VACUUM (ANALYZE)' >/dev/null
fi

# Per table: sequential scans, rows they read, index scans. Backends report
# their counters within a second of going idle.
table_scans() {
  sleep 2
  psql "$db_url" -tAX -F ' ' -c \
    "SELECT relname, seq_scan, seq_tup_read, COALESCE(idx_scan, 0) FROM pg_stat_user_tables ORDER BY relname"
}

echo full >"$phase_file"
say
say "==> full: $have stored runs; k6 $mode, $vus VUs, warm-up $warmup, measured $duration"
scans_before="$(table_scans)"
measure_runs "scaling-$label-full" "$mode" "$vus" "$warmup" "$duration" || die "the measurement on the filled ledger failed"
scans_after="$(table_scans)"

echo scans >"$phase_file"
say
say "==> scans of each table during the full measurement -> ${prefix#"$PECR_ROOT"/}-scans.txt"
awk 'NR == FNR { seq[$1] = $2; rows[$1] = $3; idx[$1] = $4; next }
     FNR == 1 { printf "%-32s %10s %14s %12s\n", "table", "seq scans", "rows seq-read", "index scans" }
     { printf "%-32s %10d %14d %12d\n", $1, $2 - seq[$1], $3 - rows[$1], $4 - idx[$1] }' \
  <(echo "$scans_before") <(echo "$scans_after") >"$prefix-scans.txt"
sed 's/^/    /' "$prefix-scans.txt"

sleep 1
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""

python3 perf/plot_rss.py "$csv" "$svg" "RSS of each service over stored runs ($label, $(nproc) CPUs, fill at $fill_vus VUs)"
say "==> plot: ${svg#"$PECR_ROOT"/}"

python3 - "$prefix" "$label" "$scale_runs" "$fill_seconds" "$interval" "$svg" "$fresh_runs" "$have" <<'EOF'
import csv, json, sys
prefix, label, scale_runs, fill_seconds, interval, svg = sys.argv[1:7]
stored = {"fresh": int(sys.argv[7]), "full": int(sys.argv[8])}
def load(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None
fresh, full, fill = load(f"{prefix}-fresh.json"), load(f"{prefix}-full.json"), load(f"{prefix}-fill.json")
for name, report in (("fresh", fresh), ("full", full)):
    if report:
        report["stored_runs"] = stored[name]
with open(f"{prefix}-rss.csv", newline="", encoding="utf-8") as file:
    samples = [row for row in csv.DictReader(file) if row["stored_runs"].isdigit()]
services = [name[: -len("_rss_kb")] for name in (samples[0] if samples else {}) if name.endswith("_rss_kb")]
def kb(row, service):
    value = row.get(f"{service}_rss_kb", "")
    return int(value) if value.isdigit() else None
def brief(report):
    if not report:
        return None
    keep = ("stored_runs", "throughput_runs_per_s", "latency_ms", "check_pass_rate", "run_ok_rate", "server_cpu", "postgres_per_run", "ledger_rpcs_per_run")
    return {key: report.get(key) for key in keep}
summary = {
    "label": label,
    "target_stored_runs": int(scale_runs),
    "fresh": brief(fresh),
    "full": brief(full),
    "fill": {
        "seconds": int(fill_seconds),
        "vus": fill and fill.get("vus"),
        "runs": fill and fill.get("iterations"),
        "runs_per_s": fill and fill.get("throughput_runs_per_s"),
        "run_ok_rate": fill and fill.get("run_ok_rate"),
        "note": "the last fill attempt's k6 report (one attempt unless runs failed)",
    },
    "rss_kb": {
        service: {
            "first": kb(samples[0], service) if samples else None,
            "last": kb(samples[-1], service) if samples else None,
            "max": max((kb(row, service) or 0 for row in samples), default=None),
        }
        for service in services
    },
    "stored_runs_first_last": [int(samples[0]["stored_runs"]), int(samples[-1]["stored_runs"])] if samples else None,
    "db_size_bytes_last": int(samples[-1]["db_size_bytes"]) if samples and samples[-1]["db_size_bytes"].isdigit() else None,
    "samples": len(samples),
    "sample_interval_s": int(interval),
    "files": {"csv": f"{prefix}-rss.csv", "plot": svg, "scans": f"{prefix}-scans.txt"},
}
if fresh and full:
    summary["throughput_full_over_fresh"] = round(full["throughput_runs_per_s"] / max(fresh["throughput_runs_per_s"], 1e-9), 3)
with open(f"{prefix}.json", "w", encoding="utf-8") as file:
    json.dump(summary, file, indent=2)
    file.write("\n")

print(f"{'':<8}{'stored runs':>12}{'runs/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'commits/run':>13}{'ledger RPCs/run':>17}{'CPU us/run services':>21}")
for name, report in (("fresh", fresh), ("full", full)):
    if not report:
        continue
    lat = report["latency_ms"]
    print(f"{name:<8}{report['stored_runs']:>12}{report['throughput_runs_per_s']:>9.1f}{lat['p50']:>9.2f}{lat['p99']:>9.2f}"
          f"{str(report.get('postgres_per_run', {}).get('commits', '-')):>13}{str(report.get('ledger_rpcs_per_run', {}).get('total', '-')):>17}"
          f"{str(report.get('server_cpu', {}).get('services_us_per_run', '-')):>21}")
print()
print(f"RSS (MiB) first -> last over {summary['stored_runs_first_last']} stored runs:")
for service, rss in summary["rss_kb"].items():
    if rss["first"] and rss["last"]:
        print(f"  {service:<15}{rss['first'] / 1024:8.1f} -> {rss['last'] / 1024:8.1f}  (max {rss['max'] / 1024:.1f})")
EOF
say "==> report: ${prefix#"$PECR_ROOT"/}.json"
