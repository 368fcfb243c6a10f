#!/usr/bin/env bash
# Stops the services scripts/dev-up.sh started (by their pid files).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

quiet=false
[[ "${1:-}" == "--quiet" ]] && quiet=true
run_dir="$PECR_ROOT/target/dev"

for name in pecr-controller pecr-gateway pecr-ledger-writer; do
  pid_file="$run_dir/$name.pid"
  [[ -f "$pid_file" ]] || continue
  pid="$(cat "$pid_file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    $quiet || say "stopped $name (pid $pid)"
  fi
  rm -f "$pid_file"
done
$quiet || say "PECR is down."
