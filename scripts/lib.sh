# Shared helpers for the scripts in this folder (sourced, not run).

# The repository root.
PECR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# usage: the calling script's --help, its header comment (from the line after
# the shebang to the first line that is not a comment) without the "# ".
usage() {
  awk 'NR == 1 { next } !/^#/ { exit } { sub(/^# ?/, ""); print }' "${BASH_SOURCE[1]}"
}

# Makes sure a PostgreSQL answers at $1 (a URL); on this machine kind the
# local server can be started with pg_ctlcluster when it is down.
ensure_postgres() {
  local url="$1"
  if pg_answers "$url"; then return 0; fi
  if [[ "$url" == *"127.0.0.1:5432"* || "$url" == *"localhost:5432"* ]] && command -v pg_ctlcluster >/dev/null 2>&1 && [[ -d /etc/postgresql ]]; then
    say "PostgreSQL is down; starting the local cluster"
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do
      pg_answers "$url" && return 0
      sleep 1
    done
  fi
  die "no PostgreSQL answers at ${url%%\?*}; start one or set PECR_DB_URL / PECR_TEST_DB_URL"
}

pg_answers() {
  command -v psql >/dev/null 2>&1 || die "psql (the PostgreSQL client) is required"
  psql "$1" -tAc 'SELECT 1' >/dev/null 2>&1
}

# GET a URL; prints the HTTP status code ("000" when nothing answers).
http_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
}
