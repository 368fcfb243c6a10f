#!/usr/bin/env python3
"""Lints deploy/docker/*.Dockerfile with checkov (pinned in scripts/tools.sh).

Runs `checkov -d deploy/docker --framework dockerfile` offline
(`--skip-download`: no guideline or policy download), skipping only the
accepted findings below, each with its reason in docs/decisions.md
("Images and docker compose"). Fails on any other finding, and also when
checkov did not scan every Dockerfile, so a file it stopped recognizing
cannot pass unseen.

Usage: lint_dockerfiles.py [--checkov PATH] [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

DOCKER_DIR = "deploy/docker"

# Check id -> one-line reason; the full reason is in docs/decisions.md.
# None are accepted today: every image passes every Dockerfile check.
ACCEPTED: dict[str, str] = {}


def run_checkov(checkov: str, root: Path) -> list[dict]:
    command = [
        checkov,
        "-d",
        DOCKER_DIR,
        "--framework",
        "dockerfile",
        "--skip-download",
        "--output",
        "json",
    ]
    if ACCEPTED:
        command += ["--skip-check", ",".join(sorted(ACCEPTED))]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    # checkov exits 1 when a check fails; the JSON says which, so the
    # verdict comes from the report, and only unreadable output is fatal.
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError as err:
        raise RuntimeError(
            f"checkov printed no JSON report (exit {result.returncode}): {err}\n{result.stderr.strip()}"
        ) from err
    return report if isinstance(report, list) else [report]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkov", default="checkov", help="checkov executable")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args()
    root = args.root.resolve()

    dockerfiles = sorted(p.name for p in (root / DOCKER_DIR).glob("*.Dockerfile"))
    try:
        reports = run_checkov(args.checkov, root)
    except (OSError, RuntimeError) as err:
        print(f"FAIL checkov: {err}", file=sys.stderr)
        return 1

    scanned: set[str] = set()
    failed: list[str] = []
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for report in reports:
        if report.get("check_type") != "dockerfile":
            continue
        results = report.get("results", {})
        for kind, key in (("passed", "passed_checks"), ("failed", "failed_checks"), ("skipped", "skipped_checks")):
            for check in results.get(key, []):
                counts[kind] += 1
                scanned.add(Path(check["file_path"]).name)
                if kind == "failed":
                    failed.append(
                        f"{DOCKER_DIR}/{Path(check['file_path']).name}: {check['check_id']} {check['check_name']}"
                    )
        parse_errors = report.get("summary", {}).get("parsing_errors", 0)
        if parse_errors:
            failed.append(f"checkov could not parse {parse_errors} Dockerfile(s)")

    unscanned = sorted(set(dockerfiles) - scanned)
    for name in unscanned:
        failed.append(f"{DOCKER_DIR}/{name}: checkov ran no check on it")
    if not dockerfiles:
        failed.append(f"no Dockerfiles in {DOCKER_DIR}")

    for line in failed:
        print(f"FAIL {line}", file=sys.stderr)
    print(
        f"  checkov: {len(dockerfiles)} Dockerfiles, {counts['passed']} checks passed, "
        f"{counts['failed']} failed, {counts['skipped']} skipped as accepted"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
