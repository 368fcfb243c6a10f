#!/usr/bin/env bash
# The release checklist as one command: every test and the security gate
# (scripts/test.sh, which also runs Suite 7's short mode), Suite 7 in full
# mode against its baseline, the replay regression gate and the usefulness
# score against a mesh of its own, and a signed release cut and verified.
# Ends with a one-page summary, target/release-check/summary.md; exits 1
# when any step failed.
#
# Usage: scripts/release-check.sh [--key FILE] [--skip-tests] [--skip-suite7]
#                                 [--binaries DIR] [--min-usefulness X]
#
#   --key FILE          the release signing key (Ed25519, PKCS#8 PEM); without
#                       it a throw-away key is made, and the summary says the
#                       cut is a rehearsal, not a release
#   --skip-tests        leave out scripts/test.sh (when it has just run, as in
#                       scripts/test.sh's own last stage)
#   --skip-suite7       leave out Suite 7's full mode (release builds, minutes)
#   --binaries DIR      cut the release from the binaries in DIR instead of
#                       building them (a rehearsal; recorded in the provenance)
#   --min-usefulness X  the usefulness score the release needs (default 80)
#
# The mesh of its own: debug binaries (built if missing), database
# pecr_release_check, ports RELEASE_CHECK_PORT_BASE+1..3 and +81..83
# (default 24650).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

key="" skip_tests=0 skip_suite7=0 binaries="" min_usefulness=80
while [[ $# -gt 0 ]]; do
  case "$1" in
    --key) key="${2:?--key needs a file}"; shift 2 ;;
    --skip-tests) skip_tests=1; shift ;;
    --skip-suite7) skip_suite7=1; shift ;;
    --binaries) binaries="${2:?--binaries needs a directory}"; shift 2 ;;
    --min-usefulness) min_usefulness="${2:?--min-usefulness needs a score}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

out_dir="$PECR_ROOT/target/release-check"
rm -rf "$out_dir"
mkdir -p "$out_dir"
summary="$out_dir/summary.md"
results=()
status=0

# step NAME PATTERN COMMAND...: runs it with its output in out_dir/NAME.log
# and records passed or failed with the log's last line matching PATTERN
# (its headline figure), else its last line.
step() {
  local name="$1" pattern="$2"; shift 2
  say "==> $name"
  local log="$out_dir/$name.log" line
  local ok=1
  "$@" >"$log" 2>&1 || ok=0
  line="$(grep -E "$pattern" "$log" | tail -n 1 || true)"
  [[ -n "$line" ]] || line="$(tail -n 1 "$log")"
  line="$(echo "$line" | tr '|' '/' | sed 's/  */ /g')"
  if [[ $ok -eq 1 ]]; then
    results+=("| $name | passed | $line |")
  else
    status=1
    results+=("| $name | **failed** | $line (see \`${log#"$PECR_ROOT"/}\`) |")
    say "    failed: ${log#"$PECR_ROOT"/}"
  fi
}

skipped() {
  results+=("| $1 | skipped | $2 |")
}

if [[ $skip_tests -eq 0 ]]; then
  # scripts/test.sh then leaves out its release-checklist stage: this run's
  # own steps follow, and that stage would remove this run's out_dir.
  export PECR_RELEASE_CHECK_OUTER=1
  step tests '^tests: ' bash scripts/test.sh
else
  skipped tests "--skip-tests"
fi

if [[ $skip_suite7 -eq 0 ]]; then
  step suite7-full 'regression|compare' bash perf/suite7.sh --full
else
  skipped suite7-full "--skip-suite7"
fi

bin_dir="${CARGO_TARGET_DIR:-$PECR_ROOT/target}/debug"
# One build makes all four.
for bin in pecr pecr-ledger-writer pecr-gateway pecr-controller; do
  [[ -x "$bin_dir/$bin" ]] || { cargo build --quiet --workspace --bins --features pecr-controller/rlm; break; }
done
pecr="$bin_dir/pecr"

# The regression gate and the usefulness score on a mesh of their own.
admin_url="${RELEASE_CHECK_DB_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db_name="pecr_release_check"
db_url="${admin_url%/*}/$db_name"
mesh_dir="$out_dir/mesh"
mkdir -p "$mesh_dir"
# start, stop_services, mesh_ports and the service tokens (bin_dir, out_dir).
out_dir_saved="$out_dir"
out_dir="$mesh_dir"
source "$PECR_ROOT/perf/bench-lib.sh"
source "$PECR_ROOT/scripts/scratch-mesh.sh"
scratch_mesh_start "${RELEASE_CHECK_PORT_BASE:-24650}" RELEASE_CHECK_PORT_BASE
out_dir="$out_dir_saved"

regression_gate() {
  local principal
  for principal in $(python3 -c 'import json,sys; print(*sorted({e["principal"] for e in json.load(open(sys.argv[1]))["expectations"]}))' fixtures/regression/expectations.json); do
    "$pecr" --controller "http://$ct_grpc" --principal "$principal" replays gate \
      --expect fixtures/regression/expectations.json --ask || return 1
  done
}
step regression-gate '^gate: ' regression_gate
step usefulness '^score ' "$pecr" --controller "http://$ct_grpc" eval usefulness --min-score "$min_usefulness"

# A signed cut, verified offline with only the public key.
rehearsal=""
if [[ -z "$key" ]]; then
  key="$out_dir/throwaway-release.pem"
  openssl genpkey -algorithm ed25519 -out "$key" 2>/dev/null
  rehearsal=" (throw-away key: a rehearsal, not a release)"
fi
openssl pkey -in "$key" -pubout -out "$out_dir/release.pub" 2>/dev/null \
  || die "cannot read the public half of $key"
release_args=(--key "$key" --out-dir "$out_dir/dist")
[[ -n "$binaries" ]] && release_args+=(--binaries "$binaries")
dirty="$(git status --porcelain 2>/dev/null)"
[[ -z "$dirty" ]] || release_args+=(--allow-dirty)
cut_and_verify() {
  bash scripts/release.sh "${release_args[@]}" || return 1
  local dir
  dir="$(find "$out_dir/dist" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
  [[ -n "$dir" ]] || { echo "scripts/release.sh wrote no release directory"; return 1; }
  PECR_BIN="$pecr" bash scripts/verify-release.sh "$dir" --public-key "$out_dir/release.pub" \
    --commit "$(git rev-parse HEAD)"
}
step provenance '^verified|^error' cut_and_verify

{
  echo "# Release check: $([[ $status -eq 0 ]] && echo passed || echo FAILED)"
  echo
  echo "Commit \`$(git rev-parse --short=12 HEAD)\`$([[ -z "$dirty" ]] || echo ' (work tree dirty)'), $(date -u +%Y-%m-%dT%H:%M:%SZ)${rehearsal}."
  echo
  echo "| step | result | last line |"
  echo "| --- | --- | --- |"
  printf '%s\n' "${results[@]}"
  echo
  echo "Logs beside this file, \`target/release-check/<step>.log\`; Suite 7's figures in \`target/perf/suite7/\`."
} >"$summary"
cat "$summary"
exit "$status"
