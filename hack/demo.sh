#!/usr/bin/env bash
# Walks through the life of an ApiKey on a throwaway local control plane:
# the Mobile Next API emulator stands in for the real API, the operator runs
# as a local process, and the samples of config/samples/ are applied. Run it
# with `make demo`, which builds bin/manager and bin/mobilenext-emulator first.
#
# DEMO_KEEP=1 leaves everything running at the end, until Ctrl-C.
# DEMO_SAMPLES=DIR applies the samples of DIR (same file names) instead.
#
# Nothing secret is ever printed: the session token goes from the emulator's
# token file straight into Secrets, and API keys are shown redacted.
set -Eeuo pipefail
umask 077

cd "$(dirname "${BASH_SOURCE[0]}")/.."

demo_ns=demo
samples=${DEMO_SAMPLES:-config/samples}
apikey_sample=$samples/iam_v1alpha1_apikey.yaml
connection_sample=$samples/iam_v1alpha1_connection.yaml
clusterconnection_sample=$samples/iam_v1alpha1_clusterconnection.yaml
wait_cluster_seconds=120
wait_emulator_seconds=30

work=""
assets=""
kubeconfig=""
cluster_pid=""
emulator_pid=""
manager_pid=""
keep_pid=""

section() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

# quote prints its arguments as a shell would read them back.
quote() {
  local arg out=""
  for arg in "$@"; do
    if [[ $arg =~ ^[-A-Za-z0-9_./:=@,+%]+$ ]]; then
      out+=" $arg"
    else
      out+=" '${arg//\'/\'\\\'\'}'"
    fi
  done
  printf '%s' "${out# }"
}

# run prints a command, then runs it.
run() {
  printf '$ %s\n' "$(quote "$@")"
  "$@"
}

kubectl() { "$assets/kubectl" --kubeconfig="$kubeconfig" "$@"; }

# plugin prints and runs the kubectl plugin, as `kubectl mobilenext ...`
# runs it with bin/ on PATH.
plugin() {
  printf '$ kubectl mobilenext %s\n' "$(quote "$@")"
  bin/kubectl-mobilenext --kubeconfig="$kubeconfig" "$@"
}

# show_logs prints the end of the logs that explain a failure. The emulator's
# standard output is never shown: it holds the session token.
show_logs() {
  local log
  trap - ERR
  set +e
  if [ -n "$kubeconfig" ] && [ -n "$manager_pid" ]; then
    printf '\n---- the resources and their Ready conditions ----\n' >&2
    kubectl --request-timeout=5s get mobilenext -A -o wide >&2
    kubectl --request-timeout=5s get mobilenext -A -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}: {.status.conditions[?(@.type=="Ready")].reason}: {.status.conditions[?(@.type=="Ready")].message}{"\n"}{end}' >&2
  fi
  for log in manager.log emulator.log localcluster.log; do
    if [ -n "$work" ] && [ -s "$work/$log" ]; then
      printf '\n---- last lines of %s ----\n' "$log" >&2
      tail -n 40 "$work/$log" >&2
      # The manager's log is the one that matters once it runs.
      if [ "$log" = manager.log ]; then
        break
      fi
    fi
  done
}

fail() {
  printf '\ndemo: FAILED: %s\n' "$*" >&2
  show_logs
  exit 1
}

on_error() {
  # A failure inside a command substitution fails its caller too: report once.
  [ "$BASH_SUBSHELL" -eq 0 ] || return 0
  printf '\ndemo: FAILED: command at line %s exited with status %s\n' "$1" "$2" >&2
  show_logs
}

# stop_process sends SIGTERM to a process this script started and waits up to
# 20 seconds for it, then kills it.
stop_process() {
  local pid=$1 what=$2 i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    printf 'demo: %s (pid %s) did not stop within 20s; killing it\n' "$what" "$pid" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT ERR INT TERM
  set +e
  if [ -n "$keep_pid" ]; then
    kill "$keep_pid" 2>/dev/null
    wait "$keep_pid" 2>/dev/null
  fi
  if [ -n "$manager_pid$emulator_pid$cluster_pid" ]; then
    section "Cleaning up"
  fi
  stop_process "$manager_pid" manager
  stop_process "$emulator_pid" emulator
  stop_process "$cluster_pid" "local control plane"
  if [ -n "$work" ]; then
    rm -rf "$work"
  fi
  if [ "$rc" -eq 0 ]; then
    note "done"
  fi
  exit "$rc"
}

trap 'on_error "$LINENO" "$?"' ERR
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for_line waits until file holds a line matching pattern, while the
# process pid is alive.
wait_for_line() {
  local file=$1 pattern=$2 pid=$3 seconds=$4 what=$5 i
  for ((i = 0; i < seconds * 10; i++)); do
    if grep -q -- "$pattern" "$file" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      fail "$what exited before it was ready"
    fi
    sleep 0.1
  done
  fail "$what was not ready within ${seconds}s"
}

# wait_for runs a kubectl wait (or delete --wait), failing the demo if it
# times out.
wait_for() {
  if ! run kubectl "$@"; then
    fail "kubectl $* did not succeed"
  fi
}

# list_remote_keys prints the keys the emulator holds, from its administrative
# API. Only ids, names and suffixes are shown; the API never returns secrets.
list_remote_keys() {
  printf '$ curl -H "X-Emulator-Admin: ..." %s/_emulator/keys\n' "$emulator_url"
  curl -fsS -H @"$work/admin-header" "$emulator_url/_emulator/keys" |
    tr '{' '\n' |
    awk '
      function field(name,   re, v) {
        re = "\"" name "\":(\"[^\"]*\"|null)"
        if (!match($0, re)) return "-"
        v = substr($0, RSTART + length(name) + 3, RLENGTH - length(name) - 3)
        gsub(/"/, "", v)
        return v == "null" ? "-" : v
      }
      # Timestamps to the second.
      function stamp(t) { return t == "-" ? t : substr(t, 1, 19) "Z" }
      BEGIN { format = "%-26s %-9s %-21s %-21s %s\n"; printf format, "ID", "SUFFIX", "CREATED", "LAST USED", "NAME" }
      /"id":/ {
        n++
        printf format, field("id"), field("apiKeySuffix"), stamp(field("createdAt")), stamp(field("lastUsedAt")), field("name")
      }
      END { if (n == 0) print "(no keys)" }'
}

# show_secret prints a managed Secret with its value redacted: only the length
# and the first four characters of the key leave the cluster.
show_secret() {
  local name=$1 key=$2
  printf '$ kubectl -n %s get secret %s -o go-template=...   (metadata, and the data redacted)\n' "$demo_ns" "$name"
  kubectl -n "$demo_ns" get secret "$name" -o go-template="$(
    cat <<EOF
name:        {{ .metadata.name }}
labels:
{{- range \$k, \$v := .metadata.labels }}
  {{ \$k }}: {{ \$v }}
{{- end }}
annotations:
{{- range \$k, \$v := .metadata.annotations }}
  {{ \$k }}: {{ \$v }}
{{- end }}
owner:       {{ range .metadata.ownerReferences }}{{ .kind }}/{{ .name }} {{ end }}
data:
{{- range \$k, \$v := .data }}
  {{ \$k }}: <REDACTED: {{ len (base64decode \$v) }} characters, begins with "{{ printf "%.4s" (base64decode \$v) }}">
{{- end }}
EOF
  )"
  echo
  note "(the data value is redacted on purpose; an application reads it from data.$key)"
}

# wait_for_suffixes waits until every ApiKey, and its Secret, shows the
# suffix of its current key. A create answer does not carry the suffix: the
# operator learns it from its next list call, once per --sync-period.
wait_for_suffixes() {
  local i missing=""
  for ((i = 0; i < 60; i++)); do
    missing=$(
      {
        kubectl -n "$demo_ns" get apikeys \
          -o jsonpath='{range .items[*]}ApiKey/{.metadata.name}{" "}{.status.apiKeySuffix}{"\n"}{end}'
        kubectl -n "$demo_ns" get secrets -l app.kubernetes.io/managed-by=apikey-operator \
          -o jsonpath='{range .items[*]}Secret/{.metadata.name}{" "}{.metadata.annotations.iam\.mobilenexthq\.com/key-suffix}{"\n"}{end}'
      } | awk 'NF == 1 { print $1 }'
    )
    if [ -z "$missing" ]; then
      return 0
    fi
    sleep 0.5
  done
  fail "no key suffix after 30s on: ${missing//$'\n'/ }"
}

apikey_field() {
  kubectl -n "$demo_ns" get apikey "$1" -o jsonpath="$2"
}

# --- prerequisites ---------------------------------------------------------

for bin in bin/manager bin/mobilenext-emulator bin/kubectl-mobilenext; do
  [ -x "$bin" ] || fail "$bin is missing: run this through 'make demo', which builds it"
done
command -v curl >/dev/null || fail "curl is required"
command -v go >/dev/null || fail "go is required"
for f in "$clusterconnection_sample" "$connection_sample" "$apikey_sample"; do
  [ -f "$f" ] || fail "sample $f is missing"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/apikey-operator-demo.XXXXXX")

# --- 1. control plane binaries ---------------------------------------------

section "Control plane binaries (etcd, kube-apiserver, kube-controller-manager, kubectl)"
note "hack/controlplane.sh builds them from Go modules the first time (about 10 minutes"
note "on a cold machine) and caches them; later runs reuse the cache at once."
assets=$(hack/controlplane.sh)
note "using $assets"
"$assets/kubectl" version --client | sed 's/^/    /'

# --- 2. local control plane -----------------------------------------------

section "Starting a local control plane with the operator's CRDs"
run go build -o bin/localcluster ./hack/localcluster
KUBEBUILDER_ASSETS=$assets bin/localcluster --dir "$work" --crds config/crd/bases \
  >"$work/localcluster.log" 2>&1 &
cluster_pid=$!
note "waiting for etcd, kube-apiserver and kube-controller-manager (up to ${wait_cluster_seconds}s)..."
wait_for_line "$work/localcluster.log" '^kubeconfig: ' "$cluster_pid" "$wait_cluster_seconds" "the local control plane"
kubeconfig=$(sed -n 's/^kubeconfig: //p' "$work/localcluster.log" | tail -n 1)
note "kubeconfig: $kubeconfig"
run kubectl get crds

# --- 3. emulator -----------------------------------------------------------

section "Starting the Mobile Next API emulator"
admin_token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf 'X-Emulator-Admin: %s\n' "$admin_token" >"$work/admin-header"
# The admin token goes through the environment, not the command line, so
# that it stays out of process listings. The emulator's standard output holds
# the session token: it goes to a private file and is never shown.
EMULATOR_ADMIN_TOKEN=$admin_token bin/mobilenext-emulator --addr 127.0.0.1:0 --token-file "$work/token" \
  >"$work/emulator.out" 2>"$work/emulator.log" &
emulator_pid=$!
unset admin_token
wait_for_line "$work/emulator.out" '^mobilenext-emulator listening on http://' "$emulator_pid" "$wait_emulator_seconds" "the emulator"
wait_for_line "$work/emulator.out" '^organization: ' "$emulator_pid" "$wait_emulator_seconds" "the emulator"
emulator_url=$(sed -n 's|^mobilenext-emulator listening on \(http://[^ ]*\).*|\1|p' "$work/emulator.out")
emulator_org=$(sed -n 's/^organization: \([^ ]*\).*/\1/p' "$work/emulator.out")
[ -s "$work/token" ] || fail "the emulator wrote no token file"
note "emulator:     $emulator_url"
note "organization: $emulator_org"
note "a session token for the organization's admin was written to a private file (not shown)"

# --- 4. credentials --------------------------------------------------------

section "Namespaces and the operator's credentials"
cc_secret_ns=$(kubectl create --dry-run=client -f "$clusterconnection_sample" -o jsonpath='{.spec.credentialsSecretRef.namespace}')
cc_secret_name=$(kubectl create --dry-run=client -f "$clusterconnection_sample" -o jsonpath='{.spec.credentialsSecretRef.name}')
cc_secret_key=$(kubectl create --dry-run=client -f "$clusterconnection_sample" -o jsonpath='{.spec.credentialsSecretRef.key}')
if [ -z "$cc_secret_ns" ] || [ -z "$cc_secret_name" ]; then
  fail "$clusterconnection_sample has no spec.credentialsSecretRef namespace and name"
fi
run kubectl create namespace "$cc_secret_ns"
run kubectl -n "$cc_secret_ns" create secret generic "$cc_secret_name" --from-file="${cc_secret_key:-token}=$work/token"
run kubectl create namespace "$demo_ns"

# --- 5. connections --------------------------------------------------------

section "ClusterConnection (from $clusterconnection_sample), pointed at the emulator"
run kubectl apply -f "$clusterconnection_sample"
cc_name=$(kubectl create --dry-run=client -f "$clusterconnection_sample" -o jsonpath='{.metadata.name}')
cc_org=$(kubectl get clusterconnection "$cc_name" -o jsonpath='{.spec.organizationId}')
if [ -n "$cc_org" ]; then
  # The sample names a real organization; the emulator has its own.
  run kubectl patch clusterconnection "$cc_name" --type merge \
    -p "{\"spec\":{\"url\":\"$emulator_url\",\"organizationId\":\"$emulator_org\"}}"
else
  run kubectl patch clusterconnection "$cc_name" --type merge -p "{\"spec\":{\"url\":\"$emulator_url\"}}"
fi
note "(plain http is accepted only because the emulator listens on a loopback address)"

section "Connection in namespace $demo_ns (from $connection_sample), pointed at the emulator"
run kubectl -n "$demo_ns" apply -f "$connection_sample"
conn_name=$(kubectl create --dry-run=client -f "$connection_sample" -o jsonpath='{.metadata.name}')
conn_secret_name=$(kubectl -n "$demo_ns" get connection "$conn_name" -o jsonpath='{.spec.credentialsSecretRef.name}')
conn_secret_key=$(kubectl -n "$demo_ns" get connection "$conn_name" -o jsonpath='{.spec.credentialsSecretRef.key}')
run kubectl -n "$demo_ns" create secret generic "$conn_secret_name" --from-file="${conn_secret_key:-token}=$work/token"
note "the sample's organizationId is replaced with the emulator's organization"
run kubectl -n "$demo_ns" patch connection "$conn_name" --type merge \
  -p "{\"spec\":{\"url\":\"$emulator_url\",\"organizationId\":\"$emulator_org\"}}"

# --- 6. the operator -------------------------------------------------------

section "Starting the operator (bin/manager, logging to a file)"
note "(started only now, so that it never talks to the real API with the emulator's token)"
# Metrics over plain http on a loopback port nothing listens on yet, so the
# demo can show them without a token (a cluster install serves them over
# HTTPS to authorized readers only).
metrics_port=
for ((p = 18080; p < 18180; p++)); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    metrics_port=$p
    break
  fi
done
[ -n "$metrics_port" ] || fail "no free loopback port in 18080-18179 for the manager's metrics"
metrics_url="http://127.0.0.1:$metrics_port/metrics"
manager_flags="--sync-period=5s --credentials-poll-interval=5s --metrics-bind-address=127.0.0.1:$metrics_port --metrics-secure=false --health-probe-bind-address=0"
printf '$ %s\n' "bin/manager $manager_flags > manager.log 2>&1 &"
# shellcheck disable=SC2086 # the flags are words
KUBECONFIG=$kubeconfig bin/manager $manager_flags >"$work/manager.log" 2>&1 &
manager_pid=$!
wait_for wait --for=condition=Ready "clusterconnection/$cc_name" --timeout=60s
wait_for -n "$demo_ns" wait --for=condition=Ready "connection/$conn_name" --timeout=60s
run kubectl get mobilenext -A

# --- 7. api keys -----------------------------------------------------------

section "ApiKeys in namespace $demo_ns"
for f in "$samples"/iam_v1alpha1_apikey*.yaml; do
  run kubectl -n "$demo_ns" apply -f "$f"
done
# Workloads named as rollout restart targets get a stand-in Deployment.
targets=$(kubectl -n "$demo_ns" get apikeys -o jsonpath='{range .items[*]}{range .spec.rolloutRestartTargets[*]}{.kind}{" "}{.name}{"\n"}{end}{end}' | sort -u)
while read -r kind name; do
  [ -n "$name" ] || continue
  if [ "$kind" != Deployment ]; then
    note "restart target $kind/$name is not created by this demo"
    continue
  fi
  if ! kubectl -n "$demo_ns" get deployment "$name" >/dev/null 2>&1; then
    run kubectl -n "$demo_ns" create deployment "$name" --image=registry.k8s.io/pause:3.10
  fi
done <<<"$targets"
if [ -n "$targets" ]; then
  note "(the local control plane has no kubelet and no deployment controller: the"
  note " Deployment is a stand-in whose pods never run; its pod template is what matters)"
fi
wait_for -n "$demo_ns" wait --for=condition=Ready apikey --all --timeout=120s
note "waiting for the key suffixes, learnt from the operator's next list call (--sync-period=5s)..."
wait_for_suffixes

section "What the operator made"
run kubectl get mobilenext -A
echo
run kubectl -n "$demo_ns" get apikeys -o wide
echo
run kubectl -n "$demo_ns" get secrets -l app.kubernetes.io/managed-by=apikey-operator --show-labels

# The ApiKey to rotate and delete: one whose remote keys go with it, with a
# restart target if there is one.
subject=$(kubectl -n "$demo_ns" get apikeys -o jsonpath='{range .items[?(@.spec.deletionPolicy=="Delete")]}{.metadata.name}{" "}{.spec.rolloutRestartTargets[*].name}{"\n"}{end}' |
  awk 'NF > 1 && !t { t = $1 } NF && !a { a = $1 } END { print (t ? t : a) }')
[ -n "$subject" ] || fail "no ApiKey with deletionPolicy Delete among the samples"
secret_name=$(apikey_field "$subject" '{.status.secretName}')
secret_key=$(apikey_field "$subject" '{.status.secretKey}')

section "The same, through the kubectl plugin (bin/kubectl-mobilenext)"
plugin status -A

section "The Secret of ApiKey $subject"
show_secret "$secret_name" "$secret_key"

section "The same keys, as the (emulated) Mobile Next API lists them"
list_remote_keys

# --- 8. rotation -----------------------------------------------------------

section "Rotating ApiKey $subject on demand"
old_key=$(apikey_field "$subject" '{.status.keyId}')
note "current key id: $old_key"
plugin -n "$demo_ns" rotate "$subject"
note "waiting for a new key id (up to 60s)..."
new_key=$old_key
for ((i = 0; i < 120; i++)); do
  new_key=$(apikey_field "$subject" '{.status.keyId}')
  [ "$new_key" = "$old_key" ] || break
  sleep 0.5
done
[ "$new_key" != "$old_key" ] || fail "ApiKey $subject still holds key $old_key 60s after the rotate annotation"
wait_for -n "$demo_ns" wait --for=condition=Ready "apikey/$subject" --timeout=60s
wait_for_suffixes
run kubectl -n "$demo_ns" get apikey "$subject" -o jsonpath='keyId:            {.status.keyId}{"\n"}apiKeySuffix:     {.status.apiKeySuffix}{"\n"}lastRotationTime: {.status.lastRotationTime}{"\n"}previousKeys:     {.status.previousKeys}{"\n"}'
note "(the previous key stays valid for the grace period, so running clients are not cut off)"
echo
printf '$ kubectl -n %s describe apikey %s   (the Events section)\n' "$demo_ns" "$subject"
kubectl -n "$demo_ns" describe apikey "$subject" | sed -n '/^Events:/,$p'
restart_targets=$(apikey_field "$subject" '{range .spec.rolloutRestartTargets[?(@.kind=="Deployment")]}{.name}{"\n"}{end}')
for d in $restart_targets; do
  echo
  run kubectl -n "$demo_ns" get deployment "$d" -o jsonpath='{.metadata.name}: pod template annotations {.spec.template.metadata.annotations}{"\n"}'
done
echo
show_secret "$secret_name" "$secret_key"
echo
list_remote_keys

section "What the operator's metrics say about Connection $demo_ns/$conn_name"
note "(all metrics: curl $metrics_url; README, Metrics; alerts and a dashboard: config/prometheus)"
conn_label="Connection/$demo_ns/$conn_name"
printf '$ curl -s %s | grep ...\n' "$metrics_url"
metrics=$(curl -fsS "$metrics_url") || fail "the manager's metrics at $metrics_url cannot be read"
metrics_lines=$(grep -E "^apikey_operator_api_requests_total\{[^}]*connection=\"$conn_label\"|^apikey_operator_(connection_ready|credentials_expiry_timestamp_seconds)\{[^}]*kind=\"Connection\",name=\"$conn_name\",namespace=\"$demo_ns\"|^apikey_operator_apikey_(status_condition|previous_keys|next_rotation_timestamp_seconds)\{[^}]*namespace=\"$demo_ns\"" <<<"$metrics" || true)
grep -q '^apikey_operator_api_requests_total' <<<"$metrics_lines" ||
  fail "no apikey_operator_api_requests_total series for $conn_label at $metrics_url"
grep -q '^apikey_operator_connection_ready' <<<"$metrics_lines" ||
  fail "no apikey_operator_connection_ready series for Connection $demo_ns/$conn_name at $metrics_url"
printf '%s\n' "$metrics_lines"
note "(api_requests_total counts the calls through this connection by method and exact status:"
note " a few GETs (shared listings), one POST per key made, DELETEs for retired keys)"

# --- 9. deletion -----------------------------------------------------------

section "Deleting ApiKey $subject (deletionPolicy Delete)"
wait_for -n "$demo_ns" delete apikey "$subject" --wait --timeout=60s
note "its remote keys, current and previous, are gone:"
list_remote_keys
echo
note "and so is its Secret:"
printf '$ kubectl -n %s get secret %s\n' "$demo_ns" "$secret_name"
if kubectl -n "$demo_ns" get secret "$secret_name" 2>&1; then
  fail "Secret $secret_name still exists after its ApiKey was deleted"
fi
echo
run kubectl get mobilenext -A

# --- 10. the end -----------------------------------------------------------

if [ "${DEMO_KEEP:-}" = 1 ]; then
  section "Everything keeps running (DEMO_KEEP=1)"
  note "kubeconfig:  $kubeconfig"
  note "kubectl:     $assets/kubectl"
  note "try:         KUBECONFIG=$kubeconfig $assets/kubectl get mobilenext -A"
  note "emulator:    $emulator_url (admin API: curl -H @$work/admin-header $emulator_url/_emulator/keys)"
  note "logs:        $work/manager.log, $work/emulator.log, $work/localcluster.log"
  note "Press Ctrl-C (or kill $$) to stop everything and remove $work."
  trap 'exit 0' INT TERM
  while :; do
    sleep 3600 &
    keep_pid=$!
    wait "$keep_pid" || true
  done
fi

section "Demo complete"
note "run with DEMO_KEEP=1 to keep the control plane, the emulator and the operator running"
