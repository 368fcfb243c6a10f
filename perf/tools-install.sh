#!/usr/bin/env bash
# Installs the profiling tools of perf/flamegraph.sh and prints the folder
# that holds inferno's binaries (add it to PATH):
#
#   * perf, from the Debian package `linux-perf` (apt-get), unless a `perf`
#     is already on PATH;
#   * inferno (inferno-collapse-perf, inferno-flamegraph), pinned, built with
#     `cargo install --locked` into .tools/inferno.
#
# Idempotent: with the same pin already installed it does nothing.
# apt-get needs root; without it, the script says what to install.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
inferno_root="$root/.tools/inferno"

# The pin: bump deliberately, here only.
inferno_version="0.12.8"

fail() { echo "tools-install.sh: $*" >&2; exit 1; }

# perf: Debian builds it per kernel series; the package that carries the
# current one is `linux-perf`. Whatever version the archive serves is taken
# (a security update removes the previous one, so an exact pin would break).
if ! command -v perf >/dev/null 2>&1; then
  [[ "$(id -u)" == "0" ]] || fail "perf is missing: run 'apt-get install linux-perf' as root"
  command -v apt-get >/dev/null 2>&1 || fail "perf is missing and there is no apt-get: install linux-perf (or your distribution's perf)"
  echo "==> installing perf (Debian package linux-perf)" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >&2
  command -v perf >/dev/null 2>&1 || fail "linux-perf installed no perf command"
fi

stamp="$inferno_root/pin.txt"
if [[ ! -x "$inferno_root/bin/inferno-flamegraph" || ! -x "$inferno_root/bin/inferno-collapse-perf" ||
  "$(cat "$stamp" 2>/dev/null)" != "inferno $inferno_version" ]]; then
  command -v cargo >/dev/null 2>&1 || fail "cargo is required to build inferno"
  echo "==> installing inferno $inferno_version into .tools/inferno (cargo install --locked)" >&2
  mkdir -p "$inferno_root"
  # Its own target dir: the workspace's CARGO_TARGET_DIR stays untouched.
  CARGO_TARGET_DIR="$inferno_root/build" cargo install --quiet --locked \
    --version "$inferno_version" --root "$inferno_root" inferno >&2
  rm -rf "$inferno_root/build"
  "$inferno_root/bin/inferno-flamegraph" --help >/dev/null 2>&1 || fail "inferno did not install correctly"
  echo "inferno $inferno_version" >"$stamp"
fi
echo "$inferno_root/bin"
