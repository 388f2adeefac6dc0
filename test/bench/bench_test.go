//go:build bench

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

// Package bench measures the operator on a real control plane with the
// emulated API: how fast ApiKeys become Ready, and what they cost the API.
// Run it with make bench; it prints its figures.
package bench

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/controller"
	"github.com/mobile-next/apikey-operator/internal/emulator"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

const syncPeriod = 5 * time.Second

var k8s client.Client

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the benchmarks with make bench")
		os.Exit(1)
	}
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = iamv1alpha1.AddToScheme(scheme)
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start control plane:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	code := func() int {
		defer func() { cancel(); _ = env.Stop() }()
		mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: controller.CacheOptions()})
		if err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			return 1
		}
		if err := controller.SetupWithManager(mgr, controller.Options{SyncPeriod: syncPeriod, CredentialsPollInterval: time.Minute}); err != nil {
			fmt.Fprintln(os.Stderr, "setup:", err)
			return 1
		}
		go func() { _ = mgr.Start(ctx) }()
		if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
			fmt.Fprintln(os.Stderr, "client:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

var seq atomic.Int32

// BenchmarkApiKeysToReady creates N ApiKeys on one Connection and waits for
// all of them to be Ready, then watches a few sync periods. It reports how
// fast keys become usable and what they cost the API.
func BenchmarkApiKeysToReady(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			for range b.N {
				measureToReady(b, n)
			}
		})
	}
}

func measureToReady(b *testing.B, n int) {
	ctx := context.Background()
	emu := emulator.New(emulator.Options{})
	srv := httptest.NewServer(emu)
	defer srv.Close()
	orgID, _, token, err := emu.Bootstrap()
	if err != nil {
		b.Fatal(err)
	}
	ns := fmt.Sprintf("bench-%d", seq.Add(1))
	must(b, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(b, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "credentials"}, Data: map[string][]byte{"token": []byte(token)}}))
	must(b, k8s.Create(ctx, &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
		Spec: iamv1alpha1.ConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			URL: srv.URL, CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: "credentials"},
		}},
	}))
	emu.ResetStats()

	start := time.Now()
	for i := range n {
		must(b, k8s.Create(ctx, &iamv1alpha1.ApiKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("key-%04d", i)},
			Spec:       iamv1alpha1.ApiKeySpec{ConnectionRef: iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ConnectionKind, Name: "api"}},
		}))
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var list iamv1alpha1.ApiKeyList
		must(b, k8s.List(ctx, &list, client.InNamespace(ns)))
		ready := 0
		for _, k := range list.Items {
			if meta.IsStatusConditionTrue(k.Status.Conditions, iamv1alpha1.ConditionReady) {
				ready++
			}
		}
		if ready == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d ApiKeys Ready after 5m", ready, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	created := emu.Stats()
	if got := len(emu.Keys(orgID)); got != n {
		b.Fatalf("%d remote keys for %d ApiKeys", got, n)
	}

	emu.ResetStats()
	periods := 3
	time.Sleep(time.Duration(periods) * syncPeriod)
	steady := emu.Stats()

	b.ReportMetric(float64(n)/elapsed.Seconds(), "keys/s")
	b.ReportMetric(float64(elapsed.Milliseconds())/float64(n), "ms/key")
	b.ReportMetric(float64(created.Create)/float64(n), "POST/key")
	b.ReportMetric(float64(created.List), "GET-while-creating")
	b.ReportMetric(float64(steady.List)/float64(periods), "GET/sync-period")
	b.Logf("%d ApiKeys Ready in %s (%.1f keys/s); %d POSTs, %d GETs while creating; %d GETs over %d sync periods of %s",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), created.Create, created.List, steady.List, periods, syncPeriod)
	_ = k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
}

// BenchmarkSharedListing asks one connection's inventory for its listing
// from many goroutines at once, with the listing always stale, and reports
// how many list calls reached the API per request.
func BenchmarkSharedListing(b *testing.B) {
	emu := emulator.New(emulator.Options{Faults: emulator.Faults{Latency: 2 * time.Millisecond}})
	srv := httptest.NewServer(emu)
	defer srv.Close()
	_, _, token, err := emu.Bootstrap()
	if err != nil {
		b.Fatal(err)
	}
	c, err := mobilenext.NewClient(mobilenext.Config{URL: srv.URL, Token: mobilenext.NewToken(token)})
	if err != nil {
		b.Fatal(err)
	}
	inv := controller.NewInventory(c, time.Nanosecond, nil)
	emu.ResetStats()
	const callers = 64
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := inv.Get(context.Background()); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	b.StopTimer()
	lists := emu.Stats().List
	b.ReportMetric(float64(lists)/float64(b.N*callers), "GET/request")
	b.Logf("%d concurrent requests for a listing, %d rounds: %d list calls reached the API", callers, b.N, lists)
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
