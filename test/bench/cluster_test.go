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

package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/emulator"
	"github.com/mobile-next/apikey-operator/test/localcluster"
)

// Names of the fixtures every phase shares.
const (
	// systemNamespace holds the credentials of the ClusterConnection.
	systemNamespace = "bench-system"
	// credentialsSecretName is the Secret holding the session token.
	credentialsSecretName = "mobilenext-credentials"
	// connectionName is the ClusterConnection every ApiKey of the benchmark
	// uses: "default", the one an ApiKey naming no connection uses.
	connectionName = "default"
)

// world is what the benchmark runs against: a real control plane, the
// emulated API served from this process, and the ClusterConnection to it.
type world struct {
	dir     string
	cluster *localcluster.Cluster
	scheme  *runtime.Scheme
	// k8s reads and writes without a cache, with the same client-side rate
	// limits as the manager under test.
	k8s client.WithWatch
	// metrics reads the API server's own /metrics.
	metrics    *http.Client
	emu        *emulator.Server
	srv        *httptest.Server
	orgID      string
	token      string
	managerBin string
}

// newWorld starts the control plane and the emulator and creates the
// ClusterConnection.
func newWorld(ctx context.Context, dir, managerBin string) (*world, error) {
	w := &world{dir: dir, managerBin: managerBin}
	var err error
	w.cluster, err = localcluster.Start(localcluster.Options{
		CRDDirectory: filepath.Join("..", "..", "config", "crd", "bases"),
		Dir:          dir,
	})
	if err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	w.scheme = runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(w.scheme); err != nil {
		return w, err
	}
	if err := iamv1alpha1.AddToScheme(w.scheme); err != nil {
		return w, err
	}
	cfg := rest.CopyConfig(w.cluster.Config)
	cfg.QPS, cfg.Burst = kubeAPIQPS, kubeAPIBurst
	if w.k8s, err = client.NewWithWatch(cfg, client.Options{Scheme: w.scheme}); err != nil {
		return w, err
	}
	if w.metrics, err = rest.HTTPClientFor(w.cluster.Config); err != nil {
		return w, err
	}

	w.emu = emulator.New(emulator.Options{})
	w.srv = httptest.NewServer(w.emu)
	if w.orgID, _, w.token, err = w.emu.Bootstrap(); err != nil {
		return w, err
	}
	if err := w.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNamespace}}); err != nil {
		return w, err
	}
	if err := w.k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: systemNamespace, Name: credentialsSecretName},
		Data:       map[string][]byte{"token": []byte(w.token)},
	}); err != nil {
		return w, err
	}
	err = w.k8s.Create(ctx, &iamv1alpha1.ClusterConnection{
		ObjectMeta: metav1.ObjectMeta{Name: connectionName},
		Spec: iamv1alpha1.ClusterConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			URL:            w.srv.URL,
			OrganizationID: w.orgID,
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{
				Namespace: systemNamespace, Name: credentialsSecretName,
			},
		}},
	})
	return w, err
}

// stop stops the emulator and the control plane.
func (w *world) stop() {
	if w.srv != nil {
		w.srv.Close()
	}
	if w.cluster != nil {
		_ = w.cluster.Stop()
	}
}

// createNamespace creates a namespace for one phase.
func (w *world) createNamespace(ctx context.Context, name string) error {
	err := w.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// waitConnectionReady waits until the ClusterConnection says Ready.
func (w *world) waitConnectionReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var c iamv1alpha1.ClusterConnection
		err := w.k8s.Get(ctx, types.NamespacedName{Name: connectionName}, &c)
		if err == nil && meta.IsStatusConditionTrue(c.Status.Conditions, iamv1alpha1.ConditionReady) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ClusterConnection %s not Ready after %v (error %v, conditions %+v)",
				connectionName, timeout, err, c.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// operatorKeys counts the emulated organization's keys that carry the
// operator's attempt marker and whose remote name starts with namespace/.
func (w *world) operatorKeys(namespace string) int {
	n := 0
	for _, k := range w.emu.Keys(w.orgID) {
		if strings.HasPrefix(k.Name, namespace+"/") && strings.Contains(k.Name, " [k8s-") {
			n++
		}
	}
	return n
}

// requestKey names one series of the API server's request counter.
type requestKey struct {
	verb, resource string
}

// requestCounts are API-server requests by verb and resource
// ("apikeys/status" for a subresource).
type requestCounts map[requestKey]float64

// writeVerbs are the verbs of apiserver_request_total that change state.
var writeVerbs = []string{"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"}

// apiserverStats are the API server's requests and the seconds it spent
// answering them, by verb and resource.
type apiserverStats struct {
	count, seconds requestCounts
}

// since returns the requests made after before was taken.
func (a apiserverStats) since(before apiserverStats) apiserverStats {
	return apiserverStats{count: a.count.since(before.count), seconds: a.seconds.since(before.seconds)}
}

// meanWrite is the mean time the API server took to answer a write.
func (a apiserverStats) meanWrite() time.Duration {
	n := a.count.writes().total()
	if n == 0 {
		return 0
	}
	sum := 0.0
	for _, v := range a.seconds.writes() {
		sum += v
	}
	return time.Duration(sum / float64(n) * float64(time.Second))
}

// apiserverRequests reads the API server's request counters. The Leases
// kube-apiserver renews for itself every few seconds are left out: no
// manager of the benchmark uses leader election, and they would hide the
// writes that matter.
func (w *world) apiserverRequests(ctx context.Context) (apiserverStats, error) {
	url := strings.TrimSuffix(w.cluster.Config.Host, "/") + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return apiserverStats{}, err
	}
	resp, err := w.metrics.Do(req)
	if err != nil {
		return apiserverStats{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return apiserverStats{}, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseRequestStats(resp.Body)
}

// parseRequestStats reads apiserver_request_total and
// apiserver_request_duration_seconds_sum from the Prometheus text format.
func parseRequestStats(r io.Reader) (apiserverStats, error) {
	out := apiserverStats{count: requestCounts{}, seconds: requestCounts{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var dst requestCounts
		line, ok := strings.CutPrefix(sc.Text(), "apiserver_request_total{")
		if ok {
			dst = out.count
		} else if line, ok = strings.CutPrefix(sc.Text(), "apiserver_request_duration_seconds_sum{"); ok {
			dst = out.seconds
		} else {
			continue
		}
		end := strings.LastIndex(line, "} ")
		if end < 0 {
			return out, fmt.Errorf("malformed sample %q", line)
		}
		labels := parseLabels(line[:end])
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+2:]), 64)
		if err != nil {
			return out, fmt.Errorf("malformed sample %q: %w", line, err)
		}
		res := labels["resource"]
		if res == "leases" {
			continue
		}
		if sub := labels["subresource"]; sub != "" {
			res += "/" + sub
		}
		dst[requestKey{verb: labels["verb"], resource: res}] += v
	}
	return out, sc.Err()
}

// parseLabels parses `a="x",b="y"`; values may hold escaped quotes.
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		eq := strings.Index(s, `="`)
		if eq < 0 {
			break
		}
		key := strings.TrimLeft(s[:eq], ",")
		s = s[eq+2:]
		var b strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		out[key] = b.String()
		s = s[min(i+1, len(s)):]
	}
	return out
}

// since returns the requests counted after before was taken.
func (c requestCounts) since(before requestCounts) requestCounts {
	out := requestCounts{}
	for k, v := range c {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// writes keeps the requests that change state.
func (c requestCounts) writes() requestCounts {
	out := requestCounts{}
	for k, v := range c {
		if slices.Contains(writeVerbs, k.verb) {
			out[k] = v
		}
	}
	return out
}

// total is the number of requests.
func (c requestCounts) total() int {
	n := 0.0
	for _, v := range c {
		n += v
	}
	return int(n)
}

// String lists the requests, largest first: "PUT apikeys/status 2000, …".
func (c requestCounts) String() string {
	if len(c) == 0 {
		return "none"
	}
	keys := make([]requestKey, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b requestKey) int {
		if c[a] != c[b] {
			if c[a] > c[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a.verb+a.resource, b.verb+b.resource)
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %s %d", k.verb, k.resource, int(c[k])))
	}
	return strings.Join(parts, ", ")
}

// errTimeout marks a wait that ran out of time.
var errTimeout = errors.New("timed out")
