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

package sim

import (
	"context"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// Workloads and tenancy: the Deployments an ApiKey restarts after a new
// key, and the namespaceSelector of the ClusterConnection with the labels
// of the namespaces it admits.

const (
	// workloadName is the Deployment of each tenant namespace that ApiKeys
	// may name as a rollout restart target; missingWorkload never exists.
	workloadName    = "app"
	missingWorkload = "gone"
	// tierLabel is the namespace label the ClusterConnection's
	// namespaceSelector may ask for.
	tierLabel = "tier"
	// deploymentKind is the kind of the rollout restart targets.
	deploymentKind = "Deployment"
	tierGold       = "gold"
)

// createWorkload creates the tenant Deployment of a namespace, if missing.
func (w *World) createWorkload(ns string) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: workloadName}}
	if err := w.store.Create(context.Background(), d); err == nil {
		w.tracef("user: Deployment %s/%s", ns, workloadName)
	}
}

// restartTargetsFor draws the rollout restart targets of a new ApiKey:
// often none, sometimes the namespace's Deployment, now and then one that
// does not exist.
func (w *World) restartTargetsFor() []iamv1alpha1.RolloutRestartTarget {
	switch w.rng.IntN(6) {
	case 0, 1:
		return []iamv1alpha1.RolloutRestartTarget{{Kind: deploymentKind, Name: workloadName}}
	case 2:
		return []iamv1alpha1.RolloutRestartTarget{
			{Kind: deploymentKind, Name: workloadName}, {Kind: deploymentKind, Name: missingWorkload},
		}
	}
	return nil
}

// toggleWorkload deletes a namespace's Deployment, or brings it back.
func (w *World) toggleWorkload() {
	ns := w.randomNamespace()
	ctx := context.Background()
	var d appsv1.Deployment
	if err := w.store.Get(ctx, types.NamespacedName{Namespace: ns, Name: workloadName}, &d); err == nil {
		w.tracef("user: delete Deployment %s/%s", ns, workloadName)
		must(client.IgnoreNotFound(w.store.Delete(ctx, &d)))
		return
	}
	w.createWorkload(ns)
}

// toggleSelector makes the ClusterConnection admit only namespaces labelled
// tier=gold, or every namespace again.
func (w *World) toggleSelector() {
	ctx := context.Background()
	var cc iamv1alpha1.ClusterConnection
	must(w.store.Get(ctx, types.NamespacedName{Name: clusterConnectionName}, &cc))
	if cc.Spec.NamespaceSelector == nil {
		cc.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{tierLabel: tierGold}}
	} else {
		cc.Spec.NamespaceSelector = nil
	}
	cc.Generation++
	must(w.store.Update(ctx, &cc))
	w.tracef("user: ClusterConnection %s admits %s", cc.Name, admitted(cc.Spec.NamespaceSelector))
}

func admitted(sel *metav1.LabelSelector) string {
	if sel == nil {
		return "every namespace"
	}
	return "namespaces labelled " + tierLabel + "=" + sel.MatchLabels[tierLabel]
}

// toggleTier labels a tenant namespace tier=gold, or removes the label.
func (w *World) toggleTier() {
	w.toggleTierOf(w.randomNamespace())
}

func (w *World) toggleTierOf(name string) {
	ctx := context.Background()
	var ns corev1.Namespace
	if err := w.store.Get(ctx, types.NamespacedName{Name: name}, &ns); err != nil || !ns.DeletionTimestamp.IsZero() {
		return
	}
	if ns.Labels[tierLabel] == tierGold {
		delete(ns.Labels, tierLabel)
	} else {
		metav1.SetMetaDataLabel(&ns.ObjectMeta, tierLabel, tierGold)
	}
	must(w.store.Update(ctx, &ns))
	w.tracef("user: namespace %s labels %v", ns.Name, ns.Labels)
}

// admitEveryNamespace is what the user does at quiescence about ApiKeys
// that say their ClusterConnection does not admit their namespace.
func (w *World) admitEveryNamespace() {
	ctx := context.Background()
	var cc iamv1alpha1.ClusterConnection
	must(w.store.Get(ctx, types.NamespacedName{Name: clusterConnectionName}, &cc))
	if cc.Spec.NamespaceSelector == nil {
		return
	}
	cc.Spec.NamespaceSelector = nil
	cc.Generation++
	must(w.store.Update(ctx, &cc))
	w.tracef("user: ClusterConnection %s admits every namespace again", cc.Name)
}

// checkRetirement is called when the operator sends a DELETE for a key. A
// previous key retired before its grace period ends (retireWhenUnusedFor)
// must wait until every rollout restart target that exists was restarted
// for the ApiKey's current key: the workloads still read the old one until
// then. A full previousKeys, where a repair retires the oldest entry early
// on purpose with a warning, is the exception.
func (w *World) checkRetirement(id string) {
	now := w.clock.Now()
	for _, a := range w.liveApiKeys() {
		i := slices.IndexFunc(a.Status.PreviousKeys, func(p iamv1alpha1.PreviousKey) bool { return p.KeyID == id })
		if i < 0 || !a.DeletionTimestamp.IsZero() || len(a.Status.PreviousKeys) >= maxPreviousKeys {
			continue
		}
		if p := a.Status.PreviousKeys[i]; !now.Before(p.DeleteAfter.Time) {
			continue
		}
		var pending []string
		for _, t := range a.Spec.RolloutRestartTargets {
			var d appsv1.Deployment
			nn := types.NamespacedName{Namespace: a.Namespace, Name: t.Name}
			if err := w.store.Get(context.Background(), nn, &d); err != nil {
				// A target that does not exist holds retirement back as
				// well, which the operator reports; nothing reads the
				// key through it.
				continue
			}
			if d.Spec.Template.Annotations[iamv1alpha1.RestartedForAnnotation] != a.Status.KeyID {
				pending = append(pending, t.Name)
			}
		}
		if len(pending) > 0 {
			w.violatef("previous key %s of ApiKey %s/%s retired early (before %s) "+
				"while Deployments %s were not restarted for key %s",
				id, a.Namespace, a.Name, a.Status.PreviousKeys[i].DeleteAfter.UTC().Format(time.RFC3339),
				strings.Join(pending, ", "), a.Status.KeyID)
		}
	}
}

// maxPreviousKeys is the bound of status.previousKeys in the CRD.
const maxPreviousKeys = 16
