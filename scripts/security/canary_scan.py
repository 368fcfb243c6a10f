#!/usr/bin/env python3
"""The security gate's last look: no fixture canary in any log, metric,
span, replay or evaluation of the run, and none in a response to a caller
who may not see it (responses.jsonl, written by the attack suite).

Usage: canary_scan.py GATE_DIR   (exit 1 on any finding)
"""

import json
import pathlib
import sys

CANARIES = [
    "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f",
    "PECR_CANARY_INJECTION_BETA_29a1e0d7a03d4d8c",
    "PECR_CANARY_PG_ADMIN_DELTA_1f2d8c6f87f84b76",
    "PECR_CANARY_PG_SUPPORT_EPSILON_6c6f4f07c04f4f8f",
    "PECR_CANARY_PG_ADMIN_DELTA_2a519d6b7f4348d4",
    "PECR_CANARY_PG_SUPPORT_EPSILON_8d77b9a9d9e24c2b",
]


def scan_everything(path, findings):
    data = path.read_bytes()
    for canary in CANARIES:
        if canary.encode() in data:
            findings.append(f"{path}: {canary}")
    return 1


def main():
    gate = pathlib.Path(sys.argv[1])
    findings = []
    scanned = 0
    # Nothing a service writes on its own may ever hold a canary.
    for pattern in ["logs/*", "metrics/*", "spans.bin", "replays.txt"]:
        for path in sorted(gate.glob(pattern)):
            if path.is_file():
                scanned += scan_everything(path, findings)
    # Responses: only what the caller may not see.
    responses = gate / "responses.jsonl"
    checked = 0
    if responses.exists():
        for number, line in enumerate(responses.read_text(errors="replace").splitlines(), 1):
            record = json.loads(line)
            checked += 1
            for canary in record["forbidden"]:
                if canary in record["body"]:
                    findings.append(
                        f"responses.jsonl:{number}: {record['caller']} saw {canary} ({record['what']})"
                    )
    spans = gate / "spans.bin"
    span_bytes = spans.stat().st_size if spans.exists() else 0
    print(f"scanned {scanned} files, {checked} responses, {span_bytes} bytes of spans")
    if checked == 0:
        findings.append("no response was recorded: the attack suite did not run")
    if span_bytes == 0:
        findings.append("no span was exported: tracing did not reach the sink")
    for finding in findings:
        print(f"FINDING {finding}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
