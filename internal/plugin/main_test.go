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

package plugin

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/emulator"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

var (
	testEnv *envtest.Environment
	// k8sClient is an administrator's client, to set up and check the
	// cluster around the commands.
	k8sClient client.Client
	// adminKubeconfig is the kubeconfig file the commands are run with, as
	// a user runs kubectl: through --kubeconfig.
	adminKubeconfig string
	kubeconfigDir   string

	// sensitive holds every token and key secret the tests handled; no
	// command's output or error may contain any of them.
	sensitive sync.Map

	nsSeq atomic.Int32
	// notNameChars are runs of what a namespace name may not hold.
	notNameChars = regexp.MustCompile(`[^a-z0-9]+`)
)

// TestMain runs the tests against a real kube-apiserver and etcd with the
// project's CRDs installed. No operator runs: the tests write the status the
// operator would, and check what the commands make of it.
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		// Failing, never skipping: CI must not pass without these tests.
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS must name the control plane built by hack/controlplane.sh; run the tests with 'make test'")
		return 1
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, rbacv1.AddToScheme, iamv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the control plane:", err)
		return 1
	}
	defer func() { _ = testEnv.Stop() }()
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if kubeconfigDir, err = os.MkdirTemp("", "kubectl-mobilenext-test"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(kubeconfigDir) }()
	if adminKubeconfig, err = kubeconfigFor(envtest.User{Name: "admin", Groups: []string{"system:masters"}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// kubeconfigFor writes a kubeconfig file for a user of the test cluster.
func kubeconfigFor(u envtest.User) (string, error) {
	user, err := testEnv.AddUser(u, nil)
	if err != nil {
		return "", fmt.Errorf("add user %s: %w", u.Name, err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(kubeconfigDir, u.Name+".kubeconfig")
	return path, os.WriteFile(path, kubeconfig, 0o600)
}

// result is what one command printed and returned.
type result struct {
	out, errOut string
	err         error
}

// all is everything the user saw: both streams and the error.
func (r result) all() string {
	s := r.out + r.errOut
	if r.err != nil {
		s += r.err.Error()
	}
	return s
}

// invocation is one run of the plugin.
type invocation struct {
	kubeconfig string
	stdin      io.Reader
	now        time.Time
}

// run runs the plugin in-process as the administrator, with empty standard
// input, at the current time.
func run(t *testing.T, args ...string) result {
	t.Helper()
	return invocation{}.run(t, args...)
}

// run runs the plugin with args and checks that nothing it printed or
// returned holds a token or a key secret.
func (inv invocation) run(t *testing.T, args ...string) result {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	if inv.stdin != nil {
		streams.In = inv.stdin
	}
	if inv.kubeconfig == "" {
		inv.kubeconfig = adminKubeconfig
	}
	if inv.now.IsZero() {
		inv.now = time.Now()
	}
	cmd := NewRootCommand(streams, clocktesting.NewFakePassiveClock(inv.now))
	cmd.SetArgs(append([]string{"--kubeconfig", inv.kubeconfig}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	r := result{out: out.String(), errOut: errOut.String(), err: err}
	t.Logf("kubectl mobilenext %s\n%s%s(error: %v)", strings.Join(args, " "), r.out, r.errOut, r.err)
	assertNoSensitive(t, r.all())
	return r
}

// remember adds a token or key secret to the values no output may hold.
func remember(values ...string) {
	for _, v := range values {
		if v != "" {
			sensitive.Store(v, true)
		}
	}
}

func assertNoSensitive(t *testing.T, text string) {
	t.Helper()
	if n := leaks(text); n > 0 {
		t.Errorf("%d tokens or key secrets appear in the command's output or error", n)
	}
}

// leaks counts the remembered tokens and key secrets that text contains.
func leaks(text string) int {
	n := 0
	sensitive.Range(func(k, _ any) bool {
		if strings.Contains(text, k.(string)) {
			n++
		}
		return true
	})
	return n
}

// newNamespace creates a namespace of the test's own.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsSeq.Add(1), notNameChars.ReplaceAllString(strings.ToLower(t.Name()), "-"))
	name = strings.TrimRight(name[:min(len(name), 63)], "-")
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	return name
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8sClient.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func get(t *testing.T, ns, name string, obj client.Object) {
	t.Helper()
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatalf("get %T %s/%s: %v", obj, ns, name, err)
	}
}

// setStatus writes an object's status as the operator would.
func setStatus(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8sClient.Status().Update(context.Background(), obj); err != nil {
		t.Fatalf("update the status of %T %s: %v", obj, obj.GetName(), err)
	}
}

// api is an emulated Mobile Next API with one organization and an admin's
// session token.
type api struct {
	emu   *emulator.Server
	url   string
	org   string
	user  string
	token string
}

func newAPI(t *testing.T) *api {
	t.Helper()
	a := &api{emu: emulator.New(emulator.Options{})}
	srv := httptest.NewServer(a.emu)
	t.Cleanup(srv.Close)
	a.url = srv.URL
	var err error
	if a.org, a.user, a.token, err = a.emu.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	remember(a.token)
	return a
}

// createKey creates a remote key through the API, as the operator (or a
// person) would, and remembers its secret.
func (a *api) createKey(t *testing.T, name string) *mobilenext.CreatedKey {
	t.Helper()
	c, err := mobilenext.NewClient(mobilenext.Config{URL: a.url, Token: mobilenext.NewToken(a.token), OrganizationID: a.org})
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.CreateKey(context.Background(), name)
	if err != nil {
		t.Fatalf("create key %q: %v", name, err)
	}
	remember(k.Secret.Reveal())
	return k
}

// remoteIDs lists the ids of the organization's keys.
func (a *api) remoteIDs() []string {
	keys := a.emu.Keys(a.org)
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids
}

// tokenFor issues a session token for a new member of the organization with
// the given role.
func (a *api) tokenFor(t *testing.T, email string, role emulator.Role) string {
	t.Helper()
	user := a.emu.AddUser(email, a.org)
	if err := a.emu.AddMember(a.org, user, role); err != nil {
		t.Fatal(err)
	}
	token, err := a.emu.IssueToken(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	remember(token)
	return token
}

// credentials creates a Secret holding a session token under the default
// key, the one a credentialsSecretRef without a key reads.
func credentials(t *testing.T, ns, name, token string) {
	t.Helper()
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string][]byte{defaultCredentialsKey: []byte(token)},
	})
}

// connection creates a Connection to the API of a, reading its token from
// the Secret "credentials".
func (a *api) connection(t *testing.T, ns, name string) {
	t.Helper()
	create(t, &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: iamv1alpha1.ConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			URL:                  a.url,
			OrganizationID:       a.org,
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: "credentials"},
		}},
	})
}

// apiKey creates an ApiKey and, if status is given, writes it.
func apiKey(t *testing.T, ns, name string, status *iamv1alpha1.ApiKeyStatus) {
	t.Helper()
	k := &iamv1alpha1.ApiKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	create(t, k)
	if status != nil {
		k.Status = *status
		setStatus(t, k)
	}
}

// lines returns the lines of s that contain every one of the words.
func lines(s string, words ...string) []string {
	var out []string
	for l := range strings.Lines(s) {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			out = append(out, strings.TrimRight(l, "\n"))
		}
	}
	return out
}
