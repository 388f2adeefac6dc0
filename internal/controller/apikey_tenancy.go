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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// Tenancy (invariant 4): an ApiKey may use a Connection of its own
// namespace, or a ClusterConnection whose namespaceSelector admits its
// namespace; no other.

// admits reports why the ApiKey may not use a connection, "" when it may
// (invariant 4: a Connection of its own namespace, or a ClusterConnection
// whose namespaceSelector admits the namespace).
func (rc *reconcileContext) admits(ctx context.Context, ck ConnectionKey) string {
	key := rc.key
	if ck.Kind == iamv1alpha1.ConnectionKind {
		var c iamv1alpha1.Connection
		if err := rc.r.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: ck.Name}, &c); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Sprintf("Connection %s not found in namespace %s", ck.Name, key.Namespace)
			}
			return fmt.Sprintf("Connection %s: %v", ck.Name, err)
		}
		return ""
	}
	var cc iamv1alpha1.ClusterConnection
	if err := rc.r.Get(ctx, types.NamespacedName{Name: ck.Name}, &cc); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Sprintf("ClusterConnection %s not found", ck.Name)
		}
		return fmt.Sprintf("ClusterConnection %s: %v", ck.Name, err)
	}
	return rc.selectorAdmits(ctx, &cc)
}

// selectorAdmits reports why a ClusterConnection's namespaceSelector refuses
// the ApiKey's namespace, "" when it admits it.
func (rc *reconcileContext) selectorAdmits(ctx context.Context, cc *iamv1alpha1.ClusterConnection) string {
	sel := cc.Spec.NamespaceSelector
	if sel == nil {
		return ""
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return fmt.Sprintf("ClusterConnection %s has an invalid namespaceSelector: %v", cc.Name, err)
	}
	var ns corev1.Namespace
	if err := rc.r.Get(ctx, types.NamespacedName{Name: rc.key.Namespace}, &ns); err != nil {
		return fmt.Sprintf("cannot read namespace %s: %v", rc.key.Namespace, err)
	}
	if !selector.Matches(labels.Set(ns.Labels)) {
		return fmt.Sprintf("ClusterConnection %s does not admit namespace %s: its namespaceSelector does not match the namespace's labels", cc.Name, rc.key.Namespace)
	}
	return ""
}

// allowedConnections are the connections this ApiKey may use (invariant
// 4): its spec's first, then every Connection of its namespace and every
// ClusterConnection that admits it.
func (rc *reconcileContext) allowedConnections(ctx context.Context) []ConnectionKey {
	if rc.candidates != nil {
		return rc.candidates
	}
	key := rc.key
	out := []ConnectionKey{}
	seen := map[ConnectionKey]bool{}
	add := func(ck ConnectionKey) {
		if !seen[ck] {
			seen[ck] = true
			out = append(out, ck)
		}
	}
	if spec := connectionKeyFor(key); rc.admits(ctx, spec) == "" {
		add(spec)
	}
	var conns iamv1alpha1.ConnectionList
	if err := rc.r.List(ctx, &conns, client.InNamespace(key.Namespace)); err == nil {
		for _, c := range conns.Items {
			add(ConnectionKey{Kind: iamv1alpha1.ConnectionKind, Namespace: c.Namespace, Name: c.Name})
		}
	}
	var clusterConns iamv1alpha1.ClusterConnectionList
	if err := rc.r.List(ctx, &clusterConns); err == nil {
		for _, cc := range clusterConns.Items {
			if rc.selectorAdmits(ctx, &cc) == "" {
				add(ConnectionKey{Kind: iamv1alpha1.ClusterConnectionKind, Name: cc.Name})
			}
		}
	}
	rc.candidates = out
	return out
}

// namespaceTerminating reports whether the ApiKey's namespace is being deleted.
func (rc *reconcileContext) namespaceTerminating(ctx context.Context) bool {
	var ns corev1.Namespace
	if err := rc.r.Get(ctx, types.NamespacedName{Name: rc.key.Namespace}, &ns); err != nil {
		return false
	}
	return !ns.DeletionTimestamp.IsZero()
}
