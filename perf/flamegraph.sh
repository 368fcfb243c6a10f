#!/usr/bin/env bash
# CPU flame graph of the Run path under load: brings up the controller mesh
# as run-controller-bench.sh does (perf/controller-mesh.sh), runs the 10-VU
# `POST /v1/run` k6 load and, after its warm-up, samples the three services
# and the PostgreSQL backends of pecr_perf with one `perf record` at PERF_FREQ
# Hz for the measured window. The stacks are folded by inferno-collapse-perf
# (root frame: the process, then the thread name) and drawn by
# inferno-flamegraph.
#
# Call graphs: DWARF unwinding (--call-graph dwarf) with perf's largest user
# stack copy, 65528 bytes, so the profiled binaries are exactly the
# benchmarked release builds. Neither they, Debian's PostgreSQL nor libc
# keep frame pointers; a copy of 16 KiB cut half of the services' async
# stacks short. Why not frame pointers: docs/decisions.md ("Benchmark
# harness").
#
# Tools: perf (Debian linux-perf) and inferno, pinned, via perf/tools-install.sh.
# perf must be allowed to attach to the services and to PostgreSQL's backends
# (owned by the postgres user): root, or CAP_PERFMON + CAP_SYS_PTRACE, and
# kernel.perf_event_paranoid <= 1 for kernel frames. The script tries, and
# when perf refuses it stops with perf's message and what to change.
#
# Outputs (LABEL = PERF_LABEL):
#   perf/flamegraph-LABEL.svg                the flame graph (PERF_FLAMEGRAPH_SVG)
#   target/perf/flamegraph-LABEL.txt         share of samples per process, how many
#                                            stacks are whole, the load's figures, and
#                                            each process's CPU by class
#                                            (perf/profile_breakdown.py)
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
#   PERF_DWARF_STACK  bytes of user stack copied per sample     (default: 65528, the most)
#   PERF_MODE         k6 mode, http | grpc                     (default: http)
#   PERF_PORT_BASE, PERF_SKIP_BUILD, PERF_QUIET_WAIT, PERF_KEEP_DB, PERF_BUDGET_DEFAULTS,
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
dwarf="dwarf,${PERF_DWARF_STACK:-65528}"
[[ "$label" =~ ^[A-Za-z0-9._-]+$ ]] || die "PERF_LABEL '$label' may hold only letters, digits, '.', '_' and '-'"
[[ "$freq" =~ ^[1-9][0-9]*$ ]] || die "PERF_FREQ '$freq' is not a positive number"
[[ "${PERF_WARMUP:-3s}" =~ ^([0-9]+)s?$ ]] || die "PERF_WARMUP must be whole seconds (e.g. 3s)"
warmup_s="${BASH_REMATCH[1]}"
[[ "${PERF_DURATION:-20s}" =~ ^([1-9][0-9]*)s?$ ]] || die "PERF_DURATION must be whole seconds (e.g. 20s)"
duration_s="${BASH_REMATCH[1]}"
prefix="$out_dir/flamegraph-$label"
data="$prefix.perf.data"
k6_pid=""

inferno_bin="$("$PECR_ROOT/perf/tools-install.sh")"

# Can perf sample here at all? Try it rather than guess from the sysctl.
perf_refused() {
  local paranoid
  paranoid="$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?')"
  sed 's/^/    /' "$1" | head -n 8 >&2
  die "perf cannot record here (kernel.perf_event_paranoid=$paranoid, uid $(id -u)). It must attach to the services and to PostgreSQL's backends, which belong to the postgres user: run as root, or grant CAP_PERFMON and CAP_SYS_PTRACE; kernel frames also need kernel.perf_event_paranoid <= 1 (sudo sysctl kernel.perf_event_paranoid=1). A container may also block the perf_event_open syscall."
}
mkdir -p "$out_dir"
perf record -q -F "$freq" --call-graph "$dwarf" -o "$data" -- sleep 0.2 >"$prefix.probe.txt" 2>&1 ||
  perf_refused "$prefix.probe.txt"
rm -f "$data" "$prefix.probe.txt"

mesh_extra_cleanup() {
  if [[ -n "$k6_pid" ]]; then
    kill "$k6_pid" 2>/dev/null || true
    wait "$k6_pid" 2>/dev/null || true
  fi
  rm -f "$data" "$data.old"
}

backends() {
  psql "$db_url" -tAX -c "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE datname = '$db_name' AND pid <> pg_backend_pid()"
}

mesh_prepare
mesh_start
mesh_smoke
wait_quiet

say
say "==> k6 $mode, $vus VUs: ${warmup_s}s warm-up, then ${duration_s}s of perf record -F $freq --call-graph $dwarf"
k6_load "$mode" "$vus" "${warmup_s}s" "${duration_s}s" "$prefix-k6.json" &
k6_pid=$!
sleep "$warmup_s"
# The pools keep their connections, so after the warm-up these are the
# backends of the whole window (compared again at the end). perf follows
# threads the services start later.
backends_start="$(backends)"
[[ -n "$backends_start" ]] || die "no PostgreSQL backend is connected to $db_name"
perf record -q -F "$freq" --call-graph "$dwarf" -o "$data" \
  -p "$pecr_controller_pid,$pecr_gateway_pid,$pecr_ledger_writer_pid,$backends_start" -- sleep "$duration_s" \
  2>"$prefix.record.txt" || perf_refused "$prefix.record.txt"
backends_end="$(backends)"
wait "$k6_pid" || say "    k6 exited non-zero; see $prefix-k6.txt"
k6_pid=""
sed 's/^/    /' "$prefix-k6.txt" | grep -v '^    $' | tail -n 3

say "==> folding stacks ($(du -h "$data" | cut -f1) of samples)"
# fold NAME=PID...: the stacks of those processes, rooted at NAME (then the
# thread's name, except for a single-threaded backend). The root frame
# "comm-pid" comes from inferno's --pid. perf script --no-inline: resolving
# inlined frames runs addr2line per address and takes tens of minutes.
fold() {
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
names=("pecr-controller=$pecr_controller_pid" "pecr-gateway=$pecr_gateway_pid" "pecr-ledger-writer=$pecr_ledger_writer_pid")
for pid in ${backends_start//,/ }; do names+=("postgres=$pid"); done
fold "${names[@]}" >"$prefix.folded"
[[ -s "$prefix.folded" ]] || die "no samples of the services were recorded (see $prefix.record.txt)"

title="PECR Run path ($label): $vus VUs POST /v1/run, ${duration_s}s at $freq Hz"
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
{
  echo
  echo "where each process's CPU goes (perf/profile_breakdown.py):"
  python3 perf/profile_breakdown.py "$prefix.folded"
} >>"$prefix.txt"
sed 's/^/    /' "$prefix.txt"
rm -f "$data" "$data.old"
say "==> ${svg#"$PECR_ROOT"/} (folded stacks: ${prefix#"$PECR_ROOT"/}.folded)"
