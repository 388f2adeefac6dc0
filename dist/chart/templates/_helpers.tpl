{{/*
The chart's name, or nameOverride.
*/}}
{{- define "apikey-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: fullnameOverride, else the release name
when it already contains the chart name, else "<release>-<chart name>". Kept
short enough for the suffixes the templates add.
*/}}
{{- define "apikey-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "apikey-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "apikey-operator.labels" -}}
helm.sh/chart: {{ include "apikey-operator.chart" . }}
{{ include "apikey-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels that select the manager's pods.
*/}}
{{- define "apikey-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "apikey-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{/*
The metadata.annotations block of an object, or nothing when there are no
common annotations. Call with nindent 2.
*/}}
{{- define "apikey-operator.annotations" -}}
{{- with .Values.commonAnnotations -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "apikey-operator.serviceAccountName" -}}
{{ include "apikey-operator.fullname" . }}-controller-manager
{{- end }}

{{- define "apikey-operator.metricsServiceName" -}}
{{ include "apikey-operator.fullname" . }}-controller-manager-metrics-service
{{- end }}

{{/*
The namespace of the leader election Lease.
*/}}
{{- define "apikey-operator.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{- define "apikey-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The manager's command-line arguments. A value left empty leaves its flag out,
so that the manager's own default applies: a default has one definition.
*/}}
{{- define "apikey-operator.args" -}}
{{- $v := .Values }}
{{- if $v.leaderElection.enabled }}
- --leader-elect
- --leader-election-namespace={{ include "apikey-operator.leaderElectionNamespace" . }}
{{- with $v.leaderElection.leaseDuration }}
- --leader-elect-lease-duration={{ . }}
{{- end }}
{{- with $v.leaderElection.renewDeadline }}
- --leader-elect-renew-deadline={{ . }}
{{- end }}
{{- with $v.leaderElection.retryPeriod }}
- --leader-elect-retry-period={{ . }}
{{- end }}
{{- end }}
{{- if $v.metrics.enabled }}
- --metrics-bind-address=:{{ $v.metrics.port }}
{{- else }}
- --metrics-bind-address=0
{{- end }}
- --metrics-secure={{ $v.metrics.secure }}
{{- if $v.metrics.enableHTTP2 }}
- --enable-http2
{{- end }}
{{- if $v.metrics.tls.secretName }}
- --metrics-cert-path=/tmp/k8s-metrics-server/metrics-certs
- --metrics-cert-name={{ $v.metrics.tls.certKey }}
- --metrics-cert-key={{ $v.metrics.tls.keyKey }}
{{- end }}
- --health-probe-bind-address=:{{ $v.healthProbe.port }}
{{- with $v.manager.syncPeriod }}
- --sync-period={{ . }}
{{- end }}
{{- with $v.manager.credentialsPollInterval }}
- --credentials-poll-interval={{ . }}
{{- end }}
{{- with $v.manager.createAttemptWindow }}
- --create-attempt-window={{ . }}
{{- end }}
{{- with $v.manager.credentialsExpiryWarning }}
- --credentials-expiry-warning={{ . }}
{{- end }}
{{- with $v.manager.maxConcurrentReconciles }}
- --max-concurrent-reconciles={{ . }}
{{- end }}
{{- with $v.manager.connectionConcurrentReconciles }}
- --connection-concurrent-reconciles={{ . }}
{{- end }}
{{- with $v.manager.kubeAPIQPS }}
- --kube-api-qps={{ . }}
{{- end }}
{{- with $v.manager.kubeAPIBurst }}
- --kube-api-burst={{ . }}
{{- end }}
{{- with $v.manager.pprofBindAddress }}
- --pprof-bind-address={{ . }}
{{- end }}
{{- with $v.manager.log.level }}
- --zap-log-level={{ . }}
{{- end }}
{{- with $v.manager.log.encoder }}
- --zap-encoder={{ . }}
{{- end }}
{{- with $v.manager.log.stacktraceLevel }}
- --zap-stacktrace-level={{ . }}
{{- end }}
{{- with $v.manager.log.timeEncoding }}
- --zap-time-encoding={{ . }}
{{- end }}
{{- if $v.manager.log.development }}
- --zap-devel
{{- end }}
{{- range $v.manager.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
