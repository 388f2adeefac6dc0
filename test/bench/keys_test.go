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
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// settled reports whether an ApiKey is at rest with a key: Ready with
// reason KeyReady, a key id, and no create in flight.
func settled(k *iamv1alpha1.ApiKey) bool {
	c := meta.FindStatusCondition(k.Status.Conditions, iamv1alpha1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == iamv1alpha1.ReasonKeyReady &&
		k.Status.KeyID != "" && k.Status.PendingCreate == nil
}

// tracker follows the ApiKeys of one namespace through a watch and tells
// when a condition on them first held, so that a time measured ends with
// the event that ended it rather than with a poll.
type tracker struct {
	mu     sync.Mutex
	ready  map[string]bool // by name: settled
	nReady int
	// nSuffix counts the settled ApiKeys whose status shows the key's
	// suffix, which the operator learns from the first listing after the
	// create: once all do, the operator's work on them is done.
	nSuffix int
	suffix  map[string]bool
	waiters []*waiter
}

// counts is what a tracker knows of its ApiKeys.
type counts struct {
	// present, ready and complete count the ApiKeys that exist, those
	// settled, and those settled that show their suffix.
	present, ready, complete int
}

type waiter struct {
	cond func(counts) bool
	at   chan time.Time
}

// trackApiKeys starts a tracker on namespace; it stops with ctx.
func (w *world) trackApiKeys(ctx context.Context, namespace string) (*tracker, error) {
	c, err := cache.New(w.cluster.Config, cache.Options{
		Scheme:            w.scheme,
		DefaultNamespaces: map[string]cache.Config{namespace: {}},
	})
	if err != nil {
		return nil, err
	}
	inf, err := c.GetInformer(ctx, &iamv1alpha1.ApiKey{})
	if err != nil {
		return nil, err
	}
	t := &tracker{ready: map[string]bool{}, suffix: map[string]bool{}}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { t.update(o, false) },
		UpdateFunc: func(_, o any) { t.update(o, false) },
		DeleteFunc: func(o any) { t.update(o, true) },
	}); err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("watch ApiKeys of %s: the cache did not sync", namespace)
	}
	return t, nil
}

func (t *tracker) update(o any, deleted bool) {
	if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = tomb.Obj
	}
	k, ok := o.(*iamv1alpha1.ApiKey)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ready[k.Name] {
		t.nReady--
	}
	if t.suffix[k.Name] {
		t.nSuffix--
	}
	if deleted {
		delete(t.ready, k.Name)
		delete(t.suffix, k.Name)
	} else {
		s := settled(k)
		t.ready[k.Name] = s
		t.suffix[k.Name] = s && k.Status.APIKeySuffix != ""
		if s {
			t.nReady++
		}
		if t.suffix[k.Name] {
			t.nSuffix++
		}
	}
	t.notifyLocked(now)
}

func (t *tracker) notifyLocked(now time.Time) {
	kept := t.waiters[:0]
	for _, w := range t.waiters {
		if w.cond(t.countsLocked()) {
			w.at <- now
			continue
		}
		kept = append(kept, w)
	}
	t.waiters = kept
}

func (t *tracker) countsLocked() counts {
	return counts{present: len(t.ready), ready: t.nReady, complete: t.nSuffix}
}

// wait returns the time at which cond first held, waiting at most timeout
// and no longer than the manager m, if any, runs.
func (t *tracker) wait(ctx context.Context, m *managerProcess, timeout time.Duration, what string,
	cond func(counts) bool) (time.Time, error) {
	w := &waiter{cond: cond, at: make(chan time.Time, 1)}
	t.mu.Lock()
	if cond(t.countsLocked()) {
		t.mu.Unlock()
		return time.Now(), nil
	}
	t.waiters = append(t.waiters, w)
	t.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var exited <-chan struct{} // none without a manager
	if m != nil {
		exited = m.exited
	}
	var failure error
	select {
	case at := <-w.at:
		return at, nil
	case <-timer.C:
		failure = fmt.Errorf("%w after %v", errTimeout, timeout)
	case <-exited:
		failure = m.alive()
	case <-ctx.Done():
		failure = ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if i := slices.Index(t.waiters, w); i >= 0 {
		t.waiters = slices.Delete(t.waiters, i, i+1)
	}
	c := t.countsLocked()
	return time.Time{}, fmt.Errorf("%s: %w (%d ApiKeys present, %d Ready, %d showing their suffix)",
		what, failure, c.present, c.ready, c.complete)
}

// allReady holds once n ApiKeys are Ready.
func allReady(n int) func(counts) bool { return func(c counts) bool { return c.ready == n } }

// allComplete holds once n ApiKeys are Ready and show their suffix.
func allComplete(n int) func(counts) bool { return func(c counts) bool { return c.complete == n } }

// allGone holds once no ApiKey is left.
func allGone(c counts) bool { return c.present == 0 }

// createApiKeys creates n ApiKeys from `workers` goroutines.
func (w *world) createApiKeys(ctx context.Context, namespace string, n int) error {
	return parallel(ctx, n, func(ctx context.Context, i int) error {
		return w.k8s.Create(ctx, newApiKey(namespace, i))
	})
}

// deleteApiKeys deletes n ApiKeys from `workers` goroutines.
func (w *world) deleteApiKeys(ctx context.Context, namespace string, n int) error {
	return parallel(ctx, n, func(ctx context.Context, i int) error {
		return w.k8s.Delete(ctx, newApiKey(namespace, i))
	})
}
