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

package rbac

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/emulator"
	"github.com/mobile-next/apikey-operator/test/manifests"
)

// Timing of the manager under test: short periods, so that each step
// happens within seconds.
const (
	syncPeriod   = 3 * time.Second
	pollInterval = 2 * time.Second
	createWindow = 20 * time.Second
	waitTimeout  = 2 * time.Minute
)

// leaseName is the manager's leader election Lease (cmd/main.go).
const leaseName = "apikey-operator.mobilenexthq.com"

// tenantNamespace holds the ApiKeys, their Connection and their workloads.
const tenantNamespace = "rbac-tenant"

// exercised are grants the life below must use: if one is never used, the
// test no longer covers what the role is for.
var exercised = []grant{
	{"iam.mobilenexthq.com", "apikeys", "watch"},
	{"iam.mobilenexthq.com", "apikeys", "patch"},
	{"iam.mobilenexthq.com", "apikeys/status", "update"},
	{"iam.mobilenexthq.com", "connections", "patch"},
	{"iam.mobilenexthq.com", "clusterconnections", "patch"},
	{"iam.mobilenexthq.com", "connections/status", "update"},
	{"iam.mobilenexthq.com", "clusterconnections/status", "update"},
	{"", "secrets", "create"},
	{"", "secrets", "get"},
	{"", "secrets", "patch"},
	{"", "secrets", "watch"},
	{"", "namespaces", "watch"},
	{"apps", "deployments", "patch"},
	{"apps", "statefulsets", "patch"},
	{"apps", "daemonsets", "patch"},
	{"events.k8s.io", "events", "create"},
	{"coordination.k8s.io", "leases", "create"},
	{"coordination.k8s.io", "leases", "update"},
	{"authentication.k8s.io", "tokenreviews", "create"},
	{"authorization.k8s.io", "subjectaccessreviews", "create"},
}

// operatorIdentity is the ServiceAccount the Deployment of install.yaml runs
// as, and the namespace it runs in.
func operatorIdentity(t *testing.T) (namespace, serviceAccount string) {
	t.Helper()
	deploys := manifests.OfKind(installed, "Deployment")
	if len(deploys) != 1 {
		t.Fatalf("install.yaml has %d Deployments, want 1", len(deploys))
	}
	var d appsv1.Deployment
	if err := manifests.Convert(deploys[0], &d); err != nil {
		t.Fatal(err)
	}
	if d.Spec.Template.Spec.ServiceAccountName == "" {
		t.Fatal("the manager's Deployment names no ServiceAccount")
	}
	return d.Namespace, d.Spec.Template.Spec.ServiceAccountName
}

func TestManagerRunsAnApiKeysWholeLifeWithItsOwnRBAC(t *testing.T) {
	ctx := newContext(t, 10*time.Minute)
	opNamespace, sa := operatorIdentity(t)
	user := "system:serviceaccount:" + opNamespace + ":" + sa
	proxy := startProxy(t, user)
	kubeconfig := proxy.writeKubeconfig(t, []string{
		"system:serviceaccounts", "system:serviceaccounts:" + opNamespace, "system:authenticated",
	})

	emu := emulator.New(emulator.Options{})
	emuServer := httptest.NewServer(emu)
	t.Cleanup(emuServer.Close)
	orgID, _, token, err := emu.Bootstrap()
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{token}

	// A tenant namespace with a Connection, a Deployment, a StatefulSet and
	// a DaemonSet; a ClusterConnection whose token lives in another
	// namespace.
	const tenant, shared = tenantNamespace, "rbac-shared"
	for _, ns := range []string{tenant, shared} {
		mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	mustCreate(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "credentials"},
		Data:       map[string][]byte{"token": []byte(token)},
	})
	mustCreate(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: shared, Name: "credentials"},
		Data:       map[string][]byte{"token": []byte(token)},
	})
	params := func(namespace string) iamv1alpha1.ConnectionParameters {
		return iamv1alpha1.ConnectionParameters{
			URL: emuServer.URL, OrganizationID: orgID,
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: "credentials", Namespace: namespace},
		}
	}
	mustCreate(t, &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "api"},
		Spec:       iamv1alpha1.ConnectionSpec{ConnectionParameters: params("")},
	})
	mustCreate(t, &iamv1alpha1.ClusterConnection{
		ObjectMeta: metav1.ObjectMeta{Name: "rbac-shared"},
		Spec: iamv1alpha1.ClusterConnectionSpec{
			ConnectionParameters: params(shared),
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
				"kubernetes.io/metadata.name": tenant,
			}},
		},
	})
	for _, w := range workloads(tenant) {
		mustCreate(t, w)
	}
	t.Cleanup(func() { cleanup(t, tenant, shared) })

	mgr := startManager(t, kubeconfig, opNamespace)

	t.Run("the connections become Ready", func(t *testing.T) {
		eventually(t, waitTimeout, "Connection api is Ready", func() error {
			var c iamv1alpha1.Connection
			if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: tenant, Name: "api"}, &c); err != nil {
				return err
			}
			return ready(c.Status.Conditions)
		})
		eventually(t, waitTimeout, "ClusterConnection rbac-shared is Ready", func() error {
			var c iamv1alpha1.ClusterConnection
			if err := k8sClient.Get(ctx, types.NamespacedName{Name: "rbac-shared"}, &c); err != nil {
				return err
			}
			return ready(c.Status.Conditions)
		})
	})

	grace := &metav1.Duration{Duration: 0}
	mustCreate(t, &iamv1alpha1.ApiKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "app"},
		Spec: iamv1alpha1.ApiKeySpec{
			ConnectionRef: iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ConnectionKind, Name: "api"},
			Rotation:      &iamv1alpha1.Rotation{GracePeriod: grace},
			RolloutRestartTargets: []iamv1alpha1.RolloutRestartTarget{
				{Kind: "Deployment", Name: "runner"},
				{Kind: "StatefulSet", Name: "runner"},
				{Kind: "DaemonSet", Name: "runner"},
			},
		},
	})
	mustCreate(t, &iamv1alpha1.ApiKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "shared"},
		Spec: iamv1alpha1.ApiKeySpec{
			ConnectionRef: iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ClusterConnectionKind, Name: "rbac-shared"},
			Rotation:      &iamv1alpha1.Rotation{GracePeriod: grace},
		},
	})

	var appKey, sharedKey string
	t.Run("creates the keys and writes their Secrets", func(t *testing.T) {
		appKey = waitKeyReady(t, "app", "", &secrets)
		sharedKey = waitKeyReady(t, "shared", "", &secrets)
		checkRemote(t, emu, orgID, appKey, sharedKey)
	})

	t.Run("rotates a key and restarts its workloads", func(t *testing.T) {
		var key iamv1alpha1.ApiKey
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: tenant, Name: "app"}, &key); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(key.DeepCopy())
		metav1.SetMetaDataAnnotation(&key.ObjectMeta, iamv1alpha1.RotateAnnotation, "1")
		if err := k8sClient.Patch(ctx, &key, patch); err != nil {
			t.Fatal(err)
		}
		rotated := waitKeyReady(t, "app", appKey, &secrets)
		eventually(t, waitTimeout, "the workloads are restarted for the new key", func() error {
			for _, w := range workloads(tenant) {
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(w), w); err != nil {
					return err
				}
				if got := podTemplateAnnotations(w)[iamv1alpha1.RestartedForAnnotation]; got != rotated {
					return fmt.Errorf("%T %s restarted for %q, want %q", w, w.GetName(), got, rotated)
				}
			}
			return nil
		})
		appKey = rotated
		eventually(t, waitTimeout, "the replaced key is deleted", func() error {
			return remoteKeysAre(emu, orgID, appKey, sharedKey)
		})
	})

	t.Run("repairs a deleted Secret with a new key", func(t *testing.T) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "shared"}}
		if err := k8sClient.Delete(ctx, s); err != nil {
			t.Fatal(err)
		}
		sharedKey = waitKeyReady(t, "shared", sharedKey, &secrets)
		eventually(t, waitTimeout, "the key of the deleted Secret is deleted", func() error {
			return remoteKeysAre(emu, orgID, appKey, sharedKey)
		})
	})

	t.Run("deletes the remote key with its ApiKey", func(t *testing.T) {
		key := &iamv1alpha1.ApiKey{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "shared"}}
		if err := k8sClient.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		eventually(t, waitTimeout, "ApiKey shared is gone", func() error {
			return gone(k8sClient.Get(ctx, client.ObjectKeyFromObject(key), key))
		})
		eventually(t, waitTimeout, "its remote key is deleted", func() error {
			return remoteKeysAre(emu, orgID, appKey)
		})
	})

	t.Run("a namespace with a Connection and an ApiKey is torn down", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenant}}
		if err := k8sClient.Delete(ctx, ns); err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Minute, "namespace "+tenant+" is gone", func() error {
			return gone(k8sClient.Get(ctx, client.ObjectKeyFromObject(ns), ns))
		})
		if err := remoteKeysAre(emu, orgID); err != nil {
			t.Error(err)
		}
	})

	t.Run("a ClusterConnection no ApiKey uses is deleted", func(t *testing.T) {
		cc := &iamv1alpha1.ClusterConnection{ObjectMeta: metav1.ObjectMeta{Name: "rbac-shared"}}
		if err := k8sClient.Delete(ctx, cc); err != nil {
			t.Fatal(err)
		}
		eventually(t, waitTimeout, "ClusterConnection rbac-shared is gone", func() error {
			return gone(k8sClient.Get(ctx, client.ObjectKeyFromObject(cc), cc))
		})
	})

	t.Run("holds the leader election Lease", func(t *testing.T) {
		var lease coordinationv1.Lease
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: opNamespace, Name: leaseName}, &lease); err != nil {
			t.Fatal(err)
		}
		if ptr.Deref(lease.Spec.HolderIdentity, "") == "" {
			t.Errorf("Lease %s/%s has no holder", opNamespace, leaseName)
		}
	})

	t.Run("serves metrics to readers only", func(t *testing.T) {
		checkMetrics(t, mgr.metricsAddr, opNamespace)
	})

	mgr.stop(t)
	calls, unimpersonated := proxy.snapshot()

	t.Run("no request was refused", func(t *testing.T) {
		if len(unimpersonated) > 0 {
			t.Errorf("requests that did not impersonate %s: %v", user, unimpersonated)
		}
		var forbidden []string
		for _, c := range calls {
			if c.refusedByRBAC() {
				forbidden = append(forbidden, c.String())
			}
		}
		if len(forbidden) > 0 {
			t.Errorf("the API server refused %d request(s) of the manager; its RBAC lacks:\n%s",
				len(forbidden), strings.Join(forbidden, "\n"))
		}
		log := mgr.readLog(t)
		if lines := forbiddenLines(log); lines != "" {
			t.Errorf("the manager logged a forbidden request:\n%s", lines)
		}
		for _, s := range secrets {
			if strings.Contains(log, s) {
				t.Errorf("the manager log holds a key value or session token ending in %q", s[max(0, len(s)-4):])
			}
		}
	})

	t.Run("the life used what the roles grant", func(t *testing.T) {
		used := map[grant]bool{}
		for _, c := range calls {
			if g, ok := grantOf(c); ok {
				used[g] = true
			}
		}
		for _, g := range exercised {
			if !used[g] {
				t.Errorf("no request needed %s; the test no longer covers it", g)
			}
		}
		all := make([]string, 0, len(used))
		for g := range used {
			all = append(all, g.String())
		}
		slices.Sort(all)
		t.Logf("%d requests, needing: %s", len(calls), strings.Join(all, ", "))
	})
}

// workloads are the rollout restart targets of ApiKey app. Nothing runs
// their pods (no kubelet, no workload controllers): only their templates
// matter.
func workloads(namespace string) []client.Object {
	labels := map[string]string{"app": "runner"}
	spec := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "runner", Image: "registry.invalid/runner:1"}}},
	}
	om := metav1.ObjectMeta{Namespace: namespace, Name: "runner"}
	selector := &metav1.LabelSelector{MatchLabels: labels}
	return []client.Object{
		&appsv1.Deployment{ObjectMeta: om, Spec: appsv1.DeploymentSpec{Selector: selector, Template: spec}},
		&appsv1.StatefulSet{ObjectMeta: om, Spec: appsv1.StatefulSetSpec{Selector: selector, Template: spec}},
		&appsv1.DaemonSet{ObjectMeta: om, Spec: appsv1.DaemonSetSpec{Selector: selector, Template: spec}},
	}
}

func podTemplateAnnotations(w client.Object) map[string]string {
	switch w := w.(type) {
	case *appsv1.Deployment:
		return w.Spec.Template.Annotations
	case *appsv1.StatefulSet:
		return w.Spec.Template.Annotations
	case *appsv1.DaemonSet:
		return w.Spec.Template.Annotations
	}
	return nil
}

func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	ctx := newContext(t, time.Minute)
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func ready(conds []metav1.Condition) error {
	c := meta.FindStatusCondition(conds, iamv1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue {
		return fmt.Errorf("not Ready: %+v", c)
	}
	return nil
}

func gone(err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	}
	return errors.New("still exists")
}

// waitKeyReady waits until an ApiKey of the tenant namespace is Ready with a key other than
// previous, and its Secret holds that key; it returns the key's id and adds
// the key's value to secrets.
func waitKeyReady(t *testing.T, name, previous string, secrets *[]string) string {
	t.Helper()
	var keyID string
	eventually(t, waitTimeout, "ApiKey "+name+" is Ready with a new key", func() error {
		ctx := newContext(t, time.Minute)
		var key iamv1alpha1.ApiKey
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: tenantNamespace, Name: name}, &key); err != nil {
			return err
		}
		c := meta.FindStatusCondition(key.Status.Conditions, iamv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != iamv1alpha1.ReasonKeyReady {
			return fmt.Errorf("Ready condition: %+v", c)
		}
		if key.Status.KeyID == "" || key.Status.KeyID == previous {
			return fmt.Errorf("status.keyId is %q", key.Status.KeyID)
		}
		var s corev1.Secret
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: tenantNamespace, Name: name}, &s); err != nil {
			return err
		}
		value := string(s.Data["apiKey"])
		if !strings.HasPrefix(value, "mob_") {
			return errors.New("the Secret holds no key")
		}
		if s.Annotations[iamv1alpha1.KeyIDAnnotation] != key.Status.KeyID {
			return fmt.Errorf("the Secret holds key %q, status names %q",
				s.Annotations[iamv1alpha1.KeyIDAnnotation], key.Status.KeyID)
		}
		if !slices.Contains(*secrets, value) {
			*secrets = append(*secrets, value)
		}
		keyID = key.Status.KeyID
		return nil
	})
	return keyID
}

// remoteKeysAre reports whether the organization holds exactly the keys ids.
func remoteKeysAre(emu *emulator.Server, orgID string, ids ...string) error {
	keys := emu.Keys(orgID)
	have := make([]string, 0, len(keys))
	for _, k := range keys {
		have = append(have, k.ID)
	}
	slices.Sort(have)
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(have, want) {
		return fmt.Errorf("the organization holds keys %v, want %v", have, want)
	}
	return nil
}

func checkRemote(t *testing.T, emu *emulator.Server, orgID string, ids ...string) {
	t.Helper()
	if err := remoteKeysAre(emu, orgID, ids...); err != nil {
		t.Error(err)
	}
}

// cleanup removes what a failed test may leave behind: finalizers first, as
// no manager runs any more to release them.
func cleanup(t *testing.T, namespaces ...string) {
	ctx := newContext(t, time.Minute)
	release := func(o client.Object) {
		if len(o.GetFinalizers()) == 0 {
			return
		}
		patch := client.MergeFrom(o.DeepCopyObject().(client.Object))
		o.SetFinalizers(nil)
		_ = k8sClient.Patch(ctx, o, patch)
	}
	for _, ns := range namespaces {
		var keys iamv1alpha1.ApiKeyList
		var conns iamv1alpha1.ConnectionList
		var secrets corev1.SecretList
		_ = k8sClient.List(ctx, &keys, client.InNamespace(ns))
		_ = k8sClient.List(ctx, &conns, client.InNamespace(ns))
		_ = k8sClient.List(ctx, &secrets, client.InNamespace(ns))
		for i := range keys.Items {
			release(&keys.Items[i])
		}
		for i := range conns.Items {
			release(&conns.Items[i])
		}
		for i := range secrets.Items {
			release(&secrets.Items[i])
		}
		_ = k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	var ccs iamv1alpha1.ClusterConnectionList
	_ = k8sClient.List(ctx, &ccs)
	for i := range ccs.Items {
		release(&ccs.Items[i])
		_ = k8sClient.Delete(ctx, &ccs.Items[i])
	}
}

// managerProcess is the manager under test.
type managerProcess struct {
	cmd         *exec.Cmd
	log         string
	metricsAddr string
	exited      chan struct{}
}

// startManager runs the manager with leader election (its namespace from
// POD_NAMESPACE, as the Deployment's downward API sets it) and secure
// metrics, as install.yaml runs it; it is stopped with the test.
func startManager(t *testing.T, kubeconfig, namespace string) *managerProcess {
	t.Helper()
	m := &managerProcess{
		log:         filepath.Join(t.TempDir(), "manager.log"),
		metricsAddr: freeAddress(t),
		exited:      make(chan struct{}),
	}
	logFile, err := os.Create(m.log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logFile.Close() }()
	m.cmd = exec.Command(managerBin,
		"--leader-elect",
		"--metrics-bind-address="+m.metricsAddr,
		"--health-probe-bind-address=0",
		"--sync-period="+syncPeriod.String(),
		"--credentials-poll-interval="+pollInterval.String(),
		"--create-attempt-window="+createWindow.String(),
		// Every line the manager can write is searched for secrets.
		"--zap-log-level=debug",
	)
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "POD_NAMESPACE="+namespace)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = m.cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(func() {
		m.stop(t)
		if t.Failed() {
			log := m.readLog(t)
			lines := strings.Split(strings.TrimSpace(log), "\n")
			t.Logf("end of the manager log:\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	})
	return m
}

// stop stops the manager as Kubernetes stops a pod, SIGTERM then SIGKILL.
func (m *managerProcess) stop(t *testing.T) {
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		t.Error("the manager did not stop within 30s of SIGTERM")
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

func (m *managerProcess) readLog(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(m.log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "Starting manager") {
		t.Error("the manager log does not show the manager starting; is it captured?")
	}
	return string(data)
}

// freeAddress returns a loopback address no one listens on right now.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// checkMetrics scrapes the manager's metrics with the token of a
// ServiceAccount bound to the metrics-reader ClusterRole of install.yaml, and
// with one that is not: the manager checks both through the API server
// (TokenReview, SubjectAccessReview) as its ServiceAccount.
func checkMetrics(t *testing.T, addr, namespace string) {
	t.Helper()
	ctx := newContext(t, time.Minute)
	clientset, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	reader := manifests.OfKind(installed, "ClusterRole")
	i := slices.IndexFunc(reader, func(u *unstructured.Unstructured) bool {
		return strings.HasSuffix(u.GetName(), "metrics-reader")
	})
	if i < 0 {
		t.Fatal("install.yaml has no metrics-reader ClusterRole")
	}
	tokenOf := func(name string, bind bool) string {
		mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
		if bind {
			mustCreate(t, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader[i].GetName()},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}},
			})
		}
		tr, err := clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}},
			metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	scraper, stranger := tokenOf("scraper", true), tokenOf("stranger", false)

	// The metrics server's certificate is self-signed.
	httpClient := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // self-signed
	}
	scrape := func(token string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := httpClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	eventually(t, waitTimeout, "a metrics reader scrapes the metrics", func() error {
		status, body, err := scrape(scraper)
		if err != nil {
			return err
		}
		if status != http.StatusOK || !strings.Contains(body, "controller_runtime_reconcile_total") {
			return fmt.Errorf("status %d", status)
		}
		return nil
	})
	status, _, err := scrape(stranger)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusForbidden {
		t.Errorf("a ServiceAccount without metrics-reader got %d from /metrics, want 403", status)
	}
}

// forbiddenLines returns the lines of a log that report a request refused
// for want of a permission.
func forbiddenLines(log string) string {
	var out []string
	for l := range strings.SplitSeq(log, "\n") {
		if strings.Contains(l, "is forbidden") && !strings.Contains(l, terminating) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
