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
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// TestKillDuringCreateLeavesExactlyOneKey kills the manager while the API has
// stored a new key but not answered the create: the key exists remotely and
// its value reached nobody. The restarted manager must delete that key and
// create one it can store, ending with exactly one remote key, held by the
// Secret.
func TestKillDuringCreateLeavesExactlyOneKey(t *testing.T) {
	f := newFixture(t)
	const name = "app"

	do(t, f.emu.hold)
	f.createApiKey(name, nil)
	f.waitHeldCreate()
	attempt := f.pendingCreate(name)
	orphan := f.attemptKey(name, attempt)

	f.killManager()
	do(t, f.emu.release)
	creates := f.mustStats().Create
	f.startManager()

	key := f.waitSettled(name, func(key *iamv1alpha1.ApiKey) error {
		if err := f.onlyRemoteKey(name, key.Status.KeyID); err != nil {
			return err
		}
		return f.checkCurrentKey(key)
	})
	if key.Status.KeyID == orphan {
		t.Errorf("status.keyId is %s, the key whose create answer the killed manager never received", orphan)
	}
	if n := f.mustStats().Create - creates; n != 1 {
		t.Errorf("the restarted manager sent %d creates, want 1", n)
	}
}

// TestKillDuringRotationLeavesOneCurrentKeyAndNoLeaks kills the manager while
// the API holds the create of a requested rotation. The restarted manager
// must delete the interrupted attempt's key, rotate once, retire the
// replaced key after its grace period, and then leave the new key alone.
func TestKillDuringRotationLeavesOneCurrentKeyAndNoLeaks(t *testing.T) {
	f := newFixture(t)
	const name = "rotating"

	f.createApiKey(name, func(k *iamv1alpha1.ApiKey) {
		k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: 5 * time.Second}}
	})
	original := f.waitSettled(name, f.checkCurrentKey).Status.KeyID
	originalValue := f.mustSecretValue(name)

	do(t, f.emu.hold)
	f.annotate(name, iamv1alpha1.RotateAnnotation, "1")
	f.waitHeldCreate()
	attempt := f.pendingCreate(name)
	if attempt.RotateRequest != "1" {
		t.Errorf("the attempt in flight answers rotate request %q, want %q", attempt.RotateRequest, "1")
	}
	orphan := f.attemptKey(name, attempt)

	f.killManager()
	do(t, f.emu.release)
	creates := f.mustStats().Create
	f.startManager()

	key := f.waitSettled(name, func(key *iamv1alpha1.ApiKey) error {
		if key.Status.KeyID == original {
			return fmt.Errorf("status.keyId is still the original key %s", original)
		}
		if key.Status.HandledRotateRequest != "1" {
			return fmt.Errorf("status.handledRotateRequest is %q", key.Status.HandledRotateRequest)
		}
		return f.checkCurrentKey(key)
	})
	current := key.Status.KeyID
	if current == orphan {
		t.Errorf("status.keyId is %s, the key whose create answer the killed manager never received", orphan)
	}
	if n := f.mustStats().Create - creates; n != 1 {
		t.Errorf("the restarted manager sent %d creates to answer one rotate request, want 1", n)
	}

	f.eventually("the replaced key and the interrupted attempt's key are deleted", func() error {
		key, err := f.getApiKey(name)
		if err != nil {
			return err
		}
		if key.Status.KeyID != current {
			t.Fatalf("status.keyId changed from %s to %s: the rotation happened twice", current, key.Status.KeyID)
		}
		if n := len(key.Status.PreviousKeys); n > 0 {
			return fmt.Errorf("status.previousKeys still lists %d key(s)", n)
		}
		return f.onlyRemoteKey(name, current)
	})
	if status := f.mustPing(originalValue); status != http.StatusUnauthorized {
		t.Errorf("the emulator answers %d to the retired key, want %d", status, http.StatusUnauthorized)
	}

	creates = f.mustStats().Create
	f.waitSyncPeriods(3, func() error {
		key, err := f.getApiKey(name)
		if err != nil {
			return err
		}
		if err := settled(key); err != nil {
			return fmt.Errorf("after the rotation: %w", err)
		}
		if key.Status.KeyID != current {
			return fmt.Errorf("status.keyId changed from %s to %s with no new rotate request", current, key.Status.KeyID)
		}
		return nil
	})
	if after := f.mustStats().Create; after != creates {
		t.Errorf("the manager created %d more key(s) with no new rotate request", after-creates)
	}
	if err := f.onlyRemoteKey(name, current); err != nil {
		t.Error(err)
	}
	if err := f.checkCurrentKey(f.mustApiKey(name)); err != nil {
		t.Error(err)
	}
}

// TestRestartDoesNotRecreateKeys restarts the manager twice with SIGKILL and
// checks that a manager starting over existing, settled ApiKeys adopts their
// state as is: same keys, same Secrets, no create.
func TestRestartDoesNotRecreateKeys(t *testing.T) {
	f := newFixture(t)
	names := []string{"alpha", "beta", "gamma"}

	for _, name := range names {
		f.createApiKey(name, nil)
	}
	ids := map[string]string{}
	values := map[string]string{}
	readySince := map[string]metav1.Time{}
	for _, name := range names {
		key := f.waitSettled(name, f.checkCurrentKey)
		ids[name] = key.Status.KeyID
		values[name] = f.mustSecretValue(name)
		readySince[name] = meta.FindStatusCondition(key.Status.Conditions, iamv1alpha1.ConditionReady).LastTransitionTime
	}
	creates := f.mustStats().Create
	if creates != len(names) {
		t.Errorf("the emulator saw %d creates for %d ApiKeys", creates, len(names))
	}

	for round := 1; round <= 2; round++ {
		listed := f.mustStats().List
		f.killManager()
		f.startManager()
		// Killing it again before it did anything would prove nothing.
		f.eventually(fmt.Sprintf("manager restart %d lists the keys", round), func() error {
			stats, err := withContext(f.emu.stats)
			if err != nil {
				return err
			}
			if stats.List <= listed {
				return errors.New("no list call yet")
			}
			return nil
		})
	}

	for _, name := range names {
		f.waitSettled(name, func(key *iamv1alpha1.ApiKey) error {
			if key.Status.KeyID != ids[name] {
				t.Fatalf("ApiKey %s: status.keyId changed from %s to %s across restarts", name, ids[name], key.Status.KeyID)
			}
			return nil
		})
	}
	f.waitSyncPeriods(2, func() error {
		for _, name := range names {
			key, err := f.getApiKey(name)
			if err != nil {
				return err
			}
			if err := settled(key); err != nil {
				return fmt.Errorf("ApiKey %s after the restarts: %w", name, err)
			}
			if key.Status.KeyID != ids[name] {
				return fmt.Errorf("ApiKey %s: status.keyId changed from %s to %s across restarts", name, ids[name], key.Status.KeyID)
			}
		}
		return nil
	})

	if after := f.mustStats().Create; after != creates {
		t.Errorf("the restarted managers created %d key(s)", after-creates)
	}
	for _, name := range names {
		if err := f.onlyRemoteKey(name, ids[name]); err != nil {
			t.Error(err)
		}
		if v := f.mustSecretValue(name); v != values[name] {
			t.Errorf("the Secret of ApiKey %s was rewritten with another value across restarts", name)
		}
		key := f.mustApiKey(name)
		if err := f.checkCurrentKey(key); err != nil {
			t.Errorf("ApiKey %s: %v", name, err)
		}
		// Nothing about the key changed, so neither may its readiness: a
		// restart that turns every ApiKey NotReady, if only for a moment,
		// pages whoever alerts on the condition. The transition time has a
		// one-second resolution and events may be lost with a killed
		// process, so either sign of a change counts.
		c := meta.FindStatusCondition(key.Status.Conditions, iamv1alpha1.ConditionReady)
		warnings, err := f.warnings(name)
		if err != nil {
			t.Error(err)
		}
		if !c.LastTransitionTime.Time.Equal(readySince[name].Time) || len(warnings) > 0 {
			t.Errorf("ApiKey %s: Ready did not stay True across the restarts (Ready since %s before them, last transition %s); warning events: %s",
				name, readySince[name].UTC().Format(time.RFC3339), c.LastTransitionTime.UTC().Format(time.RFC3339),
				strings.Join(warnings, "; "))
		}
	}
}

// warnings describes the Warning events about the ApiKey name.
func (f *fixture) warnings(name string) ([]string, error) {
	ctx, cancel := newContext()
	defer cancel()
	var events eventsv1.EventList
	if err := k8sClient.List(ctx, &events, client.InNamespace(f.ns)); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	var found []string
	for _, e := range events.Items {
		if e.Type != corev1.EventTypeWarning || e.Regarding.Kind != "ApiKey" || e.Regarding.Name != name {
			continue
		}
		found = append(found, fmt.Sprintf("%s %s %q", e.CreationTimestamp.UTC().Format(time.RFC3339), e.Reason, e.Note))
	}
	return found, nil
}

// waitHeldCreate waits until the emulator holds a create: the key is stored
// remotely and the manager waits for the answer.
func (f *fixture) waitHeldCreate() {
	f.t.Helper()
	f.eventually("the emulator holds a create", func() error {
		n, err := withContext(f.emu.held)
		if err != nil {
			return err
		}
		if n < 1 {
			return errors.New("no create held yet")
		}
		return nil
	})
}

// pendingCreate returns the create attempt the ApiKey records, failing the
// test if there is none: the operator records it before every create, and
// recovery depends on it.
func (f *fixture) pendingCreate(name string) iamv1alpha1.CreateAttempt {
	f.t.Helper()
	key := f.mustApiKey(name)
	if key.Status.PendingCreate == nil || key.Status.PendingCreate.ID == "" {
		f.t.Fatalf("a create of ApiKey %s reached the API without status.pendingCreate recorded first", name)
	}
	return *key.Status.PendingCreate
}

// attemptKey returns the id of the remote key an attempt created, failing
// the test unless there is exactly one.
func (f *fixture) attemptKey(name string, attempt iamv1alpha1.CreateAttempt) string {
	f.t.Helper()
	keys := f.mustRemoteKeysOf(name)
	marker := "[k8s-" + attempt.ID + "]"
	keys = slices.DeleteFunc(keys, func(k remoteKey) bool { return !strings.Contains(k.name(), marker) })
	if len(keys) != 1 {
		f.t.Fatalf("the emulator holds %d key(s) marked %s, want 1: %s", len(keys), marker, describeKeys(keys))
	}
	return keys[0].ID
}

// onlyRemoteKey reports an error unless the emulator holds exactly one key
// for the ApiKey name, with id id.
func (f *fixture) onlyRemoteKey(name, id string) error {
	keys, err := withContext(func(ctx context.Context) ([]remoteKey, error) {
		return f.remoteKeysOf(ctx, name)
	})
	if err != nil {
		return err
	}
	if len(keys) != 1 || keys[0].ID != id {
		return fmt.Errorf("the emulator holds %d key(s) for ApiKey %s, want only %s: %s", len(keys), name, id, describeKeys(keys))
	}
	return nil
}

// annotate sets an annotation on an ApiKey.
func (f *fixture) annotate(name, annotation, value string) {
	f.t.Helper()
	key := f.mustApiKey(name)
	patch := client.MergeFrom(key.DeepCopy())
	if key.Annotations == nil {
		key.Annotations = map[string]string{}
	}
	key.Annotations[annotation] = value
	ctx, cancel := newContext()
	defer cancel()
	if err := k8sClient.Patch(ctx, key, patch); err != nil {
		f.t.Fatalf("annotate ApiKey %s: %v", name, err)
	}
}
