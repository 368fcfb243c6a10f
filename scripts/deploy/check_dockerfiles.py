#!/usr/bin/env python3
"""Checks what the images promise a cluster, for every
deploy/docker/<service>.Dockerfile:

* every base image is pinned by tag and digest (`name:tag@sha256:...`);
* the runtime stage is not the builder and runs nothing (no RUN: nothing is
  installed into it, and its distroless base has no shell to run with);
* the last USER is numeric and not root, so `runAsNonRoot` can verify it;
* the HEALTHCHECK is exec form, runs pecr-probe on the service's HTTP port
  (the port of DEFAULT_HTTP_ADDR in services/<service>/src/env.rs), and the
  probe and the service binary are copied from the builder;
* EXPOSE lists the service's default HTTP and gRPC ports, and the
  ENTRYPOINT is exec form and runs pecr-<service>.

Exit status 0 when all hold, 1 otherwise. Standard library only.

Usage: check_dockerfiles.py [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dockerfile import DockerfileError, Instruction, instructions, split_flags  # noqa: E402
from pecr_services import service_addrs  # noqa: E402

PINNED = re.compile(r"^[a-z0-9][a-z0-9./_-]*:[A-Za-z0-9_][A-Za-z0-9_.-]*@sha256:[0-9a-f]{64}$")
NUMERIC_USER = re.compile(r"^(\d+)(?::(\d+))?$")
PROBE = "/usr/local/bin/pecr-probe"


def stages(found: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in found:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def exec_form(args: str) -> list[str] | None:
    try:
        words = json.loads(args)
    except json.JSONDecodeError:
        return None
    if isinstance(words, list) and all(isinstance(w, str) for w in words):
        return words
    return None


def copied_from_builder(stage: list[Instruction]) -> set[str]:
    """Destination paths of the files COPY --from puts in a stage."""
    paths = set()
    for instruction in stage:
        if instruction.keyword != "COPY":
            continue
        flags, rest = split_flags(instruction.args)
        if "from" not in flags:
            continue
        words = exec_form(rest) or rest.split()
        *sources, dest = words
        for source in sources:
            if dest.endswith("/"):
                paths.add(dest + source.rsplit("/", 1)[-1])
            else:
                paths.add(dest)
    return paths


def check(root: Path, dockerfile: Path) -> list[str]:
    name = dockerfile.relative_to(root).as_posix()
    service = dockerfile.name.removesuffix(".Dockerfile")
    problems: list[str] = []
    try:
        found = instructions(dockerfile.read_text(encoding="utf-8"))
        addrs = service_addrs(root, service)
    except (DockerfileError, OSError, ValueError) as err:
        return [f"{name}: {err}"]

    all_stages = stages(found)
    if len(all_stages) < 2:
        return [f"{name}: not a multi-stage build (builder and runtime)"]
    for stage in all_stages:
        base = split_flags(stage[0].args)[1].split()[0]
        if not PINNED.match(base):
            problems.append(f"{name}:{stage[0].line}: base image {base} is not pinned as name:tag@sha256:digest")
    builder_bases = {split_flags(s[0].args)[1].split()[0] for s in all_stages[:-1]}
    runtime = all_stages[-1]
    runtime_base = split_flags(runtime[0].args)[1].split()[0]
    if runtime_base in builder_bases:
        problems.append(f"{name}: the runtime stage starts from the builder's image")

    def last(keyword: str) -> Instruction | None:
        hits = [i for i in runtime if i.keyword == keyword]
        return hits[-1] if hits else None

    for instruction in runtime:
        if instruction.keyword == "RUN":
            problems.append(f"{name}:{instruction.line}: the runtime stage runs a command")

    user = last("USER")
    match = NUMERIC_USER.match(user.args) if user else None
    if not match:
        problems.append(f"{name}: the runtime stage's USER is not numeric uid[:gid]")
    elif int(match.group(1)) == 0 or (match.group(2) is not None and int(match.group(2)) == 0):
        problems.append(f"{name}: the runtime stage's USER is root")

    copied = copied_from_builder(runtime)
    health = last("HEALTHCHECK")
    if health is None:
        problems.append(f"{name}: no HEALTHCHECK")
    else:
        _, rest = split_flags(health.args)
        keyword, _, command = rest.partition(" ")
        want = [PROBE, str(addrs.http_port)]
        if keyword.upper() != "CMD" or exec_form(command.strip()) != want:
            problems.append(
                f"{name}:{health.line}: HEALTHCHECK must be CMD {json.dumps(want)} "
                f"(pecr-probe on the HTTP port of {addrs.http_env})"
            )
        if PROBE not in copied:
            problems.append(f"{name}: {PROBE} is not copied from the builder")

    entrypoint = last("ENTRYPOINT")
    binary = f"/usr/local/bin/{addrs.binary}"
    if entrypoint is None or exec_form(entrypoint.args) != [binary]:
        problems.append(f"{name}: ENTRYPOINT must be [{json.dumps(binary)}]")
    if binary not in copied:
        problems.append(f"{name}: {binary} is not copied from the builder")

    exposed = {
        word.split("/")[0] for i in runtime if i.keyword == "EXPOSE" for word in i.args.split()
    }
    for port in (addrs.http_port, addrs.grpc_port):
        if str(port) not in exposed:
            problems.append(f"{name}: EXPOSE lacks port {port}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args()
    root = args.root.resolve()
    dockerfiles = sorted((root / "deploy/docker").glob("*.Dockerfile"))
    problems = [p for dockerfile in dockerfiles for p in check(root, dockerfile)]
    if not dockerfiles:
        problems.append("no Dockerfiles in deploy/docker")
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"  image policy: {len(dockerfiles)} Dockerfiles ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
