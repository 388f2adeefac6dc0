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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// Why a key is created. Each value but TriggerCreate replaces a key.
const (
	TriggerCreate            = "Create"
	TriggerRevoked           = "Revoked"
	TriggerSecretDeleted     = "SecretDeleted"
	TriggerSecretTampered    = "SecretTampered"
	TriggerRotateRequested   = "RotateRequested"
	TriggerNameChanged       = "NameChanged"
	TriggerScheduled         = "Scheduled"
	TriggerConnectionChanged = "ConnectionChanged"
)

// isRepair reports whether a trigger repairs a Secret that no longer serves
// a working key, as opposed to a rotation of a key that still works.
func isRepair(trigger string) bool {
	switch trigger {
	case TriggerRevoked, TriggerSecretDeleted, TriggerSecretTampered:
		return true
	}
	return false
}

// attemptMarker is put in the remote name of every key the operator creates;
// it is how keys of an interrupted create are found again.
func attemptMarker(id string) string { return markerPrefix[1:] + id + "]" }

// markerPrefix starts the attempt marker in a remote name.
const markerPrefix = " [k8s-"

// remoteBaseName is spec.name, defaulted to namespace/name.
func remoteBaseName(key *iamv1alpha1.ApiKey) string {
	if key.Spec.Name != "" {
		return key.Spec.Name
	}
	return key.Namespace + "/" + key.Name
}

// baseOfRemoteName strips the attempt marker from a remote name.
func baseOfRemoteName(name string) string {
	if i := strings.LastIndex(name, markerPrefix); i >= 0 {
		return name[:i]
	}
	return name
}

// replacementTrigger says whether the ApiKey needs a new key, and why.
func (rc *reconcileContext) replacementTrigger(ctx context.Context, secret *corev1.Secret) (string, error) {
	key := rc.key
	st := &key.Status
	if st.KeyID == "" {
		return TriggerCreate, nil
	}
	if st.Location != nil && !rc.livesHere(st.Location) {
		return TriggerConnectionChanged, nil
	}
	if st.KeyMissingSince != nil && rc.revocationConfirmed {
		return TriggerRevoked, nil
	}
	holder := secret
	if st.SecretName != desiredSecretName(key) {
		var err error
		if holder, err = rc.r.getSecret(ctx, key.Namespace, st.SecretName); err != nil {
			return "", err
		}
	}
	if holder == nil {
		return TriggerSecretDeleted, nil
	}
	if !metav1.IsControlledBy(holder, key) || !secretHolds(key, holder, st.SecretKey) {
		// A cached Secret can lag our own write: confirm before replacing.
		var fresh corev1.Secret
		err := rc.r.APIReader.Get(ctx, types.NamespacedName{Namespace: holder.Namespace, Name: holder.Name}, &fresh)
		switch {
		case apierrors.IsNotFound(err):
			return TriggerSecretDeleted, nil
		case err != nil:
			return "", fmt.Errorf("get Secret %s: %w", holder.Name, err)
		case !metav1.IsControlledBy(&fresh, key) || !secretHolds(key, &fresh, st.SecretKey):
			return TriggerSecretTampered, nil
		}
	}
	if v := key.Annotations[iamv1alpha1.RotateAnnotation]; v != "" && v != st.HandledRotateRequest {
		return TriggerRotateRequested, nil
	}
	if st.KeyName != "" && baseOfRemoteName(st.KeyName) != remoteBaseName(key) {
		return TriggerNameChanged, nil
	}
	if t := st.NextRotationTime; t != nil && !rc.now.Before(t.Time) {
		return TriggerScheduled, nil
	}
	return "", nil
}

// maxPreviousKeys bounds status.previousKeys (the CRD says the same).
const maxPreviousKeys = 16

// roomForPreviousKey makes sure the key about to be replaced fits in
// previousKeys. A rotation waits while the list is full; a repair cannot
// wait (the Secret serves no working key), so it retires the oldest
// previous key early, with a warning.
func (rc *reconcileContext) roomForPreviousKey(ctx context.Context, trigger string) bool {
	st := &rc.key.Status
	if trigger == TriggerCreate || len(st.PreviousKeys) < maxPreviousKeys {
		return true
	}
	if !isRepair(trigger) {
		rc.notSynced(iamv1alpha1.ReasonRotationHeld, fmt.Sprintf("%s rotation waits: %d previous keys are still in their grace period, the most status.previousKeys holds; it goes ahead when one is retired", trigger, len(st.PreviousKeys)))
		return false
	}
	oldest := 0
	for i, p := range st.PreviousKeys {
		if p.ReplacedAt.Before(&st.PreviousKeys[oldest].ReplacedAt) {
			oldest = i
		}
	}
	p := st.PreviousKeys[oldest]
	inv, err := rc.reach(ctx, p.Location)
	if err == nil {
		err = inv.Delete(ctx, p.KeyID)
	}
	if err != nil {
		rc.notSynced(iamv1alpha1.ReasonRotationHeld, fmt.Sprintf("%s repair waits: status.previousKeys is full and the oldest, key %s, could not be retired: %v", trigger, p.KeyID, err))
		return false
	}
	st.PreviousKeys = append(st.PreviousKeys[:oldest:oldest], st.PreviousKeys[oldest+1:]...)
	rc.event(corev1.EventTypeWarning, EventRetired, "DeleteKey", "deleted previous key %s before its grace period ended: status.previousKeys was full and the Secret needed a new key (%s)", p.KeyID, trigger)
	return true
}

// replaceKey creates a key and stores it. The order of writes is what makes
// it crash-safe: the attempt is recorded (conflict-checked) before the POST,
// the Secret is written as soon as the answer arrives, and only then the
// status. A crash anywhere leaves either the attempt, whose keys recovery
// finds by their marker, or a Secret naming the key, which recovery adopts.
func (rc *reconcileContext) replaceKey(ctx context.Context, trigger string, secret *corev1.Secret) error {
	key := rc.key
	log := logf.FromContext(ctx)
	id := newAttemptID(rc.r.Options.Entropy)
	attempt := &iamv1alpha1.CreateAttempt{
		ID:            id,
		Name:          remoteBaseName(key) + " " + attemptMarker(id),
		StartedAt:     metav1.NewTime(rc.now),
		Reason:        trigger,
		RotateRequest: key.Annotations[iamv1alpha1.RotateAnnotation],
		Location:      rc.here(),
		SecretName:    desiredSecretName(key),
		SecretKey:     desiredSecretKey(key),
	}
	key.Status.PendingCreate = attempt
	switch {
	case trigger == TriggerCreate:
		rc.setReady(false, iamv1alpha1.ReasonCreating, "creating the remote key")
	case isRepair(trigger):
		rc.setReady(false, iamv1alpha1.ReasonRotating, fmt.Sprintf("replacing key %s (%s)", key.Status.KeyID, trigger))
	default:
		rc.setReady(true, iamv1alpha1.ReasonRotating, fmt.Sprintf("rotating key %s (%s)", key.Status.KeyID, trigger))
	}
	if err := rc.commitStatus(ctx); err != nil {
		return fmt.Errorf("record create attempt: %w", err)
	}

	created, err := rc.inv.Create(ctx, attempt.Name)
	if err != nil {
		if _, held := heldBack(err); held {
			key.Status.PendingCreate = nil
			return err
		}
		switch mobilenext.Classify(err) {
		case mobilenext.ClassBadRequest, mobilenext.ClassUnauthorized, mobilenext.ClassForbidden:
			// A refusal creates nothing: there is nothing to recover.
			key.Status.PendingCreate = nil
		}
		return err
	}
	log.Info("created remote key", "keyId", created.ID, "name", created.Name, "trigger", trigger)

	if err := rc.r.writeSecret(ctx, key, attempt.SecretName, attempt.SecretKey, secret, created.ID, "", created.Secret); err != nil {
		// The outcome of a failed write is not always clear (a timeout, a
		// reset connection): read the Secret back before deciding.
		written, rerr := rc.r.secretHoldsKey(ctx, key, attempt.SecretName, attempt.SecretKey, created.ID)
		switch {
		case rerr != nil:
			// Still unclear: the recorded attempt lets recovery look
			// again, in this very Secret, once it can be read.
			return fmt.Errorf("%w; reading it back: %v", err, rerr)
		case !written:
			// The value lives only in this process now; a key nobody can
			// read is a leak, so it goes. If even that fails, the recorded
			// attempt lets recovery find it.
			if derr := rc.inv.Delete(ctx, created.ID); derr == nil {
				key.Status.PendingCreate = nil
			}
			return err
		}
		log.Info("the Secret write reported an error but the Secret holds the new key", "keyId", created.ID, "error", err.Error())
	}
	return rc.completeCreate(ctx, created.ID, created.Name, "", created.CreatedAt, attempt)
}

// completeCreate records a key that is safely in its Secret as current. The
// key it replaces, if any, goes to previousKeys with where it lives, whatever
// replaced it: a revoked key too (its delete then finds it gone).
func (rc *reconcileContext) completeCreate(ctx context.Context, id, name, suffix string, createdAt time.Time, attempt *iamv1alpha1.CreateAttempt) error {
	key := rc.key
	st := &key.Status
	old, oldSuffix, oldSecret, oldLoc := st.KeyID, st.APIKeySuffix, st.SecretName, st.Location
	if oldLoc == nil && st.Connection != "" && st.Connection != rc.conn.String() {
		// Recorded before locations were: it lives where its connection
		// pointed, which reach() resolves for a nil location.
		oldLoc = nil
	} else if oldLoc == nil {
		oldLoc = rc.here()
	}
	trigger := attempt.Reason
	if old != "" && old != id {
		grace := gracePeriod(key)
		st.PreviousKeys = append(st.PreviousKeys, iamv1alpha1.PreviousKey{
			KeyID:             old,
			APIKeySuffix:      oldSuffix,
			ReplacedAt:        metav1.NewTime(rc.now),
			DeleteAfter:       metav1.NewTime(rc.now.Add(grace)),
			LastUsedAt:        st.LastUsedAt,
			LastUsedChangedAt: &metav1.Time{Time: rc.now},
			Location:          oldLoc,
		})
	}
	st.KeyID, st.KeyName, st.APIKeySuffix = id, name, suffix
	st.CreatedAt = &metav1.Time{Time: createdAt}
	st.KeyRecordedAt = &metav1.Time{Time: rc.now}
	st.KeyMissingSince = nil
	st.LastUsedAt = nil
	st.SecretName, st.SecretKey = attempt.SecretName, attempt.SecretKey
	if st.SecretName == "" {
		st.SecretName, st.SecretKey = desiredSecretName(key), desiredSecretKey(key)
	}
	st.Connection = rc.conn.String()
	st.Location = attempt.Location
	if st.Location == nil {
		st.Location = rc.here()
	}
	st.PendingCreate = nil
	if old != "" {
		st.LastRotationTime = &metav1.Time{Time: rc.now}
	}
	if trigger == TriggerCreate || trigger == TriggerRotateRequested {
		st.HandledRotateRequest = attempt.RotateRequest
	}
	st.NextRotationTime = nextRotation(key)
	// The event goes first: once the status says Ready, nothing may be left
	// to say about how the key came.
	switch trigger {
	case TriggerCreate:
		rc.event(corev1.EventTypeNormal, EventCreated, "CreateKey", "created key %s and stored it in Secret %s", id, st.SecretName)
	case TriggerRevoked:
		rc.event(corev1.EventTypeNormal, EventDriftRepaired, "CreateKey", "key %s is no longer listed by the API (revoked?); created key %s and stored it in Secret %s", old, id, st.SecretName)
	case TriggerSecretDeleted, TriggerSecretTampered:
		rc.event(corev1.EventTypeNormal, EventDriftRepaired, "RotateKey", "Secret %s no longer held key %s (%s); created key %s, the old one is deleted after its grace period", st.SecretName, old, trigger, id)
	case TriggerConnectionChanged:
		rc.event(corev1.EventTypeNormal, EventRotated, "RotateKey", "the connection now points at %s: created key %s there; key %s is retired where it lives after its grace period", st.Location, id, old)
	default:
		rc.event(corev1.EventTypeNormal, EventRotated, "RotateKey", "rotated key %s to %s (%s); the old one is deleted after its grace period", old, id, trigger)
	}
	// The Secret holds the key already: the write that records it says so
	// too, rather than a second write at the end of the reconcile, unless
	// the key is still to move to the Secret the spec names now.
	if st.SecretName == desiredSecretName(key) && st.SecretKey == desiredSecretKey(key) {
		rc.markReady()
	}
	if err := rc.commitStatus(ctx); err != nil {
		return fmt.Errorf("record key %s: %w", id, err)
	}
	if oldSecret != "" && oldSecret != st.SecretName {
		if err := rc.r.deleteManagedSecret(ctx, key, oldSecret); err != nil {
			return err
		}
	}
	return nil
}

// recoverCreate finishes a create attempt that a crash, a lost response or
// an unclear Secret write interrupted: a key the attempt's Secret already
// holds is adopted, every other key carrying the attempt's marker is deleted
// (its secret was never stored), and an attempt whose key is not found is
// watched until no server can still commit it.
func (rc *reconcileContext) recoverCreate(ctx context.Context) error {
	key := rc.key
	attempt := key.Status.PendingCreate
	log := logf.FromContext(ctx)
	inv, err := rc.reach(ctx, attempt.Location)
	if err != nil {
		return err
	}

	// The Secret and data key the attempt wrote to, not today's spec: the
	// spec may have changed since.
	secretName, dataKey := attempt.SecretName, attempt.SecretKey
	if secretName == "" {
		secretName, dataKey = desiredSecretName(key), desiredSecretKey(key)
	}
	var secret corev1.Secret
	err = rc.r.APIReader.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: secretName}, &secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get Secret %s: %w", secretName, err)
	}
	stored := ""
	if err == nil && metav1.IsControlledBy(&secret, key) && len(secret.Data[dataKey]) > 0 {
		if id := secret.Annotations[iamv1alpha1.KeyIDAnnotation]; id != "" && !holdsKey(key, id) {
			// Only this attempt writes an id the status does not know.
			stored = id
		}
	}
	listing, err := inv.Since(ctx, attempt.StartedAt.Time)
	if err != nil {
		return err
	}
	marker := attemptMarker(attempt.ID)
	found := stored != ""
	for _, k := range listing.Keys() {
		if k.ID == stored || !strings.Contains(k.Name, marker) {
			continue
		}
		found = true
		if err := inv.Delete(ctx, k.ID); err != nil {
			return err
		}
		log.Info("deleted a key of an interrupted create", "keyId", k.ID, "attempt", attempt.ID)
		rc.event(corev1.EventTypeNormal, EventUnclaimedDeleted, "RecoverCreate", "deleted key %s: it was created by an interrupted attempt and its secret was never stored", k.ID)
	}
	if stored != "" {
		name, suffix, createdAt := attempt.Name, "", rc.now
		if k, ok := listing.Lookup(stored); ok {
			name, suffix, createdAt = k.Name, k.Suffix, k.CreatedAt
		}
		rc.event(corev1.EventTypeNormal, EventAdopted, "RecoverCreate", "key %s was stored in Secret %s before an interruption; recorded it as current", stored, secretName)
		return rc.completeCreate(ctx, stored, name, suffix, createdAt, attempt)
	}
	if !found {
		// The POST may not have reached the server yet, or may still be
		// running there: watch for a late key with this marker.
		rc.watchAttempt(attempt)
	}
	key.Status.PendingCreate = nil
	return rc.commitStatus(ctx)
}

// holdsKey reports whether the status already records a key id.
func holdsKey(key *iamv1alpha1.ApiKey, id string) bool {
	if key.Status.KeyID == id {
		return true
	}
	for _, p := range key.Status.PreviousKeys {
		if p.KeyID == id {
			return true
		}
	}
	return false
}

// maxUnresolvedAttempts bounds status.unresolvedAttempts (the CRD says the same).
const maxUnresolvedAttempts = 32

// watchAttempt records an attempt whose key may still appear, until the
// create window after it was sent has passed.
func (rc *reconcileContext) watchAttempt(a *iamv1alpha1.CreateAttempt) {
	st := &rc.key.Status
	st.UnresolvedAttempts = append(st.UnresolvedAttempts, iamv1alpha1.UnresolvedAttempt{
		ID: a.ID, WatchUntil: metav1.NewTime(a.StartedAt.Add(rc.r.createWindow())), Location: a.Location,
	})
	if n := len(st.UnresolvedAttempts); n > maxUnresolvedAttempts {
		st.UnresolvedAttempts = st.UnresolvedAttempts[n-maxUnresolvedAttempts:]
	}
}

// resolveAttempts deletes keys that unresolved attempts created after their
// recovery, and forgets an attempt once its keys were deleted, or once
// listings that started after its window ended did not show it. here is the
// listing already taken of the ApiKey's own place, if any; attempts
// elsewhere are listed where they live, with listings at most maxAge old.
//
// A key found is recorded on its attempt (status.unresolvedAttempts[].keyIds)
// before it is deleted: if the delete fails and the record were lost, a
// later listing that leaves the key out would let the attempt be forgotten
// and the key leak.
func (rc *reconcileContext) resolveAttempts(ctx context.Context, here *Listing, maxAge time.Duration) error {
	st := &rc.key.Status
	if len(st.UnresolvedAttempts) == 0 {
		return nil
	}
	listedAt := make([]time.Time, len(st.UnresolvedAttempts))
	var errs []error
	found := false
	for i := range st.UnresolvedAttempts {
		a := &st.UnresolvedAttempts[i]
		ids, started, err := rc.findAttemptKeys(ctx, *a, here, maxAge)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		listedAt[i] = started
		for _, id := range ids {
			if !slices.Contains(a.KeyIDs, id) {
				a.KeyIDs = append(a.KeyIDs, id)
				found = true
			}
		}
	}
	if found {
		if err := rc.commitStatus(ctx); err != nil {
			return fmt.Errorf("record the keys of unresolved create attempts: %w", err)
		}
	}
	var kept []iamv1alpha1.UnresolvedAttempt
	for i, a := range st.UnresolvedAttempts {
		if len(a.KeyIDs) > 0 {
			remaining, err := rc.deleteAttemptKeys(ctx, a)
			if err != nil {
				errs = append(errs, err)
			}
			if len(remaining) > 0 {
				a.KeyIDs = remaining
				kept = append(kept, a)
			}
			continue
		}
		if t := listedAt[i]; !t.IsZero() && !t.Before(a.WatchUntil.Time) {
			// Past the window and not listed: forgotten only once a second
			// listing confirms, as one incomplete answer proves nothing.
			v := judgeMissing(false, t, &a.WatchUntil, a.MissingSince, rc.confirmDelay())
			if v.gone {
				continue
			}
			a.MissingSince = v.missingSince
		}
		kept = append(kept, a)
	}
	st.UnresolvedAttempts = kept
	return errors.Join(errs...)
}

// findAttemptKeys lists the keys of one unresolved attempt where it lives.
// It returns their ids and when the listing it looked at started.
func (rc *reconcileContext) findAttemptKeys(ctx context.Context, a iamv1alpha1.UnresolvedAttempt, here *Listing, maxAge time.Duration) ([]string, time.Time, error) {
	since := rc.now.Add(-maxAge)
	if !rc.now.Before(a.WatchUntil.Time) {
		// Forgetting the attempt needs a listing that started after no
		// server could still commit it, and a second one to confirm.
		since = a.WatchUntil.Time
		if a.MissingSince != nil && !rc.now.Before(a.MissingSince.Add(rc.confirmDelay())) {
			since = a.MissingSince.Add(rc.confirmDelay())
		}
	}
	var listing Listing
	if here != nil && rc.livesHere(a.Location) && !here.StartedAt.Before(since) {
		listing = *here
	} else {
		inv, err := rc.reach(ctx, a.Location)
		if err != nil {
			return nil, time.Time{}, err
		}
		if listing, err = inv.Since(ctx, since); err != nil {
			return nil, time.Time{}, err
		}
	}
	var ids []string
	marker := attemptMarker(a.ID)
	for _, k := range listing.Keys() {
		if strings.Contains(k.Name, marker) {
			ids = append(ids, k.ID)
		}
	}
	return ids, listing.StartedAt, nil
}

// deleteAttemptKeys deletes the recorded keys of an unresolved attempt and
// returns those that could not be deleted yet (a key already gone counts as
// deleted).
func (rc *reconcileContext) deleteAttemptKeys(ctx context.Context, a iamv1alpha1.UnresolvedAttempt) ([]string, error) {
	inv, err := rc.reach(ctx, a.Location)
	if err != nil {
		return a.KeyIDs, err
	}
	var remaining []string
	var errs []error
	for _, id := range a.KeyIDs {
		if err := inv.Delete(ctx, id); err != nil {
			remaining = append(remaining, id)
			errs = append(errs, err)
			continue
		}
		rc.event(corev1.EventTypeNormal, EventUnclaimedDeleted, "RecoverCreate", "deleted key %s: an interrupted attempt created it after it was recovered, and its secret was never stored", id)
	}
	return remaining, errors.Join(errs...)
}
