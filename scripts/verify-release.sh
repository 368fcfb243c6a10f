#!/usr/bin/env bash
# Verifies a release directory offline with the release public key: runs
# `pecr release verify`, the one implementation of the checks.
#
# Usage: scripts/verify-release.sh DIR --public-key FILE [--commit SHA]
#
# The pecr binary is $PECR_BIN when set, else this checkout's, built (or
# found up to date) by `cargo build -p pecr-cli`. Verify with a pecr you
# trust, built from source, not with the one inside the release being checked.
# Exit codes: 0 verified, 1 a check failed (each problem is named), 2 usage.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ $# -eq 0 || "$1" == -h || "$1" == --help ]]; then
  usage
  [[ $# -gt 0 ]] && exit 0 || exit 2
fi

pecr="${PECR_BIN:-}"
if [[ -z "$pecr" ]]; then
  (cd "$PECR_ROOT" && cargo build --quiet --locked -p pecr-cli) || die "cannot build pecr (cargo build -p pecr-cli)"
  pecr="$PECR_ROOT/target/debug/pecr"
fi
exec "$pecr" release verify "$@"
