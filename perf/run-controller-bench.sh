#!/usr/bin/env bash
# Load benchmark of the controller's Run, end to end: k6 sends
# `POST /v1/run` (REST) and `pecr.v1.ControllerService/Run` (gRPC) to a
# release controller that runs the default baseline plan through a release
# gateway and ledger-writer on PostgreSQL.
#
# Builds the three release binaries, recreates the scratch database
# `pecr_perf` with the safe-view fixture, starts ledger-writer, gateway and
# controller on fixed loopback ports (not dev-up's, outside the ephemeral
# range), waits for /readyz, runs perf/k6/controller_run.js once per mode
# (closed loop, constant VUs), writes target/perf/k6-controller-<mode>-c<vus>.json
# (k6's figures plus the per-run accounting below), prints a summary table
# and stops everything (trap, Ctrl-C included). The bring-up is shared with
# flamegraph.sh and scaling.sh (perf/controller-mesh.sh).
#
# The run rate limits are off for the benchmark: PECR_RATE_LIMIT_RUN_PER_WINDOW=0
# on the controller; PECR_RATE_LIMIT_{SESSIONS,OPERATORS,FINALIZE}_PER_WINDOW=0
# on the gateway (one run = 1 session + its operator calls + 1 finalize).
# Everything else keeps its default (replays stored through ledger-writer).
#
# Per run, each report holds: the CPU each process burnt (controller,
# gateway, ledger-writer, PostgreSQL, the rest), PostgreSQL commits and rows
# (pg_stat_database of pecr_perf), ledger-writer RPCs (its /metrics) and the
# services' own mean times; the summary table prints the first three.
#
# Environment (all optional):
#   PERF_MODES        k6 modes to run                   (default: "http grpc")
#   PERF_VUS          virtual users, closed loop        (default: 10)
#   PERF_DURATION     measured time per mode            (default: 20s)
#   PERF_WARMUP       warm-up per mode, not measured    (default: 3s)
#   PERF_PORT_BASE    ports: gateway gRPC/HTTP BASE+1 / BASE+81, controller BASE+2 / BASE+82,
#                     ledger BASE+3 / BASE+83 (default: 24050, below Linux's ephemeral
#                     range; a base whose ports fall in ip_local_port_range is refused)
#   PERF_SKIP_BUILD, PERF_QUIET_WAIT, PERF_KEEP_DB, PERF_BUDGET_DEFAULTS,
#   PERF_CONTROLLER_ENV / PERF_GATEWAY_ENV / PERF_LEDGER_ENV, PERF_DB_ADMIN_URL,
#   CARGO_TARGET_DIR  see perf/controller-mesh.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/controller-mesh.sh"
cd "$PECR_ROOT"

modes="${PERF_MODES:-http grpc}"
vus="${PERF_VUS:-10}"
duration="${PERF_DURATION:-20s}"
warmup="${PERF_WARMUP:-3s}"

mesh_prepare
mesh_start
mesh_smoke

reports=()
for mode in $modes; do
  name="k6-controller-$mode-c$vus"
  say
  say "==> $name: k6 run perf/k6/controller_run.js (mode $mode, $vus VUs, warm-up $warmup, measured $duration)"
  measure_runs "$name" "$mode" "$vus" "$warmup" "$duration" || continue
  reports+=("$out_dir/$name.json")
done

say
say "==> summary ($(nproc) CPUs, $vus VUs closed loop, warm-up $warmup, measured $duration per mode; reports in target/perf/)"
python3 perf/run_report.py table "${reports[@]}"
