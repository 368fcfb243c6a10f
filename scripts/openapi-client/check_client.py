"""Drives a live controller with the Python client openapi-python-client
generated from the controller's served /openapi.json, used as generated:
nothing here edits or wraps it.

Usage: check_client.py CLIENT_PACKAGE_PARENT BASE_URL QUERY

1. POST /v1/run as principal dev (the x-pecr-principal-id header
   parameter) must answer 200 with a RunResponse whose terminal_mode is
   SUPPORTED and a trace_id;
2. GET /v1/replays as dev must answer 200 with a ListReplaysResponse that
   lists that run;
3. POST /v1/run without a principal must answer 401 with a typed
   ErrorResponse whose code is ERR_POLICY_DENIED (local mode).

Exits 0 with one line per step, 1 at the first step that fails.
"""

import importlib
import sys


def fail(message: str) -> int:
    print(f"openapi client check: {message}", file=sys.stderr)
    return 1


def main() -> int:
    parent, base_url, query = sys.argv[1:]
    sys.path.insert(0, parent)
    package = "pecr_rest_api_client"
    client_module = importlib.import_module(f"{package}.client")
    models = importlib.import_module(f"{package}.models")
    run = importlib.import_module(f"{package}.api.controller_service.run")
    list_replays = importlib.import_module(f"{package}.api.controller_service.list_replays")

    client = client_module.Client(base_url=base_url, timeout=60.0, raise_on_unexpected_status=True)

    answered = run.sync_detailed(
        client=client,
        body=models.RunRequest(query=query),
        x_pecr_principal_id="dev",
    )
    if answered.status_code != 200 or not isinstance(answered.parsed, models.RunResponse):
        return fail(f"run as dev: {answered.status_code} {answered.content[:300]!r}")
    mode = answered.parsed.terminal_mode
    mode = getattr(mode, "value", mode)
    if mode != "SUPPORTED":
        return fail(f"run as dev answered {mode}, not SUPPORTED")
    if not answered.parsed.trace_id:
        return fail("run as dev: no trace_id")
    run_id = answered.parsed.run_id
    print(f"    POST /v1/run as dev: SUPPORTED (run {run_id})")

    listed = list_replays.sync_detailed(client=client, x_pecr_principal_id="dev")
    if listed.status_code != 200 or not isinstance(listed.parsed, models.ListReplaysResponse):
        return fail(f"list replays: {listed.status_code} {listed.content[:300]!r}")
    replays = listed.parsed.replays or []
    run_ids = [getattr(replay, "run_id", None) for replay in replays]
    if run_id not in run_ids:
        return fail(f"list replays: run {run_id} not among {run_ids}")
    print(f"    GET /v1/replays as dev: {len(replays)} replay(s), the run among them")

    refused = run.sync_detailed(client=client, body=models.RunRequest(query=query))
    if refused.status_code != 401 or not isinstance(refused.parsed, models.ErrorResponse):
        return fail(f"run without a principal: {refused.status_code} {refused.content[:300]!r}")
    if refused.parsed.code != "ERR_POLICY_DENIED":
        return fail(f"run without a principal: code {refused.parsed.code}")
    print("    POST /v1/run without a principal: 401 ErrorResponse ERR_POLICY_DENIED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
