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
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// desiredSecretName is spec.secretName, defaulted to the ApiKey's name.
func desiredSecretName(key *iamv1alpha1.ApiKey) string {
	if key.Spec.SecretName != "" {
		return key.Spec.SecretName
	}
	return key.Name
}

// desiredSecretKey is spec.secretKey, defaulted to apiKey.
func desiredSecretKey(key *iamv1alpha1.ApiKey) string {
	if key.Spec.SecretKey != "" {
		return key.Spec.SecretKey
	}
	return "apiKey"
}

// getSecret returns the named Secret, or nil when it does not exist. The
// cache holds only managed Secrets and may lag behind our own writes, so a
// miss is confirmed with a direct read before anyone acts on it.
func (r *ApiKeyReconciler) getSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	nn := types.NamespacedName{Namespace: namespace, Name: name}
	err := r.Get(ctx, nn, &s)
	if err == nil {
		return &s, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get Secret %s: %w", nn, err)
	}
	if err := r.APIReader.Get(ctx, nn, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get Secret %s: %w", nn, err)
	}
	return &s, nil
}

// secretHolds reports whether a managed Secret holds the ApiKey's current
// key: the id it was written with, and a value ending with the listed suffix
// (when the suffix is known yet).
func secretHolds(key *iamv1alpha1.ApiKey, secret *corev1.Secret, dataKey string) bool {
	if secret == nil || key.Status.KeyID == "" {
		return false
	}
	if secret.Annotations[iamv1alpha1.KeyIDAnnotation] != key.Status.KeyID {
		return false
	}
	value := string(secret.Data[dataKey])
	if value == "" {
		return false
	}
	if key.Status.APIKeySuffix == "" {
		// The create answer carries no suffix; until the next listing
		// tells it, the key id is all there is to compare.
		return true
	}
	return mobilenext.NewSecret(value).HasSuffix(key.Status.APIKeySuffix)
}

// secretMetadata applies the labels, annotations and owner every managed
// Secret carries, template included.
func secretMetadata(key *iamv1alpha1.ApiKey, s *corev1.Secret, keyID, suffix string) {
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	if t := key.Spec.SecretTemplate; t != nil {
		maps.Copy(s.Labels, t.Labels)
		maps.Copy(s.Annotations, t.Annotations)
	}
	s.Labels[iamv1alpha1.ManagedByLabel] = iamv1alpha1.ManagedByValue
	s.Labels[iamv1alpha1.ApiKeyLabel] = key.Name
	s.Annotations[iamv1alpha1.KeyIDAnnotation] = keyID
	if suffix != "" {
		s.Annotations[iamv1alpha1.KeySuffixAnnotation] = suffix
	}
}

// writeSecret stores a key's value in the ApiKey's Secret: created when
// absent, replaced when it is ours. existing must be nil or controlled by key.
func (r *ApiKeyReconciler) writeSecret(ctx context.Context, key *iamv1alpha1.ApiKey, name, dataKey string, existing *corev1.Secret, keyID, suffix string, value mobilenext.Secret) error {
	s := existing
	if s == nil {
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: name}, Type: corev1.SecretTypeOpaque}
	} else {
		s = s.DeepCopy()
	}
	secretMetadata(key, s, keyID, suffix)
	if suffix == "" {
		delete(s.Annotations, iamv1alpha1.KeySuffixAnnotation)
	}
	s.Data = map[string][]byte{dataKey: []byte(value.Reveal())}
	if err := controllerutil.SetControllerReference(key, s, r.Scheme()); err != nil {
		return fmt.Errorf("own Secret %s: %w", name, err)
	}
	if existing == nil {
		if err := r.Create(ctx, s); err != nil {
			return fmt.Errorf("create Secret %s: %w", name, withoutValue(err, value))
		}
		return nil
	}
	if err := r.Update(ctx, s); err != nil {
		return fmt.Errorf("update Secret %s: %w", name, withoutValue(err, value))
	}
	return nil
}

// ensureSecretMetadata restores the labels and annotations of a managed
// Secret that someone changed, without touching its value.
func (r *ApiKeyReconciler) ensureSecretMetadata(ctx context.Context, key *iamv1alpha1.ApiKey, secret *corev1.Secret) error {
	if secret == nil {
		return nil
	}
	want := secret.DeepCopy()
	secretMetadata(key, want, key.Status.KeyID, key.Status.APIKeySuffix)
	if maps.Equal(want.Labels, secret.Labels) && maps.Equal(want.Annotations, secret.Annotations) {
		return nil
	}
	if err := r.Patch(ctx, want, client.MergeFrom(secret)); err != nil {
		return fmt.Errorf("restore metadata of Secret %s: %w", secret.Name, err)
	}
	return nil
}

// deleteManagedSecret deletes a Secret if, and only if, this ApiKey controls it.
func (r *ApiKeyReconciler) deleteManagedSecret(ctx context.Context, key *iamv1alpha1.ApiKey, name string) error {
	if name == "" {
		return nil
	}
	s, err := r.getSecret(ctx, key.Namespace, name)
	if err != nil || s == nil {
		return err
	}
	if !metav1.IsControlledBy(s, key) {
		return nil
	}
	if err := r.Delete(ctx, s, client.Preconditions{UID: &s.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Secret %s: %w", name, err)
	}
	return nil
}

// moveSecretIfNeeded follows a change of spec.secretName or spec.secretKey:
// the value is copied from the old managed Secret (the API cannot return it
// again) to the new place, and the old Secret is removed. It reports whether
// it wrote the Secret.
func (rc *reconcileContext) moveSecretIfNeeded(ctx context.Context, current *corev1.Secret) (bool, error) {
	key := rc.key
	name, dataKey := desiredSecretName(key), desiredSecretKey(key)
	if key.Status.SecretName == name && key.Status.SecretKey == dataKey {
		return false, nil
	}
	old := current
	if key.Status.SecretName != name {
		var err error
		if old, err = rc.r.getSecret(ctx, key.Namespace, key.Status.SecretName); err != nil {
			return false, err
		}
	}
	if old == nil || !metav1.IsControlledBy(old, key) || !secretHolds(key, old, key.Status.SecretKey) {
		// replacementTrigger sends this case through a new key.
		return false, nil
	}
	value := mobilenext.NewSecret(string(old.Data[key.Status.SecretKey]))
	if err := rc.r.writeSecret(ctx, key, name, dataKey, current, key.Status.KeyID, key.Status.APIKeySuffix, value); err != nil {
		return false, err
	}
	if key.Status.SecretName != name {
		if err := rc.r.deleteManagedSecret(ctx, key, key.Status.SecretName); err != nil {
			return false, err
		}
	}
	rc.event(corev1.EventTypeNormal, EventSecretMoved, "MoveSecret", "key %s moved from Secret %s key %s to Secret %s key %s", key.Status.KeyID, key.Status.SecretName, key.Status.SecretKey, name, dataKey)
	key.Status.SecretName, key.Status.SecretKey = name, dataKey
	return true, nil
}

// secretHoldsKey reads a Secret back, uncached, and reports whether it is
// controlled by the ApiKey and holds the key with this id under dataKey. It
// settles a write whose outcome was unclear.
func (r *ApiKeyReconciler) secretHoldsKey(ctx context.Context, key *iamv1alpha1.ApiKey, name, dataKey, keyID string) (bool, error) {
	var s corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("get Secret %s: %w", name, err)
	}
	return metav1.IsControlledBy(&s, key) && s.Annotations[iamv1alpha1.KeyIDAnnotation] == keyID && len(s.Data[dataKey]) > 0, nil
}

// sweepStaleSecrets deletes Secrets this ApiKey controls under a name it no
// longer uses. A move or rotation deletes the old Secret after recording
// the new one; if it was interrupted between the two, nothing else would
// remember the old name, and the previous key's retirement would then
// break a Secret that still serves it. Run before any retirement.
func (rc *reconcileContext) sweepStaleSecrets(ctx context.Context) error {
	key := rc.key
	var list corev1.SecretList
	// Only read: the Secrets to delete are read again by name.
	if err := rc.r.List(ctx, &list, client.InNamespace(key.Namespace),
		client.MatchingFields{secretControllerIndex: key.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list the Secrets of ApiKey %s: %w", key.Name, err)
	}
	keep := map[string]bool{key.Status.SecretName: true, desiredSecretName(key): true}
	if a := key.Status.PendingCreate; a != nil {
		keep[a.SecretName] = true
	}
	for i := range list.Items {
		s := &list.Items[i]
		if keep[s.Name] || !metav1.IsControlledBy(s, key) {
			continue
		}
		if err := rc.r.deleteManagedSecret(ctx, key, s.Name); err != nil {
			return err
		}
		rc.event(corev1.EventTypeNormal, EventSecretMoved, "DeleteSecret", "deleted Secret %s: this ApiKey now writes its key to Secret %s", s.Name, key.Status.SecretName)
	}
	return nil
}

// withoutValue keeps a Secret's value out of an error about writing it: the
// API server, or an admission webhook, may quote the object it refused, and
// the error ends up in logs and status. The error keeps its type (callers
// decide on a refusal by it); only its text is redacted.
func withoutValue(err error, value mobilenext.Secret) error {
	v := value.Reveal()
	if v == "" || !strings.Contains(err.Error(), v) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), v, "[redacted]"), err: err}
}

// redactedError is an error whose text had a secret value taken out.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
