"""The Kubernetes checks fail when they should: each test breaks one
property of a real rendering and expects the check to name it."""

from __future__ import annotations

import base64
import copy
import unittest
from pathlib import Path

import k8s_boundary
import k8s_consistency
import k8s_sources
from k8s_manifests import containers, find, parse_env_file, render
from k8s_schemas import Validator
from k8s_secrets_check import check_generated_secrets

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def _policy(objects: list[dict], name: str) -> dict:
    policy = find(objects, "NetworkPolicy", name)
    assert policy is not None, name
    return policy


def _config_map(objects: list[dict], prefix: str) -> dict:
    return next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(prefix))


class RenderedTest(unittest.TestCase):
    overlay = "base"

    @classmethod
    def setUpClass(cls):
        folder = K8S / "base" if cls.overlay == "base" else K8S / "overlays" / cls.overlay
        cls.rendered = render(folder)
        cls.runbook = (ROOT / "RUNBOOK.md").read_text()

    def setUp(self):
        self.objects = copy.deepcopy(self.rendered)

    def consistency(self) -> list[str]:
        return k8s_consistency.check_all(self.objects, ROOT, self.runbook)

    def assertNamed(self, problems: list[str], *fragments: str):
        for fragment in fragments:
            self.assertTrue(any(fragment in p for p in problems), f"no problem mentions {fragment!r}: {problems}")


class BoundaryTest(RenderedTest):
    def test_the_rendering_holds(self):
        self.assertEqual(k8s_boundary.check_network_policies(self.objects), [])

    def test_controller_reaching_postgres_is_caught(self):
        _policy(self.objects, "pecr-controller")["spec"]["egress"].append(
            {"ports": [{"protocol": "TCP", "port": 5432}]}
        )
        self.assertNamed(k8s_boundary.check_network_policies(self.objects), "pecr-controller may reach PostgreSQL")

    def test_controller_reaching_any_address_is_caught(self):
        _policy(self.objects, "pecr-controller")["spec"]["egress"].append({"ports": [{"protocol": "TCP", "port": 443}]})
        self.assertNamed(k8s_boundary.check_network_policies(self.objects), "pecr-controller may reach any address")

    def test_ingress_to_the_gateways_grpc_port_is_caught(self):
        _policy(self.objects, "pecr-gateway")["spec"]["ingress"][1]["ports"].append({"protocol": "TCP", "port": 50051})
        self.assertNamed(k8s_boundary.check_network_policies(self.objects), "pecr-gateway:50051 is reachable from")

    def test_gateway_losing_ledger_writer_is_caught(self):
        _policy(self.objects, "pecr-ledger-writer")["spec"]["ingress"][0]["from"].pop(0)
        self.assertNamed(k8s_boundary.check_network_policies(self.objects), "pecr-ledger-writer:50053")

    def test_a_rule_for_every_port_is_caught(self):
        del _policy(self.objects, "pecr-gateway")["spec"]["egress"][0]["ports"]
        self.assertNamed(k8s_boundary.check_network_policies(self.objects), "allows every port")

    def test_missing_default_deny_is_caught(self):
        self.objects.remove(_policy(self.objects, "default-deny"))
        self.assertNamed(k8s_boundary.check_network_policies(self.objects), "denies all ingress and egress")


class DatabaseBoundaryTest(RenderedTest):
    overlay = "postgres-cnpg"

    def test_controller_reaching_the_database_pods_is_caught(self):
        ingress = _policy(self.objects, "pecr-postgres")["spec"]["ingress"][0]["from"]
        ingress.append({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "pecr-controller"}}})
        self.assertNamed(k8s_boundary.check_network_policies(self.objects), "pecr-postgres:5432 is reachable from")


class IstioTest(RenderedTest):
    overlay = "istio"

    def policy(self, name: str) -> dict:
        return find(self.objects, "AuthorizationPolicy", name)

    def test_the_rendering_holds(self):
        self.assertEqual(k8s_boundary.check_istio(self.objects), [])

    def test_a_missing_principal_is_caught(self):
        self.policy("pecr-ledger-writer")["spec"]["rules"][0]["from"][0]["source"]["principals"].pop()
        self.assertNamed(k8s_boundary.check_istio(self.objects), "the AuthorizationPolicies do not")

    def test_an_extra_principal_is_caught(self):
        principals = self.policy("pecr-gateway")["spec"]["rules"][0]["from"][0]["source"]["principals"]
        principals.append("cluster.local/ns/pecr/sa/pecr-ledger-writer")
        self.assertNamed(k8s_boundary.check_istio(self.objects), "the NetworkPolicies do not")

    def test_a_principal_of_another_namespace_is_caught(self):
        principals = self.policy("pecr-gateway")["spec"]["rules"][0]["from"][0]["source"]["principals"]
        principals[0] = "cluster.local/ns/other/sa/pecr-controller"
        self.assertNamed(k8s_boundary.check_istio(self.objects), "no service account of namespace pecr")

    def test_permissive_mtls_is_caught(self):
        find(self.objects, "PeerAuthentication", "default")["spec"]["mtls"]["mode"] = "PERMISSIVE"
        self.assertNamed(k8s_boundary.check_istio(self.objects), "expected STRICT")


class ConsistencyTest(RenderedTest):
    def container_spec(self, name: str) -> dict:
        return find(self.objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]

    def test_a_setting_no_service_reads_is_caught(self):
        _config_map(self.objects, "pecr-gateway-config")["data"]["PECR_GATEWAY_TYPO"] = "1"
        self.assertNamed(self.consistency(), "sets PECR_GATEWAY_TYPO, which pecr-gateway never reads")

    def test_a_setting_of_another_service_is_caught(self):
        _config_map(self.objects, "pecr-controller-config")["data"]["PECR_FS_CORPUS_PATH"] = "/app/fixtures/fs_corpus"
        self.assertNamed(self.consistency(), "sets PECR_FS_CORPUS_PATH, which pecr-controller never reads")

    def test_a_documented_setting_left_out_is_caught(self):
        del _config_map(self.objects, "pecr-ledger-writer-config")["data"]["PECR_LEDGER_MAX_BATCH"]
        self.assertNamed(self.consistency(), "documents PECR_LEDGER_MAX_BATCH for ledger-writer")

    def test_a_secret_shadowed_by_the_environment_is_caught(self):
        _config_map(self.objects, "pecr-gateway-config")["data"]["PECR_DB_URL"] = ""
        self.assertNamed(self.consistency(), "PECR_DB_URL is both in the environment")

    def test_a_probe_on_the_grpc_port_is_caught(self):
        self.container_spec("pecr-controller")["readinessProbe"]["httpGet"]["port"] = "grpc"
        self.assertNamed(self.consistency(), "readinessProbe probes port 50052")

    def test_a_container_port_the_service_does_not_bind_is_caught(self):
        _config_map(self.objects, "pecr-gateway-config")["data"]["PECR_BIND_ADDR"] = "0.0.0.0:9090"
        self.assertNamed(self.consistency(), "containerPort http is 8080, but PECR_BIND_ADDR binds port 9090")

    def test_a_loopback_bind_is_caught(self):
        _config_map(self.objects, "pecr-ledger-writer-config")["data"]["PECR_LEDGER_GRPC_ADDR"] = "127.0.0.1:50053"
        self.assertNamed(self.consistency(), "unreachable from outside the pod")

    def test_an_image_without_a_dockerfile_is_caught(self):
        self.container_spec("pecr-gateway")["image"] = "pecr-gatekeeper:0.1.0"
        self.assertNamed(self.consistency(), "matches no deploy/docker/*.Dockerfile")

    def test_a_path_outside_image_and_volumes_is_caught(self):
        _config_map(self.objects, "pecr-gateway-config")["data"]["PECR_POLICY_BUNDLE_DIR"] = "/srv/policy"
        self.assertNamed(self.consistency(), "PECR_POLICY_BUNDLE_DIR=/srv/policy is neither mounted nor in")

    def test_https_to_a_plaintext_upstream_is_caught(self):
        _config_map(self.objects, "pecr-controller-config")["data"]["PECR_GATEWAY_URL"] = "https://pecr-gateway:50051"
        self.assertNamed(self.consistency(), "pecr-gateway serves gRPC in plaintext")

    def test_an_upstream_on_the_http_port_is_caught(self):
        _config_map(self.objects, "pecr-gateway-config")["data"]["PECR_LEDGER_URL"] = "http://pecr-ledger-writer:8082"
        self.assertNamed(self.consistency(), "is not the gRPC port of Service pecr-ledger-writer")

    def test_a_service_without_app_protocol_is_caught(self):
        del find(self.objects, "Service", "pecr-gateway")["spec"]["ports"][0]["appProtocol"]
        self.assertNamed(self.consistency(), "port grpc has appProtocol None, expected grpc")

    def test_an_object_outside_the_namespace_is_caught(self):
        find(self.objects, "Service", "pecr-gateway")["metadata"]["namespace"] = "default"
        self.assertNamed(self.consistency(), "Service/pecr-gateway is in namespace 'default'")


class MtlsTest(RenderedTest):
    overlay = "rustls-mtls"

    def test_the_rendering_holds(self):
        self.assertEqual(self.consistency(), [])

    def test_plaintext_to_a_tls_upstream_is_caught(self):
        _config_map(self.objects, "pecr-controller-config")["data"]["PECR_LEDGER_URL"] = (
            "http://pecr-ledger-writer:50053"
        )
        self.assertNamed(self.consistency(), "pecr-ledger-writer serves gRPC over TLS")

    def test_a_certificate_without_the_identity_is_caught(self):
        find(self.objects, "Certificate", "pecr-gateway")["spec"]["dnsNames"] = ["gateway.example"]
        self.assertNamed(self.consistency(), "does not name pecr-gateway")

    def test_a_file_cert_manager_does_not_write_is_caught(self):
        _config_map(self.objects, "pecr-gateway-config")["data"]["PECR_TLS_CA"] = "/etc/pecr/tls/bundle.pem"
        self.assertNamed(self.consistency(), "a file cert-manager does not write")


class SchemaTest(RenderedTest):
    overlay = "postgres-cnpg"

    def setUp(self):
        super().setUp()
        self.validator = Validator(ROOT / "deploy" / "schemas" / "k8s-crds")

    def test_an_unknown_field_is_caught(self):
        deployment = find(self.objects, "Deployment", "pecr-gateway")
        deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
        self.assertNamed(self.validator.validate(deployment), "'httpGett' was unexpected")

    def test_a_bad_custom_resource_is_caught(self):
        cluster = find(self.objects, "Cluster", "pecr-postgres")
        cluster["spec"]["postgresql"]["synchronous"]["method"] = "all"
        self.assertNamed(self.validator.validate(cluster), "'all' is not one of")

    def test_a_kind_without_schema_is_caught(self):
        problems = self.validator.validate(
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
        )
        self.assertNamed(problems, "no schema for example.com/v1 Widget")


class GeneratedSecretsTest(unittest.TestCase):
    def test_mismatched_role_password_is_caught(self):
        objects = render(K8S / "overlays" / "postgres-cnpg")
        for obj in objects:
            if obj["kind"] == "Secret" and obj["metadata"]["name"].startswith("pecr-"):
                data = obj.get("data") or {}
                if "pecr.env" in data:
                    text = base64.b64decode(data["pecr.env"]).decode().replace("REPLACE_ME", "x" * 40)
                    data["pecr.env"] = base64.b64encode(text.encode()).decode()
        problems = check_generated_secrets(containers(objects), objects)
        for fragment in (
            "not all different",
            "do not share one PECR_LOCAL_AUTH_SHARED_SECRET",
            "the password of pecr_gateway is not the database role's",
        ):
            self.assertTrue(any(fragment in p for p in problems), f"{fragment!r} not in {problems}")


class SourcesTest(unittest.TestCase):
    def test_runbook_service_column(self):
        runbook = (
            "## Configuration\n\n| variable | service | default | meaning |\n|---|---|---|---|\n"
            "| `PECR_A`, `PECR_B` | all three | 1 | x |\n"
            "| `PECR_C` | gateway, controller (oidc) | - | y |\n"
            "| `PECR_D` | ledger-writer | - | z |\n\n"
            "### Turn on tracing\n\n| Variable | Meaning |\n| --- | --- |\n| `PECR_OTEL_ENABLED` | on |\n\n## Next\n"
        )
        documented = k8s_sources.documented_settings(runbook)
        self.assertEqual(documented["gateway"], {"PECR_A", "PECR_B", "PECR_C", "PECR_OTEL_ENABLED"})
        self.assertEqual(documented["ledger-writer"], {"PECR_A", "PECR_B", "PECR_D", "PECR_OTEL_ENABLED"})

    def test_test_modules_are_not_code(self):
        code = 'const A: &str = "PECR_REAL";\n#[cfg(test)]\nmod tests {\n    fn f() { let _ = "PECR_ONLY_IN_TESTS"; }\n}\nconst B: &str = "PECR_AFTER";\n'
        stripped = k8s_sources.TEST_MODULE.sub("", code)
        self.assertEqual(k8s_sources.SETTING.findall(stripped), ["PECR_REAL", "PECR_AFTER"])

    def test_env_file_lines(self):
        self.assertEqual(parse_env_file("# c\n A = 1 \nB=x=y\n\n"), {"A": "1", "B": "x=y"})
        with self.assertRaises(ValueError):
            parse_env_file("NOT A PAIR\n")


if __name__ == "__main__":
    unittest.main()
