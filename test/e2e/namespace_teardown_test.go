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
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// teardownKeys are the ApiKeys each namespace teardown test deletes.
var teardownKeys = []string{"web", "worker", "cron"}

// TestDeletingTheNamespaceDeletesEveryRemoteKey deletes a namespace holding a
// Connection, its credentials Secret and Ready ApiKeys. The namespace
// controller deletes them all at once; the namespace must still go away on
// its own, and only after every remote key was deleted through the
// Connection.
func TestDeletingTheNamespaceDeletesEveryRemoteKey(t *testing.T) {
	f := newFixture(t)
	f.readyTeardownKeys()

	f.deleteNamespace()

	f.waitNamespaceGoneWithNoKey()
}

// TestKillDuringNamespaceDeletionDeletesEveryRemoteKey kills the manager with
// SIGKILL once the namespace controller has asked for the ApiKeys' deletion,
// while their finalizers are deleting the remote keys, and starts it again:
// the new manager must find the Connection and its Secret still there,
// finish the ApiKeys' finalizers and let the namespace go.
func TestKillDuringNamespaceDeletionDeletesEveryRemoteKey(t *testing.T) {
	f := newFixture(t)
	f.readyTeardownKeys()

	// A slow API keeps the finalizers busy long enough for the kill to land
	// in the middle of them.
	do(t, func(ctx context.Context) error { return f.emu.setLatency(ctx, 3*time.Second) })
	f.deleteNamespace()
	var left int
	f.eventually("the namespace controller asked for the ApiKeys' deletion", func() error {
		var keys iamv1alpha1.ApiKeyList
		if err := withList(&keys, client.InNamespace(f.ns)); err != nil {
			return err
		}
		for _, k := range keys.Items {
			if k.DeletionTimestamp.IsZero() {
				return fmt.Errorf("ApiKey %s has no deletionTimestamp yet", k.Name)
			}
		}
		left = len(keys.Items)
		return nil
	})
	f.killManager()
	if left == 0 {
		t.Fatal("every ApiKey was already finalized when the manager was killed: the kill tested nothing")
	}
	t.Logf("killed the manager with %d ApiKey(s) left to finalize", left)
	do(t, func(ctx context.Context) error { return f.emu.setLatency(ctx, 0) })
	f.startManager()

	f.waitNamespaceGoneWithNoKey()
}

// readyTeardownKeys creates the teardown ApiKeys on the fixture's Connection
// and waits until each holds a working key.
func (f *fixture) readyTeardownKeys() {
	f.t.Helper()
	for _, name := range teardownKeys {
		f.createApiKey(name, nil)
	}
	for _, name := range teardownKeys {
		f.waitSettled(name, f.checkCurrentKey)
	}
	remote, err := withContext(f.emu.keys)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(remote) != len(teardownKeys) {
		f.t.Fatalf("the emulator holds %d keys, want %d: %s", len(remote), len(teardownKeys), describeKeys(remote))
	}
}

// deleteNamespace asks for the deletion of the fixture's namespace, as
// `kubectl delete namespace` does.
func (f *fixture) deleteNamespace() {
	f.t.Helper()
	do(f.t, func(ctx context.Context) error {
		return k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}})
	})
}

// waitNamespaceGoneWithNoKey waits until the namespace is gone on its own and
// checks that the emulator's organization holds no key any more.
func (f *fixture) waitNamespaceGoneWithNoKey() {
	f.t.Helper()
	f.eventually("the namespace is deleted", func() error {
		ctx, cancel := newContext()
		defer cancel()
		var ns corev1.Namespace
		err := k8sClient.Get(ctx, types.NamespacedName{Name: f.ns}, &ns)
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		default:
			return fmt.Errorf("namespace %s is %s: %s", f.ns, ns.Status.Phase, f.namespaceLeftovers(ctx))
		}
	})
	remote, err := withContext(f.emu.keys)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(remote) > 0 {
		f.t.Errorf("the namespace is gone but the emulator still holds %s", describeKeys(remote))
	}
}

// namespaceLeftovers describes what keeps a terminating namespace, for the
// failure message.
func (f *fixture) namespaceLeftovers(ctx context.Context) error {
	var errs []error
	var keys iamv1alpha1.ApiKeyList
	if err := k8sClient.List(ctx, &keys, client.InNamespace(f.ns)); err == nil {
		for _, k := range keys.Items {
			errs = append(errs, fmt.Errorf("ApiKey %s (finalizers %v, conditions %+v)", k.Name, k.Finalizers, k.Status.Conditions))
		}
	}
	var conns iamv1alpha1.ConnectionList
	if err := k8sClient.List(ctx, &conns, client.InNamespace(f.ns)); err == nil {
		for _, c := range conns.Items {
			errs = append(errs, fmt.Errorf("Connection %s (finalizers %v)", c.Name, c.Finalizers))
		}
	}
	var secrets corev1.SecretList
	if err := k8sClient.List(ctx, &secrets, client.InNamespace(f.ns)); err == nil {
		for _, s := range secrets.Items {
			errs = append(errs, fmt.Errorf("Secret %s (finalizers %v)", s.Name, s.Finalizers))
		}
	}
	return errors.Join(errs...)
}

// withList lists objects with a context bounded by newContext.
func withList(list client.ObjectList, opts ...client.ListOption) error {
	ctx, cancel := newContext()
	defer cancel()
	return k8sClient.List(ctx, list, opts...)
}

// setLatency makes the emulator wait d before answering each call to the key
// endpoints, replacing any other injected fault; zero removes it.
func (e *emulatorProcess) setLatency(ctx context.Context, d time.Duration) error {
	body := fmt.Sprintf(`{"latency":%q}`, d.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, e.url+"/_emulator/faults", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set(adminHeader, e.adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("PUT /_emulator/faults: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
