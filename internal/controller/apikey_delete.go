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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// finalize deletes the remote keys (unless orphaned) and the Secret, then
// releases the ApiKey.
func (rc *reconcileContext) finalize(ctx context.Context) (reconcile.Result, error) {
	key := rc.key
	if !controllerutil.ContainsFinalizer(key, iamv1alpha1.Finalizer) {
		return reconcile.Result{}, nil
	}
	if key.Spec.DeletionPolicy == iamv1alpha1.DeletionPolicyOrphan {
		ids := remoteKeyIDs(key)
		if err := rc.release(ctx); err != nil {
			return reconcile.Result{}, err
		}
		if len(ids) > 0 {
			rc.event(corev1.EventTypeNormal, EventOrphaned, "Orphan", "deletionPolicy is Orphan: left key(s) %s in the organization", strings.Join(ids, ", "))
		}
		return reconcile.Result{}, nil
	}

	if key.Annotations[iamv1alpha1.PausedAnnotation] == "true" {
		setReady(key, false, iamv1alpha1.ReasonPaused, "paused: the remote keys are deleted once the "+iamv1alpha1.PausedAnnotation+" annotation is removed (or set spec.deletionPolicy: Orphan to leave them)")
		return reconcile.Result{}, nil
	}
	if res, ok := rc.resolveConnection(ctx); !ok {
		why := readyMessage(key)
		if readyReason(key) != iamv1alpha1.ReasonConnectionNotReady {
			why = rc.conn.String() + " is not ready"
		}
		rc.fail(iamv1alpha1.ReasonDeleteFailed, fmt.Sprintf("cannot delete the remote keys: %s; fix the connection, or set spec.deletionPolicy: Orphan to leave the keys and release the ApiKey", why))
		return res, nil
	}
	setReady(key, false, iamv1alpha1.ReasonDeleting, "deleting the remote keys")
	if key.Status.PendingCreate != nil {
		if err := rc.recoverCreate(ctx); err != nil {
			return rc.deleteError("recover an interrupted create", err)
		}
	}
	if len(key.Status.UnresolvedAttempts) > 0 {
		listing, err := rc.inv.Fresh(ctx)
		if err != nil {
			return rc.deleteError("list keys", err)
		}
		if err := rc.deleteLateKeys(ctx, listing); err != nil {
			return rc.deleteError("delete a key of an interrupted create", err)
		}
	}
	svc := rc.inv.Service()
	for _, id := range remoteKeyIDs(key) {
		if err := svc.DeleteKey(ctx, id); err != nil && !mobilenext.IsNotFound(err) {
			return rc.deleteError("delete key "+id, err)
		}
		rc.inv.Deleted(id)
		forgetKey(key, id)
		rc.event(corev1.EventTypeNormal, EventDeleted, "DeleteKey", "deleted key %s", id)
	}
	return reconcile.Result{}, rc.release(ctx)
}

// release deletes the managed Secret and removes the finalizer.
func (rc *reconcileContext) release(ctx context.Context) error {
	key := rc.key
	for _, name := range []string{key.Status.SecretName, desiredSecretName(key)} {
		if err := rc.r.deleteManagedSecret(ctx, key, name); err != nil {
			return err
		}
	}
	// The status is gone with the object; nothing is left to write.
	rc.baseline = key.Status.DeepCopy()
	controllerutil.RemoveFinalizer(key, iamv1alpha1.Finalizer)
	if err := rc.r.Update(ctx, key); err != nil {
		return client.IgnoreNotFound(err)
	}
	rc.baseline = key.Status.DeepCopy()
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

// deleteError reports a failed deletion. A refusal is retried with a growing
// delay (the longer it has failed, the longer the wait), never in a hot loop.
func (rc *reconcileContext) deleteError(what string, err error) (reconcile.Result, error) {
	key := rc.key
	rc.inv.NoteError(err)
	msg := fmt.Sprintf("%s: %v", what, err)
	setSynced(key, false, iamv1alpha1.ReasonReconcileError, msg)
	switch mobilenext.Classify(err) {
	case mobilenext.ClassForbidden:
		rc.fail(iamv1alpha1.ReasonDeleteFailed, fmt.Sprintf("%s: the API refused (403); the user behind %s needs the read-write or admin role, or set spec.deletionPolicy: Orphan to leave the keys and release the ApiKey", what, rc.conn))
		return reconcile.Result{RequeueAfter: rc.deleteBackoff()}, nil
	case mobilenext.ClassThrottled:
		return reconcile.Result{RequeueAfter: max(rc.inv.ThrottledFor(), time.Second)}, nil
	case mobilenext.ClassUnauthorized:
		rc.r.Connections.ReportUnauthorized(rc.conn, msg)
		rc.fail(iamv1alpha1.ReasonDeleteFailed, fmt.Sprintf("%s: the API refused the session token of %s; renew it, or set spec.deletionPolicy: Orphan", what, rc.conn))
		return reconcile.Result{RequeueAfter: rc.deleteBackoff()}, nil
	default:
		rc.fail(iamv1alpha1.ReasonDeleteFailed, msg)
		return reconcile.Result{}, fmt.Errorf("%s", msg)
	}
}

// deleteBackoff grows with how long deletion has been failing: from 5s up to 10m.
func (rc *reconcileContext) deleteBackoff() time.Duration {
	wait := 5 * time.Second
	if c := meta.FindStatusCondition(rc.key.Status.Conditions, iamv1alpha1.ConditionReady); c != nil && c.Reason == iamv1alpha1.ReasonDeleteFailed {
		if failing := rc.now.Sub(c.LastTransitionTime.Time); failing > wait {
			wait = failing
		}
	}
	return min(wait, 10*time.Minute)
}
