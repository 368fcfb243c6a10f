#!/usr/bin/env bash
# The backup drill on a ledger filled by the run benchmark (part of
# scripts/test.sh): perf/run-controller-bench.sh runs a short gRPC load with
# ledger-writer signing a checkpoint every 2 s and keeps its database
# pecr_perf; scripts/ledger-backup-drill.sh then dumps it, restores the
# dump into a scratch database and verifies the copy with the checkpoints'
# public key. pecr_perf is dropped afterwards.
#
# Environment (optional):
#   PERF_PROFILE       the binaries to run (default debug, which test.sh builds)
#   DRILL_DURATION     measured load (default 10s)
#   PERF_DB_ADMIN_URL  see perf/controller-mesh.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

profile="${PERF_PROFILE:-debug}"
admin_url="${PERF_DB_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
ledger_url="${admin_url%/*}/pecr_perf"
work="$PECR_ROOT/target/bench-drill"
rm -rf "$work"
mkdir -p "$work"
command -v openssl >/dev/null 2>&1 || die "openssl is required"
(umask 077; openssl genpkey -algorithm ed25519 -out "$work/ledger-signing.pem" 2>/dev/null)
openssl pkey -in "$work/ledger-signing.pem" -pubout -out "$work/ledger-signing.pub.pem"

cleanup() {
  psql "$admin_url" -qX -c "DROP DATABASE IF EXISTS pecr_perf WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "==> fill pecr_perf with the run benchmark ($profile build; log: $work/bench.log)"
if ! PERF_PROFILE="$profile" PERF_SKIP_BUILD=1 PERF_QUIET_WAIT=0 PERF_MODES=grpc PERF_VUS=4 \
  PERF_WARMUP=1s PERF_DURATION="${DRILL_DURATION:-10s}" PERF_KEEP_DB=1 \
  PERF_LEDGER_ENV="PECR_LEDGER_CHECKPOINT_INTERVAL_SECS=2 PECR_LEDGER_SIGNING_KEY_FILE=$work/ledger-signing.pem" \
  bash perf/run-controller-bench.sh >"$work/bench.log" 2>&1; then
  tail -n 30 "$work/bench.log"
  die "the run benchmark failed"
fi
read -r sessions checkpoints < <(psql "$ledger_url" -AtqX -F ' ' -c \
  "SELECT (SELECT count(*) FROM pecr_claim_maps), (SELECT count(*) FROM pecr_ledger_checkpoints)")
say "    $sessions finalized sessions, $checkpoints checkpoints"
[[ "$sessions" -gt 0 && "$checkpoints" -gt 0 ]] || die "the benchmark left no finalized session or no checkpoint"

PECR_LEDGER_WRITER_BIN="target/$profile/pecr-ledger-writer" \
  bash scripts/ledger-backup-drill.sh --db-url "$ledger_url" --public-key "$work/ledger-signing.pub.pem"
