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

// The tests in this file install the generated CRDs into a real kube-apiserver
// (backed by etcd) and check that the OpenAPI and CEL validation they carry
// accepts the samples and the valid edge cases, refuses invalid objects with
// the message the markers promise, and applies the documented defaults.
package v1alpha1_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

const (
	crdDir     = "../../config/crd/bases"
	samplesDir = "../../config/samples"

	// requestTimeout bounds each call to the API server. It is generous: the
	// machines that run these tests are often busy with other suites.
	requestTimeout = time.Minute
)

var (
	scheme = runtime.NewScheme()

	// k8sClient talks to the test API server. It asks for strict field
	// validation, so a field the schema does not know is an error instead of
	// being silently pruned.
	k8sClient client.Client
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "FAIL: KUBEBUILDER_ASSETS is not set. These tests need the kube-apiserver and etcd "+
			"binaries built by hack/controlplane.sh; run them with 'make test', or export "+
			"KUBEBUILDER_ASSETS=\"$(hack/controlplane.sh)\" before 'go test'.")
		return 1
	}
	logf.SetLogger(logr.Discard())
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(iamv1alpha1.AddToScheme(scheme))

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{crdDir},
		ErrorIfCRDPathMissing: true,
		CRDInstallOptions: envtest.CRDInstallOptions{
			MaxTime: 2 * time.Minute,
		},
		Scheme:                   scheme,
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err := env.Start()
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the test control plane: %v\n", err)
		}
	}()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: starting kube-apiserver and etcd from KUBEBUILDER_ASSETS=%s: %v\n",
			os.Getenv("KUBEBUILDER_ASSETS"), err)
		return 1
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: creating a client for the test API server: %v\n", err)
		return 1
	}
	k8sClient = client.WithFieldValidation(c, metav1.FieldValidationStrict)
	return m.Run()
}

// newNamespace creates a namespace for one test and deletes it afterwards.
// Without a namespace controller the namespace only starts terminating, which
// is all the isolation the tests need.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "validation-"}}
	create(t, ns)
	t.Cleanup(func() { deleteIgnoringNotFound(t, ns) })
	return ns.Name
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatalf("creating %s: %v", describe(obj), err)
	}
}

func get(t *testing.T, obj client.Object) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatalf("reading %s: %v", describe(obj), err)
	}
}

func deleteIgnoringNotFound(t *testing.T, obj client.Object) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := k8sClient.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting %s: %v", describe(obj), err)
	}
}

func describe(obj client.Object) string {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		if gvks, _, err := scheme.ObjectKinds(obj); err == nil && len(gvks) > 0 {
			kind = gvks[0].Kind
		}
	}
	name := obj.GetName()
	if name == "" {
		name = obj.GetGenerateName() + "*"
	}
	if obj.GetNamespace() != "" {
		return fmt.Sprintf("%s %s/%s", kind, obj.GetNamespace(), name)
	}
	return fmt.Sprintf("%s %s", kind, name)
}

// Valid objects the table cases start from. Each is accepted as is (see
// TestValidObjectsAreAccepted), so a refusal of a mutated copy is caused by the
// mutation alone.

func validApiKey(ns string) *iamv1alpha1.ApiKey {
	return &iamv1alpha1.ApiKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "key-"},
	}
}

func validConnection(ns string) *iamv1alpha1.Connection {
	return &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "conn-"},
		Spec: iamv1alpha1.ConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: "credentials"},
		}},
	}
}

func validClusterConnection() *iamv1alpha1.ClusterConnection {
	return &iamv1alpha1.ClusterConnection{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "validation-"},
		Spec: iamv1alpha1.ClusterConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: "credentials", Namespace: "credentials-ns"},
		}},
	}
}

// objectFunc builds the object of a table case in the test's namespace.
type objectFunc func(ns string) client.Object

func apiKey(mutate func(*iamv1alpha1.ApiKey)) objectFunc {
	return func(ns string) client.Object {
		k := validApiKey(ns)
		mutate(k)
		return k
	}
}

func connection(mutate func(*iamv1alpha1.Connection)) objectFunc {
	return func(ns string) client.Object {
		c := validConnection(ns)
		mutate(c)
		return c
	}
}

func clusterConnection(mutate func(*iamv1alpha1.ClusterConnection)) objectFunc {
	return func(string) client.Object {
		c := validClusterConnection()
		mutate(c)
		return c
	}
}

func connectionURL(url string) objectFunc {
	return connection(func(c *iamv1alpha1.Connection) { c.Spec.URL = url })
}

// unchanged is the mutation that leaves a valid object as it is.
func unchanged[T any](T) {}

// rawRotation builds the base ApiKey with spec.rotation spelled as given.
// The Go type marshals only durations it holds, in its own spelling
// ("720h0m0s"), so the spellings a user may write are sent as they are.
func rawRotation(rotation map[string]string) objectFunc {
	return func(ns string) client.Object {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(iamv1alpha1.SchemeGroupVersion.WithKind("ApiKey"))
		u.SetNamespace(ns)
		u.SetGenerateName("key-")
		fields := map[string]any{}
		for name, value := range rotation {
			fields[name] = value
		}
		u.Object["spec"] = map[string]any{"rotation": fields}
		return u
	}
}

// rotationDurations are the durations of a rotation as Go prints them, or
// "unset", so that they compare and print by value.
type rotationDurations struct {
	Every, GracePeriod, RetireWhenUnusedFor string
}

func durationsOf(r *iamv1alpha1.Rotation) rotationDurations {
	show := func(d *metav1.Duration) string {
		if d == nil {
			return "unset"
		}
		return d.Duration.String()
	}
	if r == nil {
		return rotationDurations{Every: "unset", GracePeriod: "unset", RetireWhenUnusedFor: "unset"}
	}
	return rotationDurations{Every: show(r.Every), GracePeriod: show(r.GracePeriod), RetireWhenUnusedFor: show(r.RetireWhenUnusedFor)}
}

// rotationDecodesTo reads the stored ApiKey back into the Go type, as the
// operator does, and checks its durations: an admitted value that did not
// decode would stop the operator from reading any ApiKey.
func rotationDecodesTo(want rotationDurations) func(t *testing.T, obj client.Object) {
	return func(t *testing.T, obj client.Object) {
		key := &iamv1alpha1.ApiKey{ObjectMeta: metav1.ObjectMeta{Namespace: obj.GetNamespace(), Name: obj.GetName()}}
		get(t, key)
		if got := durationsOf(key.Spec.Rotation); got != want {
			t.Errorf("rotation decodes to %+v; want %+v", got, want)
		}
	}
}

func secretTemplateLabels(labels map[string]string) objectFunc {
	return apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.SecretTemplate = &iamv1alpha1.SecretTemplate{Labels: labels} })
}

func secretTemplateAnnotations(annotations map[string]string) objectFunc {
	return apiKey(func(k *iamv1alpha1.ApiKey) {
		k.Spec.SecretTemplate = &iamv1alpha1.SecretTemplate{Annotations: annotations}
	})
}

// labelName returns a valid name part of a label key of n characters.
func labelName(n int) string {
	return "a" + strings.Repeat("-_.", n)[:n-2] + "z"
}

// labelKeyMessage starts the message that refuses an invalid label key.
const labelKeyMessage = "secretTemplate.labels keys must be qualified names"

// dnsSubdomain returns a valid DNS subdomain of n characters: labels of nine
// letters, the last one cut short.
func dnsSubdomain(n int) string {
	name := strings.Repeat("abcdefghi.", n/10+1)[:n]
	if strings.HasSuffix(name, ".") {
		name = name[:n-1] + "x"
	}
	return name
}

func TestInvalidObjectsAreRefused(t *testing.T) {
	cases := []struct {
		name string
		obj  objectFunc
		// field is the path the single cause of the refusal is reported at.
		field string
		// want is a substring of the error message.
		want string
	}{
		{
			name:  "rotation.every is not a Go duration",
			obj:   rawRotation(map[string]string{"every": "10 minutes"}),
			field: "spec.rotation.every",
			want:  `spec.rotation.every in body should match '^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$'`,
		},
		{
			name:  "rotation.every is a number without a unit",
			obj:   rawRotation(map[string]string{"every": "10"}),
			field: "spec.rotation.every",
			want:  `spec.rotation.every in body should match '^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$'`,
		},
		{
			name:  "rotation.every in days, a unit Go durations do not have",
			obj:   rawRotation(map[string]string{"every": "1d"}),
			field: "spec.rotation.every",
			want:  `spec.rotation.every in body should match '^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$'`,
		},
		{
			name:  "rotation.every is negative",
			obj:   rawRotation(map[string]string{"every": "-5m"}),
			field: "spec.rotation.every",
			want:  `spec.rotation.every in body should match '^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$'`,
		},
		{
			name:  "rotation.every of 5s, below the 10s minimum",
			obj:   rawRotation(map[string]string{"every": "5s"}),
			field: "spec.rotation",
			want:  "rotation.every must be a duration of at least 10s",
		},
		{
			name:  "rotation.every just below the minimum in a compound duration",
			obj:   rawRotation(map[string]string{"every": "9s999ms"}),
			field: "spec.rotation",
			want:  "rotation.every must be a duration of at least 10s",
		},
		{
			name:  "rotation.every too large for a duration",
			obj:   rawRotation(map[string]string{"every": "2562048h"}),
			field: "spec.rotation",
			want:  "rotation.every must be a duration of at least 10s and at most 2562047h",
		},
		{
			name:  "rotation.retireWhenUnusedFor of 0s",
			obj:   rawRotation(map[string]string{"retireWhenUnusedFor": "0s"}),
			field: "spec.rotation",
			want:  "rotation.retireWhenUnusedFor must be a duration of at least 1s",
		},
		{
			name:  "rotation.retireWhenUnusedFor in days",
			obj:   rawRotation(map[string]string{"retireWhenUnusedFor": "1d"}),
			field: "spec.rotation.retireWhenUnusedFor",
			want:  "spec.rotation.retireWhenUnusedFor in body should match",
		},
		{
			name:  "rotation.retireWhenUnusedFor too large for a duration",
			obj:   rawRotation(map[string]string{"retireWhenUnusedFor": "9223372037s"}),
			field: "spec.rotation",
			want:  "rotation.retireWhenUnusedFor must be a duration of at least 1s and at most 2562047h",
		},
		{
			name:  "rotation.gracePeriod is negative",
			obj:   rawRotation(map[string]string{"gracePeriod": "-1m"}),
			field: "spec.rotation.gracePeriod",
			want:  "spec.rotation.gracePeriod in body should match",
		},
		{
			name:  "rotation.gracePeriod is a number without a unit",
			obj:   rawRotation(map[string]string{"gracePeriod": "10"}),
			field: "spec.rotation.gracePeriod",
			want:  "spec.rotation.gracePeriod in body should match",
		},
		{
			name:  "rotation.gracePeriod too large for a duration",
			obj:   rawRotation(map[string]string{"gracePeriod": "2000000h40000000m"}),
			field: "spec.rotation",
			want:  "rotation.gracePeriod must be a duration of at most 2562047h",
		},
		{
			name: "connectionRef.kind is not a connection kind",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec.ConnectionRef = iamv1alpha1.ConnectionReference{Kind: "Secret", Name: "default"}
			}),
			field: "spec.connectionRef.kind",
			want:  `Unsupported value: "Secret": supported values: "ClusterConnection", "Connection"`,
		},
		{
			name: "connectionRef.namespace is set",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec.ConnectionRef = iamv1alpha1.ConnectionReference{
					Kind: iamv1alpha1.ConnectionKind, Name: "api", Namespace: "elsewhere",
				}
			}),
			field: "spec.connectionRef",
			want:  "connectionRef.namespace is not allowed",
		},
		{
			name: "connectionRef.name is not a DNS subdomain",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec.ConnectionRef = iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ClusterConnectionKind, Name: "Default"}
			}),
			field: "spec.connectionRef.name",
			want:  "spec.connectionRef.name in body should match",
		},
		{
			name:  "secretName is not a DNS subdomain",
			obj:   apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.SecretName = "Bad_Name" }),
			field: "spec.secretName",
			want:  "spec.secretName in body should match",
		},
		{
			name:  "secretKey is not a valid data key",
			obj:   apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.SecretKey = "a/b" }),
			field: "spec.secretKey",
			want:  "spec.secretKey in body should match '^[-._a-zA-Z0-9]+$'",
		},
		{
			name:  "secretKey contains a space",
			obj:   apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.SecretKey = "a b" }),
			field: "spec.secretKey",
			want:  "spec.secretKey in body should match '^[-._a-zA-Z0-9]+$'",
		},
		{
			name:  "secretKey is '.'",
			obj:   apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.SecretKey = "." }),
			field: "spec.secretKey",
			want:  "secretKey may not be '.' or start with '..'",
		},
		{
			name:  "secretKey is '..'",
			obj:   apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.SecretKey = ".." }),
			field: "spec.secretKey",
			want:  "secretKey may not be '.' or start with '..'",
		},
		{
			name:  "secretKey starts with '..'",
			obj:   apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.SecretKey = "..data" }),
			field: "spec.secretKey",
			want:  "secretKey may not be '.' or start with '..'",
		},
		{
			name:  "secretTemplate label key contains a space",
			obj:   secretTemplateLabels(map[string]string{"bad key": "x"}),
			field: "spec.secretTemplate.labels",
			want:  labelKeyMessage,
		},
		{
			name:  "secretTemplate label key starts with a dash",
			obj:   secretTemplateLabels(map[string]string{"-x": "x"}),
			field: "spec.secretTemplate.labels",
			want:  labelKeyMessage,
		},
		{
			name:  "secretTemplate label key has a prefix and no name",
			obj:   secretTemplateLabels(map[string]string{"x/": "x"}),
			field: "spec.secretTemplate.labels",
			want:  labelKeyMessage,
		},
		{
			name:  "secretTemplate label key has a name of 64 characters",
			obj:   secretTemplateLabels(map[string]string{"example.com/" + strings.Repeat("n", 64): "x"}),
			field: "spec.secretTemplate.labels",
			want:  labelKeyMessage,
		},
		{
			name:  "secretTemplate label key has a prefix of 254 characters",
			obj:   secretTemplateLabels(map[string]string{dnsSubdomain(254) + "/name": "x"}),
			field: "spec.secretTemplate.labels",
			want:  labelKeyMessage,
		},
		{
			name:  "secretTemplate label key has an upper-case prefix",
			obj:   secretTemplateLabels(map[string]string{"Example.com/name": "x"}),
			field: "spec.secretTemplate.labels",
			want:  labelKeyMessage,
		},
		{
			name:  "secretTemplate label value of 64 characters",
			obj:   secretTemplateLabels(map[string]string{"team": strings.Repeat("v", 64)}),
			field: "spec.secretTemplate.labels.team",
			want:  "may not be more than 63",
		},
		{
			name:  "secretTemplate label value contains a space",
			obj:   secretTemplateLabels(map[string]string{"team": "a b"}),
			field: "spec.secretTemplate.labels.team",
			want:  "spec.secretTemplate.labels.team in body should match '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$'",
		},
		{
			name:  "secretTemplate annotation key contains a space",
			obj:   secretTemplateAnnotations(map[string]string{"bad key": "x"}),
			field: "spec.secretTemplate.annotations",
			want:  "secretTemplate.annotations keys must be qualified names",
		},
		{
			name:  "secretTemplate annotation value longer than 4096 characters",
			obj:   secretTemplateAnnotations(map[string]string{"note": strings.Repeat("v", 4097)}),
			field: "spec.secretTemplate.annotations.note",
			want:  "may not be more than 4096",
		},
		{
			name: "secretTemplate sets the managed-by label",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec.SecretTemplate = &iamv1alpha1.SecretTemplate{
					Labels: map[string]string{"team": "ci", iamv1alpha1.ManagedByLabel: "helm"},
				}
			}),
			field: "spec.secretTemplate",
			want:  "secretTemplate.labels may not set app.kubernetes.io/managed-by or keys under iam.mobilenexthq.com/",
		},
		{
			name: "secretTemplate sets a label of the operator",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec.SecretTemplate = &iamv1alpha1.SecretTemplate{
					Labels: map[string]string{iamv1alpha1.ApiKeyLabel: "other"},
				}
			}),
			field: "spec.secretTemplate",
			want:  "secretTemplate.labels may not set app.kubernetes.io/managed-by or keys under iam.mobilenexthq.com/",
		},
		{
			name: "secretTemplate sets an annotation of the operator",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec.SecretTemplate = &iamv1alpha1.SecretTemplate{
					Annotations: map[string]string{iamv1alpha1.KeyIDAnnotation: "key_123"},
				}
			}),
			field: "spec.secretTemplate",
			want:  "secretTemplate.annotations may not set keys under iam.mobilenexthq.com/",
		},
		{
			name:  "deletionPolicy is not Delete or Orphan",
			obj:   apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.DeletionPolicy = "Keep" }),
			field: "spec.deletionPolicy",
			want:  `Unsupported value: "Keep": supported values: "Delete", "Orphan"`,
		},
		{
			name: "rolloutRestartTargets names a CronJob",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec.RolloutRestartTargets = []iamv1alpha1.RolloutRestartTarget{{Kind: "CronJob", Name: "nightly"}}
			}),
			field: "spec.rolloutRestartTargets[0].kind",
			want:  `Unsupported value: "CronJob": supported values: "Deployment", "StatefulSet", "DaemonSet"`,
		},
		{
			name: "rolloutRestartTargets lists a workload twice",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec.RolloutRestartTargets = []iamv1alpha1.RolloutRestartTarget{
					{Kind: "Deployment", Name: "web"}, {Kind: "StatefulSet", Name: "web"}, {Kind: "Deployment", Name: "web"},
				}
			}),
			field: "spec.rolloutRestartTargets[2]",
			want:  "Duplicate value",
		},
		{
			name: "rolloutRestartTargets has more than 32 entries",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				for i := range 33 {
					k.Spec.RolloutRestartTargets = append(k.Spec.RolloutRestartTargets,
						iamv1alpha1.RolloutRestartTarget{Kind: "Deployment", Name: fmt.Sprintf("web-%d", i)})
				}
			}),
			field: "spec.rolloutRestartTargets",
			want:  "must have at most 32 items",
		},
		{
			name:  "name contains the create-attempt marker",
			obj:   apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.Name = "ci [k8s-0123abcd]" }),
			field: "spec.name",
			want:  "name may not contain '[k8s-'",
		},
		{
			name:  "name longer than 200 characters",
			obj:   apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.Name = strings.Repeat("n", 201) }),
			field: "spec.name",
			want:  "200",
		},
		{
			name:  "Connection url uses http on a remote host",
			obj:   connectionURL("http://api.mobilenexthq.com"),
			field: "spec",
			want:  "url must use https; plain http is only allowed for loopback hosts",
		},
		{
			name:  "Connection url uses http on a host that only starts like a loopback address",
			obj:   connectionURL("http://127.0.0.1.example.com:8080"),
			field: "spec",
			want:  "url must use https; plain http is only allowed for loopback hosts",
		},
		{
			name:  "Connection url uses http on a host whose first label is 127",
			obj:   connectionURL("http://127.example.com"),
			field: "spec",
			want:  "url must use https; plain http is only allowed for loopback hosts",
		},
		{
			name:  "Connection url has no scheme",
			obj:   connectionURL("api.mobilenexthq.com"),
			field: "spec.url",
			want:  "url must be an absolute http or https URL",
		},
		{
			name:  "Connection url names no host",
			obj:   connectionURL("https:///v1"),
			field: "spec.url",
			want:  "url must be an absolute http or https URL",
		},
		{
			name:  "Connection url is a path",
			obj:   connectionURL("/v1/keys"),
			field: "spec.url",
			want:  "url must be an absolute http or https URL",
		},
		{
			name:  "Connection url uses another scheme",
			obj:   connectionURL("ftp://api.mobilenexthq.com"),
			field: "spec.url",
			want:  "url must be an absolute http or https URL",
		},
		{
			name:  "Connection url carries user information",
			obj:   connectionURL("https://user:secret@api.mobilenexthq.com"),
			field: "spec.url",
			want:  "url must not carry credentials, a query or a fragment",
		},
		{
			name:  "Connection url carries a query",
			obj:   connectionURL("https://api.mobilenexthq.com/?org=1"),
			field: "spec.url",
			want:  "url must not carry credentials, a query or a fragment",
		},
		{
			name: "Connection credentialsSecretRef.namespace is set",
			obj: connection(func(c *iamv1alpha1.Connection) {
				c.Spec.CredentialsSecretRef.Namespace = "elsewhere"
			}),
			field: "spec",
			want:  "credentialsSecretRef.namespace is not allowed on a Connection",
		},
		{
			name: "Connection credentialsSecretRef.name is not a DNS subdomain",
			obj: connection(func(c *iamv1alpha1.Connection) {
				c.Spec.CredentialsSecretRef.Name = "Credentials"
			}),
			field: "spec.credentialsSecretRef.name",
			want:  "spec.credentialsSecretRef.name in body should match",
		},
		{
			name: "Connection credentialsSecretRef.key is not a valid data key",
			obj: connection(func(c *iamv1alpha1.Connection) {
				c.Spec.CredentialsSecretRef.Key = "a/b"
			}),
			field: "spec.credentialsSecretRef.key",
			want:  "spec.credentialsSecretRef.key in body should match",
		},
		{
			name: "Connection organizationId contains spaces",
			obj: connection(func(c *iamv1alpha1.Connection) {
				c.Spec.OrganizationID = "my org"
			}),
			field: "spec.organizationId",
			want:  "spec.organizationId in body should match '^[A-Za-z0-9_.:-]+$'",
		},
		{
			name: "ClusterConnection credentialsSecretRef.namespace is missing",
			obj: clusterConnection(func(c *iamv1alpha1.ClusterConnection) {
				c.Spec.CredentialsSecretRef.Namespace = ""
			}),
			field: "spec",
			want:  "credentialsSecretRef.namespace is required on a ClusterConnection",
		},
		{
			name: "ClusterConnection url uses http on a remote host",
			obj: clusterConnection(func(c *iamv1alpha1.ClusterConnection) {
				c.Spec.URL = "http://10.0.0.1:8080"
			}),
			field: "spec",
			want:  "url must use https; plain http is only allowed for loopback hosts",
		},
		{
			name: "ClusterConnection organizationId contains spaces",
			obj: clusterConnection(func(c *iamv1alpha1.ClusterConnection) {
				c.Spec.OrganizationID = "org 1"
			}),
			field: "spec.organizationId",
			want:  "spec.organizationId in body should match",
		},
	}

	ns := newNamespace(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj(ns)
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			defer cancel()
			err := k8sClient.Create(ctx, obj)
			if err == nil {
				deleteIgnoringNotFound(t, obj)
				t.Fatalf("the API server accepted %s; want it refused with %q", describe(obj), tc.want)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("creating %s: got %v; want an Invalid error", describe(obj), err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("creating %s:\n got: %v\nwant a message containing: %s", describe(obj), err, tc.want)
			}
			// Every case breaks exactly one rule. A second cause would mean
			// that another rule misfired, for instance a CEL rule that errors
			// on a value its guard should have skipped.
			causes := refusalCauses(err)
			if len(causes) != 1 || causes[0].Field != tc.field {
				t.Errorf("creating %s: got causes %+v; want exactly one, at %s", describe(obj), causes, tc.field)
			}
		})
	}
}

// refusalCauses returns the causes of an Invalid error, without the notice the
// API server adds when schema errors kept it from evaluating the CEL rules.
func refusalCauses(err error) []metav1.StatusCause {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return nil
	}
	var causes []metav1.StatusCause
	for _, c := range status.Status().Details.Causes {
		if strings.Contains(c.Message, "some validation rules were not checked") {
			continue
		}
		causes = append(causes, c)
	}
	return causes
}

func TestValidObjectsAreAccepted(t *testing.T) {
	cases := []struct {
		name string
		obj  objectFunc
		// check, when set, inspects the object as stored by the API server.
		check func(t *testing.T, obj client.Object)
	}{
		{name: "the base ApiKey", obj: apiKey(unchanged)},
		{name: "the base Connection", obj: connection(unchanged)},
		{name: "the base ClusterConnection", obj: clusterConnection(unchanged)},
		{
			name: "ApiKey on a Connection takes the default name",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec.ConnectionRef = iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ConnectionKind}
			}),
			check: func(t *testing.T, obj client.Object) {
				want := iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ConnectionKind, Name: "default"}
				if got := obj.(*iamv1alpha1.ApiKey).Spec.ConnectionRef; got != want {
					t.Errorf("connectionRef = %+v; want %+v", got, want)
				}
			},
		},
		{
			name: "ApiKey with every field set",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec = iamv1alpha1.ApiKeySpec{
					ConnectionRef:  iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ConnectionKind, Name: "team.api"},
					Name:           "ci pipeline (staging) / runner #1",
					SecretName:     "ci.credentials",
					SecretKey:      "MOBILENEXT_API_KEY",
					DeletionPolicy: iamv1alpha1.DeletionPolicyOrphan,
					SecretTemplate: &iamv1alpha1.SecretTemplate{
						Labels:      map[string]string{"app.kubernetes.io/name": "ci", "team": "mobile"},
						Annotations: map[string]string{"reloader.stakater.com/match": "true"},
					},
					Rotation: &iamv1alpha1.Rotation{
						Every:               &metav1.Duration{Duration: 720 * time.Hour},
						GracePeriod:         &metav1.Duration{Duration: 90 * time.Minute},
						RetireWhenUnusedFor: &metav1.Duration{Duration: 2 * time.Minute},
					},
					RolloutRestartTargets: []iamv1alpha1.RolloutRestartTarget{
						{Kind: "Deployment", Name: "web"}, {Kind: "StatefulSet", Name: "web"}, {Kind: "DaemonSet", Name: "agent"},
					},
				}
			}),
		},
		{
			name:  "rotation with only a gracePeriod",
			obj:   rawRotation(map[string]string{"gracePeriod": "30m"}),
			check: rotationDecodesTo(rotationDurations{Every: "unset", GracePeriod: "30m0s", RetireWhenUnusedFor: "unset"}),
		},
		{
			name:  "rotation in hours and in hours and minutes",
			obj:   rawRotation(map[string]string{"every": "720h", "gracePeriod": "1h30m"}),
			check: rotationDecodesTo(rotationDurations{Every: "720h0m0s", GracePeriod: "1h30m0s", RetireWhenUnusedFor: "unset"}),
		},
		{
			// 0s must be kept: it deletes a replaced key at once, where an
			// absent gracePeriod keeps it for the default 10m.
			name:  "rotation.gracePeriod of 0s",
			obj:   rawRotation(map[string]string{"every": "24h", "gracePeriod": "0s"}),
			check: rotationDecodesTo(rotationDurations{Every: "24h0m0s", GracePeriod: "0s", RetireWhenUnusedFor: "unset"}),
		},
		{
			name:  "rotation at the minimums",
			obj:   rawRotation(map[string]string{"every": "10s", "retireWhenUnusedFor": "1s"}),
			check: rotationDecodesTo(rotationDurations{Every: "10s", GracePeriod: "unset", RetireWhenUnusedFor: "1s"}),
		},
		{
			name: "rotation at the largest Go durations",
			obj: rawRotation(map[string]string{
				"every": "2562047h", "gracePeriod": "2562047h", "retireWhenUnusedFor": "9223372036s",
			}),
			check: rotationDecodesTo(rotationDurations{
				Every: "2562047h0m0s", GracePeriod: "2562047h0m0s", RetireWhenUnusedFor: "2562047h47m16s",
			}),
		},
		{
			name:  "rotation with fractional and microsecond units",
			obj:   rawRotation(map[string]string{"every": "0.5h", "retireWhenUnusedFor": "1s500000µs"}),
			check: rotationDecodesTo(rotationDurations{Every: "30m0s", GracePeriod: "unset", RetireWhenUnusedFor: "1.5s"}),
		},
		{
			name: "rotation written by the Go type",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec.Rotation = &iamv1alpha1.Rotation{
					Every:       &metav1.Duration{Duration: 720*time.Hour + 1500*time.Microsecond},
					GracePeriod: &metav1.Duration{Duration: 0},
				}
			}),
			check: rotationDecodesTo(rotationDurations{Every: "720h0m0.0015s", GracePeriod: "0s", RetireWhenUnusedFor: "unset"}),
		},
		{name: "secretKey with a leading dot", obj: apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.SecretKey = ".env" })},
		{name: "secretKey with a dot inside", obj: apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.SecretKey = "config.json" })},
		{
			name: "secretKey of 253 characters",
			obj:  apiKey(func(k *iamv1alpha1.ApiKey) { k.Spec.SecretKey = strings.Repeat("k", 253) }),
		},
		{
			name: "secretTemplate labels at the limits of label keys and values",
			obj: secretTemplateLabels(map[string]string{
				"app.kubernetes.io/name":                "x",
				"empty":                                 "",
				dnsSubdomain(253) + "/" + labelName(63): strings.Repeat("v", 63),
				"Team_Name.v1":                          "Mobile_Team-1.x",
			}),
		},
		{
			name: "secretTemplate annotations at the limits of annotation keys and values",
			obj: secretTemplateAnnotations(map[string]string{
				"Example.COM/Owner":                     "",
				"note":                                  strings.Repeat("v", 4096),
				dnsSubdomain(253) + "/" + labelName(63): "multi-line\nvalue with spaces: {\"json\": true}",
			}),
		},
		{
			name: "name of exactly 200 characters",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec.Name = strings.Repeat("n", 200)
			}),
		},
		{
			name: "name with brackets that are not the marker",
			obj: apiKey(func(k *iamv1alpha1.ApiKey) {
				k.Spec.Name = "ci [k8s] [staging-1]"
			}),
		},
		{name: "Connection url http on 127.0.0.1", obj: connectionURL("http://127.0.0.1:8080")},
		{name: "Connection url http on another 127/8 address", obj: connectionURL("http://127.255.0.254:8080/api")},
		{name: "Connection url http on localhost", obj: connectionURL("http://localhost:9000")},
		{name: "Connection url http on ::1", obj: connectionURL("http://[::1]:8080")},
		{name: "Connection url https with a path", obj: connectionURL("https://gateway.example.com/mobilenext/api/")},
		{name: "Connection url https with a port", obj: connectionURL("https://api.mobilenexthq.com:8443")},
		{
			name: "Connection with an organizationId",
			obj: connection(func(c *iamv1alpha1.Connection) {
				c.Spec.OrganizationID = "org_01HZX:team.mobile-1"
				c.Spec.CredentialsSecretRef.Key = "session.jwt"
			}),
		},
		{
			name: "ClusterConnection with a namespaceSelector and loopback http",
			obj: clusterConnection(func(c *iamv1alpha1.ClusterConnection) {
				c.Spec.URL = "http://127.0.0.1:18080"
				c.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"mobilenext/api-keys": "allowed"}}
			}),
		},
	}

	ns := newNamespace(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj(ns)
			create(t, obj)
			t.Cleanup(func() { deleteIgnoringNotFound(t, obj) })
			if tc.check != nil {
				get(t, obj)
				tc.check(t, obj)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	ns := newNamespace(t)

	key := validApiKey(ns)
	create(t, key)
	get(t, key)
	wantRef := iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ClusterConnectionKind, Name: "default"}
	if key.Spec.ConnectionRef != wantRef {
		t.Errorf("ApiKey connectionRef = %+v; want %+v", key.Spec.ConnectionRef, wantRef)
	}
	if key.Spec.SecretKey != "apiKey" {
		t.Errorf("ApiKey secretKey = %q; want apiKey", key.Spec.SecretKey)
	}
	if key.Spec.DeletionPolicy != iamv1alpha1.DeletionPolicyDelete {
		t.Errorf("ApiKey deletionPolicy = %q; want Delete", key.Spec.DeletionPolicy)
	}
	for field, value := range map[string]string{"name": key.Spec.Name, "secretName": key.Spec.SecretName} {
		if value != "" {
			t.Errorf("ApiKey %s = %q; want it left empty for the operator to derive", field, value)
		}
	}
	if key.Spec.Rotation != nil {
		t.Errorf("ApiKey rotation = %+v; want it left unset", key.Spec.Rotation)
	}

	conn := validConnection(ns)
	create(t, conn)
	get(t, conn)
	checkConnectionDefaults(t, conn.Spec.ConnectionParameters)

	cc := validClusterConnection()
	create(t, cc)
	t.Cleanup(func() { deleteIgnoringNotFound(t, cc) })
	get(t, cc)
	checkConnectionDefaults(t, cc.Spec.ConnectionParameters)
}

func checkConnectionDefaults(t *testing.T, p iamv1alpha1.ConnectionParameters) {
	t.Helper()
	if p.URL != "https://api.mobilenexthq.com" {
		t.Errorf("url = %q; want https://api.mobilenexthq.com", p.URL)
	}
	if p.CredentialsSecretRef.Key != "token" {
		t.Errorf("credentialsSecretRef.key = %q; want token", p.CredentialsSecretRef.Key)
	}
}

// TestSamplesKustomization checks that config/samples/kustomization.yaml lists
// exactly the sample files, so that none is forgotten by 'kubectl apply -k'.
func TestSamplesKustomization(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(samplesDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kustomization struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(raw, &kustomization); err != nil {
		t.Fatalf("decoding kustomization.yaml: %v", err)
	}
	listed := slices.Sorted(slices.Values(kustomization.Resources))
	files := sampleFiles(t)
	if !slices.Equal(listed, files) {
		t.Errorf("kustomization.yaml lists %v; the sample files are %v", listed, files)
	}
}

// sampleFiles returns the sorted names of the YAML files in config/samples,
// without kustomization.yaml.
func sampleFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(samplesDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "kustomization.yaml" {
			continue
		}
		if ext := filepath.Ext(name); ext == ".yaml" || ext == ".yml" {
			files = append(files, name)
		}
	}
	if len(files) == 0 {
		t.Fatalf("no sample files in %s", samplesDir)
	}
	return files
}

// decodeDocuments splits a multi-document YAML file and decodes each non-empty
// document.
func decodeDocuments(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var objs []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		var content map[string]any
		if err := yaml.Unmarshal(doc, &content); err != nil {
			t.Fatalf("decoding a document of %s: %v", path, err)
		}
		if len(content) == 0 {
			continue // only comments, or an empty document
		}
		obj := &unstructured.Unstructured{Object: content}
		if obj.GetAPIVersion() == "" || obj.GetKind() == "" || obj.GetName() == "" {
			t.Fatalf("a document of %s lacks apiVersion, kind or metadata.name:\n%s", path, bytes.TrimSpace(doc))
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		t.Fatalf("%s holds no object", path)
	}
	return objs
}

// sampleChecks holds what the samples are meant to show, by "Kind/name": the
// settings they make and the defaults the API server fills in for them.
var sampleChecks = map[string]func(t *testing.T, obj client.Object){
	"ClusterConnection/default": func(t *testing.T, obj client.Object) {
		cc := obj.(*iamv1alpha1.ClusterConnection)
		want := iamv1alpha1.SecretKeyReference{
			Name: "mobilenext-credentials", Namespace: "apikey-operator-system", Key: "token",
		}
		if cc.Spec.CredentialsSecretRef != want {
			t.Errorf("credentialsSecretRef = %+v; want %+v", cc.Spec.CredentialsSecretRef, want)
		}
		if cc.Spec.URL != "https://api.mobilenexthq.com" {
			t.Errorf("url = %q; want https://api.mobilenexthq.com", cc.Spec.URL)
		}
	},
	"Connection/team-api": func(t *testing.T, obj client.Object) {
		c := obj.(*iamv1alpha1.Connection)
		checkConnectionDefaults(t, c.Spec.ConnectionParameters)
		if c.Spec.OrganizationID == "" {
			t.Error("organizationId is empty; the sample should show one")
		}
		if c.Spec.CredentialsSecretRef.Name == "" || c.Spec.CredentialsSecretRef.Namespace != "" {
			t.Errorf("credentialsSecretRef = %+v; want a Secret of the Connection's namespace", c.Spec.CredentialsSecretRef)
		}
	},
	"ApiKey/ci-pipeline": func(t *testing.T, obj client.Object) {
		k := obj.(*iamv1alpha1.ApiKey)
		wantRef := iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ClusterConnectionKind, Name: "default"}
		if k.Spec.ConnectionRef != wantRef {
			t.Errorf("connectionRef = %+v; want the default %+v", k.Spec.ConnectionRef, wantRef)
		}
		if k.Spec.SecretKey != "apiKey" {
			t.Errorf("secretKey = %q; want the default apiKey", k.Spec.SecretKey)
		}
		if k.Spec.DeletionPolicy != iamv1alpha1.DeletionPolicyDelete {
			t.Errorf("deletionPolicy = %q; want the default Delete", k.Spec.DeletionPolicy)
		}
		wantRotation := rotationDurations{Every: "720h0m0s", GracePeriod: "1h0m0s", RetireWhenUnusedFor: "20m0s"}
		if got := durationsOf(k.Spec.Rotation); got != wantRotation {
			t.Errorf("rotation = %+v; want %+v", got, wantRotation)
		}
		if k.Spec.SecretTemplate == nil || len(k.Spec.SecretTemplate.Labels) == 0 {
			t.Errorf("secretTemplate = %+v; want labels", k.Spec.SecretTemplate)
		}
		wantTarget := iamv1alpha1.RolloutRestartTarget{Kind: "Deployment", Name: "ci-runner"}
		if !slices.Contains(k.Spec.RolloutRestartTargets, wantTarget) {
			t.Errorf("rolloutRestartTargets = %+v; want them to include %+v", k.Spec.RolloutRestartTargets, wantTarget)
		}
	},
	"ApiKey/analytics": func(t *testing.T, obj client.Object) {
		k := obj.(*iamv1alpha1.ApiKey)
		wantRef := iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ConnectionKind, Name: "team-api"}
		if k.Spec.ConnectionRef != wantRef {
			t.Errorf("connectionRef = %+v; want %+v", k.Spec.ConnectionRef, wantRef)
		}
		if k.Spec.DeletionPolicy != iamv1alpha1.DeletionPolicyOrphan {
			t.Errorf("deletionPolicy = %q; want Orphan", k.Spec.DeletionPolicy)
		}
		if k.Spec.SecretKey != "apiKey" {
			t.Errorf("secretKey = %q; want the default apiKey", k.Spec.SecretKey)
		}
	},
}

// TestSamplesAreAccepted creates every object of config/samples (in a fresh
// namespace for the namespaced ones) and checks what the API server stored.
func TestSamplesAreAccepted(t *testing.T) {
	ns := newNamespace(t)
	seen := map[string]bool{}
	for _, file := range sampleFiles(t) {
		t.Run(file, func(t *testing.T) {
			for _, u := range decodeDocuments(t, filepath.Join(samplesDir, file)) {
				id := u.GetKind() + "/" + u.GetName()
				if seen[id] {
					t.Errorf("%s appears in more than one sample", id)
					continue
				}
				seen[id] = true

				namespaced, err := k8sClient.IsObjectNamespaced(u)
				if err != nil {
					t.Errorf("%s: %v", id, err)
					continue
				}
				if namespaced {
					// kubectl -n and kustomize's namespace pick the namespace
					// of the samples; one written in the file would win.
					if u.GetNamespace() != "" {
						t.Errorf("%s sets metadata.namespace %q; namespaced samples should leave it out", id, u.GetNamespace())
					}
					u.SetNamespace(ns)
				}
				create(t, u)
				t.Cleanup(func() { deleteIgnoringNotFound(t, u) })

				check, ok := sampleChecks[id]
				if !ok {
					continue
				}
				typed, err := scheme.New(u.GroupVersionKind())
				if err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				stored := typed.(client.Object)
				stored.SetNamespace(u.GetNamespace())
				stored.SetName(u.GetName())
				get(t, stored)
				t.Run(id, func(t *testing.T) { check(t, stored) })
			}
		})
	}
	for id := range sampleChecks {
		if !seen[id] {
			t.Errorf("no sample defines %s", id)
		}
	}
}
