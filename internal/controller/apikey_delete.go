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
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// finalize deletes the remote keys where they live (unless orphaned), waits
// for create attempts that may still produce a key, deletes the Secret, then
// releases the ApiKey.
func (rc *reconcileContext) finalize(ctx context.Context) (reconcile.Result, error) {
	key := rc.key
	if !controllerutil.ContainsFinalizer(key, iamv1alpha1.Finalizer) {
		return reconcile.Result{}, nil
	}
	orphan := key.Spec.DeletionPolicy == iamv1alpha1.DeletionPolicyOrphan
	if !orphan && key.Annotations[iamv1alpha1.PausedAnnotation] == "true" {
		rc.setReady(false, iamv1alpha1.ReasonPaused, "paused: the remote keys are deleted once the "+iamv1alpha1.PausedAnnotation+" annotation is removed (or set spec.deletionPolicy: Orphan to leave them)")
		return reconcile.Result{}, nil
	}
	rc.resolveForDelete(ctx)
	rc.setReady(false, iamv1alpha1.ReasonDeleting, "deleting the remote keys")

	if err := rc.deleteKeys(ctx, orphan); err != nil {
		if orphan && !rc.attemptsMayStillLand() {
			// Orphan keeps the keys whose secret was stored; the ones an
			// attempt may have made are only waited for within the window.
			return reconcile.Result{}, rc.releaseOrphaned(ctx)
		}
		return rc.finalizeError(ctx, err)
	}
	if until, ok := rc.attemptsWindow(); ok {
		ids := make([]string, 0, len(key.Status.UnresolvedAttempts))
		for _, a := range key.Status.UnresolvedAttempts {
			ids = append(ids, a.ID)
		}
		rc.setReady(false, iamv1alpha1.ReasonDeleting, fmt.Sprintf("waiting until %s for create attempt(s) %s, which the API may still commit: any key they made is deleted as soon as it is listed", until.UTC().Format(time.RFC3339), strings.Join(ids, ", ")))
		return reconcile.Result{RequeueAfter: max(min(until.Sub(rc.now), rc.confirmDelay()), time.Second)}, nil
	}
	if orphan {
		return reconcile.Result{}, rc.releaseOrphaned(ctx)
	}
	return reconcile.Result{}, rc.release(ctx)
}

// resolveForDelete uses the spec's connection when it may be used and is
// Ready; keys that live elsewhere are reached through other connections.
func (rc *reconcileContext) resolveForDelete(ctx context.Context) {
	rc.conn = connectionKeyFor(rc.key)
	if rc.admits(ctx, rc.conn) != "" {
		return
	}
	if s, ok := rc.r.Connections.Get(rc.conn); ok && s.Ready && s.Inventory != nil {
		rc.inv, rc.loc = s.Inventory, s.Location
	}
}

// deleteKeys does the remote work of a deletion: recover an interrupted
// create, delete the current and previous keys (unless orphaned), and
// delete keys that unresolved attempts made. Keys whose secret was never
// stored are deleted even when orphaning: nobody can use them.
func (rc *reconcileContext) deleteKeys(ctx context.Context, orphan bool) error {
	if rc.key.Status.PendingCreate != nil {
		if err := rc.recoverCreate(ctx); err != nil {
			return fmt.Errorf("recover an interrupted create: %w", err)
		}
	}
	if !orphan {
		if err := rc.deleteHeldKeys(ctx); err != nil {
			return err
		}
	}
	return rc.resolveAttempts(ctx, nil, rc.confirmDelay())
}

// deleteHeldKeys deletes the current and previous keys where each lives.
func (rc *reconcileContext) deleteHeldKeys(ctx context.Context) error {
	key := rc.key
	type held struct {
		id  string
		loc *iamv1alpha1.KeyLocation
	}
	var keys []held
	if key.Status.KeyID != "" {
		keys = append(keys, held{key.Status.KeyID, key.Status.Location})
	}
	for _, p := range key.Status.PreviousKeys {
		keys = append(keys, held{p.KeyID, p.Location})
	}
	var errs []error
	for _, k := range keys {
		inv, err := rc.reach(ctx, k.loc)
		if err == nil {
			err = inv.Delete(ctx, k.id)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete key %s: %w", k.id, err))
			continue
		}
		forgetKey(key, k.id)
		rc.event(corev1.EventTypeNormal, EventDeleted, "DeleteKey", "deleted key %s", k.id)
	}
	return errors.Join(errs...)
}

// attemptsWindow is when the last unresolved create attempt can be
// forgotten (its window passed and a confirming listing taken), and whether
// any is still unresolved.
func (rc *reconcileContext) attemptsWindow() (time.Time, bool) {
	var until time.Time
	for _, a := range rc.key.Status.UnresolvedAttempts {
		end := a.WatchUntil.Time
		if a.MissingSince != nil {
			end = a.MissingSince.Add(rc.confirmDelay())
		}
		if end.After(until) {
			until = end
		}
	}
	return until, len(rc.key.Status.UnresolvedAttempts) > 0
}

// attemptsMayStillLand reports whether a create may still produce a key: an
// attempt in flight, or an unresolved one within its window.
func (rc *reconcileContext) attemptsMayStillLand() bool {
	if a := rc.key.Status.PendingCreate; a != nil && rc.now.Before(a.StartedAt.Add(rc.r.createWindow())) {
		return true
	}
	until, _ := rc.attemptsWindow()
	return rc.now.Before(until)
}

// finalizeError reports why a deletion cannot go on, and when it is tried
// again: never in a hot loop, and with the connection's shared backoff.
func (rc *reconcileContext) finalizeError(ctx context.Context, err error) (reconcile.Result, error) {
	u, ok := errors.AsType[*unreachableError](err)
	if !ok {
		return rc.remoteError(ctx, opDelete, "delete the remote keys", err)
	}
	orphanHint := "or set spec.deletionPolicy: Orphan to leave the keys and release the ApiKey"
	s, known := rc.r.Connections.Get(rc.conn)
	switch {
	case known && !s.Ready && s.Location == u.loc:
		// The keys live where the spec's connection points: that
		// connection is just not Ready.
		rc.fail(iamv1alpha1.ReasonDeleteFailed, fmt.Sprintf("cannot delete the remote keys: %s is not ready (%s): %s; fix the connection, %s", rc.conn, s.Reason, s.Message, orphanHint))
	case rc.inv == nil && rc.admits(ctx, rc.conn) != "":
		rc.fail(iamv1alpha1.ReasonDeleteFailed, fmt.Sprintf("cannot delete the remote keys: %s, and %v; restore the connection, %s", rc.admits(ctx, rc.conn), u, orphanHint))
	default:
		rc.fail(iamv1alpha1.ReasonConnectionChanged, fmt.Sprintf("cannot delete the remote keys: %v (the ApiKey's connection no longer points there); create a Connection in namespace %s with credentials for it, or point a connection back at it, %s", u, rc.key.Namespace, orphanHint))
	}
	rc.notSynced(iamv1alpha1.ReasonConnectionChanged, err.Error())
	return reconcile.Result{RequeueAfter: rc.deleteBackoff()}, nil
}

// release deletes the managed Secret and removes the finalizer.
func (rc *reconcileContext) release(ctx context.Context) error {
	key := rc.key
	// Usually one name: deleting it twice would cost a DELETE the API
	// server answers 404, the cache not having seen the first one yet.
	for _, name := range slices.Compact([]string{key.Status.SecretName, desiredSecretName(key)}) {
		if err := rc.r.deleteManagedSecret(ctx, key, name); err != nil {
			return err
		}
	}
	// The status is gone with the object; nothing is left to write (the
	// generation the deletion bumped included).
	key.Status.ObservedGeneration = key.Generation
	rc.baseline = key.Status.DeepCopy()
	before := key.DeepCopy()
	controllerutil.RemoveFinalizer(key, iamv1alpha1.Finalizer)
	if err := rc.r.Patch(ctx, key, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	key.Status.ObservedGeneration = key.Generation
	rc.baseline = key.Status.DeepCopy()
	return nil
}

// releaseOrphaned releases an ApiKey whose keys are left in place. Keys of
// create attempts that could not be deleted (a read-only role, an
// unreachable API) are named by their marker, so a person can find them.
func (rc *reconcileContext) releaseOrphaned(ctx context.Context) error {
	ids := remoteKeyIDs(rc.key)
	var markers []string
	if a := rc.key.Status.PendingCreate; a != nil {
		markers = append(markers, attemptMarker(a.ID))
	}
	for _, a := range rc.key.Status.UnresolvedAttempts {
		markers = append(markers, attemptMarker(a.ID))
	}
	if err := rc.release(ctx); err != nil {
		return err
	}
	if len(ids) > 0 {
		rc.event(corev1.EventTypeNormal, EventOrphaned, "Orphan", "deletionPolicy is Orphan: left key(s) %s in the organization", strings.Join(ids, ", "))
	}
	if len(markers) > 0 {
		rc.event(corev1.EventTypeWarning, EventOrphaned, "Orphan", "keys of interrupted creates could not be deleted and may remain; their secret was never stored: delete the keys named with %s in the web UI, or with 'kubectl mobilenext orphans --delete'", strings.Join(markers, ", "))
	}
	return nil
}

// remoteKeyIDs are the current and previous keys of an ApiKey.
func remoteKeyIDs(key *iamv1alpha1.ApiKey) []string {
	var ids []string
	if key.Status.KeyID != "" {
		ids = append(ids, key.Status.KeyID)
	}
	for _, p := range key.Status.PreviousKeys {
		ids = append(ids, p.KeyID)
	}
	return ids
}

// forgetKey drops a deleted key from status.
func forgetKey(key *iamv1alpha1.ApiKey, id string) {
	if key.Status.KeyID == id {
		key.Status.KeyID = ""
		key.Status.Location = nil
		return
	}
	kept := key.Status.PreviousKeys[:0]
	for _, p := range key.Status.PreviousKeys {
		if p.KeyID != id {
			kept = append(kept, p)
		}
	}
	key.Status.PreviousKeys = kept
}

// deleteBackoff grows with how long deletion has been failing: from 5s up to 10m.
func (rc *reconcileContext) deleteBackoff() time.Duration {
	wait := 5 * time.Second
	if c := meta.FindStatusCondition(rc.key.Status.Conditions, iamv1alpha1.ConditionReady); c != nil && (c.Reason == iamv1alpha1.ReasonDeleteFailed || c.Reason == iamv1alpha1.ReasonConnectionChanged) {
		if failing := rc.now.Sub(c.LastTransitionTime.Time); failing > wait {
			wait = failing
		}
	}
	return min(wait, 10*time.Minute)
}
