#!/usr/bin/env bash
# CPU flame graph of the Run path under load: brings up the controller mesh
# as run-controller-bench.sh does (perf/controller-mesh.sh), runs the 10-VU
# `POST /v1/run` k6 load and, after its warm-up, samples the three services
# and the PostgreSQL backends of pecr_perf with `perf record` at PERF_FREQ Hz
# for the measured window. The stacks are folded by inferno-collapse-perf
# (root frame: the process, then the thread name) and drawn by
# inferno-flamegraph.
#
# Call graphs (why: docs/decisions.md, "Flame graphs: frame pointers for
# the services, DWARF for PostgreSQL"):
#   * the services are walked by frame pointer. Their binaries are built
#     with RUSTFLAGS="-C force-frame-pointers=yes" into their own target dir,
#     CARGO_TARGET_DIR/frame-pointers (the benchmarks' binaries stay as they
#     are); Rust's std already has frame pointers. Recorded with -a, so every
#     thread counts, and kept by pid.
#     PERF_CALL_GRAPH=dwarf profiles the ordinary release binaries by DWARF
#     unwinding instead; about half their stacks then stop short of the
#     thread's root (the copied PERF_DWARF_STACK bytes do not reach it).
#   * the PostgreSQL backends (Debian builds it without frame pointers) are
#     unwound with DWARF (--call-graph dwarf, the backends' pids).
#
# Tools: perf (Debian linux-perf) and inferno, pinned, via perf/tools-install.sh.
# perf must be allowed to record every CPU: root, CAP_PERFMON, or
# kernel.perf_event_paranoid <= 0. The script tries first and says what to
# change when it cannot.
#
# Outputs (LABEL = PERF_LABEL):
#   perf/flamegraph-LABEL.svg                the flame graph (PERF_FLAMEGRAPH_SVG)
#   target/perf/flamegraph-LABEL.txt         share of samples per process, stack
#                                            completeness, the load's figures
#   target/perf/flamegraph-LABEL.folded      the folded stacks (inferno-diff-folded
#                                            compares two of them)
#   target/perf/flamegraph-LABEL-k6.json     k6's report of the profiled load
#
# Environment (all optional):
#   PERF_LABEL        names the outputs, e.g. before / after   (default: current)
#   PERF_FLAMEGRAPH_SVG  where the SVG goes    (default: perf/flamegraph-LABEL.svg)
#   PERF_VUS          virtual users                            (default: 10)
#   PERF_WARMUP       warm-up before recording, whole seconds  (default: 3s)
#   PERF_DURATION     recorded (measured) time, whole seconds  (default: 20s)
#   PERF_FREQ         samples per second per CPU               (default: 499)
#   PERF_CALL_GRAPH   the services' stacks: fp | dwarf         (default: fp)
#   PERF_DWARF_STACK  bytes of user stack copied per DWARF sample (default: 16384)
#   PERF_MODE         k6 mode, http | grpc                     (default: http)
#   PERF_SKIP_BUILD=1 use the binaries already built (fp: in CARGO_TARGET_DIR/frame-pointers)
#   PERF_PORT_BASE, PERF_QUIET_WAIT, PERF_KEEP_DB, PERF_BUDGET_DEFAULTS,
#   PERF_CONTROLLER_ENV / PERF_GATEWAY_ENV / PERF_LEDGER_ENV, PERF_DB_ADMIN_URL,
#   CARGO_TARGET_DIR  see perf/controller-mesh.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/controller-mesh.sh"
cd "$PECR_ROOT"

label="${PERF_LABEL:-current}"
svg="${PERF_FLAMEGRAPH_SVG:-$PECR_ROOT/perf/flamegraph-$label.svg}"
vus="${PERF_VUS:-10}"
mode="${PERF_MODE:-http}"
freq="${PERF_FREQ:-499}"
call_graph="${PERF_CALL_GRAPH:-fp}"
dwarf="dwarf,${PERF_DWARF_STACK:-16384}"
[[ "$label" =~ ^[A-Za-z0-9._-]+$ ]] || die "PERF_LABEL '$label' may hold only letters, digits, '.', '_' and '-'"
[[ "$freq" =~ ^[1-9][0-9]*$ ]] || die "PERF_FREQ '$freq' is not a positive number"
[[ "${PERF_WARMUP:-3s}" =~ ^([0-9]+)s?$ ]] || die "PERF_WARMUP must be whole seconds (e.g. 3s)"
warmup_s="${BASH_REMATCH[1]}"
[[ "${PERF_DURATION:-20s}" =~ ^([1-9][0-9]*)s?$ ]] || die "PERF_DURATION must be whole seconds (e.g. 20s)"
duration_s="${BASH_REMATCH[1]}"
case "$call_graph" in
  fp)
    # Own target dir and flags: the benchmarks' binaries are not rebuilt.
    target_dir="$target_dir/frame-pointers"
    bin_dir="$target_dir/release"
    export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C force-frame-pointers=yes"
    services_call_graph="fp"
    ;;
  dwarf) services_call_graph="$dwarf" ;;
  *) die "PERF_CALL_GRAPH must be fp or dwarf, not '$call_graph'" ;;
esac

prefix="$out_dir/flamegraph-$label"
services_data="$prefix.services.perf.data"
postgres_data="$prefix.postgres.perf.data"
k6_pid=""

inferno_bin="$("$PECR_ROOT/perf/tools-install.sh")"

# Can perf sample every CPU here? Try it rather than guess from the sysctl.
mkdir -p "$out_dir"
if ! perf record -q -a -F "$freq" --call-graph "$dwarf" -o "$services_data" -- sleep 0.2 >"$prefix.probe.txt" 2>&1; then
  paranoid="$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?')"
  sed 's/^/    /' "$prefix.probe.txt" | head -n 8 >&2
  die "perf cannot record all CPUs here (kernel.perf_event_paranoid=$paranoid, uid $(id -u)). Run as root, grant CAP_PERFMON, or lower it: sudo sysctl kernel.perf_event_paranoid=0 (a container may also need the perf_event_open syscall allowed)"
fi
rm -f "$services_data" "$prefix.probe.txt"

mesh_extra_cleanup() {
  if [[ -n "$k6_pid" ]]; then
    kill "$k6_pid" 2>/dev/null || true
    wait "$k6_pid" 2>/dev/null || true
  fi
  rm -f "$services_data" "$services_data.old" "$postgres_data" "$postgres_data.old"
}

backends() {
  psql "$db_url" -tAX -c "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE datname = '$db_name' AND pid <> pg_backend_pid()"
}

mesh_prepare
mesh_start
mesh_smoke
wait_quiet

say
say "==> k6 $mode, $vus VUs: ${warmup_s}s warm-up, then ${duration_s}s of perf record at $freq Hz (services: $services_call_graph, PostgreSQL: $dwarf)"
k6_load "$mode" "$vus" "${warmup_s}s" "${duration_s}s" "$prefix-k6.json" &
k6_pid=$!
sleep "$warmup_s"
# The pools keep their connections, so after the warm-up these are the
# backends of the whole window (compared again at the end).
backends_start="$(backends)"
[[ -n "$backends_start" ]] || die "no PostgreSQL backend is connected to $db_name"
perf record -q -a -F "$freq" --call-graph "$services_call_graph" -o "$services_data" -- sleep "$duration_s" \
  2>"$prefix.record.txt" &
services_record=$!
perf record -q -F "$freq" --call-graph "$dwarf" -p "$backends_start" -o "$postgres_data" -- sleep "$duration_s" \
  2>>"$prefix.record.txt" || die "perf record (PostgreSQL) failed: $(head -c 400 "$prefix.record.txt")"
wait "$services_record" || die "perf record (services) failed: $(head -c 400 "$prefix.record.txt")"
backends_end="$(backends)"
wait "$k6_pid" || say "    k6 exited non-zero; see $prefix-k6.txt"
k6_pid=""
sed 's/^/    /' "$prefix-k6.txt" | grep -v '^    $' | tail -n 3

say "==> folding stacks ($(du -ch "$services_data" "$postgres_data" | tail -n 1 | cut -f1) of samples)"
# fold DATA NAME=PID...: the stacks of those processes, rooted at NAME (then
# the thread's name, except for a single-threaded backend). The root frame
# "comm-pid" comes from inferno's --pid; every other process is dropped.
# perf script --no-inline: resolving inlined frames runs addr2line per
# address and takes tens of minutes.
fold() {
  local data="$1"
  shift
  perf script -i "$data" -F +pid --no-inline 2>/dev/null |
    "$inferno_bin/inferno-collapse-perf" --pid --all |
    awk -v names="$*" '
      BEGIN { n = split(names, pairs, " "); for (i = 1; i <= n; i++) { split(pairs[i], kv, "="); name[kv[2]] = kv[1] } }
      {
        root = $0; sub(/;.*/, "", root)
        pid = root; sub(/.*-/, "", pid)
        comm = root; sub(/-[0-9]+$/, "", comm)
        if (!(pid in name)) next
        rest = substr($0, length(root) + 1)
        print (name[pid] == "postgres" ? "postgres (backends)" : name[pid] ";" comm) rest
      }'
}
postgres_names=""
for pid in ${backends_start//,/ }; do postgres_names="$postgres_names postgres=$pid"; done
{
  fold "$services_data" "pecr-controller=$pecr_controller_pid" "pecr-gateway=$pecr_gateway_pid" \
    "pecr-ledger-writer=$pecr_ledger_writer_pid"
  # shellcheck disable=SC2086 # one NAME=PID word per backend
  fold "$postgres_data" $postgres_names
} >"$prefix.folded"
[[ -s "$prefix.folded" ]] || die "no samples of the services were recorded (see $prefix.record.txt)"

title="PECR Run path ($label): $vus VUs POST /v1/run, ${duration_s}s at $freq Hz; services by $call_graph, PostgreSQL by dwarf"
"$inferno_bin/inferno-flamegraph" --title "$title" --countname ns --hash <"$prefix.folded" >"$svg"

python3 - "$prefix.folded" "$prefix-k6.json" "$title" "$backends_start" "$backends_end" >"$prefix.txt" <<'EOF'
import json, sys
folded, k6_path, title, backends_start, backends_end = sys.argv[1:6]
# A whole stack starts where a thread starts: clone3 / start_thread for the
# services' threads, _start for a backend forked from the postmaster.
ROOTS = ("clone3", "clone", "start_thread", "_start", "__libc_start_main", "main")
totals, whole, all_ns = {}, {}, 0
with open(folded, encoding="utf-8") as file:
    for line in file:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        frames = stack.split(";")
        process = frames[0]
        first = frames[1] if process.startswith("postgres") else (frames[2] if len(frames) > 2 else "")
        totals[process] = totals.get(process, 0) + int(count)
        if first in ROOTS:
            whole[process] = whole.get(process, 0) + int(count)
        all_ns += int(count)
print(title)
print(f"PostgreSQL backends of pecr_perf profiled: {len(backends_start.split(','))}"
      + ("" if backends_start == backends_end else f" (at the end: {backends_end}; backends that came later are missing)"))
print()
print("share of the samples by process (CPU seconds; whole = stacks that reach the thread's start):")
for process, ns in sorted(totals.items(), key=lambda item: -item[1]):
    print(f"  {100 * ns / all_ns:5.1f}%  {ns / 1e9:7.2f} s  whole {100 * whole.get(process, 0) / ns:5.1f}%  {process}")
try:
    with open(k6_path, encoding="utf-8") as file:
        k6 = json.load(file)
    lat = k6["latency_ms"]
    print()
    print(f"load while profiled: {k6['throughput_runs_per_s']} runs/s, p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
          f"checks {k6['check_pass_rate']} (perf's own cost lowers these; figures of record come from run-controller-bench.sh)")
except (OSError, ValueError, KeyError):
    print("no k6 report")
EOF
sed 's/^/    /' "$prefix.txt"
rm -f "$services_data" "$services_data.old" "$postgres_data" "$postgres_data.old"
say "==> ${svg#"$PECR_ROOT"/} (folded stacks: ${prefix#"$PECR_ROOT"/}.folded)"
