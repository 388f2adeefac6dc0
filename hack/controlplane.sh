#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from the Go
# module proxy (release downloads are not always reachable) and caches them
# outside the repository, keyed by version. Prints the directory that holds
# them, ready for KUBEBUILDER_ASSETS.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kube_version=$(grep -m1 -o 'k8s.io/kubernetes v[0-9.]*' "$here/controlplane/kube/go.mod" | awk '{print $2}')
etcd_version=$(grep -m1 -o 'go.etcd.io/etcd/server/v3 v[0-9.]*' "$here/controlplane/etcd/go.mod" | awk '{print $2}')
cache_root=${APIKEY_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apikey-operator}
dir="$cache_root/controlplane/kubernetes-$kube_version-etcd-$etcd_version"

log() { printf 'controlplane: %s\n' "$*" >&2; }

build_kube() {
  local name=$1
  [ -x "$dir/$name" ] && return 0
  local major minor
  major=$(echo "${kube_version#v}" | cut -d. -f1)
  minor=$(echo "${kube_version#v}" | cut -d. -f2)
  log "building $name $kube_version (cold: several minutes)"
  (cd "$here/controlplane/kube" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$kube_version -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor" \
    -o "$dir/.$name.tmp" "./$name")
  mv "$dir/.$name.tmp" "$dir/$name"
}

build_etcd() {
  [ -x "$dir/etcd" ] && return 0
  log "building etcd $etcd_version"
  (cd "$here/controlplane/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/.etcd.tmp" .)
  mv "$dir/.etcd.tmp" "$dir/etcd"
}

mkdir -p "$dir"
build_etcd
build_kube kube-apiserver
build_kube kube-controller-manager
build_kube kubectl
echo "$dir"
