"""Rendering the kustomize overlays and reading what the rendered objects say.

Everything here works on plain dicts as `kubectl kustomize` prints them, so
the checks read exactly what a cluster would be given.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml


def render(kustomization: Path) -> list[dict]:
    """The objects `kubectl kustomize <dir>` prints, in order."""
    result = subprocess.run(
        ["kubectl", "kustomize", str(kustomization)],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {kustomization} failed:\n{result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj.get("kind") == kind]


def find(objects: list[dict], kind: str, name: str) -> dict | None:
    for obj in by_kind(objects, kind):
        if obj["metadata"]["name"] == name:
            return obj
    return None


def app_name(labels: dict | None) -> str | None:
    """The workload a label set or selector names, PECR's or PostgreSQL's."""
    labels = labels or {}
    if "app.kubernetes.io/name" in labels:
        return labels["app.kubernetes.io/name"]
    if "cnpg.io/cluster" in labels:
        return labels["cnpg.io/cluster"]
    return None


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as the services read PECR_CONFIG_PATH: blank lines and
    `#` comments skipped, key and value trimmed."""
    values = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"line {number} is not KEY=VALUE")
        values[key.strip()] = value.strip()
    return values


def secret_files(secret: dict) -> dict[str, str]:
    """A Secret's files, decoded (kustomize renders generated data as base64)."""
    files = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
    files.update(secret.get("stringData") or {})
    return files


@dataclass
class Container:
    """One service's container with its environment resolved the way the
    process sees it: env over envFrom, and the PECR_CONFIG_PATH file under
    both."""

    deployment: dict
    spec: dict
    env: dict[str, str] = field(default_factory=dict)
    env_sources: dict[str, str] = field(default_factory=dict)
    file_env: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.deployment["metadata"]["name"]

    @property
    def pod_spec(self) -> dict:
        return self.deployment["spec"]["template"]["spec"]

    def value(self, key: str) -> str | None:
        """What the service reads for `key`: the environment wins, a blank
        value counts as unset (the services' rule)."""
        raw = self.env.get(key)
        if raw is None:
            raw = self.file_env.get(key)
        if raw is None or not raw.strip():
            return None
        return raw.strip()

    def all_keys(self) -> set[str]:
        return set(self.env) | set(self.file_env)

    def ports(self) -> dict[str, int]:
        return {port["name"]: port["containerPort"] for port in self.spec.get("ports", [])}

    def mounts(self) -> dict[str, dict]:
        """mountPath -> the volume mounted there."""
        volumes = {volume["name"]: volume for volume in self.pod_spec.get("volumes", [])}
        return {mount["mountPath"]: volumes.get(mount["name"], {}) for mount in self.spec.get("volumeMounts", [])}


def containers(objects: list[dict]) -> list[Container]:
    """The first container of every Deployment, environment resolved."""
    found = []
    for deployment in by_kind(objects, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]["containers"][0]
        container = Container(deployment=deployment, spec=spec)
        for source in spec.get("envFrom", []):
            ref = source.get("configMapRef") or source.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in source else "Secret"
            obj = find(objects, kind, ref["name"])
            if obj is None:
                container.problems.append(f"{container.name}: envFrom {kind} {ref['name']} is not in the manifests")
                continue
            data = (obj.get("data") or {}) if kind == "ConfigMap" else secret_files(obj)
            for key, value in data.items():
                container.env[key] = value
                container.env_sources[key] = f"{kind} {ref['name']}"
        for item in spec.get("env", []):
            container.env[item["name"]] = item.get("value", "")
            container.env_sources[item["name"]] = "env"
        config_path = container.value("PECR_CONFIG_PATH")
        if config_path:
            container.file_env = _config_file(container, config_path, objects)
        found.append(container)
    return found


def _config_file(container: Container, path: str, objects: list[dict]) -> dict[str, str]:
    """The PECR_CONFIG_PATH file, read from the Secret or ConfigMap mounted
    at its folder."""
    folder, _, file_name = path.rpartition("/")
    volume = container.mounts().get(folder)
    if volume is None:
        container.problems.append(f"{container.name}: PECR_CONFIG_PATH {path} is in no mounted volume")
        return {}
    if "secret" in volume:
        obj = find(objects, "Secret", volume["secret"]["secretName"])
        files = secret_files(obj) if obj else None
    elif "configMap" in volume:
        obj = find(objects, "ConfigMap", volume["configMap"]["name"])
        files = (obj.get("data") or {}) if obj else None
    else:
        files = None
    if files is None or file_name not in files:
        container.problems.append(
            f"{container.name}: PECR_CONFIG_PATH {path} is not a file of the volume mounted there"
        )
        return {}
    try:
        return parse_env_file(files[file_name])
    except ValueError as err:
        container.problems.append(f"{container.name}: PECR_CONFIG_PATH {path}: {err}")
        return {}
