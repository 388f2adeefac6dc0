#!/usr/bin/env bash
# Copies what controller-gen generates (the CRDs and the manager's ClusterRole)
# into the Helm chart as templates, so that the chart never drifts from
# config/. make manifests runs it; the files it writes are committed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
chart="$root/dist/chart/templates"

# escape makes a file safe as template text: "{{" would start an action.
escape() { sed 's/{{/{{ "{{" }}/g' "$1"; }

# write replaces a generated file only when its content changed.
write() {
  local out=$1 tmp
  tmp=$(mktemp "$out.XXXXXX")
  cat > "$tmp"
  if cmp -s "$tmp" "$out"; then rm -f "$tmp"; else mv "$tmp" "$out"; fi
}

mkdir -p "$chart/crd" "$chart/rbac"
for path in "$root"/config/crd/bases/*.yaml; do
  name=$(basename "$path")
  {
    printf '{{- /* Generated from config/crd/bases/%s by hack/sync-chart.sh (make manifests). Do not edit. */}}\n' "$name"
    echo '{{- if .Values.crds.install }}'
    # Adds the chart's labels, and the keep policy that spares the CRD (and
    # so every ApiKey) on helm uninstall, to the CRD's metadata.
    escape "$path" | awk '
      function keep() {
        print "    {{- if .Values.crds.keep }}"
        print "    helm.sh/resource-policy: keep"
        print "    {{- end }}"
        print "    {{- with .Values.commonAnnotations }}"
        print "    {{- toYaml . | nindent 4 }}"
        print "    {{- end }}"
      }
      /^---$/ { next }
      /^metadata:$/ {
        print
        print "  labels:"
        print "    {{- include \"apikey-operator.labels\" . | nindent 4 }}"
        meta = 1; next
      }
      meta && /^  annotations:$/ { print; keep(); annotated = 1; next }
      meta && /^[^ ]/ {
        if (!annotated) { print "  annotations:"; keep() }
        meta = 0
      }
      { print }
    '
    echo '{{- end }}'
  } | write "$chart/crd/$name"
done
# CRDs whose source is gone go from the chart too.
for path in "$chart"/crd/*.yaml; do
  [ -e "$root/config/crd/bases/$(basename "$path")" ] || rm -f "$path"
done

{
  echo '{{- /* Generated from config/rbac/role.yaml by hack/sync-chart.sh (make manifests). Do not edit. */}}'
  cat <<'HEAD'
# What the manager needs; README.md (RBAC) says why each rule exists.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ include "apikey-operator.fullname" . }}-manager-role
  labels:
    {{- include "apikey-operator.labels" . | nindent 4 }}
  {{- with include "apikey-operator.annotations" . }}{{ nindent 2 . }}{{ end }}
HEAD
  escape "$root/config/rbac/role.yaml" | sed -n '/^rules:/,$p'
} | write "$chart/rbac/role.yaml"
