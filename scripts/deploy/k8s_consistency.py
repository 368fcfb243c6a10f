"""Checks that the rendered manifests agree with the code and with each
other. Each check returns a list of problems (empty: it holds)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import k8s_sources as sources
from k8s_manifests import Container, app_name, by_kind, containers, find

# Read by libraries, not by PECR's own code: the log filter and the
# OpenTelemetry SDK's standard variables.
STANDARD_SETTINGS = ("RUST_LOG",)
STANDARD_PREFIXES = ("OTEL_",)
# Settings naming a file or folder the process opens.
PATH_SETTINGS = (
    "PECR_CONFIG_PATH",
    "PECR_FS_CORPUS_PATH",
    "PECR_POLICY_BUNDLE_DIR",
    "PECR_RLM_SCRIPT_PATH",
    "PECR_REPLAY_STORE_DIR",
    "PECR_TLS_CERT",
    "PECR_TLS_KEY",
    "PECR_TLS_CLIENT_CA",
    "PECR_TLS_CA",
    "PECR_TLS_CLIENT_CERT",
    "PECR_TLS_CLIENT_KEY",
    "PECR_LEDGER_SIGNING_KEY_FILE",
)
# The files cert-manager writes into a certificate's secret.
CERTIFICATE_FILES = ("tls.crt", "tls.key", "ca.crt")
UPSTREAM_URLS = ("PECR_LEDGER_URL", "PECR_GATEWAY_URL")


def service_of(container: Container) -> str:
    return container.name.removeprefix("pecr-")


def _standard(name: str) -> bool:
    return name in STANDARD_SETTINGS or name.startswith(STANDARD_PREFIXES)


def check_settings(container: Container, read: set[str], documented: set[str]) -> list[str]:
    """Every variable set is one the service reads and the RUNBOOK documents
    for it; every PECR_* setting the RUNBOOK documents for it is set; no
    secret in the PECR_CONFIG_PATH file is shadowed by the environment."""
    name = container.name
    problems = list(container.problems)
    for key in sorted(container.all_keys()):
        if not _standard(key) and key not in read:
            problems.append(f"{name}: sets {key}, which pecr-{service_of(container)} never reads")
        if key not in documented:
            problems.append(f"{name}: sets {key}, which RUNBOOK.md does not document for {service_of(container)}")
    for key in sorted(documented - container.all_keys()):
        if key.startswith("PECR_"):
            problems.append(
                f"{name}: RUNBOOK.md documents {key} for {service_of(container)}, the manifests do not set it"
            )
    for key in sorted(set(container.env) & set(container.file_env)):
        problems.append(
            f"{name}: {key} is both in the environment ({container.env_sources[key]}) and in the "
            "PECR_CONFIG_PATH file; the environment wins, so the file's value is never read"
        )
    return problems


def _port_of(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def check_ports(container: Container, addresses: dict[str, tuple[str, str]]) -> list[str]:
    """The container's grpc/http ports are the ports its address settings
    bind, on every interface; every probe is HTTP on the admin (http) port:
    /healthz for liveness and start-up, /readyz for readiness."""
    problems = []
    ports = container.ports()
    bound = {}
    for kind, (key, default) in addresses.items():
        host, port = _port_of(container.value(key) or default)
        bound[kind] = port
        if host not in ("0.0.0.0", "::"):
            problems.append(f"{container.name}: {key} binds {host}, unreachable from outside the pod")
        if ports.get(kind) != port:
            problems.append(f"{container.name}: containerPort {kind} is {ports.get(kind)}, but {key} binds port {port}")
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe_name, path in expected.items():
        probe = container.spec.get(probe_name)
        if probe is None:
            problems.append(f"{container.name}: no {probe_name}")
            continue
        http_get = probe.get("httpGet")
        if http_get is None:
            problems.append(f"{container.name}: {probe_name} is not an HTTP GET")
            continue
        port = http_get["port"]
        port = ports.get(port) if isinstance(port, str) else port
        if port != bound["http"]:
            problems.append(
                f"{container.name}: {probe_name} probes port {port}, the service serves HTTP on {bound['http']}"
            )
        if http_get.get("path") != path:
            problems.append(f"{container.name}: {probe_name} probes {http_get.get('path')}, expected {path}")
    return problems


def check_image(container: Container, root: Path) -> list[str]:
    """The image is built by a Dockerfile in deploy/docker/, and a numeric
    USER there is the user the pod runs as."""
    image = container.spec["image"].split("@")[0]
    repository = image.rsplit("/", 1)[-1].split(":")[0]
    service = repository.removeprefix("pecr-")
    dockerfile = sources.dockerfile(root, service)
    problems = []
    if not repository.startswith("pecr-") or not dockerfile.is_file():
        return [f"{container.name}: image {container.spec['image']} matches no deploy/docker/*.Dockerfile"]
    if service != service_of(container):
        problems.append(f"{container.name}: runs the image of {service}")
    user = sources.image_user(dockerfile)
    uid = (user or "").split(":")[0]
    run_as = container.spec.get("securityContext", {}).get("runAsUser")
    if uid.isdigit() and run_as is not None and int(uid) != run_as:
        problems.append(f"{container.name}: runAsUser {run_as}, but {dockerfile.name} has USER {user}")
    return problems


def check_paths(container: Container, objects: list[dict], root: Path) -> list[str]:
    """Every file or folder a setting names is in a volume mounted into the
    container (with that file in it) or in the image."""
    problems = []
    in_image = sources.image_paths(sources.dockerfile(root, service_of(container)))
    mounts = container.mounts()
    certificates = {c["spec"]["secretName"]: c for c in by_kind(objects, "Certificate")}
    for key in PATH_SETTINGS:
        value = container.value(key)
        if value is None:
            continue
        if not value.startswith("/"):
            problems.append(
                f"{container.name}: {key}={value} is relative; the image's working folder is not part of the contract"
            )
            continue
        mount = next((m for m in mounts if value == m or value.startswith(m + "/")), None)
        if mount is None:
            if not any(value == p or value.startswith(p + "/") for p in in_image):
                problems.append(
                    f"{container.name}: {key}={value} is neither mounted nor in {sources.dockerfile(root, service_of(container)).name}"
                )
            continue
        volume = mounts[mount]
        file_name = value[len(mount) + 1 :]
        if "secret" in volume:
            secret_name = volume["secret"]["secretName"]
            secret = find(objects, "Secret", secret_name)
            if secret is not None:
                present = set((secret.get("data") or {})) | set(secret.get("stringData") or {})
                if file_name not in present:
                    problems.append(f"{container.name}: {key}={value}, but Secret {secret_name} has no {file_name}")
            elif secret_name in certificates:
                if file_name not in CERTIFICATE_FILES:
                    problems.append(f"{container.name}: {key}={value}, a file cert-manager does not write")
            else:
                problems.append(f"{container.name}: {key}={value} is in Secret {secret_name}, which nothing creates")
    return problems


def check_tls(container: Container, objects: list[dict]) -> list[str]:
    """A served certificate names the service's identity (pecr-<service>),
    the name its callers check and allow."""
    cert_path = container.value("PECR_TLS_CERT")
    if cert_path is None:
        return []
    mount = cert_path.rpartition("/")[0]
    volume = container.mounts().get(mount, {})
    secret_name = volume.get("secret", {}).get("secretName")
    for certificate in by_kind(objects, "Certificate"):
        if certificate["spec"]["secretName"] == secret_name:
            if container.name not in certificate["spec"].get("dnsNames", []):
                return [
                    f"{container.name}: its certificate {certificate['metadata']['name']} does not name {container.name}"
                ]
            return []
    return []


def check_upstreams(all_containers: list[Container], objects: list[dict]) -> list[str]:
    """Each upstream URL names a Service and its gRPC port, and its scheme
    matches the upstream: https exactly when the upstream serves TLS."""
    problems = []
    by_name = {c.name: c for c in all_containers}
    for container in all_containers:
        for key in UPSTREAM_URLS:
            url = container.value(key)
            if url is None or key not in container.all_keys():
                continue
            parts = urlsplit(url)
            service = find(objects, "Service", parts.hostname or "")
            if service is None:
                problems.append(f"{container.name}: {key}={url} names no Service")
                continue
            ports = {p["port"]: p for p in service["spec"]["ports"]}
            port = ports.get(parts.port)
            if port is None or port.get("name") != "grpc":
                problems.append(
                    f"{container.name}: {key}={url} is not the gRPC port of Service {service['metadata']['name']}"
                )
            upstream = by_name.get(app_name(service["spec"]["selector"]) or "")
            if upstream is None:
                problems.append(
                    f"{container.name}: {key}={url}: Service {service['metadata']['name']} selects no PECR service"
                )
                continue
            serves_tls = upstream.value("PECR_TLS_CERT") is not None
            if serves_tls != (parts.scheme == "https"):
                problems.append(
                    f"{container.name}: {key}={url} but {upstream.name} serves gRPC "
                    f"{'over TLS' if serves_tls else 'in plaintext'}"
                )
    return problems


def check_services(objects: list[dict]) -> list[str]:
    """Each Service reaches named container ports; gRPC ports carry
    appProtocol grpc, HTTP ports appProtocol http."""
    problems = []
    for service in by_kind(objects, "Service"):
        name = service["metadata"]["name"]
        target = app_name(service["spec"].get("selector"))
        deployment = find(objects, "Deployment", target or "")
        if deployment is None:
            continue
        container_ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0].get("ports", [])}
        for port in service["spec"]["ports"]:
            if port.get("targetPort") not in container_ports:
                problems.append(
                    f"Service {name}: port {port['name']} targets {port.get('targetPort')}, no named port of {target}"
                )
            want = {"grpc": "grpc", "http": "http"}.get(port["name"])
            if want and port.get("appProtocol") != want:
                problems.append(
                    f"Service {name}: port {port['name']} has appProtocol {port.get('appProtocol')}, expected {want}"
                )
    return problems


def check_namespace(objects: list[dict]) -> list[str]:
    """Every namespaced object lands in the one Namespace the manifests
    create."""
    namespaces = [ns["metadata"]["name"] for ns in by_kind(objects, "Namespace")]
    if len(namespaces) != 1:
        return [f"expected one Namespace, found {namespaces}"]
    return [
        f"{obj['kind']}/{obj['metadata']['name']} is in namespace {obj['metadata'].get('namespace')!r}, not {namespaces[0]}"
        for obj in objects
        if obj["kind"] != "Namespace" and obj["metadata"].get("namespace") != namespaces[0]
    ]


def check_linkerd(objects: list[dict]) -> list[str]:
    """gRPC ports are never opaque to Linkerd: they are HTTP/2, marked by
    appProtocol."""
    grpc_ports = {
        str(p["containerPort"])
        for d in by_kind(objects, "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
        if p["name"] == "grpc"
    }
    problems = []
    for obj in objects:
        annotation_sets = [obj["metadata"].get("annotations") or {}]
        template = obj.get("spec", {}).get("template", {}) if isinstance(obj.get("spec"), dict) else {}
        annotation_sets.append(template.get("metadata", {}).get("annotations") or {})
        for found in annotation_sets:
            opaque = found.get("config.linkerd.io/opaque-ports", "")
            for port in (p.strip() for p in opaque.split(",") if p.strip()):
                if port in grpc_ports:
                    problems.append(f"{obj['kind']}/{obj['metadata']['name']}: gRPC port {port} marked opaque")
    return problems


def check_all(objects: list[dict], root: Path, runbook: str) -> list[str]:
    documented = sources.documented_settings(runbook)
    all_containers = containers(objects)
    problems = []
    for container in all_containers:
        service = service_of(container)
        problems += check_settings(container, sources.settings_read(root, service), documented[service])
        problems += check_ports(container, sources.addresses(root, service))
        problems += check_image(container, root)
        problems += check_paths(container, objects, root)
        problems += check_tls(container, objects)
    deployed = {service_of(c) for c in all_containers}
    for missing in sorted(set(sources.ALL_SERVICES) - deployed):
        problems.append(f"no Deployment runs {missing}")
    problems += check_upstreams(all_containers, objects)
    problems += check_services(objects)
    problems += check_namespace(objects)
    problems += check_linkerd(objects)
    return problems
