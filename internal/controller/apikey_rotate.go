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
)

// defaultGracePeriod is how long a replaced key lives when rotation.gracePeriod is unset.
const defaultGracePeriod = 10 * time.Minute

// gracePeriod is how long a replaced key lives at most.
func gracePeriod(key *iamv1alpha1.ApiKey) time.Duration {
	if r := key.Spec.Rotation; r != nil && r.GracePeriod != nil {
		return r.GracePeriod.Duration
	}
	return defaultGracePeriod
}

// rotationEvery is the period of scheduled rotation; 0 when the key rotates
// only on demand.
func rotationEvery(key *iamv1alpha1.ApiKey) time.Duration {
	if r := key.Spec.Rotation; r != nil && r.Every != nil {
		return r.Every.Duration
	}
	return 0
}

// retireWhenUnusedFor is how long a replaced key may go unused before it is
// retired early; 0 when it is not.
func retireWhenUnusedFor(key *iamv1alpha1.ApiKey) time.Duration {
	if r := key.Spec.Rotation; r != nil && r.RetireWhenUnusedFor != nil {
		return r.RetireWhenUnusedFor.Duration
	}
	return 0
}

// nextRotation is when the schedule replaces the current key, counted from
// when the operator recorded it (by its own clock: a remote clock that is
// off cannot make it rotate early or in a loop).
func nextRotation(key *iamv1alpha1.ApiKey) *metav1.Time {
	every := rotationEvery(key)
	if every <= 0 {
		return nil
	}
	from := key.Status.KeyRecordedAt
	if from == nil {
		from = key.Status.CreatedAt
	}
	if from == nil {
		return nil
	}
	return &metav1.Time{Time: from.Add(every)}
}

// confirmDelay is how much later than the listing that first left a key out
// a second listing must start to confirm it is gone: well past the lag of a
// read replica, and never more than a sync period.
func (rc *reconcileContext) confirmDelay() time.Duration {
	return min(rc.r.syncPeriod(), time.Minute)
}

// listingNeededSince is how recent a listing this reconcile needs: one of
// the last sync period, or, while the current key is missing from a
// listing, one that started confirmDelay after that listing.
func (rc *reconcileContext) listingNeededSince() time.Time {
	since := rc.now.Add(-rc.r.syncPeriod())
	if t, ok := rc.suffixPending(); ok && !rc.now.Before(t) {
		// The create answer carries no suffix: a listing that started
		// after the key was recorded shows it. Status times are whole
		// seconds, hence the second added.
		since = rc.key.Status.KeyRecordedAt.Add(time.Second)
	}
	if t := rc.key.Status.KeyMissingSince; t != nil {
		if confirm := t.Add(rc.confirmDelay()); !rc.now.Before(confirm) {
			return confirm
		}
	}
	return since
}

// suffixDebounce is how long after a create its ApiKey waits before asking
// for the listing that tells the key's suffix. The listing is shared: a
// burst of creates within it costs one list call, not one per key.
const suffixDebounce = 2 * time.Second

// suffixLookup bounds how long after a create the suffix is looked for
// early; after that the periodic listing brings it.
const suffixLookup = time.Minute

// suffixPending reports whether the current key's suffix is still unknown
// shortly after it was recorded, and when to list for it.
func (rc *reconcileContext) suffixPending() (time.Time, bool) {
	st := rc.key.Status
	if st.KeyID == "" || st.APIKeySuffix != "" || st.KeyRecordedAt == nil || rc.now.Sub(st.KeyRecordedAt.Time) > suffixLookup {
		return time.Time{}, false
	}
	return st.KeyRecordedAt.Add(suffixDebounce), true
}

// missingVerdict is what one listing says about the current key.
type missingVerdict struct {
	// missingSince is the new value of status.keyMissingSince.
	missingSince *metav1.Time
	// gone is true when the key is confirmed revoked.
	gone bool
}

// judgeMissing decides from one listing whether the current key is gone. A
// key counts as gone only when two listings left it out, both started after
// the key was recorded and the second at least confirm after the first: a
// lagging or partial answer never replaces a key on its own.
func judgeMissing(listed bool, listingStarted time.Time, recordedAt, missingSince *metav1.Time, confirm time.Duration) missingVerdict {
	if listed {
		return missingVerdict{}
	}
	if recordedAt != nil && listingStarted.Before(recordedAt.Time) {
		// The listing may have been answered before the key existed.
		return missingVerdict{missingSince: missingSince}
	}
	if missingSince == nil {
		return missingVerdict{missingSince: &metav1.Time{Time: listingStarted.Truncate(time.Second)}}
	}
	if listingStarted.Sub(missingSince.Time) >= confirm {
		return missingVerdict{missingSince: missingSince, gone: true}
	}
	return missingVerdict{missingSince: missingSince}
}

// observe copies what the shared listing says about the ApiKey's keys into
// status: the suffix, lastUsedAt, whether the current key is missing, and
// whether previous keys living in the same place are still used. A previous
// key missing from a listing stays in previousKeys: it is deleted at its
// time, and a 404 then counts as done.
func (rc *reconcileContext) observe(listing Listing) {
	st := &rc.key.Status
	k, listed := listing.Lookup(st.KeyID)
	if listed {
		if k.Suffix != "" {
			st.APIKeySuffix = k.Suffix
		}
		st.LastUsedAt = timePtr(k.LastUsedAt)
		if st.CreatedAt == nil && !k.CreatedAt.IsZero() {
			st.CreatedAt = &metav1.Time{Time: k.CreatedAt}
		}
	}
	v := judgeMissing(listed, listing.StartedAt, st.KeyRecordedAt, st.KeyMissingSince, rc.confirmDelay())
	st.KeyMissingSince, rc.revocationConfirmed = v.missingSince, v.gone
	st.NextRotationTime = nextRotation(rc.key)
	for i := range st.PreviousKeys {
		p := &st.PreviousKeys[i]
		if !rc.livesHere(p.Location) {
			continue
		}
		k, ok := listing.Lookup(p.KeyID)
		if !ok {
			continue
		}
		if p.APIKeySuffix == "" {
			p.APIKeySuffix = k.Suffix
		}
		if now := timePtr(k.LastUsedAt); !sameTime(now, p.LastUsedAt) {
			p.LastUsedAt = now
			p.LastUsedChangedAt = &metav1.Time{Time: rc.now}
		}
	}
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

// retirementRule says whether a previous key retires now, and why: at the
// end of its grace period in any case, or earlier once unused for the
// window, but only when every rollout restart target already restarted for
// the key that replaced it (restartsDone).
func retirementRule(p iamv1alpha1.PreviousKey, now time.Time, unused time.Duration, restartsDone bool, grace time.Duration) string {
	if !now.Before(p.DeleteAfter.Time) {
		return fmt.Sprintf("its grace period of %s ended", grace)
	}
	if restartsDone && unused > 0 && p.LastUsedChangedAt != nil && now.Sub(p.LastUsedChangedAt.Time) >= unused {
		return fmt.Sprintf("it was unused for %s (retireWhenUnusedFor)", unused)
	}
	return ""
}

// retirePreviousKeys deletes replaced keys whose time is up, where they
// live. A key whose place no connection reaches stays, and Synced says so.
func (rc *reconcileContext) retirePreviousKeys(ctx context.Context, pendingRestarts []string) error {
	key := rc.key
	st := &key.Status
	unused := rc.unusedWindow()
	var kept []iamv1alpha1.PreviousKey
	var firstErr error
	for _, p := range st.PreviousKeys {
		rule := retirementRule(p, rc.now, unused, len(pendingRestarts) == 0, gracePeriod(key))
		if rule == "" {
			kept = append(kept, p)
			continue
		}
		inv, err := rc.reach(ctx, p.Location)
		if err == nil {
			err = inv.Delete(ctx, p.KeyID)
		}
		if err != nil {
			kept = append(kept, p)
			if u, ok := errors.AsType[*unreachableError](err); ok {
				rc.notSynced(iamv1alpha1.ReasonConnectionChanged, fmt.Sprintf("previous key %s cannot be retired: %v; create a Connection in namespace %s with credentials for it, or point a connection back at it", p.KeyID, u, key.Namespace))
				rc.soon(time.Minute)
				continue
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if len(pendingRestarts) > 0 {
			rc.event(corev1.EventTypeWarning, EventRetired, "DeleteKey", "deleted previous key %s: %s, although rollout restart targets were not restarted for the new key: %s", p.KeyID, rule, joinTargets(pendingRestarts))
		} else {
			rc.event(corev1.EventTypeNormal, EventRetired, "DeleteKey", "deleted previous key %s: %s", p.KeyID, rule)
		}
	}
	st.PreviousKeys = kept
	return firstErr
}

// restartTargets rolls the workloads that read the Secret once per new key:
// their pod template is annotated with the key id, so repeating the step, or
// restarting the manager, never restarts them again. It returns the targets
// not restarted for the current key yet (missing, or failed); they are
// retried with a growing delay and hold back early retirement.
func (rc *reconcileContext) restartTargets(ctx context.Context) []string {
	key := rc.key
	if key.Status.LastRotationTime == nil || len(key.Spec.RolloutRestartTargets) == 0 {
		return nil
	}
	var pending []string
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
				pending = append(pending, t.Kind+"/"+t.Name+" (not found)")
			} else {
				pending = append(pending, fmt.Sprintf("%s/%s (%v)", t.Kind, t.Name, err))
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
			pending = append(pending, fmt.Sprintf("%s/%s (%v)", t.Kind, t.Name, err))
			continue
		}
		rc.event(corev1.EventTypeNormal, EventRestarted, "RolloutRestart", "restarted %s/%s for key %s", t.Kind, t.Name, key.Status.KeyID)
	}
	if len(pending) == 0 {
		return nil
	}
	note := "rollout restart targets not restarted: " + joinTargets(pending)
	if c := readyMessage(key); !strings.Contains(c, joinTargets(pending)) {
		rc.event(corev1.EventTypeWarning, EventRestartTargetMiss, "RolloutRestart", "%s", note)
	}
	// Retry with a delay that grows with how long the restart has been
	// failing since the rotation: from 5s up to 5m.
	since := rc.now.Sub(key.Status.LastRotationTime.Time)
	rc.soon(min(max(since/2, 5*time.Second), 5*time.Minute))
	return pending
}

func joinTargets(targets []string) string { return strings.Join(targets, ", ") }

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
