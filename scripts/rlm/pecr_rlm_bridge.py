#!/usr/bin/env python3
"""PECR RLM bridge: the child process the controller runs in `rlm` engine mode.

Protocol (spec 30 §10.3): one compact JSON object per line on stdin/stdout,
strictly alternating; diagnostics go to stderr, never operator results.

  controller -> bridge: start, operator_result, operator_batch_result
  bridge -> controller: start_ack, call_operator, call_operator_batch, done

Exit codes: 0 after `done`; 1 for a first line that is EOF, not JSON or not
an object (and for crashes, bad replies or a missing vendored package);
2 for a bad `start` or an unsupported protocol range; 3 for an unknown
PECR_RLM_BACKEND.

The only backend is `mock` (spec 30 §10.7): a deterministic stand-in for a
language model that writes each step as text with a fenced ```repl block
holding the operator call as JSON, and ends with FINAL(<answer>). The repl
blocks are parsed with the vendored RLM package's own helper
(`rlm.utils.parsing.find_code_blocks`, from PyPI `rlms` 0.1.3). That
release has no FINAL(...) parser (its models finish by setting
`answer["ready"] = True` inside a repl block, which only its REPL sandbox
can evaluate), so FINAL(...) is parsed here.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import secrets
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

PROTOCOL_VERSION = 1
SUPPORTED_PROTOCOL = (1, 1)
BACKEND_ENV = "PECR_RLM_BACKEND"
DEFAULT_BACKEND = "mock"
FINAL_ANSWER = "UNKNOWN: insufficient evidence to answer the query."
MOCK_MAX_DEPTH = 4  # depth 0..3

EXIT_BAD_INPUT = 1
EXIT_BAD_START = 2
EXIT_BAD_BACKEND = 3

# The mock's plan; depth 1 uses the baseline's default fetch_rows step.
LIST_VERSIONS_PARAMS = {"object_id": "public/public_1.txt"}
FETCH_ROWS_PARAMS = {
    "view_id": "safe_customer_view_public",
    "filter_spec": {"customer_id": "cust_public_1"},
    "fields": ["status", "plan_tier"],
}
SEARCH_LIMIT = 5
MAX_FETCH_REFS = 2


class BridgeExit(Exception):
    """Ends the bridge with `code` after writing `message` to stderr."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class ProtocolNegotiationError(ValueError):
    pass


# ---------------------------------------------------------------- start


@dataclass(frozen=True)
class Budget:
    max_operator_calls: int
    max_bytes: int
    max_wallclock_ms: int
    max_recursion_depth: int
    max_parallelism: int


def budget_from_json(raw: dict[str, Any]) -> Budget:
    """Missing integer fields count as 0; a `max_parallelism` that is null,
    missing or <= 0 becomes 1. A value int() cannot convert raises (the
    bridge then crashes with exit 1, as spec 30 §10.7 says)."""

    def number(name: str) -> int:
        return int(raw.get(name, 0))

    parallelism = raw.get("max_parallelism")
    parallelism = 1 if parallelism is None else int(parallelism)
    return Budget(
        max_operator_calls=number("max_operator_calls"),
        max_bytes=number("max_bytes"),
        max_wallclock_ms=number("max_wallclock_ms"),
        max_recursion_depth=number("max_recursion_depth"),
        max_parallelism=parallelism if parallelism > 0 else 1,
    )


def negotiate_protocol_version(start: dict[str, Any]) -> int:
    """The highest supported version in the controller's range; an absent
    or null `protocol` means version 1."""
    protocol = start.get("protocol")
    if protocol is None:
        return PROTOCOL_VERSION
    if not isinstance(protocol, dict):
        raise ProtocolNegotiationError("protocol must be an object")
    low = protocol.get("min_version", 1)
    high = protocol.get("max_version", 1)
    for name, value in (("min_version", low), ("max_version", high)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolNegotiationError(f"protocol.{name} must be an integer")
    if low > high:
        raise ProtocolNegotiationError(f"protocol range [{low}, {high}] is empty")
    supported_low, supported_high = SUPPORTED_PROTOCOL
    chosen = min(high, supported_high)
    if chosen < max(low, supported_low):
        raise ProtocolNegotiationError(
            f"unsupported protocol range [{low}, {high}]; this bridge speaks "
            f"[{supported_low}, {supported_high}]"
        )
    return chosen


@dataclass(frozen=True)
class Start:
    query: str
    budget: Budget
    protocol_version: int


def read_start(line: str) -> Start:
    if not line:
        raise BridgeExit(EXIT_BAD_INPUT, "expected start, got end of input")
    try:
        message = json.loads(line)
    except json.JSONDecodeError as err:
        raise BridgeExit(EXIT_BAD_INPUT, f"start is not JSON: {err}") from None
    if not isinstance(message, dict):
        raise BridgeExit(EXIT_BAD_INPUT, "start is not a JSON object")
    if message.get("type") != "start":
        raise BridgeExit(EXIT_BAD_START, f"expected a start message, got type {message.get('type')!r}")
    query = message.get("query")
    if not isinstance(query, str):
        raise BridgeExit(EXIT_BAD_START, "start.query must be a string")
    raw_budget = message.get("budget")
    if not isinstance(raw_budget, dict):
        raise BridgeExit(EXIT_BAD_START, "start.budget must be an object")
    budget = budget_from_json(raw_budget)
    try:
        version = negotiate_protocol_version(message)
    except ProtocolNegotiationError as err:
        raise BridgeExit(EXIT_BAD_START, str(err)) from None
    return Start(query=query, budget=budget, protocol_version=version)


# ---------------------------------------------------------------- channel


class Channel:
    """The controller, over stdin/stdout. Every request waits for its reply."""

    def __init__(self, reader, writer):
        self._reader = reader
        self._writer = writer
        self.operator_calls = 0

    def send(self, message: dict[str, Any]) -> None:
        self._writer.write(json.dumps(message, separators=(",", ":")) + "\n")
        self._writer.flush()

    def readline(self) -> str:
        return self._reader.readline()

    def _reply(self, request_id: str, expected_type: str) -> dict[str, Any]:
        line = self._reader.readline()
        if not line:
            raise BridgeExit(EXIT_BAD_INPUT, f"controller closed the channel while {expected_type} was due")
        try:
            reply = json.loads(line)
        except json.JSONDecodeError as err:
            raise BridgeExit(EXIT_BAD_INPUT, f"controller reply is not JSON: {err}") from None
        if not isinstance(reply, dict) or reply.get("type") != expected_type:
            kind = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
            raise BridgeExit(EXIT_BAD_INPUT, f"expected {expected_type}, got {kind!r}")
        if reply.get("id") != request_id:
            raise BridgeExit(EXIT_BAD_INPUT, f"{expected_type} answers another request")
        return reply

    def call_operator(self, op_name: str, params: Any, depth: int) -> dict[str, Any]:
        request_id = secrets.token_hex(16)
        self.send({"type": "call_operator", "id": request_id, "depth": depth,
                   "op_name": op_name, "params": params})
        self.operator_calls += 1
        return self._reply(request_id, "operator_result")

    def call_operator_batch(self, calls: list[dict[str, Any]], depth: int) -> dict[str, Any]:
        request_id = secrets.token_hex(16)
        self.send({"type": "call_operator_batch", "id": request_id, "depth": depth,
                   "calls": calls})
        self.operator_calls += len(calls)
        return self._reply(request_id, "operator_batch_result")


# ---------------------------------------------------------------- vendored rlm


def vendor_candidates(script_dir: Path) -> list[Path]:
    """Container layout (beside the script), then the repository layout."""
    return [script_dir / "vendor" / "rlm", script_dir.parent.parent / "vendor" / "rlm"]


def load_code_block_parser(script_dir: Path) -> Callable[[str], list[str]]:
    """`find_code_blocks` from the vendored package.

    `rlm/__init__.py` imports the whole RLM runtime (model clients, rich,
    python-dotenv), none of which the bridge needs or ships. So the package
    is registered by path without running its __init__, and only the
    stdlib-only modules `rlm.core.types` and `rlm.utils.parsing` load.
    """
    for root in vendor_candidates(script_dir):
        package_dir = root / "rlm"
        if (package_dir / "utils" / "parsing.py").is_file():
            break
    else:
        searched = ", ".join(str(path) for path in vendor_candidates(script_dir))
        raise BridgeExit(EXIT_BAD_INPUT, f"vendored rlm package not found (searched {searched})")
    sys.dont_write_bytecode = True  # keep the vendored tree identical to its manifest
    package = types.ModuleType("rlm")
    package.__path__ = [str(package_dir)]
    package.__package__ = "rlm"
    sys.modules["rlm"] = package
    parsing = importlib.import_module("rlm.utils.parsing")
    return parsing.find_code_blocks


_FINAL = re.compile(r"FINAL\((.*)\)\s*$", re.DOTALL)


def parse_final_answer(text: str) -> str | None:
    """The answer of the last FINAL(...) in a model response, if any."""
    start = text.rfind("FINAL(")
    if start < 0:
        return None
    match = _FINAL.match(text, start)
    return match.group(1).strip() if match else None


# ---------------------------------------------------------------- mock backend


def repl_step(note: str, action: Any) -> str:
    return f"{note}\n```repl\n{json.dumps(action, separators=(',', ':'))}\n```\n"


class MockModel:
    """A deterministic stand-in for the model: given what the run has seen,
    it writes the next step as text."""

    def __init__(self, query: str, parallelism: int):
        self.query = query.strip()
        self.parallelism = parallelism
        self.refs: list[dict[str, Any]] = []

    def step(self, depth: int) -> str:
        if depth == 0:
            return repl_step("List the versions of the public object.",
                             {"op_name": "list_versions", "params": LIST_VERSIONS_PARAMS})
        if depth == 1:
            return repl_step("Read the public customer row.",
                             {"op_name": "fetch_rows", "params": FETCH_ROWS_PARAMS})
        if depth == 2:
            return repl_step("Search for the query.",
                             {"op_name": "search",
                              "params": {"query": self.query, "limit": SEARCH_LIMIT}})
        object_ids = [
            ref["object_id"]
            for ref in self.refs[:MAX_FETCH_REFS]
            if isinstance(ref.get("object_id"), str) and ref["object_id"].strip()
        ]
        calls = [{"op_name": "fetch_span", "params": {"object_id": object_id}}
                 for object_id in object_ids]
        if not calls:
            return "No search result to read.\n"
        if self.parallelism > 1:
            return repl_step("Fetch the top results together.", {"batch": calls})
        return "Fetch the top results one by one.\n" + "".join(
            repl_step(f"Result {index + 1}.", call) for index, call in enumerate(calls))

    def observe(self, op_name: str, reply: dict[str, Any]) -> None:
        if op_name != "search":
            return
        result = reply.get("result")
        refs = result.get("refs") if isinstance(result, dict) else None
        if isinstance(refs, list):
            self.refs = [ref for ref in refs if isinstance(ref, dict)]

    def final(self) -> str:
        return f"The evidence gathered does not answer the query.\nFINAL({FINAL_ANSWER})"


def run_mock(start: Start, channel: Channel, find_code_blocks: Callable[[str], list[str]]) -> dict[str, Any]:
    """Walks depth 0..3 (stopping early at max_recursion_depth), running
    the repl blocks of each step; returns the `done` message."""
    budget = start.budget
    model = MockModel(start.query, budget.max_parallelism)
    for depth in range(min(MOCK_MAX_DEPTH, max(budget.max_recursion_depth, 0))):
        for block in find_code_blocks(model.step(depth)):
            action = json.loads(block)
            if "batch" in action:
                channel.call_operator_batch(action["batch"], depth)
            else:
                reply = channel.call_operator(action["op_name"], action["params"], depth)
                model.observe(action["op_name"], reply)
    answer = parse_final_answer(model.final())
    return {
        "type": "done",
        "final_answer": answer if answer is not None else FINAL_ANSWER,
        "protocol_version": start.protocol_version,
        "stop_reason": "budget_max_recursion_depth"
        if budget.max_recursion_depth <= MOCK_MAX_DEPTH else "plan_complete",
        "operator_calls_used": channel.operator_calls,
        "depth_used": min(budget.max_recursion_depth, MOCK_MAX_DEPTH + 1),
    }


# ---------------------------------------------------------------- main


def main() -> int:
    for stream in (sys.stdin, sys.stdout):
        stream.reconfigure(encoding="utf-8")
    channel = Channel(sys.stdin, sys.stdout)
    try:
        start = read_start(channel.readline())
        channel.send({"type": "start_ack", "protocol_version": start.protocol_version})
        backend = os.environ.get(BACKEND_ENV, "").strip().lower() or DEFAULT_BACKEND
        if backend != DEFAULT_BACKEND:
            raise BridgeExit(EXIT_BAD_BACKEND, f"unsupported {BACKEND_ENV} {backend!r} (only {DEFAULT_BACKEND!r})")
        find_code_blocks = load_code_block_parser(Path(__file__).resolve().parent)
        channel.send(run_mock(start, channel, find_code_blocks))
    except BridgeExit as stop:
        print(f"pecr_rlm_bridge: {stop}", file=sys.stderr)
        return stop.code
    except BrokenPipeError:
        print("pecr_rlm_bridge: the controller closed the channel", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
