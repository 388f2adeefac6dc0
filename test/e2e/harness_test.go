//go:build e2e

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

// Package e2e holds process-level tests of the operator: the manager and the
// Mobile Next API emulator run as real processes against a real control plane
// (etcd, kube-apiserver and the garbage collector of kube-controller-manager),
// and the manager is killed with SIGKILL at the worst moments to prove that a
// crash neither leaks nor duplicates remote keys.
//
// Run the suite with `make test-e2e`, which builds both binaries and sets
// KUBEBUILDER_ASSETS, MANAGER_BIN and EMULATOR_BIN.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/test/localcluster"
)

// Timing of the manager under test and of the tests' polling. The manager
// runs with short periods so that drift checks and retries happen within
// seconds; the waits are generous because the machine may be busy with other
// suites, and a wait only ever ends early.
const (
	syncPeriod              = 3 * time.Second
	credentialsPollInterval = 2 * time.Second
	// createAttemptWindow bounds how long a deleted ApiKey waits for a
	// create that may still land.
	createAttemptWindow = 20 * time.Second
	pollInterval        = 250 * time.Millisecond
	waitTimeout         = 3 * time.Minute
)

// Names every fixture uses inside its own namespace.
const (
	connectionName        = "api"
	credentialsSecretName = "mobilenext-credentials"
	apiKeySecretDataKey   = "apiKey"
)

// Process-wide state set up by TestMain.
var (
	// managerBin and emulatorBin are absolute paths of the binaries under test.
	managerBin, emulatorBin string
	// cluster is the control plane every test shares; tests isolate
	// themselves by namespace.
	cluster *localcluster.Cluster
	// k8sClient reads and writes the cluster directly, without a cache, so
	// that every poll sees the API server's current state.
	k8sClient client.Client
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// runMain starts the control plane, runs the tests and stops the control
// plane. It is separate from TestMain so that deferred calls run before the
// process exits.
func runMain(m *testing.M) int {
	var missing []string
	for _, name := range []string{"KUBEBUILDER_ASSETS", "MANAGER_BIN", "EMULATOR_BIN"} {
		if os.Getenv(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		// Failing rather than skipping: a suite that silently skips in CI
		// proves nothing.
		fmt.Fprintf(os.Stderr, "FAIL: %s not set; run these tests with `make test-e2e`, which builds the manager "+
			"and the emulator and points the suite at them and at the control plane binaries\n",
			strings.Join(missing, ", "))
		return 1
	}
	var err error
	if managerBin, err = executable(os.Getenv("MANAGER_BIN")); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: MANAGER_BIN: %v; run these tests with `make test-e2e`\n", err)
		return 1
	}
	if emulatorBin, err = executable(os.Getenv("EMULATOR_BIN")); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: EMULATOR_BIN: %v; run these tests with `make test-e2e`\n", err)
		return 1
	}

	dir, err := os.MkdirTemp("", "apikey-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()

	cluster, err = localcluster.Start(localcluster.Options{
		CRDDirectory:      filepath.Join("..", "..", "config", "crd", "bases"),
		Dir:               dir,
		ControllerManager: true,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start the control plane: %v\n", err)
		return 1
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop the control plane: %v\n", err)
		}
	}()

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	if err := iamv1alpha1.AddToScheme(scheme); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	if k8sClient, err = client.New(cluster.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: create a client: %v\n", err)
		return 1
	}
	return m.Run()
}

// executable resolves a binary given by the environment to an absolute path,
// so that it keeps working whatever the working directory of the test, and
// checks that it exists.
func executable(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	info, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	if info.IsDir() || info.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", abs)
	}
	return abs, nil
}

// secrets remembers every API key value and session token the tests handled,
// so that the manager's logs can be searched for them.
var secrets struct {
	mu     sync.Mutex
	values []string
}

// rememberSecret adds a value that must never appear in a log.
func rememberSecret(v string) {
	if v == "" {
		return
	}
	secrets.mu.Lock()
	defer secrets.mu.Unlock()
	if !slices.Contains(secrets.values, v) {
		secrets.values = append(secrets.values, v)
	}
}

// knownSecrets returns a copy of the remembered values.
func knownSecrets() []string {
	secrets.mu.Lock()
	defer secrets.mu.Unlock()
	return slices.Clone(secrets.values)
}

// redact replaces every remembered secret in s, so that diagnostics printed
// on failure never show one.
func redact(s string) string {
	for _, v := range knownSecrets() {
		s = strings.ReplaceAll(s, v, "[REDACTED]")
	}
	return s
}

// eventually calls check every pollInterval until it returns nil, and fails
// the test with check's last error once timeout has passed.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// eventually is the package-level eventually with waitTimeout, which also
// fails the test at once if the manager exited on its own: waiting for a
// dead manager to act would only end in a less helpful timeout.
func (f *fixture) eventually(what string, check func() error) {
	f.t.Helper()
	eventually(f.t, waitTimeout, what, func() error {
		if err := f.checkManagerRunning(); err != nil {
			f.t.Fatal(err)
		}
		return check()
	})
}

// newContext returns a context bounding one call to the API server or the
// emulator, so that a hung call fails the test instead of the whole suite.
func newContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// withContext calls fn with a context bounded by newContext.
func withContext[T any](fn func(context.Context) (T, error)) (T, error) {
	ctx, cancel := newContext()
	defer cancel()
	return fn(ctx)
}

// do calls fn with a context bounded by newContext, failing the test at once
// on error.
func do(t *testing.T, fn func(context.Context) error) {
	t.Helper()
	ctx, cancel := newContext()
	defer cancel()
	if err := fn(ctx); err != nil {
		t.Fatal(err)
	}
}

// fixture is one test's world: its own namespace, its own emulator process,
// the credentials Secret and Connection "api" to that emulator, and the
// manager processes the test starts and kills.
type fixture struct {
	t   *testing.T
	ns  string
	dir string
	emu *emulatorProcess

	// manager is the running manager, nil when none runs.
	manager *managerProcess
	// managerLogs are the log files of every manager the test started.
	managerLogs []string
}

// newFixture creates the namespace, starts the emulator and a manager, and
// waits until the Connection to the emulator is Ready. Its cleanup deletes
// the test's ApiKeys through the manager, checks that no remote key was left
// behind and that no key value or token reached the manager's logs, and
// stops the processes.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir()}
	f.emu = startEmulator(t, f.dir)
	rememberSecret(f.emu.token)

	ctx, cancel := newContext()
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	if err := k8sClient.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	f.ns = ns.Name
	// Registered after the emulator's cleanup, so that it runs before it:
	// deleting the ApiKeys needs the emulator.
	t.Cleanup(f.finish)

	creds := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: credentialsSecretName},
		Data:       map[string][]byte{"token": []byte(f.emu.token)},
	}
	if err := k8sClient.Create(ctx, creds); err != nil {
		t.Fatalf("create the credentials Secret: %v", err)
	}
	conn := &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: connectionName},
		Spec: iamv1alpha1.ConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			URL:                  f.emu.url,
			OrganizationID:       f.emu.orgID,
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: credentialsSecretName},
		}},
	}
	if err := k8sClient.Create(ctx, conn); err != nil {
		t.Fatalf("create the Connection: %v", err)
	}

	f.startManager()
	f.eventually("the Connection becomes Ready", func() error {
		ctx, cancel := newContext()
		defer cancel()
		var c iamv1alpha1.Connection
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: connectionName}, &c); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(c.Status.Conditions, iamv1alpha1.ConditionReady) {
			return fmt.Errorf("conditions: %+v", c.Status.Conditions)
		}
		return nil
	})
	return f
}

// finish is the fixture's cleanup; see newFixture.
func (f *fixture) finish() {
	t := f.t
	if t.Failed() {
		f.dumpDiagnostics()
	}
	if f.manager != nil {
		f.deleteApiKeys()
		f.stopManager()
	}
	f.removeLeftovers()
	f.checkLogs()
}

// deleteApiKeys deletes the namespace's ApiKeys, waits until the running
// manager has released them, and checks that the emulator holds no key
// anymore: whatever a test did to the manager, deleting its ApiKeys must
// leave nothing behind.
func (f *fixture) deleteApiKeys() {
	t := f.t
	ctx, cancel := newContext()
	defer cancel()
	// A test may have deleted the namespace already.
	if err := k8sClient.DeleteAllOf(ctx, &iamv1alpha1.ApiKey{}, client.InNamespace(f.ns)); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete the ApiKeys: %v", err)
		return
	}
	deadline := time.Now().Add(waitTimeout)
	var last error
	for time.Now().Before(deadline) {
		last = func() error {
			ctx, cancel := newContext()
			defer cancel()
			var keys iamv1alpha1.ApiKeyList
			if err := k8sClient.List(ctx, &keys, client.InNamespace(f.ns)); err != nil {
				return err
			}
			if n := len(keys.Items); n > 0 {
				return fmt.Errorf("%d ApiKey(s) still exist", n)
			}
			remote, err := f.emu.keys(ctx)
			if err != nil {
				return err
			}
			if n := len(remote); n > 0 {
				return fmt.Errorf("the emulator still holds %d key(s): %s", n, describeKeys(remote))
			}
			return nil
		}()
		if last == nil {
			return
		}
		time.Sleep(pollInterval)
	}
	t.Errorf("after deleting every ApiKey: %v", last)
}

// removeLeftovers strips the operator's finalizers from the ApiKeys,
// Connections and Secrets that survived (a failed test may leave some, and
// the manager is stopped by now, so nothing would release them) and deletes
// the namespace, so that later tests' managers never see this test's objects.
// The namespace may be gone already.
func (f *fixture) removeLeftovers() {
	t := f.t
	ctx, cancel := newContext()
	defer cancel()
	var keys iamv1alpha1.ApiKeyList
	if err := k8sClient.List(ctx, &keys, client.InNamespace(f.ns)); err != nil {
		t.Logf("list leftover ApiKeys: %v", err)
	}
	var conns iamv1alpha1.ConnectionList
	if err := k8sClient.List(ctx, &conns, client.InNamespace(f.ns)); err != nil {
		t.Logf("list leftover Connections: %v", err)
	}
	var secrets corev1.SecretList
	if err := k8sClient.List(ctx, &secrets, client.InNamespace(f.ns)); err != nil {
		t.Logf("list leftover Secrets: %v", err)
	}
	var leftovers []client.Object
	for i := range keys.Items {
		leftovers = append(leftovers, &keys.Items[i])
	}
	for i := range conns.Items {
		leftovers = append(leftovers, &conns.Items[i])
	}
	for i := range secrets.Items {
		leftovers = append(leftovers, &secrets.Items[i])
	}
	for _, o := range leftovers {
		if len(o.GetFinalizers()) == 0 {
			continue
		}
		// Only the finalizer list is sent: the object's other fields are
		// left as the server has them.
		patch := client.MergeFrom(o.DeepCopyObject().(client.Object))
		o.SetFinalizers(nil)
		if err := k8sClient.Patch(ctx, o, patch); err != nil && !apierrors.IsNotFound(err) {
			t.Logf("remove the finalizers of %T %s: %v", o, o.GetName(), err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}
	if err := k8sClient.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
		t.Logf("delete namespace %s: %v", f.ns, err)
	}
}

// checkLogs fails the test if a key value or a session token appears in a
// log of any manager the test ran.
func (f *fixture) checkLogs() {
	t := f.t
	values := knownSecrets()
	for _, path := range f.managerLogs {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read the manager log: %v", err)
			continue
		}
		log := string(data)
		// An empty log would make the search below vacuous.
		if !strings.Contains(log, "Starting manager") {
			t.Errorf("manager log %s does not show the manager starting; is the log captured?", filepath.Base(path))
		}
		for _, v := range values {
			if strings.Contains(log, v) {
				// The value itself is not printed: the report would leak it too.
				t.Errorf("manager log %s contains a key value or session token ending in %q",
					filepath.Base(path), v[max(0, len(v)-4):])
			}
		}
	}
}

// dumpDiagnostics logs what helps understand a failure: the ApiKeys, the
// emulator's keys and the end of each manager log, with secrets redacted.
func (f *fixture) dumpDiagnostics() {
	t := f.t
	ctx, cancel := newContext()
	defer cancel()
	var keys iamv1alpha1.ApiKeyList
	if err := k8sClient.List(ctx, &keys, client.InNamespace(f.ns)); err == nil {
		for _, k := range keys.Items {
			b, _ := json.MarshalIndent(struct {
				Name        string
				Annotations map[string]string
				Status      iamv1alpha1.ApiKeyStatus
			}{k.Name, k.Annotations, k.Status}, "", "  ")
			t.Logf("ApiKey %s/%s:\n%s", f.ns, k.Name, b)
		}
	}
	if remote, err := f.emu.keys(ctx); err == nil {
		t.Logf("emulator keys: %s", describeKeys(remote))
	}
	if stats, err := f.emu.stats(ctx); err == nil {
		t.Logf("emulator stats: %+v", stats)
	}
	for _, path := range f.managerLogs {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		lines = lines[max(0, len(lines)-80):]
		t.Logf("end of %s:\n%s", filepath.Base(path), redact(strings.Join(lines, "\n")))
	}
}

// createApiKey creates an ApiKey named name using the fixture's Connection;
// mutate, when given, adjusts it first.
func (f *fixture) createApiKey(name string, mutate func(*iamv1alpha1.ApiKey)) {
	f.t.Helper()
	key := &iamv1alpha1.ApiKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: iamv1alpha1.ApiKeySpec{
			ConnectionRef: iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ConnectionKind, Name: connectionName},
		},
	}
	if mutate != nil {
		mutate(key)
	}
	ctx, cancel := newContext()
	defer cancel()
	if err := k8sClient.Create(ctx, key); err != nil {
		f.t.Fatalf("create ApiKey %s: %v", name, err)
	}
}

// getApiKey reads an ApiKey of the fixture's namespace.
func (f *fixture) getApiKey(name string) (*iamv1alpha1.ApiKey, error) {
	ctx, cancel := newContext()
	defer cancel()
	var key iamv1alpha1.ApiKey
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: name}, &key); err != nil {
		return nil, err
	}
	return &key, nil
}

// settled reports why an ApiKey is not at rest with a key, or nil when it is:
// Ready with reason KeyReady (a rotation in flight is Ready too, with reason
// Rotating), a current key, and no create in flight.
func settled(key *iamv1alpha1.ApiKey) error {
	c := meta.FindStatusCondition(key.Status.Conditions, iamv1alpha1.ConditionReady)
	switch {
	case c == nil:
		return errors.New("no Ready condition yet")
	case c.Status != metav1.ConditionTrue || c.Reason != iamv1alpha1.ReasonKeyReady:
		return fmt.Errorf("Ready=%s reason=%s message=%q", c.Status, c.Reason, c.Message)
	case key.Status.KeyID == "":
		return errors.New("Ready without status.keyId")
	case key.Status.PendingCreate != nil:
		return fmt.Errorf("status.pendingCreate is still set: %+v", *key.Status.PendingCreate)
	}
	return nil
}

// waitSettled waits until the ApiKey is settled (see settled) and check, when
// given, accepts it; it returns the ApiKey as last read.
func (f *fixture) waitSettled(name string, check func(*iamv1alpha1.ApiKey) error) *iamv1alpha1.ApiKey {
	f.t.Helper()
	var key *iamv1alpha1.ApiKey
	f.eventually("ApiKey "+name+" becomes Ready", func() error {
		var err error
		if key, err = f.getApiKey(name); err != nil {
			return err
		}
		if err := settled(key); err != nil {
			return err
		}
		if check != nil {
			return check(key)
		}
		return nil
	})
	return key
}

// getSecret reads a Secret of the fixture's namespace.
func (f *fixture) getSecret(name string) (*corev1.Secret, error) {
	ctx, cancel := newContext()
	defer cancel()
	var s corev1.Secret
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: name}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// secretValue reads the key value and the key-id annotation of an ApiKey's
// Secret, remembering the value so that the logs are searched for it.
func (f *fixture) secretValue(name string) (value, keyID string, err error) {
	s, err := f.getSecret(name)
	if err != nil {
		return "", "", err
	}
	value = string(s.Data[apiKeySecretDataKey])
	rememberSecret(value)
	if value == "" {
		return "", "", fmt.Errorf("Secret %s has no %q value", name, apiKeySecretDataKey)
	}
	return value, s.Annotations[iamv1alpha1.KeyIDAnnotation], nil
}

// remoteKeysOf returns the emulator's keys that belong to the ApiKey name:
// those whose remote name is the default "<namespace>/<name>" followed by
// the operator's attempt marker.
func (f *fixture) remoteKeysOf(ctx context.Context, name string) ([]remoteKey, error) {
	all, err := f.emu.keys(ctx)
	if err != nil {
		return nil, err
	}
	prefix := f.ns + "/" + name + " "
	var mine []remoteKey
	for _, k := range all {
		if strings.HasPrefix(k.name(), prefix) {
			mine = append(mine, k)
		}
	}
	return mine, nil
}

// checkCurrentKey verifies that the ApiKey's Secret holds the key status
// names, as the emulator knows it, and that the key works: the Secret's
// key-id annotation is status.keyId, the value ends with that key's suffix,
// and the emulator accepts it.
func (f *fixture) checkCurrentKey(key *iamv1alpha1.ApiKey) error {
	ctx, cancel := newContext()
	defer cancel()
	value, keyID, err := f.secretValue(key.Name)
	if err != nil {
		return err
	}
	if keyID != key.Status.KeyID {
		return fmt.Errorf("the Secret holds key %q, status.keyId is %q", keyID, key.Status.KeyID)
	}
	all, err := f.emu.keys(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(all, func(k remoteKey) bool { return k.ID == keyID })
	if i < 0 {
		return fmt.Errorf("the emulator has no key %s", keyID)
	}
	if suffix := all[i].APIKeySuffix; suffix == "" || !strings.HasSuffix(value, suffix) {
		return fmt.Errorf("the Secret's value does not end with the suffix %q of key %s", suffix, keyID)
	}
	status, err := f.emu.ping(ctx, value)
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("the emulator answers %d to the Secret's key", status)
	}
	return nil
}

// waitSyncPeriods waits until the manager has had n sync periods (the
// emulator saw at least n more list calls and n periods passed), calling
// check on every poll and failing the test at its first error: it is how a
// test shows that nothing changes while the manager keeps reconciling.
func (f *fixture) waitSyncPeriods(n int, check func() error) {
	t := f.t
	t.Helper()
	start := f.mustStats().List
	minimum := time.Now().Add(time.Duration(n) * syncPeriod)
	deadline := time.Now().Add(waitTimeout)
	for {
		if err := f.checkManagerRunning(); err != nil {
			t.Fatal(err)
		}
		if err := check(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := newContext()
		stats, err := f.emu.stats(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if stats.List >= start+n && time.Now().After(minimum) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the manager listed keys %d time(s) in %v, expected %d sync periods", stats.List-start, waitTimeout, n)
		}
		time.Sleep(pollInterval)
	}
}

// mustStats returns the emulator's request counters, failing the test at
// once if it cannot.
func (f *fixture) mustStats() emulatorStats {
	f.t.Helper()
	stats, err := withContext(f.emu.stats)
	if err != nil {
		f.t.Fatal(err)
	}
	return stats
}

// mustApiKey returns an ApiKey of the fixture's namespace, failing the test
// at once if it cannot.
func (f *fixture) mustApiKey(name string) *iamv1alpha1.ApiKey {
	f.t.Helper()
	key, err := f.getApiKey(name)
	if err != nil {
		f.t.Fatal(err)
	}
	return key
}

// mustSecretValue returns the key value of an ApiKey's Secret, failing the
// test at once if it cannot.
func (f *fixture) mustSecretValue(name string) string {
	f.t.Helper()
	value, _, err := f.secretValue(name)
	if err != nil {
		f.t.Fatal(err)
	}
	return value
}

// mustRemoteKeysOf is remoteKeysOf, failing the test at once on error.
func (f *fixture) mustRemoteKeysOf(name string) []remoteKey {
	f.t.Helper()
	keys, err := withContext(func(ctx context.Context) ([]remoteKey, error) {
		return f.remoteKeysOf(ctx, name)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return keys
}

// mustPing returns the status the emulator answers to a call made with
// apiKey, failing the test at once if the call fails.
func (f *fixture) mustPing(apiKey string) int {
	f.t.Helper()
	status, err := withContext(func(ctx context.Context) (int, error) {
		return f.emu.ping(ctx, apiKey)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return status
}

// describeKeys renders remote keys for a failure message.
func describeKeys(keys []remoteKey) string {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %q", k.ID, k.name()))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
