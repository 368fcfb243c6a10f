#!/usr/bin/env python3
"""Checks docker-compose.yml against the images and the service code (the
compose schema itself is checked by check-jsonschema in
scripts/deploy-check.sh):

* every service that is built builds from deploy/docker/<service>.Dockerfile
  with the repository root as context;
* its healthcheck is the image's: ["CMD", "/usr/local/bin/pecr-probe",
  "<port>"], with the port its HTTP address variable sets (the variable
  and the default come from services/<service>/src/env.rs);
* a built service waits for the PECR services it depends on to be healthy.

Needs PyYAML (the tools virtualenv has it). Exit status 0 when all hold.

Usage: check_compose.py [--root DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402

from pecr_services import port_of, service_addrs  # noqa: E402

COMPOSE = "docker-compose.yml"
PROBE = "/usr/local/bin/pecr-probe"


def check(root: Path) -> tuple[list[str], int]:
    document = yaml.safe_load((root / COMPOSE).read_text(encoding="utf-8"))
    services = document.get("services", {})
    built = {name: spec for name, spec in services.items() if "build" in spec}
    problems: list[str] = []
    if not built:
        problems.append(f"{COMPOSE}: no service is built from this repository")
    for name, spec in built.items():
        where = f"{COMPOSE}: {name}"
        build = spec["build"]
        want_dockerfile = f"deploy/docker/{name}.Dockerfile"
        if not isinstance(build, dict) or build.get("context") != "." or build.get("dockerfile") != want_dockerfile:
            problems.append(f"{where}: must build {want_dockerfile} with context .")
        if not (root / want_dockerfile).is_file():
            problems.append(f"{where}: {want_dockerfile} does not exist")
            continue
        try:
            addrs = service_addrs(root, name)
        except (OSError, ValueError) as err:
            problems.append(f"{where}: {err}")
            continue
        env = spec.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.partition("=")[::2] for item in env)
        port = port_of(env[addrs.http_env]) if addrs.http_env in env else addrs.http_port
        test = (spec.get("healthcheck") or {}).get("test")
        want = ["CMD", PROBE, str(port)]
        if test != want:
            problems.append(f"{where}: healthcheck test must be {want} (got {test})")
        depends = spec.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {dep: {} for dep in depends}
        for dep, condition in depends.items():
            if dep in built and (condition or {}).get("condition") != "service_healthy":
                problems.append(f"{where}: depends on {dep} without condition service_healthy")
    return problems, len(built)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args()
    problems, count = check(args.root.resolve())
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"  compose: {count} built services probe /readyz on their HTTP ports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
