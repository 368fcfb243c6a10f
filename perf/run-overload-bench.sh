#!/usr/bin/env bash
# Load beyond capacity: the release mesh of run-controller-bench.sh with the
# controller admitting only PERF_MAX_IN_FLIGHT calls at once
# (PECR_MAX_IN_FLIGHT_REQUESTS), driven by PERF_VUS closed-loop k6 VUs
# (perf/k6/overload.js, REST POST /v1/run). Shows that overload turns into
# immediate 503 ERR_OVERLOADED refusals with `Retry-After: 1` while the
# admitted runs keep their latency, instead of a queue of calls that time
# out. Shed VUs wait the Retry-After they get. Writes
# target/perf/k6-overload-c<vus>.json and prints it.
#
# Environment (all optional):
#   PERF_VUS           virtual users                       (default: 256)
#   PERF_MAX_IN_FLIGHT the controller's admission limit    (default: 8)
#   PERF_DURATION      measured time                       (default: 20s)
#   and the PERF_* settings of perf/controller-mesh.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
vus="${PERF_VUS:-256}"
in_flight="${PERF_MAX_IN_FLIGHT:-8}"
duration="${PERF_DURATION:-20s}"
export PERF_CONTROLLER_ENV="PECR_MAX_IN_FLIGHT_REQUESTS=$in_flight ${PERF_CONTROLLER_ENV:-}"
source "$(dirname "${BASH_SOURCE[0]}")/controller-mesh.sh"
cd "$PECR_ROOT"

mesh_prepare
mesh_start
mesh_smoke

name="k6-overload-c$vus"
say
say "==> $name: $vus VUs against a controller admitting $in_flight runs at once, $duration"
wait_quiet
"$k6_bin" run -q --no-color -e PECR_CONTROLLER_HTTP="$ct_http" -e VUS="$vus" -e DURATION="$duration" \
  -e PECR_K6_SUMMARY="$out_dir/$name.json" perf/k6/overload.js >"$out_dir/$name.txt" 2>&1 ||
  say "    k6 exited non-zero; see $out_dir/$name.txt"
cat "$out_dir/$name.json"
python3 - "$out_dir/$name.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
if report["other"]:
    sys.exit(f"{report['other']} answers were neither a run nor an overload refusal")
if not report["shed"]:
    sys.exit("nothing was shed: raise PERF_VUS or lower PERF_MAX_IN_FLIGHT")
print(f"served {report['served_per_s']:.0f}/s, shed {report['shed_per_s']:.0f}/s, "
      f"shed p99 {report['shed_latency']['p99_ms']:.1f} ms, served p99 {report['served_latency']['p99_ms']:.1f} ms")
PY
