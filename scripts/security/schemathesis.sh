#!/usr/bin/env bash
# Fuzzes one service's REST edge against the committed OpenAPI document
# (docs/openapi/pecr.v1.yaml) with schemathesis, deterministically.
#
#   scripts/security/schemathesis.sh BASE_URL [gateway|controller]
#
# BASE_URL is the service's HTTP port (e.g. http://127.0.0.1:8080). The
# service decides which operations are run (the gateway's or the
# controller's, by OpenAPI tag); without it, the port is asked which routes
# it serves. Identity: `authorization: $PECR_SCHEMATHESIS_AUTHORIZATION` when
# that is set (an OIDC mesh: `Bearer <token>`), otherwise
# x-pecr-principal-id ($PECR_PRINCIPAL_ID, default `dev`) and, when
# PECR_LOCAL_AUTH_SHARED_SECRET is set, x-pecr-local-auth-secret. Checks: no 5xx, responses match the document,
# status codes are documented, and requests the document forbids are refused.
# Exits non-zero on any failure; reports go to target/security/.
#
# Knobs: PECR_SCHEMATHESIS_MAX_EXAMPLES (default 100 per operation),
# PECR_SCHEMATHESIS_SEED (default 20260101).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 BASE_URL [gateway|controller]" >&2
  exit 2
fi
base_url="${1%/}"
service="${2:-}"

if [[ -z "$service" ]]; then
  # The gateway answers /v1/sessions; on the controller's port it is 404.
  code="$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$base_url/v1/sessions" || true)"
  if [[ "$code" == "404" ]]; then service=controller; else service=gateway; fi
fi
case "$service" in
  gateway) tag=GatewayService ;;
  controller) tag=ControllerService ;;
  *) echo "$0: service must be gateway or controller, not '$service'" >&2; exit 2 ;;
esac

bin="$("$root/scripts/tools.sh")"
report_dir="$root/target/security/schemathesis-$service"
rm -rf "$report_dir"
mkdir -p "$report_dir"

if [[ -n "${PECR_SCHEMATHESIS_AUTHORIZATION:-}" ]]; then
  headers=(-H "authorization: $PECR_SCHEMATHESIS_AUTHORIZATION")
else
  headers=(-H "x-pecr-principal-id: ${PECR_PRINCIPAL_ID:-dev}")
  if [[ -n "${PECR_LOCAL_AUTH_SHARED_SECRET:-}" ]]; then
    headers+=(-H "x-pecr-local-auth-secret: $PECR_LOCAL_AUTH_SHARED_SECRET")
  fi
fi

if [[ "$service" == gateway ]]; then
  # Operator and finalize calls check their body only after the session
  # token header: send a real one, so the bodies are exercised too.
  session_headers="$(curl -sS -D - -o /dev/null "${headers[@]}" -H 'content-type: application/json' \
    -d '{"budget":{"max_operator_calls":10000,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0}}' \
    "$base_url/v1/sessions")"
  token="$(printf '%s\n' "$session_headers" | tr -d '\r' | awk 'tolower($1) == "x-pecr-session-token:" { print $2 }')"
  if [[ -z "$token" ]]; then
    echo "$0: could not open a session at $base_url/v1/sessions" >&2
    exit 1
  fi
  headers+=(-H "x-pecr-session-token: $token")
fi

# Every warning but validation_mismatch on the gateway: its operator,
# batch and finalize bodies name a session_id that only the session's
# opener knows, so fuzzed bodies are refused (401, or 400 before that) by
# design, and which of those operations crosses schemathesis's "mostly
# rejected" line shifts with any change to the document. The checks below
# still run on every request.
warnings=()
if [[ "$service" == gateway ]]; then
  warnings=(--warnings missing_auth,missing_test_data,missing_deserializer,unused_openapi_auth,method_not_allowed)
fi

echo "schemathesis: $service routes at $base_url (report in $report_dir)" >&2
# A fixed seed and deterministic generation (which keeps no example
# database): the same requests every run. schemathesis keeps a crash cache
# in `.schemathesis/` of its working directory and replays it next time, so
# it runs inside the report directory, which starts empty every run.
cd "$report_dir"
"$bin/schemathesis" --no-color run "$root/docs/openapi/pecr.v1.yaml" \
  --url "$base_url" \
  --include-tag "$tag" \
  "${headers[@]}" \
  "${warnings[@]}" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,negative_data_rejection \
  --phases examples,coverage,fuzzing \
  --max-examples "${PECR_SCHEMATHESIS_MAX_EXAMPLES:-100}" \
  --seed "${PECR_SCHEMATHESIS_SEED:-20260101}" \
  --generation-deterministic \
  --workers 1 \
  --request-timeout 30 \
  --report junit,ndjson \
  --report-dir "$report_dir" \
  2>&1 | tee "$report_dir/output.txt"
