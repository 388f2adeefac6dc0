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
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// defaultGracePeriod is how long a replaced key lives when rotation.gracePeriod is unset.
const defaultGracePeriod = 10 * time.Minute

// parseDuration reads a duration admission already validated; a value that
// still fails to parse counts as unset.
func parseDuration(s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0
	}
	return d
}

func gracePeriod(key *iamv1alpha1.ApiKey) time.Duration {
	if r := key.Spec.Rotation; r != nil && r.GracePeriod != "" {
		return parseDuration(r.GracePeriod)
	}
	return defaultGracePeriod
}

func retireWhenUnusedFor(key *iamv1alpha1.ApiKey) time.Duration {
	if r := key.Spec.Rotation; r != nil {
		return parseDuration(r.RetireWhenUnusedFor)
	}
	return 0
}

// nextRotation is when the schedule replaces the current key, counted from
// its creation.
func nextRotation(key *iamv1alpha1.ApiKey) *metav1.Time {
	r := key.Spec.Rotation
	if r == nil || key.Status.CreatedAt == nil {
		return nil
	}
	every := parseDuration(r.Every)
	if every <= 0 {
		return nil
	}
	return &metav1.Time{Time: key.Status.CreatedAt.Add(every)}
}

// observe copies what the shared listing says about the ApiKey's keys into
// status: the suffix, lastUsedAt, and whether previous keys are still used.
func (rc *reconcileContext) observe(listing Listing) {
	st := &rc.key.Status
	if k, ok := listing.Lookup(st.KeyID); ok {
		if k.Suffix != "" {
			st.APIKeySuffix = k.Suffix
		}
		st.LastUsedAt = timePtr(k.LastUsedAt)
		if st.CreatedAt == nil && !k.CreatedAt.IsZero() {
			st.CreatedAt = &metav1.Time{Time: k.CreatedAt}
		}
	}
	st.NextRotationTime = nextRotation(rc.key)
	kept := st.PreviousKeys[:0]
	for _, p := range st.PreviousKeys {
		k, ok := listing.Lookup(p.KeyID)
		if !ok && listing.StartedAt.After(p.ReplacedAt.Time) {
			// Deleted elsewhere (the web UI, say): nothing left to retire.
			continue
		}
		if ok {
			if p.APIKeySuffix == "" {
				p.APIKeySuffix = k.Suffix
			}
			if now := timePtr(k.LastUsedAt); !sameTime(now, p.LastUsedAt) {
				p.LastUsedAt = now
				p.LastUsedChangedAt = &metav1.Time{Time: rc.now}
			}
		}
		kept = append(kept, p)
	}
	st.PreviousKeys = kept
}

func timePtr(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	return &metav1.Time{Time: *t}
}

func sameTime(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(b)
}

// unusedWindow is how long a previous key must stay unused to be retired
// early; 0 when retireWhenUnusedFor is unset. lastUsedAt is only seen once
// per listing, so a window shorter than the sync period could retire a key
// used between two listings: it is never shorter than that.
func (rc *reconcileContext) unusedWindow() time.Duration {
	unused := retireWhenUnusedFor(rc.key)
	if unused > 0 && unused < rc.r.syncPeriod() {
		return rc.r.syncPeriod()
	}
	return unused
}

// retirePreviousKeys deletes replaced keys whose time is up: at the end of
// their grace period, or earlier once unused for retireWhenUnusedFor.
func (rc *reconcileContext) retirePreviousKeys(ctx context.Context) error {
	key := rc.key
	st := &key.Status
	unused := rc.unusedWindow()
	for len(st.PreviousKeys) > 0 {
		i, rule := -1, ""
		for j, p := range st.PreviousKeys {
			if !rc.now.Before(p.DeleteAfter.Time) {
				i, rule = j, fmt.Sprintf("its grace period of %s ended", gracePeriod(key))
				break
			}
			if unused > 0 && p.LastUsedChangedAt != nil && rc.now.Sub(p.LastUsedChangedAt.Time) >= unused {
				i, rule = j, fmt.Sprintf("it was unused for %s (retireWhenUnusedFor)", unused)
				break
			}
		}
		if i < 0 {
			return nil
		}
		p := st.PreviousKeys[i]
		if err := rc.inv.Service().DeleteKey(ctx, p.KeyID); err != nil && !mobilenext.IsNotFound(err) {
			return err
		}
		rc.inv.Deleted(p.KeyID)
		st.PreviousKeys = append(st.PreviousKeys[:i:i], st.PreviousKeys[i+1:]...)
		rc.event(corev1.EventTypeNormal, EventRetired, "DeleteKey", "deleted previous key %s: %s", p.KeyID, rule)
	}
	return nil
}

// restartTargets rolls the workloads that read the Secret once per new key:
// their pod template is annotated with the key id, so repeating the step, or
// restarting the manager, never restarts them again. It returns a note on
// missing targets for the Ready message.
func (rc *reconcileContext) restartTargets(ctx context.Context) string {
	key := rc.key
	if key.Status.LastRotationTime == nil || len(key.Spec.RolloutRestartTargets) == 0 {
		return ""
	}
	var missing []string
	for _, t := range key.Spec.RolloutRestartTargets {
		var obj client.Object
		switch t.Kind {
		case "Deployment":
			obj = &appsv1.Deployment{}
		case "StatefulSet":
			obj = &appsv1.StatefulSet{}
		case "DaemonSet":
			obj = &appsv1.DaemonSet{}
		default:
			continue
		}
		// Read directly: a watch would cache every workload of the cluster.
		if err := rc.r.APIReader.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: t.Name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, t.Kind+"/"+t.Name)
			} else {
				missing = append(missing, fmt.Sprintf("%s/%s (%v)", t.Kind, t.Name, err))
			}
			continue
		}
		template := podTemplate(obj)
		if template.Annotations[iamv1alpha1.RestartedForAnnotation] == key.Status.KeyID {
			continue
		}
		before := obj.DeepCopyObject().(client.Object)
		if template.Annotations == nil {
			template.Annotations = map[string]string{}
		}
		template.Annotations[iamv1alpha1.RestartedForAnnotation] = key.Status.KeyID
		if err := rc.r.Patch(ctx, obj, client.MergeFrom(before)); err != nil {
			missing = append(missing, fmt.Sprintf("%s/%s (%v)", t.Kind, t.Name, err))
			continue
		}
		rc.event(corev1.EventTypeNormal, EventRestarted, "RolloutRestart", "restarted %s/%s for key %s", t.Kind, t.Name, key.Status.KeyID)
	}
	if len(missing) == 0 {
		return ""
	}
	note := "rollout restart targets not restarted: " + strings.Join(missing, ", ")
	if c := readyMessage(key); !strings.Contains(c, note) {
		rc.event(corev1.EventTypeWarning, EventRestartTargetMiss, "RolloutRestart", "%s", note)
	}
	return note
}

func podTemplate(obj client.Object) *corev1.PodTemplateSpec {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Template
	case *appsv1.DaemonSet:
		return &o.Spec.Template
	}
	return &corev1.PodTemplateSpec{}
}
