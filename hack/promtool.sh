#!/usr/bin/env bash
# Builds promtool, which checks and unit-tests the alerting rules in
# config/prometheus, from its Go module at a pinned version instead of
# downloading a release, and caches it outside the repository, keyed by
# version, like hack/helm.sh does for helm. Prints the path of the binary.
#
# The module has no replace directives, so `go install module@version` builds
# it with exactly the dependencies its go.mod names. Cold (modules downloaded
# and compiled), the build took about seven minutes on two cores; cached, the
# script returns at once.
set -euo pipefail

# github.com/prometheus/prometheus v0.316.0 is Prometheus 3.16.0.
version=v0.316.0
prometheus_version=3.16.0
cache_root=${APIKEY_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apikey-operator}
dir="$cache_root/promtool/$version"

if [ ! -x "$dir/promtool" ]; then
  printf 'promtool: building promtool %s (cold: a few minutes)\n' "$version" >&2
  mkdir -p "$dir/.build"
  # go install writes into GOBIN under the command's name: build into a
  # scratch directory and move the binary into place only once it is whole.
  # The version variable is what `promtool --version` prints.
  CGO_ENABLED=0 GOBIN="$dir/.build" go install -trimpath \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$prometheus_version" \
    "github.com/prometheus/prometheus/cmd/promtool@$version"
  mv "$dir/.build/promtool" "$dir/promtool"
  rmdir "$dir/.build"
fi
echo "$dir/promtool"
