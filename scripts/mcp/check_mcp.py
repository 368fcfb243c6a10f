#!/usr/bin/env python3
"""PECR's MCP servers through the official MCP Python SDK (pinned in
scripts/tools.sh), against a running mesh in local auth mode:

- tools/list on the gateway as dev, support and guest: each sees the tools
  the policy lets it use (three different lists), finalize for all;
- dev: search and fetch_rows (evidence as structured content and text),
  the session's evidence as resources (another id is not found), finalize
  with a cited claim (SUPPORTED) and an uncited one (not SUPPORTED);
- a denied call is a tool error carrying ERR_POLICY_DENIED, a bad argument
  one carrying ERR_INVALID_PARAMS; as_of_time from initialize's _meta;
- no principal: 401 with a WWW-Authenticate challenge and the REST edge's
  ErrorResponse; a principal the policy gives no session: initialize
  fails with ERR_POLICY_DENIED; an MCP session used by another principal:
  401 ERR_POLICY_DENIED;
- the canary matrix: every file and view read by each principal, and ask
  on the controller; no fixture canary reaches a principal that may not see
  it through tool results, errors, resources or progress notifications
  (and dev, who may, does see them: the matrix reaches them);
- ask on the controller: the answer (SUPPORTED, cited evidence) and the
  run's events as progress notifications.

It also writes OUT_DIR/mcp_call.json: the policy snapshot of a session
whose only call was one fetch_rows, for the ledger comparison that
scripts/mcp-check.sh makes with the same call over gRPC.

Usage: check_mcp.py GATEWAY_HTTP CONTROLLER_HTTP OUT_DIR   (e.g. http://127.0.0.1:8080)
"""

import asyncio
import json
import pathlib
import sys
import uuid
from contextlib import asynccontextmanager

import httpx2
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

CANARIES = {
    "RESTRICTED_ALPHA": "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f",
    "INJECTION_BETA": "PECR_CANARY_INJECTION_BETA_29a1e0d7a03d4d8c",
    "ADMIN_DELTA_1": "PECR_CANARY_PG_ADMIN_DELTA_1f2d8c6f87f84b76",
    "SUPPORT_EPSILON_1": "PECR_CANARY_PG_SUPPORT_EPSILON_6c6f4f07c04f4f8f",
    "ADMIN_DELTA_2": "PECR_CANARY_PG_ADMIN_DELTA_2a519d6b7f4348d4",
    "SUPPORT_EPSILON_2": "PECR_CANARY_PG_SUPPORT_EPSILON_8d77b9a9d9e24c2b",
}
# Under the shipped policy (opa/bundle): dev reads everything of tenant
# local; support reads public/, injection/ and the public and support views
# with admin and injection notes redacted; guest reads nothing.
FORBIDDEN = {
    "dev": [],
    "support": ["RESTRICTED_ALPHA", "ADMIN_DELTA_1", "ADMIN_DELTA_2"],
    "guest": list(CANARIES),
}
ALL_OPERATORS = ["search", "list_versions", "fetch_span", "diff", "fetch_rows", "aggregate", "redact"]
EXPECTED_TOOLS = {
    "dev": ALL_OPERATORS + ["finalize"],
    "support": ["search", "list_versions", "fetch_span", "diff", "fetch_rows", "aggregate", "finalize"],
    "guest": ["finalize"],
}
FILES = ["public/public_1.txt", "restricted/restricted_1.txt", "injection/injection_1.txt"]
VIEWS = {
    "safe_customer_view_public": [],
    "safe_customer_view_admin": ["admin_note"],
    "safe_customer_view_support": ["support_note"],
    "safe_customer_view_injection": ["injection_note"],
}
BASE_FIELDS = ["customer_id", "status", "plan_tier"]
QUESTION = "What is the customer status and plan tier?"
AS_OF_TIME = "2026-06-01T00:00:00Z"

failures = []


def check(condition, what):
    print(("  ok    " if condition else "  FAIL  ") + what)
    if not condition:
        failures.append(what)


class Seen:
    """Everything one principal received, for the canary scan."""

    def __init__(self, principal):
        self.principal = principal
        self.texts = []

    def add(self, value):
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json", by_alias=True)
        self.texts.append(json.dumps(value) if not isinstance(value, str) else value)

    def canaries(self):
        blob = "\n".join(self.texts)
        return sorted(name for name, canary in CANARIES.items() if canary in blob)


def identity(principal):
    return {"x-pecr-principal-id": principal}


@asynccontextmanager
async def connect(url, principal, on_message=None):
    client = create_mcp_http_client(headers=identity(principal))
    async with client, streamable_http_client(f"{url}/mcp", http_client=client) as (read, write):
        async with ClientSession(read, write, message_handler=on_message) as session:
            await session.initialize()
            yield session


def tool_names(listing):
    return [tool.name for tool in listing.tools]


def error_code(result):
    structured = result.structured_content or {}
    return (structured.get("error") or {}).get("code")


def evidence_ids(result):
    value = (result.structured_content or {}).get("result")
    items = value if isinstance(value, list) else [value]
    return [item["evidence_unit_id"] for item in items if isinstance(item, dict) and "content_hash" in item]


def claim_map(claims):
    return {
        "claim_map_id": f"mcp-check-{uuid.uuid4().hex}",
        "terminal_mode": "SUPPORTED",
        "claims": claims,
        "coverage_threshold": 0.95,
        "coverage_observed": 1.0,
    }


def claim(text, ids):
    return {"claim_id": "", "claim_text": text, "status": "SUPPORTED", "evidence_unit_ids": ids}


async def tools_per_principal(gateway):
    print("==> tools/list per principal (gateway)")
    lists = {}
    for principal, expected in EXPECTED_TOOLS.items():
        async with connect(gateway, principal) as session:
            listing = await session.list_tools()
            lists[principal] = tool_names(listing)
            check(sorted(lists[principal]) == sorted(expected), f"{principal} lists {sorted(expected)}, got {sorted(lists[principal])}")
            schemas = {tool.name: tool.input_schema for tool in listing.tools}
            check(schemas["finalize"].get("required") == ["response_text", "claim_map"], f"{principal}: finalize's schema is the contract's")
            if "fetch_rows" in schemas:
                check(schemas["fetch_rows"].get("required") == ["view_id", "fields"], f"{principal}: fetch_rows's schema is FetchRowsParams")
    check(len({tuple(sorted(names)) for names in lists.values()}) == 3, "dev, support and guest get three different lists")


async def dev_session(gateway):
    print("==> dev: search, fetch_rows, resources, finalize (gateway)")
    async with connect(gateway, "dev") as session:
        found = await session.call_tool("search", {"query": "fixture", "limit": 5})
        refs = (found.structured_content or {}).get("result", {}).get("refs", [])
        check(not found.is_error and len(refs) >= 1, f"search answers references ({len(refs)})")
        rows = await session.call_tool(
            "fetch_rows",
            {"view_id": "safe_customer_view_public", "fields": ["status", "plan_tier"], "filter_spec": {"customer_id": "cust_public_1"}},
        )
        ids = evidence_ids(rows)
        check(not rows.is_error and len(ids) == 1, "fetch_rows answers one evidence unit as structured content")
        text = rows.content[0].text if rows.content else ""
        check(ids and ids[0] in text and "active" in text, "the text rendering names the unit and shows its content")
        check(rows.structured_content.get("terminal_mode") == "SUPPORTED", "the structured result is CallOperatorResponse")

        listing = await session.list_resources()
        uris = [str(resource.uri) for resource in listing.resources]
        check(f"pecr://evidence/{ids[0]}" in uris, "the unit is a resource of the session")
        read = await session.read_resource(f"pecr://evidence/{ids[0]}")
        unit = json.loads(read.contents[0].text)
        check(unit.get("evidence_unit_id") == ids[0], "reading it gives the unit")
        try:
            await session.read_resource("pecr://evidence/" + "0" * 64)
            check(False, "an id the session never received is not found")
        except Exception as err:  # MCPError
            check("no such evidence" in str(err), "an id the session never received is not found")

        bad = await session.call_tool("fetch_rows", {"view_id": "safe_customer_view_public"})
        check(bad.is_error and error_code(bad) == "ERR_INVALID_PARAMS", "a missing param is a tool error ERR_INVALID_PARAMS")
        bad_args = await session.call_tool("finalize", {"response_text": "x"})
        check(bad_args.is_error and error_code(bad_args) == "ERR_INVALID_PARAMS", "finalize without a claim map is ERR_INVALID_PARAMS")

        answer = await session.call_tool(
            "finalize",
            {
                "response_text": "cust_public_1 is active on the free plan.",
                "claim_map": claim_map([claim("cust_public_1 is active", ids), claim("the moon is cheese", [])]),
            },
        )
        gated = (answer.structured_content or {}).get("claim_map", {}).get("claims", [])
        statuses = [c.get("status") for c in gated]
        check(not answer.is_error, "finalize answers")
        check(len(statuses) == 2 and statuses[0] == "SUPPORTED", f"the cited claim is SUPPORTED ({statuses})")
        check(len(statuses) == 2 and statuses[1] != "SUPPORTED", f"the uncited claim is not SUPPORTED ({statuses})")
        check(answer.structured_content.get("terminal_mode") is not None, f"finalize answers a terminal mode ({answer.structured_content.get('terminal_mode')})")
        after = await session.call_tool("search", {"query": "fixture"})
        check(after.is_error and error_code(after) is not None, f"a call after finalize is a tool error ({error_code(after)})")


async def guest_denied(gateway):
    print("==> guest: a denied call is a tool error (gateway)")
    async with connect(gateway, "guest") as session:
        denied = await session.call_tool("fetch_rows", {"view_id": "safe_customer_view_public", "fields": ["status"]})
        check(denied.is_error is True, "guest's fetch_rows is isError")
        check(error_code(denied) == "ERR_POLICY_DENIED", f"and carries ERR_POLICY_DENIED ({error_code(denied)})")
        check("ERR_POLICY_DENIED" in (denied.content[0].text if denied.content else ""), "the text names the code")


async def as_of_time(gateway, out_dir):
    print("==> as_of_time in initialize's _meta; one fetch_rows for the ledger comparison")
    client = create_mcp_http_client(headers=identity("dev"))
    async with client, streamable_http_client(f"{gateway}/mcp", http_client=client) as (read, write):
        async with ClientSession(read, write) as session:
            result = await session.send_request(
                types.InitializeRequest(
                    params=types.InitializeRequestParams(
                        protocol_version="2025-11-25",
                        capabilities=types.ClientCapabilities(),
                        client_info=types.Implementation(name="pecr-mcp-check", version="1"),
                        _meta={"pecr/as_of_time": AS_OF_TIME},
                    )
                ),
                types.InitializeResult,
            )
            session.adopt(result)
            await session.send_notification(types.InitializedNotification())
            rows = await session.call_tool(
                "fetch_rows",
                {"view_id": "safe_customer_view_public", "fields": ["status"], "filter_spec": {"customer_id": "cust_public_1"}},
            )
            unit = (rows.structured_content or {}).get("result", [{}])[0]
            check(unit.get("as_of_time") == AS_OF_TIME, f"the session's evidence is as of {AS_OF_TIME} ({unit.get('as_of_time')})")
            (out_dir / "mcp_call.json").write_text(json.dumps({"policy_snapshot_id": unit.get("policy_snapshot_id")}))


def refusals(gateway):
    print("==> HTTP refusals before the transport (gateway)")
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    accept = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    with httpx2.Client(timeout=30) as http:
        anonymous = http.post(f"{gateway}/mcp", json=initialize, headers=accept)
        check(anonymous.status_code == 401, f"no principal: 401 ({anonymous.status_code})")
        check(anonymous.headers.get("www-authenticate", "") != "", "with a WWW-Authenticate challenge")
        budget = {"max_operator_calls": 1, "max_bytes": 1024, "max_wallclock_ms": 1000, "max_recursion_depth": 1}
        rest = http.post(f"{gateway}/v1/sessions", json={"budget": budget}, headers=accept)
        check(anonymous.json() == rest.json(), f"and the REST edge's ErrorResponse ({anonymous.json().get('code')})")
        stranger = http.post(f"{gateway}/mcp", json=initialize, headers={**accept, **identity("nobody")})
        check(
            "ERR_POLICY_DENIED" in stranger.text and '"error"' in stranger.text,
            "a principal the policy gives no session: initialize is a JSON-RPC error carrying ERR_POLICY_DENIED",
        )
        opened = http.post(f"{gateway}/mcp", json=initialize, headers={**accept, **identity("dev")})
        session_id = opened.headers.get("mcp-session-id")
        check(opened.status_code == 200 and session_id, "dev opens a session")
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
        foreign = http.post(
            f"{gateway}/mcp",
            json=listing,
            headers={**accept, **identity("support"), "mcp-session-id": session_id, "mcp-protocol-version": "2025-11-25"},
        )
        check(foreign.status_code == 401, f"support using dev's session: 401 ({foreign.status_code})")
        check(foreign.json().get("code") == "ERR_POLICY_DENIED", "with ERR_POLICY_DENIED, as the gateway refuses a foreign session")
        for body in (anonymous.text, foreign.text):
            check(not any(c in body for c in CANARIES.values()), "no canary in a refusal")
        http.delete(f"{gateway}/mcp", headers={**identity("dev"), "mcp-session-id": session_id})


async def canary_matrix(gateway, controller):
    print("==> the canary matrix over MCP (tool results, errors, resources, notifications)")
    for principal, forbidden in FORBIDDEN.items():
        seen = Seen(principal)

        async def record(message, seen=seen):
            if isinstance(message, Exception):
                seen.add(str(message))
            else:
                seen.add(message)

        async with connect(gateway, principal, on_message=record) as session:
            seen.add(await session.list_tools())
            for object_id in FILES:
                for op, args in (("fetch_span", {"object_id": object_id}), ("list_versions", {"object_id": object_id})):
                    seen.add(await session.call_tool(op, args))
            for view, extra in VIEWS.items():
                seen.add(await session.call_tool("fetch_rows", {"view_id": view, "fields": BASE_FIELDS + extra}))
            seen.add(await session.call_tool("search", {"query": "PECR_CANARY"}))
            resources = await session.list_resources()
            seen.add(resources)
            for resource in resources.resources:
                seen.add(await session.read_resource(str(resource.uri)))
        async with connect(controller, principal, on_message=record) as session:

            async def progress(step, total, message, seen=seen):
                seen.add(message or "")

            seen.add(await session.call_tool("ask", {"query": QUESTION}, progress_callback=progress))
        leaked = sorted(set(seen.canaries()) & set(forbidden))
        check(not leaked, f"{principal}: no forbidden canary ({leaked or 'none'})")
        if principal == "dev":
            check(len(seen.canaries()) >= 4, f"dev, who may, does see canaries ({seen.canaries()})")


async def ask(controller):
    print("==> ask on the controller, with progress")
    events = []

    async def progress(step, total, message):
        events.append(json.loads(message) if message else {})

    async with connect(controller, "dev") as session:
        listing = await session.list_tools()
        check(tool_names(listing) == ["ask"], "the controller lists ask")
        check(listing.tools[0].input_schema.get("required") == ["query"], "ask's schema is RunStreamRequest's")
        result = await session.call_tool("ask", {"query": QUESTION}, progress_callback=progress)
        answer = result.structured_content or {}
        check(not result.is_error and answer.get("terminal_mode") == "SUPPORTED", f"dev's ask is SUPPORTED ({answer.get('terminal_mode')})")
        check(len(answer.get("cited_evidence", [])) >= 1, "the answer names the evidence it cites")
        kinds = [next(iter(event), None) for event in events]
        for kind in ("step_started", "operator_call", "session_created", "finalizing", "result"):
            check(kind in kinds, f"progress carried {kind}")
        check(kinds and kinds[-1] == "result", "the last progress event is the result")
        bad = await session.call_tool("ask", {"query": QUESTION, "budget": {"max_operator_calls": 100000, "max_bytes": 1, "max_wallclock_ms": 1, "max_recursion_depth": 1}})
        check(bad.is_error and error_code(bad) == "ERR_INVALID_PARAMS", "a budget out of range is a tool error")
    async with connect(controller, "guest") as session:
        result = await session.call_tool("ask", {"query": QUESTION})
        mode = (result.structured_content or {}).get("terminal_mode")
        check(mode == "INSUFFICIENT_PERMISSION", f"guest's ask: INSUFFICIENT_PERMISSION ({mode})")


async def main():
    gateway, controller, out_dir = sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/"), pathlib.Path(sys.argv[3])
    await tools_per_principal(gateway)
    await dev_session(gateway)
    await guest_denied(gateway)
    await as_of_time(gateway, out_dir)
    refusals(gateway)
    await ask(controller)
    await canary_matrix(gateway, controller)
    total = sum(1 for _ in failures)
    print(f"mcp check: {'passed' if not total else f'{total} failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
