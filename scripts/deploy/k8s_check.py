"""Renders every Kubernetes overlay of deploy/k8s and checks each rendering:
the Kubernetes schemas (and the vendored CRD schemas), agreement with the
code, the RUNBOOK and the Dockerfiles, and the privilege boundary. Also
renders an overlay written by scripts/k8s-secrets.sh and checks that its
secrets fit together. Writes the renderings to --out for checkov.

Exit status 0 when every check holds, 1 otherwise."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

import k8s_boundary
import k8s_consistency
from k8s_manifests import containers, render
from k8s_schemas import Validator
from k8s_secrets_check import check_generated_secrets

# Mesh components combine with the PostgreSQL one; each pair is rendered too.
MESH_COMPONENTS = ("linkerd", "istio", "rustls-mtls")
DATABASE_COMPONENT = "postgres-cnpg"


def renderings(root: Path, scratch: Path) -> dict[str, Path]:
    """name -> kustomization folder: the base, every overlay, and each mesh
    component together with the PostgreSQL component."""
    k8s = root / "deploy" / "k8s"
    found = {"base": k8s / "base"}
    for overlay in sorted((k8s / "overlays").iterdir()):
        if (overlay / "kustomization.yaml").is_file():
            found[overlay.name] = overlay
    for mesh in MESH_COMPONENTS:
        folder = scratch / f"{mesh}+{DATABASE_COMPONENT}"
        folder.mkdir(parents=True, exist_ok=True)

        def rel(path: Path, folder: Path = folder) -> str:
            return os.path.relpath(path, folder)

        (folder / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "namespace": "pecr",
                    "resources": [rel(k8s / "base")],
                    "components": [rel(k8s / "components" / mesh), rel(k8s / "components" / DATABASE_COMPONENT)],
                }
            )
        )
        found[folder.name] = folder
    return found


def check_rendering(objects: list[dict], root: Path, runbook: str, validator: Validator) -> list[str]:
    problems = [error for obj in objects for error in validator.validate(obj)]
    problems += k8s_consistency.check_all(objects, root, runbook)
    problems += k8s_boundary.check_network_policies(objects)
    problems += k8s_boundary.check_istio(objects)
    return problems


def check_accepted_findings(root: Path) -> list[str]:
    """Every checkov finding skipped for the manifests is explained in
    docs/decisions.md."""
    config = yaml.safe_load((root / "deploy" / "k8s" / "checkov.yaml").read_text())
    decisions = (root / "docs" / "decisions.md").read_text()
    return [
        f"deploy/k8s/checkov.yaml skips {check}, which docs/decisions.md does not explain"
        for check in config.get("skip-check", [])
        if f"`{check}`" not in decisions
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--out", type=Path, required=True, help="folder for the rendered manifests")
    args = parser.parse_args()
    root = args.root
    runbook = (root / "RUNBOOK.md").read_text()
    validator = Validator(root / "deploy" / "schemas" / "k8s-crds")
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.yaml"):
        old.unlink()

    failures = 0
    (root / "target").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root / "target") as scratch:
        targets = renderings(root, Path(scratch))
        private = Path(scratch) / "private"
        subprocess.run(
            ["bash", str(root / "scripts" / "k8s-secrets.sh"), "--dir", str(private)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for name, folder in {**targets, "k8s-secrets.sh output": private}.items():
            try:
                objects = render(folder)
            except RuntimeError as err:
                print(f"FAIL {name}: {err}")
                failures += 1
                continue
            problems = check_rendering(objects, root, runbook, validator)
            if folder == private:
                problems += check_generated_secrets(containers(objects), objects)
            else:
                (args.out / f"{name}.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
            status = "ok  " if not problems else "FAIL"
            print(f"{status} {name}: {len(objects)} objects")
            for problem in problems:
                print(f"     - {problem}")
            failures += bool(problems)
    for problem in check_accepted_findings(root):
        print(f"FAIL {problem}")
        failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
