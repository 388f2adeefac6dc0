#!/usr/bin/env bash
# Copies what controller-gen generates (the CRDs and the manager's ClusterRole)
# into the Helm chart as templates, so that the chart never drifts from
# config/. It also writes the alerts of config/prometheus/alerts.yaml (their
# one source) into a PrometheusRule for kustomize and into the chart, and
# copies the Grafana dashboard into the chart. make manifests runs it; the
# files it writes are committed.
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

# The alerts. alerts.yaml selects the metrics of the manager config/default
# installs with the selector below; the chart puts its release's in its place,
# and its credentialsExpiryHours in place of the 72 hours.
prom="$root/config/prometheus"
selector='job="apikey-operator-controller-manager-metrics-service", namespace="apikey-operator-system"'
# rules prints the groups of alerts.yaml without comments and blank lines
# (alerts.yaml explains them), indented to sit under a PrometheusRule's spec.
rules() { sed -n '/^groups:/,$p' "$prom/alerts.yaml" | grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' | sed 's/^/  /'; }
groups=$(grep -c '^  - name:' "$prom/alerts.yaml" || true)
rules_line=$(rules | sed -n '3p')
if [ "$groups" != 1 ] || [ "$rules_line" != '      rules:' ] || ! grep -q "$selector" "$prom/alerts.yaml" ||
  [ "$(grep -c '< 72 \* 3600$' "$prom/alerts.yaml")" != 1 ]; then
  echo "sync-chart.sh: config/prometheus/alerts.yaml must hold one group whose rules select $selector, and one '< 72 * 3600'" >&2
  exit 1
fi

{
  echo '# Generated from alerts.yaml by hack/sync-chart.sh (make manifests). Do not edit.'
  cat <<'HEAD'
# A prometheus-operator PrometheusRule with the alerts on the operator (needs
# its CRD), for the ServiceMonitor of monitor.yaml.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  labels:
    app.kubernetes.io/name: apikey-operator
    app.kubernetes.io/managed-by: kustomize
  name: alerts
  namespace: system
spec:
HEAD
  rules
} | write "$prom/rules.yaml"

mkdir -p "$chart/prometheus"
{
  echo '{{- /* Generated from config/prometheus/alerts.yaml by hack/sync-chart.sh (make manifests). Do not edit. */}}'
  cat <<'HEAD'
{{- if .Values.prometheusRule.enabled }}
{{- /*
The ServiceMonitor names the job after the metrics Service and adds the
target's namespace label, so the operator's own "namespace" label (of an
ApiKey or Connection) becomes "exported_namespace".
*/}}
{{- $sel := printf "job=%q, namespace=%q" (include "apikey-operator.metricsServiceName" .) .Release.Namespace }}
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: {{ include "apikey-operator.fullname" . }}-alerts
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "apikey-operator.labels" . | nindent 4 }}
    {{- with .Values.prometheusRule.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with include "apikey-operator.annotations" . }}{{ nindent 2 . }}{{ end }}
spec:
HEAD
  # The group's header, then its rules behind defaultRules, then the
  # additional rules.
  rules | sed 's/{{/{{ "{{" }}/g' |
    awk -v sel="$selector" '
      # An action right after "{" would read as "{{{": spaces keep them
      # apart, and the action trims the spaces.
      { i = index($0, sel); if (i) $0 = substr($0, 1, i - 1) " {{- $sel -}} " substr($0, i + length(sel)) }
      /< 72 \* 3600$/ { sub(/72 \* 3600$/, "{{ int .Values.prometheusRule.credentialsExpiryHours }} * 3600") }
      { print }
      NR == 3 { print "        {{- if .Values.prometheusRule.defaultRules }}" }
    '
  cat <<'TAIL'
        {{- end }}
        {{- with .Values.prometheusRule.additionalRules }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
{{- end }}
TAIL
} | write "$chart/prometheus/rules.yaml"

# The dashboard, which the chart reads with .Files.Get.
mkdir -p "$root/dist/chart/dashboards"
write "$root/dist/chart/dashboards/apikey-operator.json" < "$prom/dashboard.json"
