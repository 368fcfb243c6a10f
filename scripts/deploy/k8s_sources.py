"""What the code, the RUNBOOK and the Dockerfiles say, for the manifests to
be checked against: the settings each service reads, the settings the
RUNBOOK documents, the addresses each service listens on, and what each
image contains."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

SETTING = re.compile(r'"((?:PECR|OTEL)_[A-Z0-9_]+)"')
# A top-level unit-test module: the attribute, then `mod name {` up to the
# closing brace in the first column.
TEST_MODULE = re.compile(r"^#\[cfg\(test\)\]\s*\n(?:#\[[^\n]*\]\s*\n)*mod \w+ \{\n.*?^\}$", re.MULTILINE | re.DOTALL)


def _packages(root: Path) -> dict[str, Path]:
    """Workspace package name -> its folder."""
    workspace = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]
    found = {}
    for member in workspace.get("members", []):
        for folder in sorted(root.glob(member)):
            manifest = folder / "Cargo.toml"
            if manifest.is_file():
                found[tomllib.loads(manifest.read_text())["package"]["name"]] = folder
    return found


def crate_folders(root: Path, service: str) -> list[Path]:
    """pecr-<service> and every workspace crate it depends on (normal
    dependencies only, transitively): the code that runs in its binary."""
    packages = _packages(root)
    start = f"pecr-{service}"
    seen, todo = [], [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in packages:
            continue
        seen.append(name)
        manifest = tomllib.loads((packages[name] / "Cargo.toml").read_text())
        todo.extend(dep for dep in manifest.get("dependencies", {}) if dep in packages)
    return [packages[name] for name in seen]


def settings_read(root: Path, service: str) -> set[str]:
    """Every PECR_*/OTEL_* name that appears as a string literal in the
    non-test Rust code of the service's binary."""
    names = set()
    for folder in crate_folders(root, service):
        for path in sorted((folder / "src").rglob("*.rs")):
            names.update(SETTING.findall(TEST_MODULE.sub("", path.read_text())))
    return names


def addresses(root: Path, service: str) -> dict[str, tuple[str, str]]:
    """ "grpc"/"http" -> (the variable, its default) from the service's env.rs."""
    text = (root / "services" / service / "src" / "env.rs").read_text()
    consts = dict(re.findall(r'pub const ([A-Z0-9_]+): &str = "([^"]*)";', text))
    return {kind: (consts[f"{kind.upper()}_ADDR"], consts[f"DEFAULT_{kind.upper()}_ADDR"]) for kind in ("grpc", "http")}


ALL_SERVICES = ("ledger-writer", "gateway", "controller")


def documented_settings(runbook: str) -> dict[str, set[str]]:
    """service -> the settings RUNBOOK.md documents for it: the
    Configuration table (its "service" column) and the tracing table
    (every service)."""
    documented = {service: set() for service in ALL_SERVICES}
    section = _section(runbook, "## Configuration")
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        for service in _services(cells[1]):
            documented[service].update(names)
    tracing = _section(runbook, "### Turn on tracing")
    for name in re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", tracing, re.MULTILINE):
        for service in ALL_SERVICES:
            documented[service].add(name)
    return documented


def _section(text: str, heading: str) -> str:
    start = text.index(heading + "\n")
    level = heading.split(" ")[0]
    rest = text[start + len(heading) + 1 :]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def _services(cell: str) -> list[str]:
    cell = re.sub(r"\([^)]*\)", "", cell)
    found = []
    for word in (part.strip() for part in cell.split(",")):
        if word in ("all", "all three"):
            return list(ALL_SERVICES)
        if word in ALL_SERVICES:
            found.append(word)
    return found


def dockerfile(root: Path, service: str) -> Path:
    return root / "deploy" / "docker" / f"{service}.Dockerfile"


def image_paths(path: Path) -> list[str]:
    """Where the runtime stage (the last FROM) puts files: its COPY
    destinations and WORKDIR."""
    stage: list[str] = []
    for line in _instructions(path.read_text()):
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage = []
        elif word in ("COPY", "ADD"):
            args = [arg for arg in rest.split() if not arg.startswith("--")]
            if args:
                stage.append(args[-1].rstrip("/") or "/")
        elif word == "WORKDIR":
            stage.append(rest.strip().rstrip("/"))
    return stage


def image_user(path: Path) -> str | None:
    """The runtime stage's USER, if any."""
    user = None
    for line in _instructions(path.read_text()):
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            user = None
        elif word.upper() == "USER":
            user = rest.strip()
    return user


def _instructions(text: str) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append((current + stripped).strip())
        current = ""
    return lines
