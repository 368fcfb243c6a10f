#!/usr/bin/env python3
"""Vendor the pinned RLM package (PyPI `rlms`) into vendor/rlm.

The wheel is downloaded with pip (or taken from --wheel for offline use),
checked against the pinned sha256, and its `rlm/` package is extracted to
vendor/rlm/rlm together with the license. vendor/rlm/MANIFEST.sha256 then
lists the sha256 of every vendored file; verify_vendor_rlm.py checks it.

Layout (the controller image copies vendor/rlm as is):
    vendor/rlm/LICENSE
    vendor/rlm/MANIFEST.sha256
    vendor/rlm/rlm/...          the package, unmodified

Usage:
    python3 scripts/rlm/sync_vendor_rlm.py [--wheel PATH] [--dest DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

PACKAGE = "rlms"
VERSION = "0.1.3"
WHEEL_NAME = f"{PACKAGE}-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "fac541ff745242540fee47b6e41a74c847fd7022091330dad7844d413eb5944f"
# Inside the wheel: the importable package and the license file.
PACKAGE_DIR = "rlm"
LICENSE_MEMBER = f"{PACKAGE}-{VERSION}.dist-info/licenses/LICENSE"
MANIFEST_NAME = "MANIFEST.sha256"

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DEST = REPO_ROOT / "vendor" / "rlm"


class SyncError(Exception):
    pass


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(into: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download",
        f"{PACKAGE}=={VERSION}",
        "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
        "--dest", str(into),
    ]
    print("running:", " ".join(command))
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        raise SyncError(f"pip download failed with status {completed.returncode}")
    wheel = into / WHEEL_NAME
    if not wheel.is_file():
        raise SyncError(f"pip did not produce {WHEEL_NAME}")
    return wheel


def safe_relative(name: str) -> PurePosixPath:
    """A wheel member name as a relative path that stays inside the target."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise SyncError(f"unsafe path in wheel: {name!r}")
    return path


def extract(wheel: Path, staging: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        if LICENSE_MEMBER not in names:
            raise SyncError(f"{LICENSE_MEMBER} missing from the wheel")
        for name in names:
            relative = safe_relative(name)
            if name.endswith("/"):
                continue
            if relative.parts[0] == PACKAGE_DIR:
                target = staging.joinpath(*relative.parts)
            elif name == LICENSE_MEMBER:
                target = staging / "LICENSE"
            else:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(name) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink)
    if not (staging / PACKAGE_DIR / "__init__.py").is_file():
        raise SyncError(f"the wheel has no {PACKAGE_DIR}/__init__.py")


def vendored_files(root: Path) -> list[str]:
    """Every vendored file, relative and sorted, without the manifest itself
    and without Python bytecode caches."""
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if "__pycache__" in relative.parts or path.is_dir():
            continue
        if relative.as_posix() == MANIFEST_NAME:
            continue
        files.append(relative.as_posix())
    return sorted(files)


def manifest_text(root: Path) -> str:
    lines = [
        f"# package: {PACKAGE}",
        f"# version: {VERSION}",
        f"# wheel: {WHEEL_NAME}",
        f"# wheel_sha256: {WHEEL_SHA256}",
    ]
    lines += [f"{sha256_file(root / name)}  {name}" for name in vendored_files(root)]
    return "\n".join(lines) + "\n"


def install(staging: Path, dest: Path) -> None:
    """Swaps staging in for dest, restoring the old tree on failure."""
    backup = dest.with_name(dest.name + ".sync-backup")
    if backup.exists():
        shutil.rmtree(backup)
    if dest.exists():
        dest.rename(backup)
    try:
        staging.rename(dest)
    except OSError:
        if backup.exists():
            backup.rename(dest)
        raise
    if backup.exists():
        shutil.rmtree(backup)


def sync(wheel: Path | None, dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="pecr-rlm-sync-") as scratch:
        scratch_path = Path(scratch)
        if wheel is None:
            wheel = download_wheel(scratch_path / "download")
        actual = sha256_file(wheel)
        if actual != WHEEL_SHA256:
            raise SyncError(
                f"{wheel} has sha256 {actual}, expected the pinned {WHEEL_SHA256}"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Stage next to dest so the final swap is a rename on one filesystem.
        staging = Path(tempfile.mkdtemp(prefix=".rlm-staging-", dir=dest.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; the tree is meant to be read by all
        try:
            extract(wheel, staging)
            (staging / MANIFEST_NAME).write_text(manifest_text(staging), encoding="utf-8")
            install(staging, dest)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    print(f"vendored {PACKAGE} {VERSION} into {dest} (wheel sha256 {WHEEL_SHA256})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help=f"a local {WHEEL_NAME} (offline)")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="default: vendor/rlm")
    args = parser.parse_args(argv)
    try:
        sync(args.wheel, args.dest)
    except (SyncError, OSError) as err:
        print(f"sync_vendor_rlm: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
