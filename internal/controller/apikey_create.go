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
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// Why a key is created. Each value but TriggerCreate replaces a key.
const (
	TriggerCreate          = "Create"
	TriggerRevoked         = "Revoked"
	TriggerSecretDeleted   = "SecretDeleted"
	TriggerSecretTampered  = "SecretTampered"
	TriggerRotateRequested = "RotateRequested"
	TriggerNameChanged     = "NameChanged"
	TriggerScheduled       = "Scheduled"
)

// attemptMarker is put in the remote name of every key the operator creates;
// it is how keys of an interrupted create are found again.
func attemptMarker(id string) string { return "[k8s-" + id + "]" }

// remoteBaseName is spec.name, defaulted to namespace/name.
func remoteBaseName(key *iamv1alpha1.ApiKey) string {
	if key.Spec.Name != "" {
		return key.Spec.Name
	}
	return key.Namespace + "/" + key.Name
}

// baseOfRemoteName strips the attempt marker from a remote name.
func baseOfRemoteName(name string) string {
	if i := strings.LastIndex(name, " [k8s-"); i >= 0 {
		return name[:i]
	}
	return name
}

func newAttemptID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// replacementTrigger says whether the ApiKey needs a new key, and why.
func (rc *reconcileContext) replacementTrigger(ctx context.Context, secret *corev1.Secret, listing *Listing) (string, error) {
	key := rc.key
	if key.Status.KeyID == "" {
		return TriggerCreate, nil
	}
	if listing != nil {
		if _, ok := listing.Lookup(key.Status.KeyID); !ok {
			return TriggerRevoked, nil
		}
	}
	holder := secret
	if key.Status.SecretName != desiredSecretName(key) {
		var err error
		if holder, err = rc.r.getSecret(ctx, key.Namespace, key.Status.SecretName); err != nil {
			return "", err
		}
	}
	if holder == nil {
		return TriggerSecretDeleted, nil
	}
	if !metav1.IsControlledBy(holder, key) || !secretHolds(key, holder, key.Status.SecretKey) {
		// A cached Secret can lag our own write: confirm before replacing.
		var fresh corev1.Secret
		err := rc.r.APIReader.Get(ctx, types.NamespacedName{Namespace: holder.Namespace, Name: holder.Name}, &fresh)
		switch {
		case apierrors.IsNotFound(err):
			return TriggerSecretDeleted, nil
		case err != nil:
			return "", fmt.Errorf("get Secret %s: %w", holder.Name, err)
		case !metav1.IsControlledBy(&fresh, key) || !secretHolds(key, &fresh, key.Status.SecretKey):
			return TriggerSecretTampered, nil
		}
	}
	if v := key.Annotations[iamv1alpha1.RotateAnnotation]; v != "" && v != key.Status.HandledRotateRequest {
		return TriggerRotateRequested, nil
	}
	if key.Status.KeyName != "" && baseOfRemoteName(key.Status.KeyName) != remoteBaseName(key) {
		return TriggerNameChanged, nil
	}
	if t := key.Status.NextRotationTime; t != nil && !rc.now.Before(t.Time) {
		return TriggerScheduled, nil
	}
	return "", nil
}

// replaceKey creates a key and stores it. The order of writes is what makes
// it crash-safe: the attempt is recorded (conflict-checked) before the POST,
// the Secret is written as soon as the answer arrives, and only then the
// status. A crash anywhere leaves either the attempt, whose keys recovery
// finds by their marker, or a Secret naming the key, which recovery adopts.
func (rc *reconcileContext) replaceKey(ctx context.Context, trigger string, secret *corev1.Secret) error {
	key := rc.key
	log := logf.FromContext(ctx)
	id := newAttemptID()
	attempt := &iamv1alpha1.CreateAttempt{
		ID:            id,
		Name:          remoteBaseName(key) + " " + attemptMarker(id),
		StartedAt:     metav1.NewTime(rc.now),
		Reason:        trigger,
		RotateRequest: key.Annotations[iamv1alpha1.RotateAnnotation],
	}
	key.Status.PendingCreate = attempt
	switch trigger {
	case TriggerCreate:
		setReady(key, false, iamv1alpha1.ReasonCreating, "creating the remote key")
	case TriggerRevoked, TriggerSecretDeleted, TriggerSecretTampered:
		setReady(key, false, iamv1alpha1.ReasonRotating, fmt.Sprintf("replacing key %s (%s)", key.Status.KeyID, trigger))
	default:
		setReady(key, true, iamv1alpha1.ReasonRotating, fmt.Sprintf("rotating key %s (%s)", key.Status.KeyID, trigger))
	}
	if err := rc.commitStatus(ctx); err != nil {
		return fmt.Errorf("record create attempt: %w", err)
	}

	svc := rc.inv.Service()
	created, err := svc.CreateKey(ctx, attempt.Name)
	if err != nil {
		switch mobilenext.Classify(err) {
		case mobilenext.ClassBadRequest, mobilenext.ClassUnauthorized, mobilenext.ClassForbidden:
			// A refusal creates nothing: there is nothing to recover.
			key.Status.PendingCreate = nil
		}
		return err
	}
	log.Info("created remote key", "keyId", created.ID, "name", created.Name, "trigger", trigger)
	rc.inv.Created(mobilenext.Key{ID: created.ID, Name: created.Name, CreatedAt: created.CreatedAt})

	if hook := rc.r.Options.BeforeSecretWrite; hook != nil {
		if err := hook(ctx, key); err != nil {
			return err
		}
	}
	name, dataKey := desiredSecretName(key), desiredSecretKey(key)
	if err := rc.r.writeSecret(ctx, key, name, dataKey, secret, created.ID, "", created.Secret); err != nil {
		// The value lives only in this process now; a key nobody can read
		// is a leak, so it goes. If even that fails, the recorded attempt
		// lets recovery find it.
		if derr := svc.DeleteKey(ctx, created.ID); derr == nil || mobilenext.IsNotFound(derr) {
			rc.inv.Deleted(created.ID)
			key.Status.PendingCreate = nil
		}
		return err
	}
	return rc.completeCreate(ctx, created.ID, created.Name, "", created.CreatedAt, attempt)
}

// completeCreate records a key that is safely in its Secret as current.
func (rc *reconcileContext) completeCreate(ctx context.Context, id, name, suffix string, createdAt time.Time, attempt *iamv1alpha1.CreateAttempt) error {
	key := rc.key
	st := &key.Status
	old, oldSuffix, oldSecret := st.KeyID, st.APIKeySuffix, st.SecretName
	trigger := attempt.Reason
	if old != "" && old != id && trigger != TriggerRevoked {
		grace := gracePeriod(key)
		st.PreviousKeys = append(st.PreviousKeys, iamv1alpha1.PreviousKey{
			KeyID:             old,
			APIKeySuffix:      oldSuffix,
			ReplacedAt:        metav1.NewTime(rc.now),
			DeleteAfter:       metav1.NewTime(rc.now.Add(grace)),
			LastUsedAt:        st.LastUsedAt,
			LastUsedChangedAt: &metav1.Time{Time: rc.now},
		})
	}
	st.KeyID, st.KeyName, st.APIKeySuffix = id, name, suffix
	st.CreatedAt = &metav1.Time{Time: createdAt}
	st.LastUsedAt = nil
	st.SecretName, st.SecretKey = desiredSecretName(key), desiredSecretKey(key)
	st.Connection = rc.conn.String()
	st.PendingCreate = nil
	if old != "" {
		st.LastRotationTime = &metav1.Time{Time: rc.now}
	}
	if trigger == TriggerCreate || trigger == TriggerRotateRequested {
		st.HandledRotateRequest = attempt.RotateRequest
	}
	st.NextRotationTime = nextRotation(key)
	if err := rc.commitStatus(ctx); err != nil {
		return fmt.Errorf("record key %s: %w", id, err)
	}
	if oldSecret != "" && oldSecret != st.SecretName {
		if err := rc.r.deleteManagedSecret(ctx, key, oldSecret); err != nil {
			return err
		}
	}
	switch trigger {
	case TriggerCreate:
		rc.event(corev1.EventTypeNormal, EventCreated, "CreateKey", "created key %s and stored it in Secret %s", id, st.SecretName)
	case TriggerRevoked:
		rc.event(corev1.EventTypeNormal, EventDriftRepaired, "CreateKey", "key %s is no longer listed by the API (revoked?); created key %s and stored it in Secret %s", old, id, st.SecretName)
	case TriggerSecretDeleted, TriggerSecretTampered:
		rc.event(corev1.EventTypeNormal, EventDriftRepaired, "RotateKey", "Secret %s no longer held key %s (%s); created key %s, the old one is deleted after its grace period", st.SecretName, old, trigger, id)
	default:
		rc.event(corev1.EventTypeNormal, EventRotated, "RotateKey", "rotated key %s to %s (%s); the old one is deleted after its grace period", old, id, trigger)
	}
	return nil
}

// recoverCreate finishes a create attempt that a crash or a lost response
// interrupted: a key the Secret already holds is adopted, every other key
// carrying the attempt's marker is deleted (its secret was never stored).
func (rc *reconcileContext) recoverCreate(ctx context.Context) error {
	key := rc.key
	attempt := key.Status.PendingCreate
	log := logf.FromContext(ctx)
	listing, err := rc.inv.Fresh(ctx)
	if err != nil {
		return err
	}
	marker := attemptMarker(attempt.ID)

	var secret corev1.Secret
	adopt := ""
	err = rc.r.APIReader.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: desiredSecretName(key)}, &secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get Secret %s: %w", desiredSecretName(key), err)
	}
	if err == nil && metav1.IsControlledBy(&secret, key) && len(secret.Data[desiredSecretKey(key)]) > 0 {
		if k, ok := listing.Lookup(secret.Annotations[iamv1alpha1.KeyIDAnnotation]); ok && strings.Contains(k.Name, marker) {
			adopt = k.ID
		}
	}
	svc := rc.inv.Service()
	found := adopt != ""
	for _, k := range listing.Keys() {
		if k.ID == adopt || !strings.Contains(k.Name, marker) {
			continue
		}
		found = true
		if err := svc.DeleteKey(ctx, k.ID); err != nil && !mobilenext.IsNotFound(err) {
			return err
		}
		rc.inv.Deleted(k.ID)
		log.Info("deleted a key of an interrupted create", "keyId", k.ID, "attempt", attempt.ID)
		rc.event(corev1.EventTypeNormal, EventUnclaimedDeleted, "RecoverCreate", "deleted key %s: it was created by an interrupted attempt and its secret was never stored", k.ID)
	}
	if adopt != "" {
		k, _ := listing.Lookup(adopt)
		rc.event(corev1.EventTypeNormal, EventAdopted, "RecoverCreate", "key %s was stored in Secret %s before an interruption; recorded it as current", k.ID, secret.Name)
		return rc.completeCreate(ctx, k.ID, k.Name, k.Suffix, k.CreatedAt, attempt)
	}
	if !found {
		// The POST may not have reached the server yet, or may still be
		// running there: watch for a late key with this marker.
		rc.watchAttempt(attempt.ID)
	}
	key.Status.PendingCreate = nil
	return rc.commitStatus(ctx)
}

// unresolvedAttemptWatch is how long a create attempt whose key was not
// found is watched for: far longer than any request lives on a server.
const unresolvedAttemptWatch = time.Hour

// watchAttempt records an attempt whose key may still appear.
func (rc *reconcileContext) watchAttempt(id string) {
	st := &rc.key.Status
	st.UnresolvedAttempts = append(st.UnresolvedAttempts, iamv1alpha1.UnresolvedAttempt{
		ID: id, WatchUntil: metav1.NewTime(rc.now.Add(unresolvedAttemptWatch)),
	})
	if n := len(st.UnresolvedAttempts); n > 32 {
		st.UnresolvedAttempts = st.UnresolvedAttempts[n-32:]
	}
}

// deleteLateKeys deletes keys that unresolved attempts created after their
// recovery, and forgets attempts past their watch.
func (rc *reconcileContext) deleteLateKeys(ctx context.Context, listing Listing) error {
	st := &rc.key.Status
	if len(st.UnresolvedAttempts) == 0 {
		return nil
	}
	var kept []iamv1alpha1.UnresolvedAttempt
	for _, a := range st.UnresolvedAttempts {
		marker := attemptMarker(a.ID)
		resolved := false
		for _, k := range listing.Keys() {
			if !strings.Contains(k.Name, marker) {
				continue
			}
			if err := rc.inv.Service().DeleteKey(ctx, k.ID); err != nil && !mobilenext.IsNotFound(err) {
				return err
			}
			rc.inv.Deleted(k.ID)
			resolved = true
			rc.event(corev1.EventTypeNormal, EventUnclaimedDeleted, "RecoverCreate", "deleted key %s: an interrupted attempt created it after it was recovered, and its secret was never stored", k.ID)
		}
		if !resolved && rc.now.Before(a.WatchUntil.Time) {
			kept = append(kept, a)
		}
	}
	st.UnresolvedAttempts = kept
	return nil
}
