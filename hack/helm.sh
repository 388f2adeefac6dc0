#!/usr/bin/env bash
# Builds helm from its Go module (module hack/helm pins the version) instead of
# downloading a release, and caches it outside the repository, keyed by
# version, like hack/controlplane.sh does for the control plane. Prints the
# path of the binary.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=$(grep -m1 -o 'helm.sh/helm/v4 v[0-9.]*' "$here/helm/go.mod" | awk '{print $2}')
cache_root=${APIKEY_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apikey-operator}
dir="$cache_root/helm/$version"

if [ ! -x "$dir/helm" ]; then
  printf 'helm: building helm %s (cold: a few minutes)\n' "$version" >&2
  mkdir -p "$dir"
  # The version variable is what `helm version` prints and what helm compares
  # a chart's kubeVersion and plugin requirements against.
  (cd "$here/helm" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version" \
    -o "$dir/.helm.tmp" helm.sh/helm/v4/cmd/helm)
  mv "$dir/.helm.tmp" "$dir/helm"
fi
echo "$dir/helm"
