#!/usr/bin/env python3
"""Checks that each image's build context holds what its build needs,
without a Docker engine.

For every deploy/docker/*.Dockerfile (context: the repository root):

1. copies the tree as the build would see it through its ignore file
   (`<Dockerfile>.dockerignore` or the root `.dockerignore`);
2. runs `cargo metadata --locked --offline --format-version 1 --no-deps` in
   the copy, which fails when a workspace member or Cargo.lock is missing,
   and compares its packages with the full tree's;
3. checks that every path the Dockerfile COPYs, ADDs or bind-mounts from
   the context exists in the copy;
4. checks that the packages its `cargo build -p` names are workspace
   packages, and that the files those packages and their workspace
   dependencies compile in (`include_str!`, `include_bytes!`,
   `embed_migrations!` and the relative paths of build scripts) are in the
   copy.

Exit status 0 when every check passes, 1 otherwise. Standard library only.

Usage: check_build_context.py [--root DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dockerfile import DockerfileError, cargo_packages, context_uses  # noqa: E402
from dockerignore import Matcher, PatternError, ignore_file_for  # noqa: E402

DOCKERFILES = "deploy/docker/*.Dockerfile"
# A file's compile-time inputs: the literal argument of these macros...
FILE_MACRO = re.compile(r'\binclude_(?:str|bytes)!\(\s*"([^"]+)"\s*\)')
# ...resolved from the package root for this one...
ROOT_MACRO = re.compile(r'\bembed_migrations!\(\s*"([^"]+)"\s*\)')
# ...and, in build scripts, relative paths out of the package.
BUILD_PATH = re.compile(r'"(\.\./[^"]*)"')
GLOB_CHARS = set("*?[")


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def note(self, message: str) -> None:
        self.notes.append(message)


def copy_context(root: Path, matcher: Matcher, dest: Path) -> int:
    """Copies what the context keeps of `root` into `dest`; returns the
    number of files. Symlinks are copied as links, as the context sends them."""
    count = 0
    for current, dirs, files in os.walk(root):
        rel_dir = Path(current).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        kept_dirs = []
        for name in dirs:
            rel = prefix + name
            if (Path(current) / name).is_symlink():
                # A link to a directory is sent as a link, like a file.
                files.append(name)
                continue
            excluded = matcher.excluded(rel)
            # An excluded directory is walked only if an exception may
            # bring something under it back (never .git or target/).
            if excluded and not matcher.may_keep_under(rel):
                continue
            kept_dirs.append(name)
            if not excluded:
                (dest / rel).mkdir(parents=True, exist_ok=True)
        dirs[:] = kept_dirs
        for name in files:
            rel = prefix + name
            if matcher.excluded(rel):
                continue
            source = Path(current) / name
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                os.symlink(os.readlink(source), target)
            else:
                shutil.copy2(source, target)
            count += 1
    return count


def cargo_metadata(workspace: Path) -> dict:
    """`cargo metadata` of the workspace at `workspace` (raises on failure)."""
    result = subprocess.run(
        [
            "cargo",
            "metadata",
            "--locked",
            "--offline",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
            str(workspace / "Cargo.toml"),
        ],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip() or f"cargo metadata exited {result.returncode}")
    return json.loads(result.stdout)


def package_names(metadata: dict) -> set[str]:
    return {package["name"] for package in metadata["packages"]}


def exists_in(copy: Path, source: str) -> bool:
    """Whether a COPY source exists in the copied context (a pattern must
    match at least one path, as the build requires)."""
    source = source.lstrip("/")
    if not GLOB_CHARS & set(source):
        return (copy / source).exists() or (copy / source).is_symlink()
    return any(copy.glob(source))


def workspace_closure(metadata: dict, roots: list[str]) -> list[dict]:
    """The workspace packages `roots` build with: themselves and their
    normal and build dependencies inside the workspace, transitively."""
    by_name = {package["name"]: package for package in metadata["packages"]}
    seen: dict[str, dict] = {}
    todo = [name for name in roots if name in by_name]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        package = by_name[name]
        seen[name] = package
        for dep in package["dependencies"]:
            if dep.get("kind") == "dev" or "path" not in dep:
                continue
            if dep["name"] in by_name:
                todo.append(dep["name"])
    return list(seen.values())


def is_test_source(path: Path, package_dir: Path) -> bool:
    parts = path.relative_to(package_dir).parts
    return (
        parts[0] in ("tests", "benches", "examples")
        or "tests" in parts[1:-1]
        or path.name == "tests.rs"
    )


def compile_inputs(package: dict) -> list[tuple[Path, Path]]:
    """(file that names it, input path) for every compile-time input of a
    package's non-test sources and build script."""
    package_dir = Path(package["manifest_path"]).parent
    inputs = []
    for source in sorted(package_dir.rglob("*.rs")):
        if "target" in source.relative_to(package_dir).parts or is_test_source(source, package_dir):
            continue
        text = source.read_text(encoding="utf-8", errors="replace")
        for literal in FILE_MACRO.findall(text):
            inputs.append((source, (source.parent / literal).resolve()))
        for literal in ROOT_MACRO.findall(text):
            inputs.append((source, (package_dir / literal).resolve()))
        if source == package_dir / "build.rs":
            for literal in BUILD_PATH.findall(text):
                inputs.append((source, (package_dir / literal).resolve()))
    return inputs


def check_dockerfile(
    root: Path, dockerfile: Path, copy: Path, root_metadata: dict, report: Report
) -> None:
    name = dockerfile.relative_to(root).as_posix()
    try:
        text = dockerfile.read_text(encoding="utf-8")
        uses = context_uses(text)
        packages = cargo_packages(text)
    except (DockerfileError, OSError) as err:
        report.fail(f"{name}: {err}")
        return

    for use in uses:
        if not exists_in(copy, use.path):
            report.fail(f"{name}:{use.line}: {use.keyword} {use.path}: not in the build context")

    workspace = package_names(root_metadata)
    for package in packages:
        if package not in workspace:
            report.fail(f"{name}: cargo build -p {package}: no such workspace package")
    checked = 0
    for package in workspace_closure(root_metadata, packages):
        for named_in, path in compile_inputs(package):
            if not path.exists():
                continue
            try:
                rel = path.relative_to(root)
            except ValueError:
                continue
            checked += 1
            if not (copy / rel).exists():
                report.fail(
                    f"{name}: {rel.as_posix()} (compiled in by "
                    f"{named_in.relative_to(root).as_posix()}): not in the build context"
                )
    report.note(
        f"{name}: {len(uses)} context paths, packages {', '.join(packages) or '-'}, "
        f"{checked} compile-time inputs"
    )


def run(root: Path, keep: bool) -> Report:
    report = Report()
    dockerfiles = sorted(root.glob(DOCKERFILES))
    if not dockerfiles:
        report.fail(f"no Dockerfiles match {DOCKERFILES}")
        return report
    try:
        root_metadata = cargo_metadata(root)
    except RuntimeError as err:
        report.fail(f"cargo metadata of the repository itself failed: {err}")
        return report
    members = package_names(root_metadata)

    scratch = Path(tempfile.mkdtemp(prefix="pecr-build-context-"))
    copies: dict[Path | None, Path] = {}
    try:
        for dockerfile in dockerfiles:
            ignore = ignore_file_for(root, dockerfile)
            if ignore not in copies:
                try:
                    matcher = Matcher.from_text(ignore.read_text(encoding="utf-8") if ignore else "")
                except PatternError as err:
                    report.fail(f"{ignore}: {err}")
                    continue
                copy = scratch / f"context-{len(copies)}"
                copy.mkdir()
                files = copy_context(root, matcher, copy)
                copies[ignore] = copy
                label = ignore.relative_to(root).as_posix() if ignore else "no ignore file"
                try:
                    metadata = cargo_metadata(copy)
                except RuntimeError as err:
                    report.fail(f"cargo metadata in the context of {label} failed:\n{err}")
                else:
                    missing = sorted(members - package_names(metadata))
                    if missing:
                        report.fail(f"{label}: workspace packages missing: {', '.join(missing)}")
                    if not (copy / "Cargo.lock").is_file():
                        report.fail(f"{label}: Cargo.lock is not in the build context")
                    report.note(
                        f"context through {label}: {files} files, "
                        f"{len(package_names(metadata))} workspace packages load"
                    )
            check_dockerfile(root, dockerfile, copies[ignore], root_metadata, report)
    finally:
        if keep:
            report.note(f"copies kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parents[2],
        help="repository root (default: this script's)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the copied contexts")
    args = parser.parse_args()
    report = run(args.root.resolve(), args.keep)
    for note in report.notes:
        print(f"  {note}")
    for failure in report.failures:
        print(f"FAIL {failure}", file=sys.stderr)
    if report.failures:
        print(f"build context: {len(report.failures)} problem(s)", file=sys.stderr)
        return 1
    print("build context: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
