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
	"context"
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// Label names shared by several metrics.
const (
	labelConnection = "connection"
	labelName       = "name"
	labelNamespace  = "namespace"
)

// Metrics of the operator. Labels name connections and ApiKeys, operations
// and status codes: never a key id, a remote name, a secret or a token, and
// their number follows the operator's own objects.
var (
	apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apikey_operator_api_requests_total",
		Help: "Requests to the Mobile Next API by connection, method (GET lists, POST creates, DELETE deletes) and HTTP status code.",
	}, []string{labelConnection, "method", "code"})
	apiRequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apikey_operator_api_request_duration_seconds",
		Help:    "Duration of requests to the Mobile Next API by connection and method.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
	}, []string{labelConnection, "method"})
	buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apikey_operator_build_info",
		Help: "Always 1; the labels say which build of the operator runs.",
	}, []string{"version", "goversion"})
)

func init() {
	metrics.Registry.MustRegister(apiRequests, apiRequestDuration, buildInfo)
	buildInfo.WithLabelValues(mobilenext.Version, runtime.Version()).Set(1)
}

// instrumentTransport counts and times the requests made through a
// connection, with client_golang's round-tripper instrumentation. Requests
// that get no answer at all are not counted by it; the failed reconcile is.
func instrumentTransport(connection string) func(http.RoundTripper) http.RoundTripper {
	counter := apiRequests.MustCurryWith(prometheus.Labels{labelConnection: connection})
	duration := apiRequestDuration.MustCurryWith(prometheus.Labels{labelConnection: connection})
	return func(next http.RoundTripper) http.RoundTripper {
		return promhttp.InstrumentRoundTripperCounter(counter, promhttp.InstrumentRoundTripperDuration(duration, next))
	}
}

// Descriptions of the metrics the state collector computes at scrape time.
var (
	connectionReadyDesc = prometheus.NewDesc("apikey_operator_connection_ready",
		"1 when the connection is Ready, else 0.", []string{"kind", labelNamespace, labelName, "reason"}, nil)
	credentialsExpiryDesc = prometheus.NewDesc("apikey_operator_credentials_expiry_timestamp_seconds",
		"When the connection's session token expires (its exp claim), as a Unix timestamp.", []string{"kind", labelNamespace, labelName}, nil)
	apiKeyConditionDesc = prometheus.NewDesc("apikey_operator_apikey_status_condition",
		"1 for the current status of each condition (Ready, Synced) of an ApiKey, with its reason.", []string{labelNamespace, labelName, "type", "status", "reason"}, nil)
	nextRotationDesc = prometheus.NewDesc("apikey_operator_apikey_next_rotation_timestamp_seconds",
		"When the ApiKey's schedule rotates its key next, as a Unix timestamp.", []string{labelNamespace, labelName}, nil)
	previousKeysDesc = prometheus.NewDesc("apikey_operator_apikey_previous_keys",
		"Replaced keys of the ApiKey still awaiting retirement.", []string{labelNamespace, labelName}, nil)
	unresolvedAttemptsDesc = prometheus.NewDesc("apikey_operator_apikey_unresolved_attempts",
		"Create attempts of the ApiKey whose key may still appear (pending or unresolved).", []string{labelNamespace, labelName}, nil)
)

// stateCollector reports the state of connections and ApiKeys from the
// manager's cache when scraped: series follow the objects, and a deleted
// object leaves none behind.
type stateCollector struct{ reader client.Reader }

// Describe implements prometheus.Collector.
func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{connectionReadyDesc, credentialsExpiryDesc, apiKeyConditionDesc, nextRotationDesc, previousKeysDesc, unresolvedAttemptsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx := context.Background()
	var conns iamv1alpha1.ConnectionList
	if c.reader.List(ctx, &conns, client.UnsafeDisableDeepCopy) == nil {
		for _, o := range conns.Items {
			collectConnection(ch, iamv1alpha1.ConnectionKind, o.Namespace, o.Name, &o.Status)
		}
	}
	var clusterConns iamv1alpha1.ClusterConnectionList
	if c.reader.List(ctx, &clusterConns, client.UnsafeDisableDeepCopy) == nil {
		for _, o := range clusterConns.Items {
			collectConnection(ch, iamv1alpha1.ClusterConnectionKind, "", o.Name, &o.Status)
		}
	}
	var keys iamv1alpha1.ApiKeyList
	if c.reader.List(ctx, &keys, client.UnsafeDisableDeepCopy) != nil {
		return
	}
	for _, k := range keys.Items {
		for _, t := range []string{iamv1alpha1.ConditionReady, iamv1alpha1.ConditionSynced} {
			status, reason := string(metav1.ConditionUnknown), ""
			if cond := meta.FindStatusCondition(k.Status.Conditions, t); cond != nil {
				status, reason = string(cond.Status), cond.Reason
			}
			ch <- prometheus.MustNewConstMetric(apiKeyConditionDesc, prometheus.GaugeValue, 1, k.Namespace, k.Name, t, status, reason)
		}
		if t := k.Status.NextRotationTime; t != nil {
			ch <- prometheus.MustNewConstMetric(nextRotationDesc, prometheus.GaugeValue, float64(t.Unix()), k.Namespace, k.Name)
		}
		ch <- prometheus.MustNewConstMetric(previousKeysDesc, prometheus.GaugeValue, float64(len(k.Status.PreviousKeys)), k.Namespace, k.Name)
		attempts := len(k.Status.UnresolvedAttempts)
		if k.Status.PendingCreate != nil {
			attempts++
		}
		ch <- prometheus.MustNewConstMetric(unresolvedAttemptsDesc, prometheus.GaugeValue, float64(attempts), k.Namespace, k.Name)
	}
}

func collectConnection(ch chan<- prometheus.Metric, kind, namespace, name string, st *iamv1alpha1.ConnectionStatus) {
	ready, reason := 0.0, ""
	if cond := meta.FindStatusCondition(st.Conditions, iamv1alpha1.ConditionReady); cond != nil {
		reason = cond.Reason
		if cond.Status == metav1.ConditionTrue {
			ready = 1
		}
	}
	ch <- prometheus.MustNewConstMetric(connectionReadyDesc, prometheus.GaugeValue, ready, kind, namespace, name, reason)
	if exp := st.CredentialsExpireAt; exp != nil {
		ch <- prometheus.MustNewConstMetric(credentialsExpiryDesc, prometheus.GaugeValue, float64(exp.Unix()), kind, namespace, name)
	}
}
