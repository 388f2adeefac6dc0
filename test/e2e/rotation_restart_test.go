//go:build e2e

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

package e2e

import (
	"errors"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// TestHandledRotationIsNotRepeatedAfterRestart rotates a key through the
// annotation, which also restarts a Deployment, then kills the manager with
// SIGKILL: the restarted manager must neither rotate again for the same
// annotation value nor restart the Deployment again.
func TestHandledRotationIsNotRepeatedAfterRestart(t *testing.T) {
	f := newFixture(t)
	labels := map[string]string{"app": "worker"}
	worker := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "worker"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
	ctx, cancel := newContext()
	defer cancel()
	if err := k8sClient.Create(ctx, worker); err != nil {
		t.Fatalf("create Deployment: %v", err)
	}
	f.createApiKey("rotated", func(k *iamv1alpha1.ApiKey) {
		k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: 0}}
		k.Spec.RolloutRestartTargets = []iamv1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "worker"}}
	})
	first := f.waitSettled("rotated", f.checkCurrentKey)

	f.annotate("rotated", iamv1alpha1.RotateAnnotation, "once")
	second := f.waitSettled("rotated", func(k *iamv1alpha1.ApiKey) error {
		if k.Status.KeyID == first.Status.KeyID {
			return errors.New("not rotated yet")
		}
		return f.checkCurrentKey(k)
	})
	deployment := func() (*appsv1.Deployment, error) {
		ctx, cancel := newContext()
		defer cancel()
		var d appsv1.Deployment
		err := k8sClient.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "worker"}, &d)
		return &d, err
	}
	f.eventually("the Deployment is restarted for the new key", func() error {
		d, err := deployment()
		if err != nil {
			return err
		}
		if got := d.Spec.Template.Annotations[iamv1alpha1.RestartedForAnnotation]; got != second.Status.KeyID {
			return fmt.Errorf("restart annotation %q, want %q", got, second.Status.KeyID)
		}
		return nil
	})
	restarted, err := deployment()
	if err != nil {
		t.Fatal(err)
	}
	creates := f.mustStats().Create

	f.killManager()
	f.startManager()
	f.waitSyncPeriods(3, func() error {
		key, err := f.getApiKey("rotated")
		if err != nil {
			return err
		}
		if err := settled(key); err != nil {
			return err
		}
		if key.Status.KeyID != second.Status.KeyID {
			return fmt.Errorf("status.keyId moved from %s to %s after the restart", second.Status.KeyID, key.Status.KeyID)
		}
		return nil
	})
	if after := f.mustStats().Create; after != creates {
		t.Errorf("the restarted manager created %d key(s) for an annotation already handled", after-creates)
	}
	d, err := deployment()
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != restarted.Generation {
		t.Errorf("the Deployment was changed again after the restart: generation %d, was %d", d.Generation, restarted.Generation)
	}
	if err := f.onlyRemoteKey("rotated", second.Status.KeyID); err != nil {
		t.Error(err)
	}
}
