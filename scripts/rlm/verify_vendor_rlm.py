#!/usr/bin/env python3
"""Check vendor/rlm against its MANIFEST.sha256, offline.

Every listed file must exist with the listed sha256, no other file may be
present (Python bytecode caches excepted), and the manifest must name the
pinned package and version of sync_vendor_rlm.py. Exits 1 with one line
per problem otherwise.

Usage:
    python3 scripts/rlm/verify_vendor_rlm.py [--dest DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync_vendor_rlm import (  # noqa: E402
    DEFAULT_DEST,
    MANIFEST_NAME,
    PACKAGE,
    VERSION,
    WHEEL_SHA256,
    sha256_file,
    vendored_files,
)

ENTRY = re.compile(r"^([0-9a-f]{64})  (\S.*)$")
# Files the bridge imports; their absence is called out by name.
REQUIRED = ("LICENSE", "rlm/__init__.py", "rlm/core/types.py", "rlm/utils/parsing.py")


def problems(root: Path) -> list[str]:
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        return [f"{manifest} is missing (run scripts/rlm/sync_vendor_rlm.py)"]
    found: list[str] = []
    header: dict[str, str] = {}
    listed: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("# "):
            key, _, value = line[2:].partition(": ")
            header[key] = value
            continue
        match = ENTRY.match(line)
        if not match:
            found.append(f"{MANIFEST_NAME} line {number} is malformed: {line!r}")
            continue
        listed[match.group(2)] = match.group(1)
    expected_header = {"package": PACKAGE, "version": VERSION, "wheel_sha256": WHEEL_SHA256}
    for key, expected in expected_header.items():
        if header.get(key) != expected:
            found.append(
                f"manifest {key} is {header.get(key)!r}, expected the pinned {expected!r}"
            )
    for name in REQUIRED:
        if name not in listed:
            found.append(f"manifest does not list the required file {name}")
    present = set(vendored_files(root))
    for name, digest in sorted(listed.items()):
        if name not in present:
            found.append(f"missing file: {name}")
        elif sha256_file(root / name) != digest:
            found.append(f"modified file: {name}")
    for name in sorted(present - listed.keys()):
        found.append(f"extra file not in the manifest: {name}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="default: vendor/rlm")
    args = parser.parse_args(argv)
    found = problems(args.dest)
    if found:
        print(f"vendored RLM verification FAILED for {args.dest}:", file=sys.stderr)
        for problem in found:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"vendored RLM verification passed: {PACKAGE} {VERSION} in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
