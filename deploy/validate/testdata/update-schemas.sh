#!/usr/bin/env bash
# update-schemas.sh: re-vendors the JSON schemas that deploy/validate's
# kubeconform runs use, from package registries only (no GitHub download):
#   - Kubernetes v$K8S kinds: PyPI package kubernetes-validate (ships the
#     schemas of every release), made standalone by ../internal/k8sschemas;
#   - KEDA's ScaledObject: the CRD in the Go module github.com/kedacore/keda/v2,
#     converted by kubeconform's own scripts/openapi2jsonschema.py (in the Go
#     module github.com/yannh/kubeconform), strict at the root too.
# Needs python3 with PyYAML, pip and go. Run from anywhere.
set -euo pipefail
K8S_VALIDATE=1.37.0
K8S=v1.37.0
KEDA=v2.21.0
KUBECONFORM=v0.8.0
KINDS=(statefulset-apps-v1 service-v1 configmap-v1 poddisruptionbudget-policy-v1 secret-v1)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
moddir() { go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p'; }

python3 -m pip download --quiet --no-deps -d "$tmp" "kubernetes-validate==$K8S_VALIDATE"
rm -rf "$here/schemas/kubernetes"
(cd "$here/../.." && go run ./validate/internal/k8sschemas -wheel "$tmp"/kubernetes_validate-*.whl \
  -version "$K8S" -out "$here/schemas/kubernetes" "${KINDS[@]}")

keda=$(moddir "github.com/kedacore/keda/v2@$KEDA")
kc=$(moddir "github.com/yannh/kubeconform@$KUBECONFORM")
mkdir -p "$here/schemas/crds/keda.sh"
(cd "$here/schemas/crds/keda.sh" && DENY_ROOT_ADDITIONAL_PROPERTIES=1 FILENAME_FORMAT='{kind}_{version}' \
  python3 "$kc/scripts/openapi2jsonschema.py" "$keda/config/crd/bases/keda.sh_scaledobjects.yaml")
{
  echo "kubernetes-validate==$K8S_VALIDATE (PyPI) $K8S: ${KINDS[*]}"
  echo "github.com/kedacore/keda/v2@$KEDA config/crd/bases/keda.sh_scaledobjects.yaml"
  echo "converted by github.com/yannh/kubeconform@$KUBECONFORM scripts/openapi2jsonschema.py"
} > "$here/schemas/SOURCES"
