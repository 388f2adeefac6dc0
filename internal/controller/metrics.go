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
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// Metrics of the calls to the Mobile Next API. Labels carry the operation
// and the outcome only: never a key id, a name, a secret or a token.
var (
	apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apikey_operator_api_requests_total",
		Help: "Calls to the Mobile Next API by operation (list, create, delete) and outcome (HTTP status code, or error).",
	}, []string{"operation", "code"})
	apiRequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apikey_operator_api_request_duration_seconds",
		Help:    "Duration of calls to the Mobile Next API by operation.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
	}, []string{"operation"})
)

func init() {
	metrics.Registry.MustRegister(apiRequests, apiRequestDuration)
}

// instrumented counts and times the calls of a KeyService.
type instrumented struct{ next KeyService }

// Instrument wraps a KeyService with the API metrics.
func Instrument(svc KeyService) KeyService { return instrumented{next: svc} }

func observe(op string, start time.Time, err error) {
	apiRequestDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	code := "2xx"
	var apiErr *mobilenext.APIError
	switch {
	case err == nil:
	case errors.As(err, &apiErr):
		code = strconv.Itoa(apiErr.StatusCode)
	default:
		code = "error"
	}
	apiRequests.WithLabelValues(op, code).Inc()
}

// ListKeys lists and records the call.
func (i instrumented) ListKeys(ctx context.Context) ([]mobilenext.Key, error) {
	start := time.Now()
	keys, err := i.next.ListKeys(ctx)
	observe("list", start, err)
	return keys, err
}

// CreateKey creates and records the call.
func (i instrumented) CreateKey(ctx context.Context, name string) (*mobilenext.CreatedKey, error) {
	start := time.Now()
	k, err := i.next.CreateKey(ctx, name)
	observe("create", start, err)
	return k, err
}

// DeleteKey deletes and records the call.
func (i instrumented) DeleteKey(ctx context.Context, id string) error {
	start := time.Now()
	err := i.next.DeleteKey(ctx, id)
	observe("delete", start, err)
	return err
}
