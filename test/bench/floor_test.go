//go:build bench

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

package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// The floor is what N keys cost the API server at the least, written
// directly by `workers` goroutines with the manager's client limits and no
// manager running. Per key, in order, the same objects the operator writes:
//
//	create:  create the ApiKey (the user's write, which the operator's time
//	         includes too), patch the finalizer in, update the status with
//	         the create attempt, create the Secret (labels, annotations,
//	         controller reference, the value), update the status with the
//	         key, Ready: 5 writes;
//	delete:  delete the ApiKey (the user's write), delete the Secret, patch
//	         the finalizer out, which removes the ApiKey: 3 writes.
//
// Each time runs from the first write to the answer to the last.
const floorDefinition = "floor = the same objects written directly by 8 goroutines, no manager: " +
	"to Ready, per key: create the ApiKey, patch the finalizer in, update status (attempt), " +
	"create the Secret, update status (key, Ready) = 5 writes; " +
	"to deleted: delete the ApiKey, delete the Secret, patch the finalizer out = 3 writes"

// keyName names the i-th ApiKey of a phase.
func keyName(i int) string { return fmt.Sprintf("key-%05d", i) }

// newApiKey is the ApiKey the benchmark creates: every field defaulted, so
// it uses the ClusterConnection "default".
func newApiKey(namespace string, i int) *iamv1alpha1.ApiKey {
	return &iamv1alpha1.ApiKey{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: keyName(i)}}
}

// floorCreate writes what N Ready keys need, as the operator would.
func (w *world) floorCreate(ctx context.Context, namespace string, n int) error {
	loc := &iamv1alpha1.KeyLocation{URL: w.srv.URL, OrganizationID: w.orgID}
	return parallel(ctx, n, func(ctx context.Context, i int) error {
		key := newApiKey(namespace, i)
		if err := w.k8s.Create(ctx, key); err != nil {
			return err
		}
		before := key.DeepCopy()
		controllerutil.AddFinalizer(key, iamv1alpha1.Finalizer)
		patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
		if err := w.k8s.Patch(ctx, key, patch); err != nil {
			return err
		}
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		attempt := fmt.Sprintf("%08x", i)
		remoteName := namespace + "/" + key.Name + " [k8s-" + attempt + "]"
		key.Status = iamv1alpha1.ApiKeyStatus{
			ObservedGeneration: key.Generation,
			PendingCreate: &iamv1alpha1.CreateAttempt{
				ID: attempt, Name: remoteName, StartedAt: now, Reason: "Create", Location: loc,
				SecretName: key.Name, SecretKey: "apiKey",
			},
		}
		setCondition(key, iamv1alpha1.ConditionReady, metav1.ConditionFalse, iamv1alpha1.ReasonCreating,
			"creating the remote key", now)
		if err := w.k8s.Status().Update(ctx, key); err != nil {
			return err
		}
		keyID := fmt.Sprintf("00000000-0000-4000-8000-%012x", i)
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: namespace, Name: key.Name,
				Labels: map[string]string{
					iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue,
					iamv1alpha1.ApiKeyLabel:    key.Name,
				},
				Annotations: map[string]string{iamv1alpha1.KeyIDAnnotation: keyID},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"apiKey": []byte(fmt.Sprintf("mob_%040d", i))},
		}
		if err := controllerutil.SetControllerReference(key, secret, w.scheme); err != nil {
			return err
		}
		if err := w.k8s.Create(ctx, secret); err != nil {
			return err
		}
		key.Status.PendingCreate = nil
		key.Status.KeyID, key.Status.KeyName = keyID, remoteName
		key.Status.CreatedAt, key.Status.KeyRecordedAt = &now, &now
		key.Status.SecretName, key.Status.SecretKey = key.Name, "apiKey"
		key.Status.Connection, key.Status.Location = "ClusterConnection/"+connectionName, loc
		setCondition(key, iamv1alpha1.ConditionReady, metav1.ConditionTrue, iamv1alpha1.ReasonKeyReady,
			"Secret "+key.Name+" holds key "+keyID, now)
		setCondition(key, iamv1alpha1.ConditionSynced, metav1.ConditionTrue, iamv1alpha1.ReasonReconcileSuccess,
			"the last reconcile reached the API without error", now)
		return w.k8s.Status().Update(ctx, key)
	})
}

// floorDelete deletes what floorCreate wrote, as the operator would.
func (w *world) floorDelete(ctx context.Context, namespace string, n int) error {
	removeFinalizer := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
	return parallel(ctx, n, func(ctx context.Context, i int) error {
		key := newApiKey(namespace, i)
		if err := w.k8s.Delete(ctx, key); err != nil {
			return err
		}
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: key.Name}}
		if err := w.k8s.Delete(ctx, secret); err != nil {
			return err
		}
		return w.k8s.Patch(ctx, key, removeFinalizer)
	})
}

// setCondition sets a condition of the ApiKey as the operator would.
func setCondition(key *iamv1alpha1.ApiKey, condType string, status metav1.ConditionStatus, reason, message string,
	now metav1.Time) {
	meta.SetStatusCondition(&key.Status.Conditions, metav1.Condition{
		Type: condType, Status: status, Reason: reason, Message: message,
		ObservedGeneration: key.Generation, LastTransitionTime: now,
	})
}

// parallel calls fn for 0..n-1 from `workers` goroutines and returns the
// first error, after which no new call starts.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(fmt.Errorf("%s: %w", keyName(i), err))
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}
