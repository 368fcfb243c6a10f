"""The privilege boundary as the NetworkPolicies (and, with Istio, the
AuthorizationPolicies) encode it, read back from the rendered objects.

A peer is written as `pod:<workload>` (a pod selector naming a workload),
`ns:<key>=<value>` (a namespace selector), `pods:*` (every pod of the
namespace) or `any` (no restriction)."""

from __future__ import annotations

from dataclasses import dataclass

from k8s_manifests import app_name, by_kind

GATEWAY, CONTROLLER, LEDGER = "pecr-gateway", "pecr-controller", "pecr-ledger-writer"
POSTGRES_PORT = 5432
DNS_PORT = 53
INGRESS_LABEL = "pecr-ingress=true"


@dataclass(frozen=True)
class Rule:
    direction: str  # "ingress" or "egress"
    peers: frozenset[str]
    ports: frozenset[int] | None  # None: every port


def pod_labels(objects: list[dict]) -> dict[str, dict]:
    """workload -> its pods' labels: the Deployments', and the PostgreSQL
    instances' that CloudNativePG labels with the cluster's name."""
    labels = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"].get("labels", {})
        for d in by_kind(objects, "Deployment")
    }
    for cluster in by_kind(objects, "Cluster"):
        labels[cluster["metadata"]["name"]] = {"cnpg.io/cluster": cluster["metadata"]["name"]}
    return labels


def _selects(selector: dict, labels: dict) -> bool:
    if selector.get("matchExpressions"):
        raise ValueError("matchExpressions are not understood by these checks")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _peer(peer: dict, workloads: dict[str, dict]) -> set[str]:
    if "ipBlock" in peer:
        return {f"ip:{peer['ipBlock']['cidr']}"}
    if "namespaceSelector" in peer:
        labels = peer["namespaceSelector"].get("matchLabels") or {}
        if not labels:
            return {"any"}
        return {"ns:" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))}
    selector = peer.get("podSelector") or {}
    if not selector.get("matchLabels"):
        return {"pods:*"}
    named = app_name(selector.get("matchLabels"))
    matched = {f"pod:{name}" for name, labels in workloads.items() if _selects(selector, labels)}
    if named and f"pod:{named}" not in matched:
        matched.add(f"pod:{named}")
    return matched or {f"pods:{selector.get('matchLabels')}"}


def rules_for(workload: str, objects: list[dict]) -> list[Rule]:
    """Every rule of every NetworkPolicy that selects the workload's pods."""
    workloads = pod_labels(objects)
    labels = workloads[workload]
    found = []
    for policy in by_kind(objects, "NetworkPolicy"):
        spec = policy["spec"]
        if not _selects(spec.get("podSelector") or {}, labels):
            continue
        for direction, key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                peers = set()
                for peer in rule.get(key) or []:
                    peers |= _peer(peer, workloads)
                ports = rule.get("ports")
                found.append(
                    Rule(
                        direction,
                        frozenset(peers or {"any"}),
                        None if not ports else frozenset(p["port"] for p in ports),
                    )
                )
    return found


def allowed(workload: str, direction: str, port: int, objects: list[dict]) -> set[str]:
    """The peers a workload may reach (egress) or be reached from (ingress)
    on a port."""
    peers = set()
    for rule in rules_for(workload, objects):
        if rule.direction == direction and (rule.ports is None or port in rule.ports):
            peers |= rule.peers
    return peers


def _default_deny(objects: list[dict]) -> bool:
    for policy in by_kind(objects, "NetworkPolicy"):
        spec = policy["spec"]
        if (
            not (spec.get("podSelector") or {}).get("matchLabels")
            and set(spec.get("policyTypes", [])) == {"Ingress", "Egress"}
            and not spec.get("ingress")
            and not spec.get("egress")
        ):
            return True
    return False


def check_network_policies(objects: list[dict]) -> list[str]:
    problems = []
    workloads = pod_labels(objects)
    if not _default_deny(objects):
        problems.append("no NetworkPolicy denies all ingress and egress by default")
    for workload in (GATEWAY, CONTROLLER, LEDGER):
        if workload not in workloads:
            problems.append(f"no Deployment {workload}")
            return problems
        if "any" not in allowed(workload, "egress", DNS_PORT, objects):
            problems.append(f"{workload} may not resolve names (no egress to port {DNS_PORT})")
        for rule in rules_for(workload, objects):
            if rule.ports is None:
                problems.append(f"{workload}: a {rule.direction} rule allows every port ({sorted(rule.peers)})")
    expect = {
        (GATEWAY, 50051): {f"pod:{CONTROLLER}"},
        (LEDGER, 50053): {f"pod:{GATEWAY}", f"pod:{CONTROLLER}"},
    }
    for (workload, port), peers in expect.items():
        got = allowed(workload, "ingress", port, objects)
        if got != peers:
            problems.append(f"{workload}:{port} is reachable from {sorted(got)}, expected exactly {sorted(peers)}")
    for workload, port in ((GATEWAY, 8080), (CONTROLLER, 8081)):
        if f"ns:{INGRESS_LABEL}" not in allowed(workload, "ingress", port, objects):
            problems.append(f"{workload}:{port} (REST edge) is not reachable from namespaces labelled {INGRESS_LABEL}")
    for workload in workloads:
        if workload in (GATEWAY, LEDGER) or not workload.startswith("pecr-") or workload in _databases(objects):
            continue
        reach = allowed(workload, "egress", POSTGRES_PORT, objects)
        if reach:
            problems.append(f"{workload} may reach PostgreSQL's port {POSTGRES_PORT} ({sorted(reach)})")
    # The controller reaches named workloads only (and DNS): no database
    # anywhere, however addressed.
    for rule in rules_for(CONTROLLER, objects):
        if rule.direction == "egress" and rule.peers & {"any"} and (rule.ports is None or rule.ports - {DNS_PORT}):
            problems.append(f"{CONTROLLER} may reach any address on ports {sorted(rule.ports or [])}")
    for database in _databases(objects):
        callers = {p for p in allowed(database, "ingress", POSTGRES_PORT, objects)}
        callers.discard(f"pod:{database}")
        if callers != {f"pod:{GATEWAY}", f"pod:{LEDGER}"}:
            problems.append(
                f"{database}:{POSTGRES_PORT} is reachable from {sorted(callers)}, expected exactly the gateway and ledger-writer"
            )
    return problems


def _databases(objects: list[dict]) -> set[str]:
    return {c["metadata"]["name"] for c in by_kind(objects, "Cluster")}


def check_istio(objects: list[dict]) -> list[str]:
    """With AuthorizationPolicies, they admit by service account exactly
    the workloads the NetworkPolicies admit, on the same ports, and the
    ingress namespaces on the same REST and end-user ports."""
    policies = by_kind(objects, "AuthorizationPolicy")
    if not policies:
        return []
    namespace = next(iter(by_kind(objects, "Namespace")))["metadata"]["name"]
    accounts = {
        d["spec"]["template"]["spec"].get("serviceAccountName", "default"): d["metadata"]["name"]
        for d in by_kind(objects, "Deployment")
    }
    problems = []
    from_istio: set[tuple[str, int, str]] = set()
    for policy in policies:
        spec = policy.get("spec") or {}
        target = app_name((spec.get("selector") or {}).get("matchLabels"))
        if target is None:
            if spec:
                problems.append(f"AuthorizationPolicy {policy['metadata']['name']} selects no workload")
            continue
        if spec.get("action", "ALLOW") != "ALLOW":
            continue
        for rule in spec.get("rules", []):
            ports = {int(p) for to in rule.get("to", []) for p in to["operation"].get("ports", [])}
            if not ports:
                problems.append(f"AuthorizationPolicy {policy['metadata']['name']}: a rule allows every port")
            for source in (item["source"] for item in rule.get("from", [])):
                for principal in source.get("principals", []):
                    prefix = f"cluster.local/ns/{namespace}/sa/"
                    account = principal.removeprefix(prefix)
                    if not principal.startswith(prefix) or account not in accounts:
                        problems.append(
                            f"AuthorizationPolicy {policy['metadata']['name']}: {principal} is no service account of namespace {namespace}"
                        )
                        continue
                    from_istio |= {(target, port, f"pod:{accounts[account]}") for port in ports}
                if source.get("namespaces"):
                    from_istio |= {(target, port, "ingress") for port in ports}
    from_network = set()
    for workload in (GATEWAY, CONTROLLER, LEDGER):
        for rule in rules_for(workload, objects):
            if rule.direction != "ingress":
                continue
            for peer in rule.peers:
                if peer.startswith("pod:"):
                    from_network |= {(workload, port, peer) for port in rule.ports or []}
                elif peer == f"ns:{INGRESS_LABEL}":
                    from_network |= {(workload, port, "ingress") for port in rule.ports or []}
    for missing in sorted(from_network - from_istio):
        problems.append(
            f"NetworkPolicies admit {missing[2]} to {missing[0]}:{missing[1]}, the AuthorizationPolicies do not"
        )
    for extra in sorted(from_istio - from_network):
        problems.append(f"AuthorizationPolicies admit {extra[2]} to {extra[0]}:{extra[1]}, the NetworkPolicies do not")
    modes = {
        pa["spec"].get("mtls", {}).get("mode")
        for pa in by_kind(objects, "PeerAuthentication")
        if not pa["spec"].get("selector")
    }
    if modes != {"STRICT"}:
        problems.append(
            f"the namespace's PeerAuthentication mode is {sorted(m or '-' for m in modes)}, expected STRICT"
        )
    return problems
