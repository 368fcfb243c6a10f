#!/usr/bin/env bash
# Deployment checks that need neither a cluster nor a Docker engine.
#
#   scripts/deploy-check.sh [all|k8s]
#
# k8s: renders every overlay of deploy/k8s with `kubectl kustomize`,
# validates every object against the Kubernetes schemas (offline, with the
# CRD schemas vendored in deploy/schemas/k8s-crds), checks the manifests
# against the code, the RUNBOOK and the Dockerfiles (scripts/deploy/), and
# runs checkov on the renderings (accepted findings: deploy/k8s/checkov.yaml).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PECR_ROOT"

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
  k8s) check_k8s ;;
  all) check_k8s ;;
  *) die "unknown section ${1}; expected all or k8s" ;;
esac
