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
package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/emulator"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// The manager under test lists each connection every testSyncPeriod and
// re-reads credentials every testPollInterval.
const (
	testSyncPeriod   = 3 * time.Second
	testPollInterval = 2 * time.Second
	// testCreateWindow is how long an unresolved create attempt is watched.
	testCreateWindow = 15 * time.Second
)

var (
	ctx       context.Context
	cancel    context.CancelFunc
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
	// managerCache is the manager's informer cache, to prove what it holds.
	managerCache cache.Cache

	// managerLogs captures everything the manager logs, to prove no secret
	// value or token ever reaches a log line.
	managerLogs syncBuffer

	// secretsSeen collects every key value and token the tests handled.
	secretsSeen sync.Map

	// tenants finds a tenant by its namespace and by its API URL, so that
	// the manager's clients send its calls through the faults its test set
	// (tenant.failRemote, tenant.failKube). Only newTenant writes it.
	tenants sync.Map
)

// tenantAt is the tenant of a namespace or an API URL, if any.
func tenantAt(nsOrURL string) *tenant {
	if t, ok := tenants.Load(nsOrURL); ok {
		return t.(*tenant)
	}
	return nil
}

// kubeFaultFuncs sends each write of the manager through the faults the
// test set on the tenant of the object's namespace, if any.
func kubeFaultFuncs() interceptor.Funcs {
	faults := func(ns string) interceptor.Funcs {
		if t := tenantAt(ns); t != nil {
			if f := t.kubeFaults.Load(); f != nil {
				return *f
			}
		}
		return interceptor.Funcs{}
	}
	return interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if f := faults(obj.GetNamespace()).Create; f != nil {
				return f(ctx, c, obj, opts...)
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if f := faults(obj.GetNamespace()).Update; f != nil {
				return f(ctx, c, obj, opts...)
			}
			return c.Update(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if f := faults(obj.GetNamespace()).SubResourceUpdate; f != nil {
				return f(ctx, c, sub, obj, opts...)
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	}
}

// interceptable sends each call through the faults the test set on the
// tenant of its URL, if any, at the time of the call.
type interceptable struct {
	url  string
	next KeyService
}

func (i interceptable) svc() KeyService {
	if t := tenantAt(i.url); t != nil {
		if wrap := t.remoteFaults.Load(); wrap != nil {
			return (*wrap)(i.next)
		}
	}
	return i.next
}

func (i interceptable) ListKeys(ctx context.Context) ([]mobilenext.Key, error) {
	return i.svc().ListKeys(ctx)
}

func (i interceptable) CreateKey(ctx context.Context, name string) (*mobilenext.CreatedKey, error) {
	return i.svc().CreateKey(ctx, name)
}

func (i interceptable) DeleteKey(ctx context.Context, id string) error {
	return i.svc().DeleteKey(ctx, id)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(&managerLogs), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())

	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(iamv1alpha1.AddToScheme(scheme)).To(Succeed())

	assets := os.Getenv("KUBEBUILDER_ASSETS")
	Expect(assets).NotTo(BeEmpty(), "KUBEBUILDER_ASSETS must name the control plane built by hack/controlplane.sh; run the tests with 'make test'")
	By("starting a real kube-apiserver and etcd from " + assets)
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   CacheOptions(),
		NewClient: func(config *rest.Config, options client.Options) (client.Client, error) {
			c, err := client.NewWithWatch(config, options)
			if err != nil {
				return nil, err
			}
			return interceptor.NewClient(c, kubeFaultFuncs()), nil
		},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(SetupWithManager(mgr, Options{
		SyncPeriod:              testSyncPeriod,
		CredentialsPollInterval: testPollInterval,
		CreateWindow:            testCreateWindow,
		NewClient: func(cfg mobilenext.Config) (KeyService, error) {
			svc, err := NewMobileNextClient(cfg)
			if err != nil {
				return nil, err
			}
			return interceptable{url: cfg.URL, next: svc}, nil
		},
	})).To(Succeed())
	managerCache = mgr.GetCache()
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	if k8sClient != nil {
		By("checking that no key value or token reached a log line, an event or a status")
		var secrets []string
		secretsSeen.Range(func(k, _ any) bool {
			secrets = append(secrets, k.(string))
			return true
		})
		Expect(secrets).NotTo(BeEmpty())
		var keys iamv1alpha1.ApiKeyList
		Expect(k8sClient.List(ctx, &keys)).To(Succeed())
		var conns iamv1alpha1.ConnectionList
		Expect(k8sClient.List(ctx, &conns)).To(Succeed())
		var events eventsv1.EventList
		Expect(k8sClient.List(ctx, &events)).To(Succeed())
		Expect(events.Items).NotTo(BeEmpty())
		statuses, err := json.Marshal([]any{keys, conns, events})
		Expect(err).NotTo(HaveOccurred())
		families, err := metrics.Registry.Gather()
		Expect(err).NotTo(HaveOccurred())
		exposed, err := json.Marshal(families)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(exposed)).To(ContainSubstring("apikey_operator_api_requests_total"))
		logs := managerLogs.String()
		Expect(logs).To(ContainSubstring("created remote key"))
		for _, s := range secrets {
			Expect(logs).NotTo(ContainSubstring(s), "a secret value reached the manager's log")
			Expect(string(statuses)).NotTo(ContainSubstring(s), "a secret value reached a status or an event")
			Expect(string(exposed)).NotTo(ContainSubstring(s), "a secret value reached a metric")
		}
	}
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// tenant is one test's world: a namespace, an emulated API of its own, and a
// Connection to it, so tests neither share keys nor request counts.
type tenant struct {
	ns     string
	emu    *emulator.Server
	url    string
	orgID  string
	userID string
	token  string

	// The faults the test stands between the manager and the tenant's API
	// and namespace with; nil when none.
	remoteFaults atomic.Pointer[func(KeyService) KeyService]
	kubeFaults   atomic.Pointer[interceptor.Funcs]
}

// failRemote sends the manager's calls to the tenant's API through wrap,
// until the test ends.
func (t *tenant) failRemote(wrap func(KeyService) KeyService) {
	t.remoteFaults.Store(&wrap)
	DeferCleanup(func() { t.remoteFaults.Store(nil) })
}

// failKube sends the manager's writes to the tenant's namespace through
// the set functions of f, which replace the client's, until the test ends.
func (t *tenant) failKube(f interceptor.Funcs) {
	t.kubeFaults.Store(&f)
	DeferCleanup(func() { t.kubeFaults.Store(nil) })
}

var tenantSeq atomic.Int32

// newTenant starts an emulator and a Ready Connection named "api" to it.
func newTenant(opts ...func(*corev1.Namespace)) *tenant {
	GinkgoHelper()
	t := &tenant{ns: fmt.Sprintf("t%d-%d", tenantSeq.Add(1), time.Now().UnixNano()%100000)}
	t.emu = emulator.New(emulator.Options{})
	srv := httptest.NewServer(t.emu)
	DeferCleanup(srv.Close)
	t.url = srv.URL
	var err error
	t.orgID, t.userID, t.token, err = t.emu.Bootstrap()
	Expect(err).NotTo(HaveOccurred())
	remember(t.token)
	tenants.Store(t.ns, t)
	tenants.Store(t.url, t)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.ns}}
	for _, o := range opts {
		o(ns)
	}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	t.credentials("credentials", t.token)
	t.connection("api", "credentials")
	return t
}

func remember(secret string) {
	if secret != "" {
		secretsSeen.Store(secret, true)
	}
}

// credentials writes (or overwrites) a credentials Secret.
func (t *tenant) credentials(name, token string) {
	GinkgoHelper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: name}}
	err := k8sClient.Get(ctx, client.ObjectKeyFromObject(s), s)
	s.Data = map[string][]byte{"token": []byte(token)}
	if err == nil {
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		return
	}
	Expect(k8sClient.Create(ctx, s)).To(Succeed())
}

// connection creates a Connection to the tenant's emulator.
func (t *tenant) connection(name, secret string) {
	GinkgoHelper()
	c := &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: name},
		Spec: iamv1alpha1.ConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			URL:                  t.url,
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: secret},
		}},
	}
	Expect(k8sClient.Create(ctx, c)).To(Succeed())
}

// apiKey creates an ApiKey on the tenant's Connection "api".
func (t *tenant) apiKey(name string, mutate ...func(*iamv1alpha1.ApiKey)) {
	GinkgoHelper()
	k := &iamv1alpha1.ApiKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: name},
		Spec: iamv1alpha1.ApiKeySpec{
			ConnectionRef: iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ConnectionKind, Name: "api"},
		},
	}
	for _, m := range mutate {
		m(k)
	}
	Expect(k8sClient.Create(ctx, k)).To(Succeed())
}

// get reads an ApiKey.
func (t *tenant) get(name string) *iamv1alpha1.ApiKey {
	GinkgoHelper()
	k := &iamv1alpha1.ApiKey{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: name}, k)).To(Succeed())
	return k
}

// waitReady waits for Ready=True/KeyReady and returns the ApiKey.
func (t *tenant) waitReady(name string) *iamv1alpha1.ApiKey {
	GinkgoHelper()
	var k *iamv1alpha1.ApiKey
	Eventually(func(g Gomega) {
		k = &iamv1alpha1.ApiKey{}
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: name}, k)).To(Succeed())
		c := meta.FindStatusCondition(k.Status.Conditions, iamv1alpha1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(iamv1alpha1.ReasonKeyReady), c.Message)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(k.Status.ObservedGeneration).To(Equal(k.Generation))
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	return k
}

// waitReason waits for the Ready condition to carry a reason.
func (t *tenant) waitReason(name, reason string) *metav1.Condition {
	GinkgoHelper()
	var cond *metav1.Condition
	Eventually(func(g Gomega) {
		k := &iamv1alpha1.ApiKey{}
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: name}, k)).To(Succeed())
		cond = meta.FindStatusCondition(k.Status.Conditions, iamv1alpha1.ConditionReady)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(reason), cond.Message)
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	return cond
}

// secret reads a Secret and remembers its values.
func (t *tenant) secret(name string) *corev1.Secret {
	GinkgoHelper()
	s := &corev1.Secret{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: name}, s)).To(Succeed())
	for _, v := range s.Data {
		if strings.HasPrefix(string(v), "mob_") {
			remember(string(v))
		}
	}
	return s
}

// remoteIDs lists the ids of the keys in the tenant's organization.
func (t *tenant) remoteIDs() []string {
	keys := t.emu.Keys(t.orgID)
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids
}

// eventReasons lists the reasons of the events about an ApiKey.
func (t *tenant) eventReasons(name string) []string {
	GinkgoHelper()
	var events eventsv1.EventList
	Expect(k8sClient.List(ctx, &events, client.InNamespace(t.ns))).To(Succeed())
	var reasons []string
	for _, e := range events.Items {
		if e.Regarding.Name == name && e.Regarding.Kind == "ApiKey" {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}
