#!/usr/bin/env bash
# Checks the controller's browser console (services/controller/console/) in
# a real browser: runs the page script's event-stream parser tests under
# node, installs Debian's chromium and chromedriver when they are missing
# (pinned below), starts a mesh of its own (debug binaries, a scratch
# database) and drives the console at the controller's HTTP port with
# selenium (pinned in scripts/tools.sh) as a person would:
# scripts/browser/console_check.py says what it does and checks.
#
# Usage: scripts/browser-check.sh [--screenshot PATH]   (after cargo build of the three services)
#   --screenshot PATH  also saves the page showing dev's SUPPORTED answer
#                      (1280x900), as committed in docs/console.png
# Output: target/browser/ (versions.txt, service logs; on a failure
# failure.png, failure.txt and browser.log).
# Environment (optional):
#   BROWSER_CHECK_PORT_BASE      ports BASE+1..3 (gRPC) and BASE+81..83 (HTTP) of
#                                the mesh (default 24450; outside the ephemeral range)
#   BROWSER_CHECK_DB_ADMIN_URL   admin connection (default postgres on 127.0.0.1:5432)
#   CARGO_TARGET_DIR             where the debug binaries are (default target/)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

screenshot=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --screenshot)
      [[ $# -ge 2 ]] || die "--screenshot needs a path"
      screenshot=(--screenshot "$(realpath -m "$2")")
      shift 2
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown option $1 (scripts/browser-check.sh --help)" ;;
  esac
done

out_dir="$PECR_ROOT/target/browser"
bin_dir="${CARGO_TARGET_DIR:-$PECR_ROOT/target}/debug"
admin_url="${BROWSER_CHECK_DB_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db_name="pecr_browser_check"
db_url="${admin_url%/*}/$db_name"
# start, stop_services, mesh_ports and the service tokens (bin_dir, out_dir).
source "$PECR_ROOT/perf/bench-lib.sh"
source "$PECR_ROOT/scripts/scratch-mesh.sh"
rm -rf "$out_dir"
mkdir -p "$out_dir"

# Debian's chromium of this machine kind; chromium-driver is built from the
# same source and must carry the same version. Security updates replace the
# version now and then: when the pin is no longer offered the candidate is
# installed with a note (and recorded in target/browser/versions.txt); bump
# the pin then.
CHROMIUM_PIN="156.0.8078.129-1~deb12u1"

ensure_chromium() {
  if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then return 0; fi
  command -v apt-get >/dev/null 2>&1 || die "chromium and chromedriver are missing and apt-get is not available to install them"
  offered() { apt-cache madison chromium-driver 2>/dev/null | awk -F' [|] ' '{print $2}'; }
  if [[ -z "$(offered)" ]]; then apt-get update -q >/dev/null; fi
  local version="$CHROMIUM_PIN"
  if ! offered | grep -qxF "$CHROMIUM_PIN"; then
    version="$(apt-cache policy chromium-driver 2>/dev/null | sed -n 's/^ *Candidate: //p')"
    [[ -n "$version" && "$version" != "(none)" ]] || die "no chromium-driver package is available; install chromium and chromedriver and retry"
    say "note: installing chromium $version (the pin $CHROMIUM_PIN is no longer offered)"
  fi
  say "==> installing chromium and chromium-driver $version (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "chromium=$version" "chromium-driver=$version" >/dev/null
}

say "==> the console's event-stream parser (node --test)"
command -v node >/dev/null 2>&1 || die "node is required (the console script's parser tests)"
node --test services/controller/console/tests/sse_parser.test.mjs >"$out_dir/node-test.log" 2>&1 \
  || { cat "$out_dir/node-test.log" >&2; die "the console's parser tests failed"; }
grep -E '^# (pass|fail) ' "$out_dir/node-test.log" | sed 's/^# /    /'

say "==> browser (Debian chromium, pinned $CHROMIUM_PIN)"
ensure_chromium
{
  /usr/bin/chromium --version
  /usr/bin/chromedriver --version
} >"$out_dir/versions.txt" 2>/dev/null
sed 's/^/    /' "$out_dir/versions.txt"

say "==> tools (pinned: scripts/tools.sh)"
tools_bin="$("$PECR_ROOT/scripts/tools.sh")"
"$tools_bin/python" -c 'import selenium' 2>/dev/null || die "scripts/tools.sh did not install selenium"
"$tools_bin/python" -c 'import selenium; print("    selenium", selenium.__version__)' | tee -a "$out_dir/versions.txt"

scratch_mesh_start "${BROWSER_CHECK_PORT_BASE:-24450}" BROWSER_CHECK_PORT_BASE

say "==> the console in headless chromium at http://$ct_http/"
# Selenium is told where the browser and its driver are; it must never
# reach out to look for others.
SE_OFFLINE=true SE_AVOID_STATS=true \
  "$tools_bin/python" scripts/browser/console_check.py "http://$ct_http" "$out_dir" "${screenshot[@]}"
say "browser check: passed"
