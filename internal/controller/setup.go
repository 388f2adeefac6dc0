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
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
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
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// BeforeSecretWrite is a test hook; see ApiKeyOptions.
	BeforeSecretWrite func(ctx context.Context, key *iamv1alpha1.ApiKey) error
}

// ManagedSecretSelector selects the Secrets the operator writes.
func ManagedSecretSelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue})
}

// CacheOptions are the manager's cache settings: only managed Secrets are
// cached (invariant 6). Credentials Secrets and foreign Secrets are read
// directly, one object at a time.
func CacheOptions() cache.Options {
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: ManagedSecretSelector()},
		},
	}
}

// SetupWithManager registers the three reconcilers with a manager.
func SetupWithManager(mgr manager.Manager, opts Options) error {
	conns := NewConnections()
	connOpts := ConnectionOptions{
		SyncPeriod:              opts.SyncPeriod,
		CredentialsPollInterval: opts.CredentialsPollInterval,
		NewClient:               opts.NewClient,
		Now:                     opts.Now,
	}
	if err := NewConnectionReconciler(mgr.GetClient(), mgr.GetAPIReader(), conns, connOpts).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the Connection controller: %w", err)
	}
	if err := NewClusterConnectionReconciler(mgr.GetClient(), mgr.GetAPIReader(), conns, connOpts).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the ClusterConnection controller: %w", err)
	}
	apiKeys := &ApiKeyReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Recorder:    mgr.GetEventRecorder("apikey-operator"),
		Connections: conns,
		Options: ApiKeyOptions{
			SyncPeriod:        opts.SyncPeriod,
			Now:               opts.Now,
			BeforeSecretWrite: opts.BeforeSecretWrite,
		},
	}
	if err := apiKeys.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the ApiKey controller: %w", err)
	}
	return nil
}
