"""Unit tests of scripts/rlm/pecr_rlm_bridge.py (spec 30 §10.7, scenario 31).

Each test runs the real script as a child process and plays the controller:
it writes `start`, answers every operator request like the spec's mock
gateway, and checks the messages and the exit code. Standard library only.

Run: python3 -m unittest discover -s scripts/rlm/tests
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import unittest
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[1] / "pecr_rlm_bridge.py"
TIMEOUT_SECS = 20

sys.dont_write_bytecode = True
sys.path.insert(0, str(SCRIPT.parent))
import pecr_rlm_bridge as bridge  # noqa: E402

REFS = [
    {"evidence_unit_id": "e" * 64, "source_system": "fs_corpus",
     "object_id": "public/public_1.txt", "version_id": "v" * 64},
    {"evidence_unit_id": "f" * 64, "source_system": "fs_corpus",
     "object_id": "injection/injection_1.txt", "version_id": "w" * 64},
]


def budget(**overrides: Any) -> dict[str, Any]:
    base = {"max_operator_calls": 100, "max_bytes": 1048576, "max_wallclock_ms": 10000,
            "max_recursion_depth": 10}
    base.update(overrides)
    return base


def start(query: str = "smoke", protocol: Any = ..., **budget_overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "start", "query": query, "budget": budget(**budget_overrides)}
    if protocol is not ...:
        message["protocol"] = protocol
    return message


def gateway_result(op_name: str, params: Any) -> Any:
    """The spec's mock gateway, with a search that returns two refs."""
    if op_name == "list_versions":
        return {"versions": []}
    if op_name == "fetch_rows":
        return []
    if op_name == "search":
        return {"refs": REFS}
    if op_name == "fetch_span":
        return {"object_id": params["object_id"], "content": "span"}
    return None


class Bridge:
    """The script as a child process, read line by line on a thread."""

    def __init__(self, env: dict[str, str] | None = None):
        child_env = dict(os.environ)
        child_env.pop(bridge.BACKEND_ENV, None)
        child_env.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", env=child_env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")

    def send(self, message: Any) -> None:
        assert self.process.stdin is not None
        text = message if isinstance(message, str) else json.dumps(message)
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def recv(self) -> dict[str, Any] | None:
        """The next message, or None at end of output."""
        line = self.lines.get(timeout=TIMEOUT_SECS)
        return json.loads(line) if line else None

    def finish(self) -> tuple[int, list[dict[str, Any]], str]:
        """Exit code, messages not yet read, and stderr."""
        assert self.process.stdin is not None and self.process.stderr is not None
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        code = self.process.wait(timeout=TIMEOUT_SECS)
        self.reader.join(timeout=TIMEOUT_SECS)
        rest = []
        while not self.lines.empty():
            line = self.lines.get_nowait()
            if line:
                rest.append(json.loads(line))
        stderr = self.process.stderr.read()
        self.process.stderr.close()
        return code, rest, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT_SECS)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class BridgeTestCase(unittest.TestCase):
    def spawn(self, env: dict[str, str] | None = None) -> Bridge:
        child = Bridge(env)
        self.addCleanup(child.kill)
        return child

    def converse(self, first: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
        """Runs a whole mock conversation: the requests made, `done`, the exit code."""
        child = self.spawn()
        child.send(first)
        self.assertEqual(child.recv(), {"type": "start_ack", "protocol_version": 1})
        requests = []
        while True:
            message = child.recv()
            self.assertIsNotNone(message, "bridge ended without done")
            assert message is not None
            if message["type"] == "done":
                code, rest, stderr = child.finish()
                self.assertEqual(rest, [], "nothing after done")
                self.assertEqual(stderr, "")
                return requests, message, code
            requests.append(message)
            self.assertRegex(message["id"], r"^[0-9a-f]{32}$")
            if message["type"] == "call_operator":
                result = gateway_result(message["op_name"], message["params"])
                child.send({"type": "operator_result", "id": message["id"], "ok": True,
                            "terminal_mode": "SUPPORTED", "result": result, "bytes_len": 10})
            elif message["type"] == "call_operator_batch":
                results = [{"ok": True, "op_name": call["op_name"], "terminal_mode": "SUPPORTED",
                            "result": gateway_result(call["op_name"], call["params"]),
                            "bytes_len": 10} for call in message["calls"]]
                child.send({"type": "operator_batch_result", "id": message["id"],
                            "results": results})
            else:
                self.fail(f"unexpected message {message}")


class BudgetParsingTest(BridgeTestCase):
    def test_budget_from_json_defaults_parallelism_to_one(self) -> None:
        self.assertEqual(bridge.budget_from_json(budget()).max_parallelism, 1)
        self.assertEqual(bridge.budget_from_json(budget(max_parallelism=None)).max_parallelism, 1)
        self.assertEqual(bridge.budget_from_json(budget(max_parallelism=0)).max_parallelism, 1)
        self.assertEqual(bridge.budget_from_json({}).max_recursion_depth, 0)

    def test_budget_without_max_parallelism_runs_sequentially(self) -> None:
        requests, done, code = self.converse(start(max_recursion_depth=5))
        self.assertEqual(code, 0)
        self.assertEqual([r["type"] for r in requests], ["call_operator"] * 5)
        self.assertEqual(done["operator_calls_used"], 5)

    def test_unconvertible_budget_value_crashes_with_exit_1(self) -> None:
        child = self.spawn()
        child.send(start(max_operator_calls="many"))
        code, rest, _ = child.finish()
        self.assertEqual((code, rest), (1, []))


class MockRunTest(BridgeTestCase):
    def test_run_mock_uses_one_batch_when_parallelism_is_set(self) -> None:
        requests, done, code = self.converse(start(query="  smoke  ", max_recursion_depth=5,
                                                   max_parallelism=2))
        self.assertEqual(code, 0)
        self.assertEqual(
            [(r["type"], r.get("op_name"), r["depth"]) for r in requests],
            [("call_operator", "list_versions", 0), ("call_operator", "fetch_rows", 1),
             ("call_operator", "search", 2), ("call_operator_batch", None, 3)],
        )
        self.assertEqual(requests[0]["params"], {"object_id": "public/public_1.txt"})
        self.assertEqual(requests[1]["params"], bridge.FETCH_ROWS_PARAMS)
        self.assertEqual(requests[2]["params"], {"query": "smoke", "limit": 5})
        self.assertEqual(requests[3]["calls"], [
            {"op_name": "fetch_span", "params": {"object_id": "public/public_1.txt"}},
            {"op_name": "fetch_span", "params": {"object_id": "injection/injection_1.txt"}},
        ])
        self.assertEqual(done, {
            "type": "done",
            "final_answer": "UNKNOWN: insufficient evidence to answer the query.",
            "protocol_version": 1,
            "stop_reason": "plan_complete",
            "operator_calls_used": 5,
            "depth_used": 5,
        })

    def test_run_mock_falls_back_to_sequential_calls_when_parallelism_is_one(self) -> None:
        requests, done, code = self.converse(start(max_recursion_depth=5, max_parallelism=1))
        self.assertEqual(code, 0)
        fetches = [r for r in requests if r.get("op_name") == "fetch_span"]
        self.assertEqual(len(fetches), 2)
        self.assertTrue(all(r["type"] == "call_operator" and r["depth"] == 3 for r in fetches))
        self.assertFalse(any(r["type"] == "call_operator_batch" for r in requests))
        self.assertEqual(done["operator_calls_used"], 5)

    def test_depth_budget_stops_the_walk_early(self) -> None:
        requests, done, code = self.converse(start(max_recursion_depth=2, max_parallelism=4))
        self.assertEqual(code, 0)
        self.assertEqual([r["op_name"] for r in requests], ["list_versions", "fetch_rows"])
        self.assertEqual((done["operator_calls_used"], done["depth_used"]), (2, 2))
        self.assertEqual(done["stop_reason"], "budget_max_recursion_depth")

    def test_stop_reason_and_depth_used_follow_the_depth_budget(self) -> None:
        for depth, expected in ((4, ("budget_max_recursion_depth", 4)), (10, ("plan_complete", 5))):
            with self.subTest(max_recursion_depth=depth):
                _, done, code = self.converse(start(max_recursion_depth=depth, max_parallelism=4))
                self.assertEqual(code, 0)
                self.assertEqual((done["stop_reason"], done["depth_used"]), expected)

    def test_search_is_sent_even_for_a_blank_query(self) -> None:
        requests, _, _ = self.converse(start(query="   ", max_recursion_depth=3))
        self.assertEqual(requests[2]["params"], {"query": "", "limit": 5})

    def test_wrong_reply_id_exits_non_zero(self) -> None:
        child = self.spawn()
        child.send(start())
        self.assertEqual(child.recv(), {"type": "start_ack", "protocol_version": 1})
        request = child.recv()
        assert request is not None
        child.send({"type": "operator_result", "id": "someone-else", "ok": True,
                    "terminal_mode": "SUPPORTED", "result": {}, "bytes_len": 2})
        code, rest, stderr = child.finish()
        self.assertNotEqual(code, 0)
        self.assertEqual(rest, [])
        self.assertIn("another request", stderr)


class HandshakeTest(BridgeTestCase):
    def handshake(self, first: Any) -> tuple[int, list[dict[str, Any]], str]:
        child = self.spawn()
        child.send(first)
        ack = child.recv()
        code, rest, stderr = child.finish()
        return code, ([ack] if ack else []) + rest, stderr

    def test_negotiate_protocol_version_accepts_default_legacy_message(self) -> None:
        self.assertEqual(bridge.negotiate_protocol_version(start()), 1)
        self.assertEqual(bridge.negotiate_protocol_version(start(protocol=None)), 1)
        child = self.spawn()
        child.send(start())
        self.assertEqual(child.recv(), {"type": "start_ack", "protocol_version": 1})

    def test_negotiate_protocol_version_accepts_supported_range(self) -> None:
        range_1 = {"min_version": 1, "max_version": 1}
        self.assertEqual(bridge.negotiate_protocol_version(start(protocol=range_1)), 1)
        self.assertEqual(bridge.negotiate_protocol_version(start(protocol={})), 1)
        child = self.spawn()
        child.send(start(protocol=range_1))
        self.assertEqual(child.recv(), {"type": "start_ack", "protocol_version": 1})

    def test_negotiate_protocol_version_rejects_unsupported_range(self) -> None:
        code, messages, stderr = self.handshake(start(protocol={"min_version": 2, "max_version": 3}))
        self.assertEqual(code, 2)
        self.assertEqual(messages, [], "no start_ack")
        self.assertIn("unsupported protocol range", stderr)

    def test_malformed_protocol_is_rejected(self) -> None:
        for protocol in ("v1", {"min_version": "1"}, {"min_version": 1, "max_version": True},
                         {"min_version": 2, "max_version": 1}):
            with self.subTest(protocol=protocol):
                code, messages, _ = self.handshake(start(protocol=protocol))
                self.assertEqual((code, messages), (2, []))

    def test_bad_start_fields_exit_2(self) -> None:
        for first in ({"type": "begin", "query": "q", "budget": budget()},
                      {"type": "start", "query": 5, "budget": budget()},
                      {"type": "start", "query": "q", "budget": []}):
            with self.subTest(first=first):
                code, messages, _ = self.handshake(first)
                self.assertEqual((code, messages), (2, []))

    def test_unreadable_first_line_exits_1(self) -> None:
        for first in ("not json", "[1, 2]"):
            with self.subTest(first=first):
                code, messages, _ = self.handshake(first)
                self.assertEqual((code, messages), (1, []))
        child = self.spawn()
        code, rest, _ = child.finish()
        self.assertEqual((code, rest), (1, []))


class BackendTest(BridgeTestCase):
    def test_unknown_backend_exits_3_after_start_ack(self) -> None:
        child = self.spawn({"PECR_RLM_BACKEND": "other"})
        child.send(start())
        self.assertEqual(child.recv(), {"type": "start_ack", "protocol_version": 1})
        code, rest, stderr = child.finish()
        self.assertEqual((code, rest), (3, []))
        self.assertIn("PECR_RLM_BACKEND", stderr)

    def test_backend_is_trimmed_and_lowercased(self) -> None:
        child = self.spawn({"PECR_RLM_BACKEND": "  MOCK "})
        child.send(start(max_recursion_depth=1))
        self.assertEqual(child.recv(), {"type": "start_ack", "protocol_version": 1})
        request = child.recv()
        assert request is not None
        self.assertEqual(request["op_name"], "list_versions")


class HelperTest(unittest.TestCase):
    def test_final_answer_parsing(self) -> None:
        self.assertEqual(bridge.parse_final_answer("thinking\nFINAL(UNKNOWN: x (y).)"), "UNKNOWN: x (y).")
        self.assertIsNone(bridge.parse_final_answer("no answer yet"))

    def test_repl_blocks_come_from_the_vendored_package(self) -> None:
        find_code_blocks = bridge.load_code_block_parser(SCRIPT.parent)
        self.assertEqual(find_code_blocks.__module__, "rlm.utils.parsing")
        text = bridge.repl_step("note", {"op_name": "search", "params": {"query": "a```b"}})
        self.assertEqual([json.loads(block) for block in find_code_blocks(text)],
                         [{"op_name": "search", "params": {"query": "a```b"}}])


if __name__ == "__main__":
    unittest.main()
