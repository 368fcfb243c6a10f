#!/usr/bin/env bash
# Writes a private kustomize overlay with real secrets for deploy/k8s: new
# random service tokens, one shared secret for the gateway and the
# controller, and database passwords that the services' URLs and (with
# postgres-cnpg) the database's roles agree on. Never commit its output
# (deploy/k8s/private/ is ignored by git).
#
#   scripts/k8s-secrets.sh [--overlay NAME] [--dir DIR] [--db-host HOST] [--force]
#
#   --overlay  overlay under deploy/k8s/overlays to build on, or base for
#              the base alone (default postgres-cnpg)
#   --dir      where to write it (default deploy/k8s/private)
#   --db-host  PostgreSQL host[:port] in the URLs (default pecr-postgres-rw:5432)
#   --force    overwrite an existing DIR (this rotates every secret in it)
#
# Then: kubectl apply -k DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

overlay="postgres-cnpg"
dir="$PECR_ROOT/deploy/k8s/private"
db_host="pecr-postgres-rw:5432"
force=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --overlay) overlay="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --db-host) db_host="$2"; shift 2 ;;
    --force) force=1; shift ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
done

if [[ "$overlay" == base ]]; then
  overlay_dir="$PECR_ROOT/deploy/k8s/base"
else
  overlay_dir="$PECR_ROOT/deploy/k8s/overlays/$overlay"
fi
[[ -f "$overlay_dir/kustomization.yaml" ]] || die "no overlay $overlay under deploy/k8s/overlays"
if [[ -e "$dir" && "$force" -ne 1 ]]; then
  die "$dir exists; pass --force to replace it (and rotate its secrets)"
fi
command -v openssl >/dev/null 2>&1 || die "openssl is required"

# 64 hex characters: above the 32 a service token needs, URL-safe as a password.
random() { openssl rand -hex 32; }
gateway_token="$(random)"
controller_token="$(random)"
auditor_token="$(random)"
shared_secret="$(random)"
owner_password="$(random)"
ledger_password="$(random)"
gateway_password="$(random)"

mkdir -p "$dir"
chmod 700 "$dir"
umask 077
relative="$(realpath --relative-to="$dir" "$overlay_dir")"

cat >"$dir/gateway.env" <<ENV
PECR_DB_URL=postgres://pecr_gateway:$gateway_password@$db_host/pecr
PECR_LEDGER_TOKEN=$gateway_token
PECR_LOCAL_AUTH_SHARED_SECRET=$shared_secret
ENV
cat >"$dir/controller.env" <<ENV
PECR_LEDGER_TOKEN=$controller_token
PECR_LOCAL_AUTH_SHARED_SECRET=$shared_secret
ENV
cat >"$dir/ledger-writer.env" <<ENV
PECR_LEDGER_MIGRATE_DB_URL=postgres://pecr_owner:$owner_password@$db_host/pecr
PECR_DB_URL=postgres://pecr_ledger_writer:$ledger_password@$db_host/pecr
PECR_LEDGER_GATEWAY_TOKEN=$gateway_token
PECR_LEDGER_CONTROLLER_TOKEN=$controller_token
PECR_LEDGER_AUDITOR_TOKEN=$auditor_token
ENV
printf '%s\n' "$auditor_token" >"$dir/auditor-token.txt"
# The checkpoint signing key; its public half is for auditors.
openssl genpkey -algorithm ed25519 -out "$dir/ledger-signing.pem" 2>/dev/null
openssl pkey -in "$dir/ledger-signing.pem" -pubout -out "$dir/ledger-signing.pub.pem"
# For deploy/postgres/provision.sql on a database outside the cluster.
cat >"$dir/postgres-passwords.env" <<ENV
PECR_OWNER_DB_PASSWORD=$owner_password
PECR_LEDGER_DB_PASSWORD=$ledger_password
PECR_GATEWAY_DB_PASSWORD=$gateway_password
ENV

{
  cat <<YAML
# Written by scripts/k8s-secrets.sh: secrets, do not commit.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: pecr
resources:
  - $relative
secretGenerator:
  - name: pecr-gateway-secrets
    behavior: replace
    files:
      - pecr.env=gateway.env
  - name: pecr-controller-secrets
    behavior: replace
    files:
      - pecr.env=controller.env
  - name: pecr-ledger-writer-secrets
    behavior: replace
    files:
      - pecr.env=ledger-writer.env
      - ledger-signing.pem=ledger-signing.pem
YAML
  if grep -q 'components/postgres-cnpg' "$overlay_dir/kustomization.yaml"; then
    for role in owner:pecr_owner:"$owner_password" ledger-writer:pecr_ledger_writer:"$ledger_password" gateway:pecr_gateway:"$gateway_password"; do
      IFS=: read -r name user password <<<"$role"
      cat <<YAML
  - name: pecr-postgres-$name
    behavior: replace
    type: kubernetes.io/basic-auth
    options:
      disableNameSuffixHash: true
    literals:
      - username=$user
      - password=$password
YAML
    done
  fi
} >"$dir/kustomization.yaml"

say "wrote $dir (overlay $overlay); apply it with: kubectl apply -k $dir"
say "the auditor's ledger token is in $dir/auditor-token.txt, the checkpoint public key in $dir/ledger-signing.pub.pem; the database passwords in $dir/postgres-passwords.env"
