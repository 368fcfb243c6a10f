#!/usr/bin/env bash
# Backup drill: dumps the ledger database with pg_dump, restores the dump
# into a fresh database on the same server, runs `pecr-ledger-writer verify`
# there and prints the result. The live ledger is only read; the scratch
# database and the dump are removed afterwards unless --keep is given.
#
#   scripts/ledger-backup-drill.sh [--db-url URL] [--public-key FILE] [--keep]
#
# URL: the ledger database (default: $PECR_DB_URL, else dev-up's
# postgres://postgres@127.0.0.1:5432/pecr). A URL whose `options` set a
# search_path (a ledger kept in one schema) dumps and verifies that schema.
# FILE: the checkpoints' public key (PEM), passed to verify. Restoring needs
# a role that may create databases and, to load rows with the ledger's
# triggers off, a superuser.
#
# Environment (optional):
#   PECR_LEDGER_WRITER_BIN  the pecr-ledger-writer binary to verify with
#                           (default: target/release, else target/debug, else built)
# Exit status: verify's (0 verified, 1 broken), or 2 when the drill itself fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

url="${PECR_DB_URL:-postgres://postgres@127.0.0.1:5432/pecr}"
keep=0
verify_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --db-url) url="${2:?--db-url needs a URL}"; shift 2 ;;
    --public-key) verify_args+=(--public-key "${2:?--public-key needs a file}"); shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) printf 'error: unknown argument %s\n' "$1" >&2; exit 2 ;;
  esac
done
command -v pg_dump >/dev/null && command -v pg_restore >/dev/null && command -v psql >/dev/null ||
  { printf 'error: pg_dump, pg_restore and psql are required (Debian: postgresql-client)\n' >&2; exit 2; }

# database, schema (from options=-csearch_path=…), the scratch database's
# URL and the server's maintenance URL.
read -r database schema drill_url admin_url < <(python3 - "$url" <<'PY'
import sys, time, urllib.parse as up
url = up.urlsplit(sys.argv[1])
database = url.path.lstrip("/") or "postgres"
query = up.parse_qs(url.query)
schema = "-"
for option in query.get("options", []):
    for part in option.split():
        if part.startswith("-csearch_path="):
            schema = part.split("=", 1)[1].split(",")[0]
drill = f"{database}_drill_{int(time.time() * 1000)}"
def with_db(name, keep_query):
    return up.urlunsplit(url._replace(path="/" + name, query=url.query if keep_query else ""))
print(database, schema, with_db(drill, True), with_db("postgres", False))
PY
)
drill="${drill_url##*/}"; drill="${drill%%\?*}"
out="$PECR_ROOT/target/backup-drill"
mkdir -p "$out"
dump="$out/$drill.dump"

cleanup() {
  if [[ "$keep" -eq 0 ]]; then
    psql -q -d "$admin_url" -c "DROP DATABASE IF EXISTS \"$drill\"" >/dev/null 2>&1 || true
    rm -f "$dump"
  fi
}
trap cleanup EXIT

scope=(); [[ "$schema" != "-" ]] && scope=(--schema="$schema")
say "==> dump $database${scope:+ (schema $schema)}"
pg_dump --format=custom --no-owner --no-privileges "${scope[@]}" -d "$url" -f "$dump" ||
  { printf 'error: pg_dump failed\n' >&2; exit 2; }
say "    $(stat -c %s "$dump") bytes"
say "==> restore into $drill"
psql -q -d "$admin_url" -c "CREATE DATABASE \"$drill\"" >/dev/null || { printf 'error: cannot create %s\n' "$drill" >&2; exit 2; }
pg_restore --no-owner --no-privileges --disable-triggers --exit-on-error -d "$drill_url" "$dump" ||
  { printf 'error: pg_restore failed\n' >&2; exit 2; }

bin="${PECR_LEDGER_WRITER_BIN:-}"
if [[ -z "$bin" ]]; then
  for candidate in target/release/pecr-ledger-writer target/debug/pecr-ledger-writer; do
    [[ -x "$candidate" ]] && { bin="$candidate"; break; }
  done
fi
if [[ -z "$bin" ]]; then
  cargo build -q -p pecr-ledger-writer
  bin=target/debug/pecr-ledger-writer
fi
say "==> verify the restored ledger ($bin verify)"
set +e
"$bin" verify --db-url "$drill_url" "${verify_args[@]}"
status=$?
set -e
if [[ "$status" -eq 0 ]]; then
  say "backup drill: passed (the restored ledger verifies)"
else
  say "backup drill: FAILED (verify exited $status)"
fi
[[ "$keep" -eq 1 ]] && say "kept: database $drill, dump $dump"
exit "$status"
