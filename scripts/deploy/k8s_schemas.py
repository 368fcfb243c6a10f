"""Validating rendered objects against the Kubernetes API schemas, offline.

Built-in kinds: kubernetes-validate's bundled schemas, strict (an unknown
field is an error), for the oldest and the newest Kubernetes release the
manifests support. Custom resources: the schemas vendored under
deploy/schemas/k8s-crds/<group>/<version>/<kind>.json, subsets of the
upstream CRDs covering the fields these manifests use.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError

# preStop `sleep` needs 1.30; the newest release kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def _label(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


class Validator:
    def __init__(self, crd_dir: Path):
        self.crd_dir = crd_dir

    def crd_schema(self, api_version: str, kind: str) -> dict | None:
        group, _, version = api_version.rpartition("/")
        path = self.crd_dir / group / version / f"{kind.lower()}.json"
        if not group or not path.is_file():
            return None
        return json.loads(path.read_text())

    def validate(self, obj: dict) -> list[str]:
        """Every schema violation of `obj`, empty when it is valid."""
        errors = []
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except SchemaNotFoundError:
                return self._validate_custom(obj)
            except jsonschema.ValidationError as err:
                where = "/".join(str(part) for part in err.absolute_path)
                errors.append(f"{_label(obj)} (Kubernetes {version}) at {where or '.'}: {err.message}")
        return errors

    def _validate_custom(self, obj: dict) -> list[str]:
        schema = self.crd_schema(obj.get("apiVersion", ""), obj.get("kind", ""))
        if schema is None:
            return [
                f"{_label(obj)}: no schema for {obj.get('apiVersion')} {obj.get('kind')}; "
                f"vendor one under {self.crd_dir}"
            ]
        validator = jsonschema.Draft202012Validator(schema)
        return [
            f"{_label(obj)} at {'/'.join(str(p) for p in err.absolute_path) or '.'}: {err.message}"
            for err in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        ]
