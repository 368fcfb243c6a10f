#!/usr/bin/env bash
# Suite 7: the performance harness of the whole mesh, in one command.
#
#   perf/suite7.sh [--short|--full]
#
# On a scratch database and loopback ports of its own (perf/controller-mesh.sh,
# perf/bench-lib.sh), it measures, in order:
#
#   run_<engine>            POST /v1/run, k6 closed loop (perf/k6/controller_run.js),
#                           once per controller engine: baseline (expected:
#                           SUPPORTED), and rlm with the mock backend
#                           (scripts/rlm/pecr_rlm_bridge.py), whose fixed answer
#                           is "UNKNOWN: insufficient evidence" (expected:
#                           INSUFFICIENT_EVIDENCE; the mock is no model)
#   gateway_fetch_rows,     CallOperator, pecr-loadgen closed loop (perf/loadgen)
#   gateway_search
#   fault_opa_unresponsive  runs while the gateway's remote OPA accepts and never
#                           answers (perf/suite7/blackhole.py); expected:
#                           SOURCE_UNAVAILABLE, ERR_SOURCE_TIMEOUT, ERR_SOURCE_UNAVAILABLE
#                           (the circuit breaker's fast refusal)
#   fault_safeview_timeout  runs whose plan reads `safe_customer_view_public_slow`
#                           (0.2 s per query) under a 50 ms statement timeout;
#                           expected: SOURCE_UNAVAILABLE, ERR_SOURCE_UNAVAILABLE
#   fault_ledger_restart    runs while ledger-writer is killed (SIGKILL) and
#                           started again mid-load; expected: SUPPORTED,
#                           ERR_LEDGER_UNAVAILABLE, and SOURCE_UNAVAILABLE for a
#                           run the kill cut in the middle
# (the faults also expect the engine's own answer: INSUFFICIENT_EVIDENCE for rlm)
#
# The fault stagings are the security gate's drills (tests/security/tests/drills)
# with a lighter load. Around each load it reads the CPU ticks of the three
# services from /proc/<pid>/stat (the controller's with its RLM bridge
# processes; PostgreSQL's too, kept aside), then writes
# SUITE7_OUT/summary.json (schema pecr.suite7.v1, cli/src/suite7.rs: requests,
# throughput, p50/p95/p99, error rate, the mix of terminal modes and error
# codes, CPU per request), the raw reports next to it (<scenario>.k6.json,
# .loadgen.json, .cpu, .extra.json, logs/), prints a table, and, when
# perf/baselines/suite7_<mode>.summary.json exists, compares with it
# (`pecr perf compare`, compare.json/.txt) and writes the matrix against it
# (`pecr perf matrix`: matrix.md, matrix.json, matrix.svg). Exits 1 when a
# scenario measured nothing or the comparison found a regression.
#
# Modes:
#   --short (default; scripts/test.sh) the debug binaries scripts/test.sh builds,
#           small loads (about 1.5 minutes on 2 cores), compared with the short
#           baseline with tolerances a shared machine cannot break by itself:
#           CPU per request within a factor 2.5, error rate +0.02, terminal-mode
#           shares ±0.02 (runs, operators), and throughput and p95/p99 only
#           within a factor 10, latency + 250 ms (why so wide: perf/README.md,
#           "The comparison")
#   --full  release binaries (built first), the benchmark loads of
#           perf/run-controller-bench.sh and perf/run-gateway-bench.sh, waiting
#           for a quiet machine before each load; compared with the full
#           baseline: throughput, p95/p99 and CPU per request within a factor
#           1.25, error rate +0.01, shares ±0.05
#
# Environment (all optional):
#   SUITE7_OUT            output folder                    (default: target/perf/suite7)
#   SUITE7_ENGINES        engines of the run benchmark     (default: "baseline rlm")
#   SUITE7_FAULT_ENGINE   controller engine in the faults  (default: baseline; the
#                         safe-view fault always runs the baseline plan that reads the slow view)
#   SUITE7_SKIP_RUNS=1, SUITE7_SKIP_OPERATORS=1, SUITE7_SKIP_FAULTS=1
#                         leave those scenarios out (the comparison then reports them missing)
#   SUITE7_RUN_VUS, SUITE7_RUN_WARMUP, SUITE7_RUN_DURATION      the run loads
#   SUITE7_OP_CLIENTS, SUITE7_OP_WARMUP, SUITE7_OP_DURATION     the operator loads
#   SUITE7_FAULT_VUS, SUITE7_FAULT_SECONDS                      the fault loads (whole seconds)
#   SUITE7_SKIP_BUILD=1   use the binaries already built (cargo build --workspace --bins
#                         --features pecr-controller/rlm, --release for --full)
#   SUITE7_BASELINE       the summary to compare with (default: perf/baselines/suite7_<mode>.summary.json)
#   SUITE7_COMPARE=0      do not compare, nor write the matrix
#   SUITE7_TOLERANCE, SUITE7_LATENCY_SLACK_MS, SUITE7_CPU_TOLERANCE, SUITE7_ERROR_TOLERANCE,
#   SUITE7_MIX_TOLERANCE
#                         the comparison's tolerances (pecr perf compare --help)
#   PERF_PORT_BASE        ports BASE+1..3, BASE+81..83, and BASE+90 for the blackhole OPA
#                         (default: 24250)
#   PERF_DB_NAME          scratch database, dropped and recreated (default: pecr_suite7)
#   PERF_QUIET_WAIT       seconds to wait for a quiet machine before each load
#                         (default: 0 short, 60 full)
#   PERF_GATEWAY_ENV / PERF_CONTROLLER_ENV / PERF_LEDGER_ENV, PERF_KEEP_DB,
#   PERF_DB_ADMIN_URL, CARGO_TARGET_DIR   see perf/controller-mesh.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$PECR_ROOT"

mode=short
case "$#:${1:-}" in
  0:|1:--short) mode=short ;;
  1:--full) mode=full ;;
  1:-h | 1:--help) usage; exit 0 ;;
  *) die "usage: perf/suite7.sh [--short|--full]" ;;
esac

if [[ "$mode" == short ]]; then
  profile=debug
  run_vus=4 run_warmup=2s run_duration=8s
  op_clients=4 op_warmup=1s op_duration=6s
  fault_vus=4 fault_seconds=8
  quiet=0 tolerance=9 slack_ms=250 cpu_tolerance=1.5 error_tolerance=0.02 mix_tolerance=0.02
else
  profile=release
  run_vus=10 run_warmup=3s run_duration=20s
  op_clients=8 op_warmup=3s op_duration=15s
  fault_vus=8 fault_seconds=20
  quiet=60 tolerance=0.25 slack_ms=0 cpu_tolerance=0.25 error_tolerance=0.01 mix_tolerance=0.05
fi
run_vus="${SUITE7_RUN_VUS:-$run_vus}"
run_warmup="${SUITE7_RUN_WARMUP:-$run_warmup}"
run_duration="${SUITE7_RUN_DURATION:-$run_duration}"
op_clients="${SUITE7_OP_CLIENTS:-$op_clients}"
op_warmup="${SUITE7_OP_WARMUP:-$op_warmup}"
op_duration="${SUITE7_OP_DURATION:-$op_duration}"
fault_vus="${SUITE7_FAULT_VUS:-$fault_vus}"
fault_seconds="${SUITE7_FAULT_SECONDS:-$fault_seconds}"
[[ "$fault_seconds" =~ ^[0-9]+$ && "$fault_seconds" -ge 4 ]] || die "SUITE7_FAULT_SECONDS must be whole seconds, at least 4"
engines="${SUITE7_ENGINES:-baseline rlm}"
fault_engine="${SUITE7_FAULT_ENGINE:-baseline}"
for engine in $engines $fault_engine; do
  [[ "$engine" == baseline || "$engine" == rlm ]] || die "unknown engine '$engine' (baseline or rlm)"
done
settings="runs: $run_vus VUs, warm-up $run_warmup, measured $run_duration; operators: $op_clients clients, warm-up $op_warmup, measured $op_duration; faults: $fault_vus VUs, ${fault_seconds}s"

export PERF_PROFILE="$profile" PERF_SKIP_BUILD=1
export PERF_QUIET_WAIT="${PERF_QUIET_WAIT:-$quiet}"
export PERF_DB_NAME="${PERF_DB_NAME:-pecr_suite7}"
export PERF_PORT_BASE="${PERF_PORT_BASE:-24250}"
user_gateway_env="${PERF_GATEWAY_ENV:-}"
user_controller_env="${PERF_CONTROLLER_ENV:-}"
source "$PECR_ROOT/perf/controller-mesh.sh"

suite_out="${SUITE7_OUT:-$PECR_ROOT/target/perf/suite7}"
mkdir -p "$suite_out"
# Only what this script writes, so a stale scenario never enters the summary.
rm -rf "$suite_out/logs" "$suite_out"/*.scenario.json "$suite_out"/*.extra.json "$suite_out"/*.cpu \
  "$suite_out"/*.k6.json "$suite_out"/*.k6.txt "$suite_out"/*.loadgen.json "$suite_out"/*.loadgen.txt \
  "$suite_out"/*.events.json "$suite_out"/summary.json "$suite_out"/compare.* "$suite_out"/matrix.*
opa_port=$((PERF_PORT_BASE + 90))
check_ports "$opa_port"
port_busy "127.0.0.1:$opa_port" && die "port $opa_port is in use; free it or set PERF_PORT_BASE"

if [[ "${SUITE7_SKIP_BUILD:-0}" != "1" ]]; then
  release=()
  [[ "$profile" == release ]] && release=(--release)
  say "==> building the $profile binaries (the same build scripts/test.sh makes; a first release build takes long on 2 cores)"
  cargo build "${release[@]}" --target-dir "$target_dir" --workspace --bins --features pecr-controller/rlm
fi
for bin in pecr-loadgen pecr-policy-hash pecr; do
  [[ -x "$bin_dir/$bin" ]] || die "$bin_dir/$bin is missing (cargo build ${profile/debug/} --workspace --bins --features pecr-controller/rlm)"
done
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

blackhole_pid=""
load_pid=""
mesh_extra_cleanup() {
  [[ -n "$load_pid" ]] && kill "$load_pid" 2>/dev/null
  [[ -n "$blackhole_pid" ]] && kill "$blackhole_pid" 2>/dev/null
  return 0
}
mesh_prepare
out_dir="$suite_out"

# mesh_configure NAME ENGINE GATEWAY_ENV CONTROLLER_ENV [PROBE]: the three
# services (re)started with these extra KEY=VALUE words, logs in logs/NAME/;
# PROBE is the path start-up waits for (default /readyz).
mesh_configure() {
  local name="$1" engine="$2" gateway_env="$3" controller_env="$4"
  stop_services
  out_dir="$suite_out/logs/$name"
  mkdir -p "$out_dir"
  PERF_GATEWAY_ENV="$user_gateway_env $gateway_env"
  PERF_CONTROLLER_ENV="$user_controller_env $(engine_env "$engine") $controller_env"
  start_probe="${5:-}"
  say
  say "==> mesh: $name (controller engine $engine)"
  mesh_start
  start_probe=""
}

# The answers an engine gives besides SUPPORTED: the RLM mock backend is a
# deterministic stand-in for a model, and always ends with "UNKNOWN:
# insufficient evidence" (scripts/rlm/pecr_rlm_bridge.py), i.e. INSUFFICIENT_EVIDENCE.
engine_answers() {
  [[ "$1" == rlm ]] && echo INSUFFICIENT_EVIDENCE || true
}

# joined A B...: the non-empty words, comma-separated.
joined() {
  local IFS=,
  local words=()
  for word in "$@"; do [[ -n "$word" ]] && words+=("$word"); done
  echo "${words[*]}"
}

engine_env() {
  if [[ "$1" == rlm ]]; then
    echo "PECR_CONTROLLER_ENGINE=rlm PECR_RLM_SANDBOX_ACK=1 PECR_RLM_BACKEND=mock PECR_RLM_SCRIPT_PATH=$PECR_ROOT/scripts/rlm/pecr_rlm_bridge.py"
  else
    echo "PECR_CONTROLLER_ENGINE=baseline"
  fi
}

# CPU ticks of the three services at the start of a load; a process
# restarted during it adds its predecessor's ticks to `cpu_gone`.
cpu_begin() {
  cpu0=("$(ticks_with_children_of "$pecr_controller_pid")" "$(ticks_of "$pecr_gateway_pid")" "$(ticks_of "$pecr_ledger_writer_pid")")
  cpu_gone=(0 0 0)
  postgres_pid_ticks "$db_name" >"$suite_out/.pg-ticks-0"
}

# cpu_end FILE: the ticks each process burnt since cpu_begin.
cpu_end() {
  local now=("$(ticks_with_children_of "$pecr_controller_pid")" "$(ticks_of "$pecr_gateway_pid")" "$(ticks_of "$pecr_ledger_writer_pid")")
  postgres_pid_ticks "$db_name" >"$suite_out/.pg-ticks-1"
  {
    echo "clk_tck $clk_tck"
    echo "controller $((now[0] - cpu0[0] + cpu_gone[0]))"
    echo "gateway $((now[1] - cpu0[1] + cpu_gone[1]))"
    echo "ledger_writer $((now[2] - cpu0[2] + cpu_gone[2]))"
    echo "postgres $(ticks_delta "$suite_out/.pg-ticks-0" "$suite_out/.pg-ticks-1")"
  } >"$1"
  rm -f "$suite_out"/.pg-ticks-*
}

scenario_files=()
missing=()

# summarize TOOL NAME KIND ENGINE EXPECT: the scenario's entry of the summary.
summarize() {
  local tool="$1" name="$2" kind="$3" engine="$4" expect="$5" raw
  raw="$suite_out/$name.$tool.json"
  if [[ ! -s "$raw" ]]; then
    say "    $name: no report from $tool (see $suite_out/$name.$tool.txt)"
    missing+=("$name")
    return 0
  fi
  python3 perf/suite7/summary.py scenario --tool "$tool" --raw "$raw" --cpu "$suite_out/$name.cpu" \
    --name "$name" --kind "$kind" --engine "$engine" --expect "$expect" --out "$suite_out/$name.scenario.json"
  scenario_files+=("$suite_out/$name.scenario.json")
}

# k6_scenario NAME KIND ENGINE VUS WARMUP DURATION EXPECT: one k6 load of runs.
k6_scenario() {
  local name="$1" kind="$2" engine="$3" vus="$4" warmup="$5" duration="$6" expect="$7"
  say "==> $name: k6, $vus VUs, warm-up $warmup, measured $duration (expected besides SUPPORTED: ${expect:-nothing})"
  wait_quiet
  cpu_begin
  k6_load http "$vus" "$warmup" "$duration" "$suite_out/$name.k6.json" -e PECR_EXPECT="$expect" ||
    say "    k6 exited non-zero; see $suite_out/$name.k6.txt"
  cpu_end "$suite_out/$name.cpu"
  summarize k6 "$name" "$kind" "$engine" "$expect"
}

# op_scenario NAME OP: one pecr-loadgen load of CallOperator.
op_scenario() {
  local name="$1" op="$2"
  say "==> $name: pecr-loadgen --op $op, $op_clients clients, warm-up $op_warmup, measured $op_duration"
  wait_quiet
  cpu_begin
  # Errors are counted in the report; only a failed preflight stops it.
  "$bin_dir/pecr-loadgen" --gateway "http://$gw_grpc" --op "$op" --clients "$op_clients" \
    --warmup "$op_warmup" --duration "$op_duration" --max-error-rate 1 --label "$name" \
    --out "$suite_out/$name.loadgen.json" >"$suite_out/$name.loadgen.txt" 2>&1 ||
    say "    pecr-loadgen exited non-zero; see $suite_out/$name.loadgen.txt"
  cpu_end "$suite_out/$name.cpu"
  summarize loadgen "$name" operator "" ""
}

first=1
if [[ "${SUITE7_SKIP_RUNS:-0}" != "1" ]]; then
  for engine in $engines; do
    mesh_configure "run_$engine" "$engine" "" ""
    if ((first)); then mesh_smoke; first=0; fi
    k6_scenario "run_$engine" run "$engine" "$run_vus" "$run_warmup" "$run_duration" "$(engine_answers "$engine")"
  done
fi

if [[ "${SUITE7_SKIP_OPERATORS:-0}" != "1" ]]; then
  # The controller is idle here; any engine will do.
  [[ -n "${pecr_gateway_pid:-}" ]] && alive "$pecr_gateway_pid" || mesh_configure operators baseline "" ""
  op_scenario gateway_fetch_rows fetch_rows
  op_scenario gateway_search search
fi

if [[ "${SUITE7_SKIP_FAULTS:-0}" != "1" ]]; then
  # A remote OPA that accepts and never answers; the drill's OPA settings,
  # so the circuit breaker trips after 4 failed decisions.
  python3 perf/suite7/blackhole.py "$opa_port" &
  blackhole_pid=$!
  for _ in $(seq 1 50); do port_busy "127.0.0.1:$opa_port" && break; sleep 0.1; done
  port_busy "127.0.0.1:$opa_port" || die "the blackhole OPA did not listen on $opa_port"
  policy_hash="$("$bin_dir/pecr-policy-hash" "$PECR_ROOT/opa/bundle")"
  # The gateway cannot be ready without its policy engine, nor the
  # controller without the gateway: wait for liveness instead.
  mesh_configure fault_opa_unresponsive "$fault_engine" \
    "PECR_OPA_URL=http://127.0.0.1:$opa_port PECR_POLICY_BUNDLE_HASH=$policy_hash PECR_OPA_TIMEOUT_MS=100 PECR_OPA_RETRY_MAX_ATTEMPTS=2 PECR_OPA_RETRY_BASE_BACKOFF_MS=50 PECR_OPA_CIRCUIT_BREAKER_FAILURE_THRESHOLD=4 PECR_OPA_CIRCUIT_BREAKER_OPEN_MS=1000" \
    "" /healthz
  k6_scenario fault_opa_unresponsive fault "$fault_engine" "$fault_vus" 0s "${fault_seconds}s" \
    "$(joined "$(engine_answers "$fault_engine")" SOURCE_UNAVAILABLE ERR_SOURCE_TIMEOUT ERR_SOURCE_UNAVAILABLE)"
  kill "$blackhole_pid" 2>/dev/null || true
  wait "$blackhole_pid" 2>/dev/null || true
  blackhole_pid=""

  # A plan that reads the slow view (0.2 s a query) under a 50 ms statement
  # timeout. The RLM mock's plan reads only the fast view, so this fault
  # always runs the baseline engine.
  slow_plan='[{"kind":"operator","op_name":"fetch_rows","params":{"view_id":"safe_customer_view_public_slow","fields":["status"],"filter_spec":{"customer_id":"cust_public_1"}}}]'
  mesh_configure fault_safeview_timeout baseline "PECR_PG_SAFEVIEW_QUERY_TIMEOUT_MS=50" "PECR_BASELINE_PLAN=$slow_plan"
  k6_scenario fault_safeview_timeout fault baseline "$fault_vus" 0s "${fault_seconds}s" \
    SOURCE_UNAVAILABLE,ERR_SOURCE_UNAVAILABLE

  # ledger-writer killed 30 % into the load, started again 1.5 s later.
  mesh_configure fault_ledger_restart "$fault_engine" "" ""
  name=fault_ledger_restart
  # A run that straddles the kill can still end SOURCE_UNAVAILABLE (the
  # hint of ERR_LEDGER_UNAVAILABLE) when a later call of its plan fails.
  expect="$(joined "$(engine_answers "$fault_engine")" SOURCE_UNAVAILABLE ERR_LEDGER_UNAVAILABLE)"
  say "==> $name: k6, $fault_vus VUs, ${fault_seconds}s; ledger-writer killed at $((fault_seconds * 3 / 10))s, started 1.5 s later (expected besides SUPPORTED: $expect)"
  wait_quiet
  cpu_begin
  k6_load http "$fault_vus" 0s "${fault_seconds}s" "$suite_out/$name.k6.json" -e PECR_EXPECT="$expect" &
  load_pid=$!
  t0=$(date +%s%N)
  sleep "$((fault_seconds * 3 / 10))"
  cpu_gone[2]=$(($(ticks_of "$pecr_ledger_writer_pid") - cpu0[2]))
  kill -KILL "$pecr_ledger_writer_pid"
  wait "$pecr_ledger_writer_pid" 2>/dev/null || true
  killed=$(date +%s%N)
  mv "$out_dir/pecr-ledger-writer.log" "$out_dir/pecr-ledger-writer.before-kill.log"
  sleep 1.5
  mesh_start_ledger
  ready=$(date +%s%N)
  cpu0[2]=0
  wait "$load_pid" || say "    k6 exited non-zero; see $suite_out/$name.k6.txt"
  load_pid=""
  cpu_end "$suite_out/$name.cpu"
  say "    killed at $(((killed - t0) / 1000000)) ms, ready again at $(((ready - t0) / 1000000)) ms"
  echo "{\"killed_at_ms\": $(((killed - t0) / 1000000)), \"ready_again_at_ms\": $(((ready - t0) / 1000000))}" >"$suite_out/$name.events.json"
  summarize k6 "$name" fault "$fault_engine" "$expect"
fi

stop_services
summary="$suite_out/summary.json"
python3 perf/suite7/summary.py assemble --mode "$mode" --settings "$settings" --loadavg-start "$load_start" \
  --out "$summary" "${scenario_files[@]}"
say
say "==> Suite 7, $mode mode: $summary"
python3 perf/suite7/summary.py table "$summary"

status=0
if ((${#missing[@]})); then
  say "error: no figures for: ${missing[*]}"
  status=1
fi
baseline="${SUITE7_BASELINE:-$PECR_ROOT/perf/baselines/suite7_$mode.summary.json}"
if [[ "${SUITE7_COMPARE:-1}" == "1" ]]; then
  if [[ -f "$baseline" ]]; then
    say
    say "==> compared with $baseline"
    "$bin_dir/pecr" perf compare --baseline "$baseline" --current "$summary" \
      --tolerance "${SUITE7_TOLERANCE:-$tolerance}" --latency-slack-ms "${SUITE7_LATENCY_SLACK_MS:-$slack_ms}" \
      --cpu-tolerance "${SUITE7_CPU_TOLERANCE:-$cpu_tolerance}" \
      --error-tolerance "${SUITE7_ERROR_TOLERANCE:-$error_tolerance}" \
      --mix-tolerance "${SUITE7_MIX_TOLERANCE:-$mix_tolerance}" --output-json "$suite_out/compare.json" |
      tee "$suite_out/compare.txt" || status=1
    "$bin_dir/pecr" perf matrix --baseline "$baseline" --candidate "current=$summary" \
      --output-json "$suite_out/matrix.json" --output-md "$suite_out/matrix.md" \
      --output-svg "$suite_out/matrix.svg" >/dev/null || status=1
    say "    matrix: $suite_out/matrix.md, matrix.svg"
  else
    say "(no baseline at $baseline: nothing to compare with)"
  fi
fi
exit "$status"
