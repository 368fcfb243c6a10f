#!/usr/bin/env bash
# Deploy checks that need no Docker engine and no cluster.
#
#   scripts/deploy-check.sh [all|images|k8s]
#
# images: the build context through .dockerignore (cargo metadata in a copy,
#   every COPY source present), the image policy (pinned bases, numeric
#   USER, pecr-probe HEALTHCHECK on the service's port), checkov on the
#   Dockerfiles, and docker-compose.yml against the compose schema and the
#   images.
# k8s: renders every overlay of deploy/k8s with `kubectl kustomize`,
#   validates every object against the Kubernetes schemas (offline, with the
#   CRD schemas vendored in deploy/schemas/k8s-crds), checks the manifests
#   against the code, the RUNBOOK and the Dockerfiles (scripts/deploy/), and
#   runs checkov on the renderings (accepted findings: deploy/k8s/checkov.yaml).
# Tools come pinned from scripts/tools.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

tools_bin="$("$PECR_ROOT/scripts/tools.sh")"
export PATH="$tools_bin:$PATH"

# deploy/docker/*.Dockerfile and .dockerignore.
check_images() {
  say "==> images: context and Dockerfile readers (unit tests)"
  python3 -m unittest discover -s scripts/deploy/tests
  say "==> images: build context"
  python3 scripts/deploy/check_build_context.py
  say "==> images: policy"
  python3 scripts/deploy/check_dockerfiles.py
  say "==> images: checkov (accepted findings: docs/decisions.md, 'Images and docker compose')"
  python3 scripts/deploy/lint_dockerfiles.py --checkov "$tools_bin/checkov"
}

# docker-compose.yml: the compose-spec schema check-jsonschema ships
# (vendored, so no download), then its agreement with the images and code.
check_compose() {
  say "==> compose: schema"
  "$tools_bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
  say "==> compose: images, probes, start order"
  "$tools_bin/python" scripts/deploy/check_compose.py
}

# --- Kubernetes manifests ----------------------------------------------------

# The kubectl Debian package of this machine kind; it bundles kustomize 5.
K8S_KUBECTL_PIN="1:528.0.0-0"

k8s_ensure_kubectl() {
  if ! command -v kubectl >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "kubectl is missing and apt-get is not available to install it"
    local candidate
    candidate="$(apt-cache policy kubectl 2>/dev/null | sed -n 's/^ *Candidate: //p')"
    if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
      apt-get update -q >/dev/null
      candidate="$(apt-cache policy kubectl 2>/dev/null | sed -n 's/^ *Candidate: //p')"
    fi
    if [[ "$candidate" == "$K8S_KUBECTL_PIN" ]]; then
      apt-get install -y -q "kubectl=$K8S_KUBECTL_PIN" >/dev/null
    elif [[ -n "$candidate" && "$candidate" != "(none)" ]]; then
      say "note: installing kubectl $candidate (the pin is $K8S_KUBECTL_PIN)"
      apt-get install -y -q kubectl >/dev/null
    else
      die "no kubectl package is available; install kubectl (with kustomize 5) and retry"
    fi
  fi
  local kustomize
  kustomize="$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p')"
  [[ -n "$kustomize" && "$kustomize" -ge 5 ]] || die "kubectl must bundle kustomize 5 or newer (components, labels)"
}

check_k8s() {
  k8s_ensure_kubectl
  local tools_bin out
  tools_bin="$("$PECR_ROOT/scripts/tools.sh")"
  out="$PECR_ROOT/target/deploy/k8s"
  mkdir -p "$out"
  say "==> k8s: the checks catch what they should"
  (cd scripts/deploy && "$tools_bin/python" -m unittest --quiet test_k8s_checks)
  say "==> k8s: render, validate and cross-check every overlay"
  "$tools_bin/python" scripts/deploy/k8s_check.py --out "$out"
  say "==> k8s: checkov on the renderings"
  (cd "$out" && BC_SKIP_MAPPING=TRUE "$tools_bin/checkov" --config-file "$PECR_ROOT/deploy/k8s/checkov.yaml" -d .)
}

case "${1:-all}" in
  images) check_images; check_compose ;;
  k8s) check_k8s ;;
  all) check_images; check_compose; check_k8s ;;
  *) die "unknown section: $1 (all, images, k8s)" ;;
esac
say "deploy checks (${1:-all}): ok"
