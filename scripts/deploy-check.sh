#!/usr/bin/env bash
# Deploy checks that need no Docker engine and no cluster.
#
#   scripts/deploy-check.sh [SECTION]     SECTION: images (default: all)
#
# images: the build context through .dockerignore (cargo metadata in a copy,
#   every COPY source present), the image policy (pinned bases, numeric
#   USER, pecr-probe HEALTHCHECK on the service's port), checkov on the
#   Dockerfiles, and docker-compose.yml against the compose schema and the
#   images. Tools come pinned from scripts/tools.sh.
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

case "${1:-all}" in
  images) check_images; check_compose ;;
  all) check_images; check_compose ;;
  *) die "unknown section: $1 (images, all)" ;;
esac
say "deploy checks (${1:-all}): ok"
