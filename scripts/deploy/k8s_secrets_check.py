"""Checks of an overlay written by scripts/k8s-secrets.sh: the secrets the
services share agree, and satisfy what the services demand of them."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from k8s_manifests import Container, by_kind

MIN_TOKEN_LEN = 32


def check_generated_secrets(containers: list[Container], objects: list[dict]) -> list[str]:
    by_name = {c.name: c for c in containers}
    gateway, controller, ledger = (by_name.get(f"pecr-{s}") for s in ("gateway", "controller", "ledger-writer"))
    if not (gateway and controller and ledger):
        return ["the overlay lacks one of the three services"]
    problems = []
    tokens = {
        "PECR_LEDGER_GATEWAY_TOKEN": ledger.value("PECR_LEDGER_GATEWAY_TOKEN"),
        "PECR_LEDGER_CONTROLLER_TOKEN": ledger.value("PECR_LEDGER_CONTROLLER_TOKEN"),
        "PECR_LEDGER_AUDITOR_TOKEN": ledger.value("PECR_LEDGER_AUDITOR_TOKEN"),
    }
    for key, token in tokens.items():
        if not token or len(token) < MIN_TOKEN_LEN:
            problems.append(f"ledger-writer's {key} is shorter than {MIN_TOKEN_LEN} characters")
    if len(set(tokens.values())) != len(tokens):
        problems.append("ledger-writer's service tokens are not all different")
    if gateway.value("PECR_LEDGER_TOKEN") != tokens["PECR_LEDGER_GATEWAY_TOKEN"]:
        problems.append("the gateway's PECR_LEDGER_TOKEN is not ledger-writer's PECR_LEDGER_GATEWAY_TOKEN")
    if controller.value("PECR_LEDGER_TOKEN") != tokens["PECR_LEDGER_CONTROLLER_TOKEN"]:
        problems.append("the controller's PECR_LEDGER_TOKEN is not ledger-writer's PECR_LEDGER_CONTROLLER_TOKEN")
    shared = gateway.value("PECR_LOCAL_AUTH_SHARED_SECRET")
    if not shared or shared != controller.value("PECR_LOCAL_AUTH_SHARED_SECRET"):
        problems.append("the gateway and the controller do not share one PECR_LOCAL_AUTH_SHARED_SECRET")
    roles = _role_passwords(objects)
    for container, key in ((gateway, "PECR_DB_URL"), (ledger, "PECR_DB_URL"), (ledger, "PECR_LEDGER_MIGRATE_DB_URL")):
        url = urlsplit(container.value(key) or "")
        if not url.username or not url.password:
            problems.append(f"{container.name}'s {key} names no user and password")
            continue
        if roles and roles.get(url.username) != url.password:
            problems.append(f"{container.name}'s {key}: the password of {url.username} is not the database role's")
    return problems


def _role_passwords(objects: list[dict]) -> dict[str, str]:
    """user -> password of the basic-auth secrets the PostgreSQL Cluster
    creates its roles from."""
    passwords = {}
    for secret in by_kind(objects, "Secret"):
        if secret.get("type") == "kubernetes.io/basic-auth":
            data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            if "username" in data:
                passwords[data["username"]] = data.get("password", "")
    return passwords
