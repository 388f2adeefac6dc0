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
	"cmp"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// Defaults of the manager's settings, shared by its flags and by the
// reconcilers when an option is left zero.
const (
	// DefaultSyncPeriod is how often each connection's keys are listed.
	DefaultSyncPeriod = 10 * time.Minute
	// DefaultCredentialsPollInterval is how often credentials Secrets are
	// read again.
	DefaultCredentialsPollInterval = time.Minute
	// DefaultMaxConcurrentReconciles is how many ApiKeys are reconciled at once.
	DefaultMaxConcurrentReconciles = 8
	// DefaultConnectionConcurrentReconciles is how many Connections, and
	// how many ClusterConnections, are checked at once.
	DefaultConnectionConcurrentReconciles = 2
)

// Options configure every reconciler of the operator.
type Options struct {
	// SyncPeriod is how often each connection's keys are listed (drift
	// detection and lastUsedAt).
	SyncPeriod time.Duration
	// CredentialsPollInterval is how often credentials Secrets are re-read.
	CredentialsPollInterval time.Duration
	// NewClient builds API clients; the real client by default.
	NewClient ClientFactory
	// CreateWindow is how long an unresolved create attempt is watched for
	// a late key; DefaultCreateWindow when zero.
	CreateWindow time.Duration
	// ExpiryWarning is how long before a session token expires it is
	// warned about; DefaultExpiryWarning when zero.
	ExpiryWarning time.Duration
	// MaxConcurrentReconciles is how many ApiKeys are reconciled at once;
	// DefaultMaxConcurrentReconciles when zero.
	MaxConcurrentReconciles int
	// ConnectionConcurrentReconciles is how many Connections, and how many
	// ClusterConnections, are checked at once;
	// DefaultConnectionConcurrentReconciles when zero.
	ConnectionConcurrentReconciles int
	// Clock tells the time; the real clock by default.
	Clock clock.PassiveClock
	// Entropy is where attempt ids and jitter come from; crypto/rand when
	// nil. It must be safe for concurrent use.
	Entropy io.Reader
}

// ManagedSecretSelector selects the Secrets the operator writes.
func ManagedSecretSelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue})
}

// CacheOptions are the manager's cache settings: only managed Secrets are
// cached (invariant 6), and of those only the ones an ApiKey controls keep
// their data (see TransformSecret). Credentials Secrets and foreign Secrets
// are read directly, one object at a time. managedFields are dropped from
// every cached object: the operator never reads them, they are often the
// larger part of an object's metadata, and an update without them leaves the
// API server's copy as it is.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: ManagedSecretSelector(), Transform: TransformSecret},
		},
	}
}

// apiKeyKind is the kind an owner reference names for an ApiKey.
const apiKeyKind = "ApiKey"

// TransformSecret is the cache transform of Secrets. The managed-by label
// that selects Secrets into the cache is one anyone allowed to create a
// Secret can set, so it cannot bound what the cache holds: a few large
// labelled Secrets would exhaust the manager's memory. Only a Secret
// controlled by an ApiKey keeps its data, because the reconciler compares its
// value with the key's suffix; every other Secret is cached as metadata only,
// which is all the reconciler reads of a Secret it does not control (it
// checks metav1.IsControlledBy before looking at data). managedFields are of
// no use to the operator and are dropped from every Secret.
//
// The object is changed in place: the informer hands over a freshly decoded
// object that nothing else holds yet.
func TransformSecret(in any) (any, error) {
	s, ok := in.(*corev1.Secret)
	if !ok {
		// Tombstones of deleted objects and anything else pass unchanged.
		return in, nil
	}
	s.ManagedFields = nil
	if !controlledByApiKey(s) {
		s.Data = nil
		s.StringData = nil
	}
	return s, nil
}

// controlledByApiKey reports whether an object's controller reference names
// an ApiKey, of any version of the operator's API group. Which ApiKey does
// not matter here: the reconciler checks that itself.
func controlledByApiKey(obj metav1.Object) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	if ref == nil || ref.Kind != apiKeyKind {
		return false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == iamv1alpha1.GroupVersion.Group
}

// SetupWithManager registers the three reconcilers with a manager.
func SetupWithManager(mgr manager.Manager, opts Options) error {
	connOpts := ConnectionOptions{
		SyncPeriod:              opts.SyncPeriod,
		CredentialsPollInterval: opts.CredentialsPollInterval,
		NewClient:               opts.NewClient,
		Clock:                   opts.Clock,
		ExpiryWarning:           opts.ExpiryWarning,
		Entropy:                 opts.Entropy,
		MaxConcurrentReconciles: cmp.Or(opts.ConnectionConcurrentReconciles, DefaultConnectionConcurrentReconciles),
	}
	conns := NewConnections(connOpts)
	events := mgr.GetEventRecorder("apikey-operator")
	connections := NewConnectionReconciler(mgr.GetClient(), mgr.GetAPIReader(), conns, connOpts)
	connections.Recorder = events
	if err := connections.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the Connection controller: %w", err)
	}
	clusterConnections := NewClusterConnectionReconciler(mgr.GetClient(), mgr.GetAPIReader(), conns, connOpts)
	clusterConnections.Recorder = events
	if err := clusterConnections.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the ClusterConnection controller: %w", err)
	}
	apiKeys := &ApiKeyReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Recorder:    events,
		Connections: conns,
		Options: ApiKeyOptions{
			SyncPeriod:              opts.SyncPeriod,
			CreateWindow:            opts.CreateWindow,
			MaxConcurrentReconciles: cmp.Or(opts.MaxConcurrentReconciles, DefaultMaxConcurrentReconciles),
			Clock:                   opts.Clock,
			Entropy:                 opts.Entropy,
		},
	}
	if err := apiKeys.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the ApiKey controller: %w", err)
	}
	if err := metrics.Registry.Register(stateCollector{reader: mgr.GetClient()}); err != nil {
		return fmt.Errorf("register the state metrics: %w", err)
	}
	return nil
}
