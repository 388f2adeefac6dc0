#!/usr/bin/env bash
# Prints the manifest that installs the operator (config/default: CRDs,
# namespace, RBAC, Deployment, metrics Service) with the manager image set to
# $1. The image is set in a throw-away overlay, so nothing under config/ is
# rewritten. KUSTOMIZE names the kustomize binary.
set -euo pipefail

img=${1:?usage: install-manifest.sh IMAGE}
kustomize=${KUSTOMIZE:-kustomize}
# The overlay is built from another directory: a relative path must not break.
case $kustomize in
*/*) kustomize="$(cd "$(dirname "$kustomize")" && pwd)/$(basename "$kustomize")" ;;
esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# kustomize accepts only relative paths to other kustomizations, so the
# overlay lives inside the repository, under the ignored bin/.
mkdir -p "$root/bin"
overlay=$(mktemp -d "$root/bin/.install-manifest.XXXXXX")
trap 'rm -rf "$overlay"' EXIT
cat > "$overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../../config/default
YAML
(cd "$overlay" && "$kustomize" edit set image "controller=$img")
"$kustomize" build "$overlay"
