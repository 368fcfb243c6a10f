"""The parts of a Dockerfile that name files of the build context.

Enough of the Dockerfile grammar to list them: parser directives (the
escape character), line continuations, comments, flags and the JSON form of
COPY/ADD. What it cannot read (heredocs, variables in a source path) is an
error, so a check never passes on a file it did not understand.

Standard library only.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

DIRECTIVE = re.compile(r"^#\s*([a-zA-Z]+)\s*=\s*(.*?)\s*$")
REMOTE = ("http://", "https://", "git@", "git://")


class DockerfileError(ValueError):
    """A construct this reader does not handle."""


@dataclass(frozen=True)
class Instruction:
    line: int  # where it starts, 1-based
    keyword: str  # upper case
    args: str  # the rest, continuations joined


@dataclass(frozen=True)
class ContextUse:
    """A path the build reads from the context."""

    line: int
    keyword: str
    path: str


def instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, with continuation lines joined."""
    lines = text.splitlines()
    escape = "\\"
    start = 0
    # Parser directives: leading `# key=value` comments, before anything else.
    for index, line in enumerate(lines):
        match = DIRECTIVE.match(line)
        if not match:
            break
        if match.group(1).lower() == "escape":
            escape = match.group(2)
            if escape not in ("\\", "`"):
                raise DockerfileError(f"unsupported escape character {escape!r}")
        start = index + 1

    result: list[Instruction] = []
    pending: list[str] = []
    pending_line = 0
    for number, raw in enumerate(lines[start:], start=start + 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and (not stripped or stripped.startswith("#")):
            # Comments and blank lines inside a continued instruction are dropped.
            continue
        if not pending:
            pending_line = number
        body = raw.rstrip()
        if body.endswith(escape):
            pending.append(body[: -len(escape)])
            continue
        pending.append(body)
        joined = " ".join(part.strip() for part in pending)
        pending = []
        keyword, _, args = joined.partition(" ")
        result.append(Instruction(pending_line, keyword.upper(), args.strip()))
    if pending:
        raise DockerfileError(f"line {pending_line}: continuation runs past the end of the file")
    return result


def split_flags(args: str) -> tuple[dict[str, list[str]], str]:
    """Leading `--name=value` flags (a name may repeat) and the rest."""
    flags: dict[str, list[str]] = {}
    rest = args
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        name, _, value = token[2:].partition("=")
        flags.setdefault(name, []).append(value)
        rest = rest.lstrip()
    return flags, rest


def copy_sources(instruction: Instruction) -> list[str]:
    """Context sources of a COPY or ADD; none when it copies from another
    stage or image (`--from`) or, for ADD, from a URL."""
    flags, rest = split_flags(instruction.args)
    if "from" in flags:
        return []
    if rest.startswith("<<") or "<<" in rest.split(" ", 1)[0]:
        raise DockerfileError(f"line {instruction.line}: heredocs are not read")
    if rest.startswith("["):
        try:
            words = json.loads(rest)
        except json.JSONDecodeError as err:
            raise DockerfileError(f"line {instruction.line}: bad JSON form: {err}") from err
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DockerfileError(f"line {instruction.line}: JSON form must be a list of strings")
    else:
        words = rest.split()
    if len(words) < 2:
        raise DockerfileError(f"line {instruction.line}: {instruction.keyword} needs a source and a destination")
    sources = words[:-1]
    if instruction.keyword == "ADD":
        sources = [s for s in sources if not s.startswith(REMOTE)]
    for source in sources:
        if "$" in source:
            raise DockerfileError(f"line {instruction.line}: variables in source paths are not read ({source})")
    return sources


def bind_mount_sources(instruction: Instruction) -> list[str]:
    """Context paths a RUN bind-mounts (`--mount` of type bind, the default,
    without `from`)."""
    flags, _ = split_flags(instruction.args)
    sources = []
    for spec in flags.get("mount", []):
        options = dict(
            (item.partition("=")[0], item.partition("=")[2]) for item in spec.split(",") if item
        )
        if options.get("type", "bind") != "bind" or "from" in options:
            continue
        sources.append(options.get("source", options.get("src", ".")))
    return sources


def context_uses(text: str) -> list[ContextUse]:
    """Every context path a Dockerfile reads."""
    uses = []
    for instruction in instructions(text):
        if instruction.keyword in ("COPY", "ADD"):
            paths = copy_sources(instruction)
        elif instruction.keyword == "RUN":
            paths = bind_mount_sources(instruction)
        else:
            continue
        uses.extend(ContextUse(instruction.line, instruction.keyword, p) for p in paths)
    return uses


def cargo_packages(text: str) -> list[str]:
    """Packages named with -p/--package in the `cargo build` commands of
    RUN instructions."""
    packages = []
    for instruction in instructions(text):
        if instruction.keyword != "RUN":
            continue
        _, command = split_flags(instruction.args)
        try:
            words = shlex.split(command)
        except ValueError as err:
            raise DockerfileError(f"line {instruction.line}: {err}") from err
        for index, word in enumerate(words):
            if word != "cargo" or words[index + 1 : index + 2] != ["build"]:
                continue
            for arg_index in range(index + 2, len(words)):
                arg = words[arg_index]
                if arg in ("&&", "||", ";", "|"):
                    break
                if arg in ("-p", "--package") and arg_index + 1 < len(words):
                    packages.append(words[arg_index + 1])
                elif arg.startswith("--package="):
                    packages.append(arg.partition("=")[2])
    return packages
