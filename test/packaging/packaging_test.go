/*
Copyright 2026 The apikey-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package packaging proves that what the operator ships installs: the
// dist/install.yaml that make build-installer writes and the Helm chart in
// dist/chart (with its default values and with every toggle on) pass a
// server-side dry-run on a real kube-apiserver, their manager pod passes the
// "restricted" Pod Security admission, the chart lints, and the chart's
// CRDs and RBAC are those of config/.
package packaging

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/mobile-next/apikey-operator/test/manifests"
)

var (
	chartDir   = filepath.Join("..", "..", "dist", "chart")
	crdDir     = filepath.Join("..", "..", "config", "crd", "bases")
	mainGo     = filepath.Join("..", "..", "cmd", "main.go")
	allValues  = filepath.Join("testdata", "values-all.yaml")
	monitoring = filepath.Join("testdata", "crds")
)

// installNamespace is where config/default puts everything.
const installNamespace = "apikey-operator-system"

// restricted labels a namespace so that Pod Security admission refuses any
// pod that does not meet the "restricted" standard.
var restricted = map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}

var (
	k8sClient   client.Client
	installYAML string
	installImg  string
	helm        string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env, err := manifests.Require("KUBEBUILDER_ASSETS",
		manifests.InstallYAMLEnv, manifests.InstallImageEnv, manifests.HelmEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	installYAML, installImg, helm = env[manifests.InstallYAMLEnv], env[manifests.InstallImageEnv], env[manifests.HelmEnv]

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	// A bare API server with only the prometheus-operator CRDs the chart can
	// render objects of: the operator's own CRDs are part of what is checked.
	testEnv := &envtest.Environment{
		CRDDirectoryPaths:     []string{monitoring},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := testEnv.Start()
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the control plane:", err)
		}
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: start kube-apiserver and etcd:", err)
		return 1
	}
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	return m.Run()
}

func newContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestInstallManifestIsAcceptedByTheAPIServer(t *testing.T) {
	ctx := newContext(t)
	objs, err := manifests.Load(installYAML)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("holds the CRDs, the namespace, RBAC, the Deployment and the metrics Service", func(t *testing.T) {
		want := []string{
			"CustomResourceDefinition/apikeys.iam.mobilenexthq.com",
			"CustomResourceDefinition/clusterconnections.iam.mobilenexthq.com",
			"CustomResourceDefinition/connections.iam.mobilenexthq.com",
			"Namespace/" + installNamespace,
			"ServiceAccount/apikey-operator-controller-manager",
			"ClusterRole/apikey-operator-manager-role",
			"ClusterRoleBinding/apikey-operator-manager-rolebinding",
			"Role/apikey-operator-leader-election-role",
			"RoleBinding/apikey-operator-leader-election-rolebinding",
			"Deployment/apikey-operator-controller-manager",
			"Service/apikey-operator-controller-manager-metrics-service",
		}
		have := make([]string, 0, len(objs))
		for _, u := range objs {
			have = append(have, u.GetKind()+"/"+u.GetName())
			scoped := u.GetKind() == "CustomResourceDefinition" || u.GetKind() == "Namespace" ||
				strings.HasPrefix(u.GetKind(), "Cluster")
			if !scoped && u.GetNamespace() != installNamespace {
				t.Errorf("%s %s is in namespace %q, want %s", u.GetKind(), u.GetName(), u.GetNamespace(), installNamespace)
			}
		}
		for _, w := range want {
			if !slices.Contains(have, w) {
				t.Errorf("install.yaml has no %s; it has %v", w, have)
			}
		}
	})

	deploy := deployment(t, objs, "apikey-operator-controller-manager")
	t.Run("runs the image make build-installer was given", func(t *testing.T) {
		if got := deploy.Spec.Template.Spec.Containers[0].Image; got != installImg {
			t.Errorf("manager image = %q, want IMG %q", got, installImg)
		}
	})
	t.Run("sets POD_NAMESPACE from the downward API", func(t *testing.T) {
		checkPodNamespace(t, deploy)
	})

	// The namespace comes from the manifest, created for real: namespaced
	// objects cannot be dry-run into a namespace that does not exist.
	ns := manifests.Find(objs, "Namespace", installNamespace)
	if ns == nil {
		t.Fatal("install.yaml has no Namespace")
	}
	if got := ns.GetLabels()["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("the Namespace enforces Pod Security %q, want restricted", got)
	}
	if err := manifests.Apply(ctx, k8sClient, []*unstructured.Unstructured{ns}, false); err != nil {
		t.Fatal(err)
	}
	t.Run("passes a server-side dry-run", func(t *testing.T) {
		if err := manifests.Apply(ctx, k8sClient, objs, true); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("its manager pod passes the restricted Pod Security admission", func(t *testing.T) {
		if err := dryRunPod(ctx, deploy); err != nil {
			t.Fatal(err)
		}
	})
}

// chartCase is one rendering of the chart.
type chartCase struct {
	name      string
	namespace string
	args      []string
	// kinds that must be rendered, and kinds that must not.
	present, absent []string
	// wantArgs are the manager's arguments.
	wantArgs []string
}

var chartCases = []chartCase{
	{
		name:      "default values",
		namespace: "chart-default",
		present: []string{"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
			"RoleBinding", "Deployment", "Service"},
		absent: []string{"Namespace", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule", "ConfigMap",
			"NetworkPolicy"},
		wantArgs: []string{
			"--leader-elect",
			"--leader-election-namespace=chart-default",
			"--metrics-bind-address=:8443",
			"--metrics-secure=true",
			"--health-probe-bind-address=:8081",
		},
	},
	{
		name:      "every toggle on",
		namespace: "chart-all",
		args:      []string{"--values", allValues},
		present: []string{"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
			"RoleBinding", "Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule",
			"ConfigMap", "NetworkPolicy"},
		absent: []string{"Namespace"},
		wantArgs: []string{
			"--leader-elect",
			"--leader-election-namespace=chart-all-leases",
			"--leader-elect-lease-duration=30s",
			"--leader-elect-renew-deadline=20s",
			"--leader-elect-retry-period=4s",
			"--metrics-bind-address=:9443",
			"--metrics-secure=true",
			"--enable-http2",
			"--metrics-cert-path=/tmp/k8s-metrics-server/metrics-certs",
			"--metrics-cert-name=cert.pem",
			"--metrics-cert-key=key.pem",
			"--health-probe-bind-address=:9081",
			"--sync-period=5m",
			"--credentials-poll-interval=30s",
			"--create-attempt-window=15m",
			"--credentials-expiry-warning=48h",
			"--max-concurrent-reconciles=8",
			"--connection-concurrent-reconciles=3",
			"--kube-api-qps=25.5",
			"--kube-api-burst=60",
			"--pprof-bind-address=127.0.0.1:6060",
			"--zap-log-level=debug",
			"--zap-encoder=console",
			"--zap-stacktrace-level=panic",
			"--zap-time-encoding=iso8601",
			"--zap-devel",
			"--kubeconfig=",
		},
	},
}

func TestChartIsAcceptedByTheAPIServer(t *testing.T) {
	installed, err := manifests.Load(installYAML)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := newContext(t)
			objs, err := manifests.HelmObjects(ctx, helm, chartDir, "apikey-operator", tc.namespace, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]bool{}
			for _, u := range objs {
				kinds[u.GetKind()] = true
			}
			for _, k := range tc.present {
				if !kinds[k] {
					t.Errorf("no %s rendered", k)
				}
			}
			for _, k := range tc.absent {
				if kinds[k] {
					t.Errorf("a %s is rendered", k)
				}
			}

			deploys := manifests.OfKind(objs, "Deployment")
			if len(deploys) != 1 {
				t.Fatalf("%d Deployments rendered, want 1", len(deploys))
			}
			deploy := deployment(t, deploys, deploys[0].GetName())
			if diff := cmp.Diff(tc.wantArgs, deploy.Spec.Template.Spec.Containers[0].Args); diff != "" {
				t.Errorf("manager arguments (-want +got):\n%s", diff)
			}
			checkPodNamespace(t, deploy)

			prepareNamespaces(ctx, t, objs, tc.namespace)
			if err := manifests.Apply(ctx, k8sClient, objs, true); err != nil {
				t.Fatalf("server-side dry-run: %v", err)
			}
			if err := dryRunPod(ctx, deploy); err != nil {
				t.Fatalf("the manager pod: %v", err)
			}
			checkSameAsConfig(t, objs, installed)
		})
	}
}

func TestChartManagerPodIsCheckedForPodSecurity(t *testing.T) {
	// The check above can fail: a pod that may escalate privileges is refused.
	ctx := newContext(t)
	objs, err := manifests.HelmObjects(ctx, helm, chartDir, "apikey-operator", "chart-default",
		"--set", "securityContext.allowPrivilegeEscalation=true")
	if err != nil {
		t.Fatal(err)
	}
	deploy := deployment(t, objs, "apikey-operator-controller-manager")
	prepareNamespaces(ctx, t, nil, "chart-default")
	err = dryRunPod(ctx, deploy)
	if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "allowPrivilegeEscalation") {
		t.Fatalf("a manager pod with allowPrivilegeEscalation=true: got %v, want a Pod Security refusal", err)
	}
}

func TestChartCRDValues(t *testing.T) {
	ctx := newContext(t)
	tests := []struct {
		name     string
		set      string
		wantCRDs int
		wantKeep bool
	}{
		{name: "installed and kept by default", wantCRDs: 3, wantKeep: true},
		{name: "installed, removed on uninstall with crds.keep=false", set: "crds.keep=false", wantCRDs: 3},
		{name: "left out with crds.install=false", set: "crds.install=false", wantCRDs: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.set != "" {
				args = []string{"--set", tc.set}
			}
			objs, err := manifests.HelmObjects(ctx, helm, chartDir, "apikey-operator", "chart-default", args...)
			if err != nil {
				t.Fatal(err)
			}
			crds := manifests.OfKind(objs, "CustomResourceDefinition")
			if len(crds) != tc.wantCRDs {
				t.Fatalf("%d CRDs rendered, want %d", len(crds), tc.wantCRDs)
			}
			for _, crd := range crds {
				keep := crd.GetAnnotations()["helm.sh/resource-policy"] == "keep"
				if keep != tc.wantKeep {
					t.Errorf("CRD %s: helm.sh/resource-policy keep = %v, want %v", crd.GetName(), keep, tc.wantKeep)
				}
			}
		})
	}
}

func TestChartRefusesReplicasWithoutLeaderElection(t *testing.T) {
	ctx := newContext(t)
	_, err := manifests.Helm(ctx, helm, chartDir, "apikey-operator", "chart-default",
		"--set", "replicaCount=2", "--set", "leaderElection.enabled=false")
	if err == nil || !strings.Contains(err.Error(), "needs leaderElection.enabled") {
		t.Fatalf("replicaCount=2 without leader election: got %v, want the chart to refuse", err)
	}
}

func TestChartLints(t *testing.T) {
	ctx := newContext(t)
	for _, args := range [][]string{nil, {"--values", allValues}} {
		out, err := manifests.Run(ctx, helm, append([]string{"lint", "--strict", chartDir}, args...)...)
		if err != nil {
			t.Errorf("helm lint %v: %v", args, err)
			continue
		}
		if !strings.Contains(out, "0 chart(s) failed") {
			t.Errorf("helm lint %v:\n%s", args, out)
		}
	}
}

// zapFlags are the logging flags zap.Options.BindFlags adds to the manager.
var zapFlags = []string{"zap-devel", "zap-encoder", "zap-log-level", "zap-stacktrace-level", "zap-time-encoding"}

func TestChartHasAValueForEveryManagerFlag(t *testing.T) {
	src, err := os.ReadFile(mainGo)
	if err != nil {
		t.Fatal(err)
	}
	flags := zapFlags
	for _, m := range regexp.MustCompile(`flag\.\w+Var\(&\w+,\s*"([a-z0-9-]+)"`).FindAllStringSubmatch(string(src), -1) {
		flags = append(flags, m[1])
	}
	if len(flags) < len(zapFlags)+10 {
		t.Fatalf("found only the flags %v in %s; has the way flags are declared changed?", flags, mainGo)
	}
	// The case that sets every value must render every flag.
	rendered := strings.Join(chartCases[1].wantArgs, " ")
	for _, f := range flags {
		if !strings.Contains(rendered, "--"+f+"=") && !slices.Contains(chartCases[1].wantArgs, "--"+f) {
			t.Errorf("the manager flag --%s has no chart value (or testdata/values-all.yaml does not set it)", f)
		}
	}
}

func TestChartREADMEListsEveryValue(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	collectValuePaths("", values, &paths)
	if len(paths) < 50 {
		t.Fatalf("found only %d values in values.yaml", len(paths))
	}
	for _, p := range paths {
		if !strings.Contains(string(readme), "`"+p+"`") {
			t.Errorf("README.md does not list the value `%s`", p)
		}
	}
}

// opaqueValues are values passed through to Kubernetes as they are; the
// README documents them as a whole, not field by field.
var opaqueValues = []string{"resources", "podSecurityContext", "securityContext", "serviceMonitor.tlsConfig"}

// collectValuePaths lists the dotted paths of the leaves of values: scalars,
// lists, empty maps and opaque values.
func collectValuePaths(prefix string, v any, paths *[]string) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 || slices.Contains(opaqueValues, prefix) {
		*paths = append(*paths, prefix)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		collectValuePaths(p, m[k], paths)
	}
}

// deployment converts the named Deployment of a manifest.
func deployment(t *testing.T, objs []*unstructured.Unstructured, name string) *appsv1.Deployment {
	t.Helper()
	u := manifests.Find(objs, "Deployment", name)
	if u == nil {
		t.Fatalf("no Deployment %s", name)
	}
	var d appsv1.Deployment
	if err := manifests.Convert(u, &d); err != nil {
		t.Fatal(err)
	}
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment %s has %d containers, want 1", name, n)
	}
	return &d
}

// checkPodNamespace fails the test unless the manager gets POD_NAMESPACE from
// the downward API, which --leader-election-namespace defaults to.
func checkPodNamespace(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	env := d.Spec.Template.Spec.Containers[0].Env
	i := slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAMESPACE" })
	if i < 0 || env[i].ValueFrom == nil || env[i].ValueFrom.FieldRef == nil ||
		env[i].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("the manager has no POD_NAMESPACE from metadata.namespace: %+v", env)
	}
}

// prepareNamespaces creates, for real, the namespaces the rendered objects
// live in (enforcing the restricted Pod Security standard) and the
// PriorityClass the manager pod names: a dry-run cannot create what later
// objects need.
func prepareNamespaces(ctx context.Context, t *testing.T, objs []*unstructured.Unstructured, release string) {
	t.Helper()
	names := []string{release}
	for _, u := range objs {
		if ns := u.GetNamespace(); ns != "" && !slices.Contains(names, ns) {
			names = append(names, ns)
		}
	}
	for _, n := range names {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: restricted}}
		if err := k8sClient.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, u := range manifests.OfKind(objs, "Deployment") {
		var d appsv1.Deployment
		if err := manifests.Convert(u, &d); err != nil {
			t.Fatal(err)
		}
		if pc := d.Spec.Template.Spec.PriorityClassName; pc != "" {
			err := k8sClient.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: pc}, Value: 1000})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
	}
}

// dryRunPod submits the pod a Deployment would create, so that admission
// (Pod Security among it) judges the pod itself: it only warns about a
// Deployment's template.
func dryRunPod(ctx context.Context, d *appsv1.Deployment) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: d.Name + "-",
			Namespace:    d.Namespace,
			Labels:       d.Spec.Template.Labels,
			Annotations:  d.Spec.Template.Annotations,
		},
		Spec: *d.Spec.Template.Spec.DeepCopy(),
	}
	return k8sClient.Create(ctx, pod, client.DryRunAll)
}

// checkSameAsConfig compares the chart's CRDs with config/crd/bases and its
// RBAC with the one of install.yaml (config/rbac), rule for rule: the chart
// must grant what config/rbac grants, and no more.
func checkSameAsConfig(t *testing.T, chart, installed []*unstructured.Unstructured) {
	t.Helper()
	for _, crd := range manifests.OfKind(chart, "CustomResourceDefinition") {
		plural, _, _ := strings.Cut(crd.GetName(), ".")
		want, err := manifests.Load(filepath.Join(crdDir, "iam.mobilenexthq.com_"+plural+".yaml"))
		if err != nil || len(want) != 1 {
			t.Errorf("CRD %s: no single source in %s: %v", crd.GetName(), crdDir, err)
			continue
		}
		if diff := cmp.Diff(want[0].Object["spec"], crd.Object["spec"]); diff != "" {
			t.Errorf("the chart's CRD %s differs from config/crd/bases (run make manifests) (-config +chart):\n%s",
				crd.GetName(), diff)
		}
	}

	// Roles are matched by what follows the name prefix ("manager-role",
	// "apikey-editor-role", ...): install.yaml prefixes "apikey-operator-",
	// the chart its fullname.
	deploy := manifests.OfKind(chart, "Deployment")[0]
	prefix := strings.TrimSuffix(deploy.GetName(), "controller-manager")
	roles := manifests.OfKind(chart, "ClusterRole", "Role")
	if want := len(manifests.OfKind(installed, "ClusterRole", "Role")); len(roles) != want {
		t.Errorf("the chart has %d roles, install.yaml %d", len(roles), want)
	}
	for _, role := range roles {
		suffix := strings.TrimPrefix(role.GetName(), prefix)
		want := manifests.Find(installed, role.GetKind(), "apikey-operator-"+suffix)
		if want == nil {
			t.Errorf("the chart's %s %s has no counterpart in install.yaml", role.GetKind(), role.GetName())
			continue
		}
		got, err := manifests.Rules(role)
		if err != nil {
			t.Fatal(err)
		}
		wantRules, err := manifests.Rules(want)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(manifests.Grants(wantRules), manifests.Grants(got)); diff != "" {
			t.Errorf("%s %s grants other rules than config/rbac (-config +chart):\n%s", role.GetKind(), role.GetName(), diff)
		}
		for _, l := range []string{"view", "edit", "admin"} {
			key := "rbac.authorization.k8s.io/aggregate-to-" + l
			if role.GetLabels()[key] != want.GetLabels()[key] {
				t.Errorf("%s %s: label %s = %q, config/rbac has %q", role.GetKind(), role.GetName(), key,
					role.GetLabels()[key], want.GetLabels()[key])
			}
		}
	}
}
