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
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDeletingTheApiKeyDeletesRemoteKeyAndSecret deletes a Ready ApiKey with
// the garbage collector running, as in a real cluster, and checks that its
// remote key is revoked and its Secret goes with it.
func TestDeletingTheApiKeyDeletesRemoteKeyAndSecret(t *testing.T) {
	f := newFixture(t)
	const name = "doomed"

	f.createApiKey(name, nil)
	key := f.waitSettled(name, f.checkCurrentKey)
	value := f.mustSecretValue(name)

	// The Secret is owned by its ApiKey, which lets the garbage collector
	// remove it even if the operator did not.
	secret, err := f.getSecret(name)
	if err != nil {
		t.Fatal(err)
	}
	if owner := metav1.GetControllerOf(secret); owner == nil || owner.UID != key.UID {
		t.Errorf("the Secret's controller is %+v, want the ApiKey (uid %s)", owner, key.UID)
	}

	do(t, func(ctx context.Context) error { return k8sClient.Delete(ctx, key) })

	f.eventually("the ApiKey, its remote key and its Secret are gone", func() error {
		if _, err := f.getApiKey(name); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the ApiKey still exists (get: %v)", err)
		}
		keys, err := withContext(func(ctx context.Context) ([]remoteKey, error) {
			return f.remoteKeysOf(ctx, name)
		})
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			return fmt.Errorf("the emulator still holds %s", describeKeys(keys))
		}
		_, err = f.getSecret(name)
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		default:
			return errors.New("the Secret still exists")
		}
	})

	if status := f.mustPing(value); status != http.StatusUnauthorized {
		t.Errorf("the emulator answers %d to the deleted key, want %d", status, http.StatusUnauthorized)
	}
}
