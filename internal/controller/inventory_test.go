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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mobile-next/apikey-operator/internal/mobilenext"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestInventoryListsOncePerMaxAge(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	var lists atomic.Int32
	svc := KeyServiceFuncs{List: func(context.Context) ([]mobilenext.Key, error) {
		lists.Add(1)
		return []mobilenext.Key{{ID: "key_a", Suffix: "aaaa"}}, nil
	}}
	inv := NewInventory(svc, time.Minute, clock)
	for range 5 {
		if _, err := inv.Get(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := lists.Load(); got != 1 {
		t.Fatalf("5 reads within maxAge made %d list calls, want 1", got)
	}
	clock.Step(time.Minute)
	l, err := inv.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := lists.Load(); got != 2 {
		t.Fatalf("a read after maxAge made %d list calls in all, want 2", got)
	}
	if _, ok := l.Lookup("key_a"); !ok {
		t.Fatal("listed key missing")
	}
}

func TestInventoryCoalescesConcurrentReads(t *testing.T) {
	release := make(chan struct{})
	var lists atomic.Int32
	svc := KeyServiceFuncs{List: func(context.Context) ([]mobilenext.Key, error) {
		lists.Add(1)
		<-release
		return nil, nil
	}}
	inv := NewInventory(svc, time.Minute, nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := inv.Get(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	for lists.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if got := lists.Load(); got != 1 {
		t.Fatalf("20 concurrent reads made %d list calls, want 1", got)
	}
}

// A listing that was in flight while this process created a key must still
// show the key: otherwise the key would look revoked and be replaced.
func TestInventoryFoldsInKeysCreatedDuringAList(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	listing := make(chan struct{})
	answer := make(chan struct{})
	svc := KeyServiceFuncs{
		List: func(context.Context) ([]mobilenext.Key, error) {
			close(listing)
			<-answer
			return []mobilenext.Key{{ID: "key_gone"}}, nil
		},
		Create: func(_ context.Context, name string) (*mobilenext.CreatedKey, error) {
			return &mobilenext.CreatedKey{ID: "key_new", Name: name}, nil
		},
		Delete: func(context.Context, string) error { return nil },
	}
	inv := NewInventory(svc, time.Minute, clock)
	done := make(chan Listing)
	go func() {
		l, err := inv.Get(context.Background())
		if err != nil {
			t.Error(err)
		}
		done <- l
	}()
	<-listing
	clock.Step(time.Second)
	if _, err := inv.Create(context.Background(), "new"); err != nil {
		t.Fatal(err)
	}
	if err := inv.Delete(context.Background(), "key_gone"); err != nil {
		t.Fatal(err)
	}
	close(answer)
	l := <-done
	if _, ok := l.Lookup("key_new"); !ok {
		t.Error("a key created during the list call is missing from its listing")
	}
	if _, ok := l.Lookup("key_gone"); ok {
		t.Error("a key deleted during the list call is still in its listing")
	}
}

func TestInventoryHoldsBackCallsAfterA429(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	var lists atomic.Int32
	throttled := &mobilenext.APIError{Method: "GET", Path: "/api/v1/keys", StatusCode: 429, RetryAfter: 30 * time.Second}
	svc := KeyServiceFuncs{List: func(context.Context) ([]mobilenext.Key, error) {
		lists.Add(1)
		return nil, throttled
	}}
	inv := NewInventory(svc, time.Nanosecond, clock)
	if _, err := inv.Get(context.Background()); !errors.Is(err, throttled) {
		t.Fatalf("first read: %v, want the 429", err)
	}
	if got := inv.HeldBackFor(); got != 30*time.Second {
		t.Fatalf("throttled for %s, want 30s", got)
	}
	var held *heldBackError
	for range 3 {
		if _, err := inv.Get(context.Background()); !errors.As(err, &held) {
			t.Fatalf("read while throttled: %v, want it held back", err)
		}
	}
	if got := lists.Load(); got != 1 {
		t.Fatalf("%d list calls during Retry-After, want 1", got)
	}
	clock.Step(30 * time.Second)
	_, _ = inv.Get(context.Background())
	if got := lists.Load(); got != 2 {
		t.Fatalf("%d list calls after Retry-After, want 2", got)
	}
}

// A 429 without Retry-After backs the whole connection off exponentially:
// however many ApiKeys ask, the API sees one call per backoff step.
func TestInventoryBacksOffExponentiallyAfter429WithoutRetryAfter(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	var calls atomic.Int32
	throttled := &mobilenext.APIError{Method: "GET", Path: "/api/v1/keys", StatusCode: 429}
	svc := KeyServiceFuncs{
		List: func(context.Context) ([]mobilenext.Key, error) {
			calls.Add(1)
			return nil, throttled
		},
		Create: func(context.Context, string) (*mobilenext.CreatedKey, error) {
			calls.Add(1)
			return nil, throttled
		},
		Delete: func(context.Context, string) error {
			calls.Add(1)
			return throttled
		},
	}
	inv := NewInventory(svc, time.Nanosecond, clock)
	waits := make([]time.Duration, 0, 6)
	for step := range 6 {
		// Ten ApiKeys and a finalizer ask at every step.
		for range 10 {
			_, _ = inv.Fresh(context.Background())
			_, _ = inv.Create(context.Background(), "k")
		}
		_ = inv.Delete(context.Background(), "key_1")
		if got := calls.Load(); got != int32(step+1) {
			t.Fatalf("step %d: %d calls reached the API in all, want %d (one per backoff step)", step, got, step+1)
		}
		wait := inv.HeldBackFor()
		waits = append(waits, wait)
		clock.Step(wait)
	}
	for i := 1; i < len(waits); i++ {
		// Each step at least doubles the last, jitter aside (at most 20%).
		if float64(waits[i]) < 1.6*float64(waits[i-1]) {
			t.Fatalf("backoff steps %v do not grow exponentially", waits)
		}
	}
	if waits[0] < backoffBase {
		t.Fatalf("first step %s, want at least %s", waits[0], backoffBase)
	}
}

// Once the API answers again, the backoff starts over.
func TestInventoryBackoffResetsOnAnswer(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	failing := true
	svc := KeyServiceFuncs{List: func(context.Context) ([]mobilenext.Key, error) {
		if failing {
			return nil, &mobilenext.APIError{Method: "GET", Path: "/api/v1/keys", StatusCode: 503}
		}
		return nil, nil
	}}
	inv := NewInventory(svc, time.Nanosecond, clock)
	for range 4 {
		_, _ = inv.Fresh(context.Background())
		clock.Step(inv.HeldBackFor())
	}
	failing = false
	if _, err := inv.Fresh(context.Background()); err != nil {
		t.Fatalf("list after the outage: %v", err)
	}
	if got := inv.HeldBackFor(); got != 0 {
		t.Fatalf("held back for %s after a success, want 0", got)
	}
	failing = true
	_, _ = inv.Fresh(context.Background())
	if got := inv.HeldBackFor(); got > backoffBase*2 {
		t.Fatalf("first failure after a success holds back %s, want the first step again", got)
	}
}

// A reader that needs a listing started after t never takes one that
// started before, even one in flight.
func TestInventorySinceNeverReturnsAnOlderListing(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	var lists atomic.Int32
	svc := KeyServiceFuncs{List: func(context.Context) ([]mobilenext.Key, error) {
		lists.Add(1)
		return nil, nil
	}}
	inv := NewInventory(svc, time.Hour, clock)
	first, err := inv.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clock.Step(time.Minute)
	l, err := inv.Since(context.Background(), first.StartedAt.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !l.StartedAt.After(first.StartedAt) || lists.Load() != 2 {
		t.Fatalf("Since returned a listing started at %s after %d calls; want a new call", l.StartedAt, lists.Load())
	}
	if _, err := inv.Get(context.Background()); err != nil || lists.Load() != 2 {
		t.Fatalf("a later Get made a call (%d in all, err %v); want the shared listing", lists.Load(), err)
	}
}

// When a backoff ends, one call probes the API; concurrent workers wait for
// its outcome instead of all calling at once.
func TestInventoryLetsOneProbeThroughAfterABackoff(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	var calls atomic.Int32
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	unavailable := &mobilenext.APIError{Method: "POST", Path: "/api/v1/keys", StatusCode: 503}
	svc := KeyServiceFuncs{
		Create: func(context.Context, string) (*mobilenext.CreatedKey, error) {
			if calls.Add(1) > 1 {
				entered <- struct{}{}
				<-release
			}
			return nil, unavailable
		},
		Delete: func(context.Context, string) error { calls.Add(1); return nil },
		List:   func(context.Context) ([]mobilenext.Key, error) { calls.Add(1); return nil, nil },
	}
	inv := NewInventory(svc, time.Nanosecond, clock)
	_, _ = inv.Create(context.Background(), "k")
	clock.Step(inv.HeldBackFor())
	done := make(chan error)
	go func() {
		_, err := inv.Create(context.Background(), "probe")
		done <- err
	}()
	<-entered
	for range 8 {
		if _, ok := heldBack(inv.Delete(context.Background(), "key_1")); !ok {
			t.Fatal("a delete went through while the probe was in flight")
		}
		if _, err := inv.Fresh(context.Background()); err == nil {
			t.Fatal("a list went through while the probe was in flight")
		}
	}
	close(release)
	<-done
	if got := calls.Load(); got != 2 {
		t.Fatalf("%d calls reached the API, want 2 (the failure and one probe)", got)
	}
}

// Asking for a listing that starts in the future gets one that starts now,
// not a call after call.
func TestInventorySinceAFutureTimeListsOnce(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	var lists atomic.Int32
	svc := KeyServiceFuncs{List: func(context.Context) ([]mobilenext.Key, error) {
		lists.Add(1)
		return nil, nil
	}}
	inv := NewInventory(svc, time.Hour, clock)
	if _, err := inv.Since(context.Background(), clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := lists.Load(); got != 1 {
		t.Fatalf("%d list calls for a listing asked from the future, want 1", got)
	}
}

// A reconcile that read its ApiKey from a cache that had not yet seen the
// finalizer released asks to delete the key again: the inventory knows it
// is gone, so the API is asked once (exactly N DELETEs for N keys).
func TestInventoryDeletesAKeyOnce(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	var deletes atomic.Int32
	svc := KeyServiceFuncs{Delete: func(context.Context, string) error {
		deletes.Add(1)
		return nil
	}}
	inv := NewInventory(svc, time.Minute, clock)
	for range 3 {
		if err := inv.Delete(context.Background(), "key_a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := inv.Delete(context.Background(), "key_b"); err != nil {
		t.Fatal(err)
	}
	if got := deletes.Load(); got != 2 {
		t.Errorf("%d DELETEs reached the API for two keys, want 2", got)
	}
}

// idsOf returns the ids of a listing, sorted.
func idsOf(l Listing) []string {
	keys := l.Keys()
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	slices.Sort(ids)
	return ids
}

// A reconcile decides on the listing it was handed: another worker's create
// or delete must not change it underneath, and must show in the listings
// handed out after it.
func TestInventoryListingsHandedOutNeverChange(t *testing.T) {
	svc := KeyServiceFuncs{
		List: func(context.Context) ([]mobilenext.Key, error) {
			return []mobilenext.Key{{ID: "key_a", Suffix: "aaaa"}, {ID: "key_b", Suffix: "bbbb"}}, nil
		},
		Create: func(_ context.Context, name string) (*mobilenext.CreatedKey, error) {
			return &mobilenext.CreatedKey{ID: "key_c", Name: name}, nil
		},
		Delete: func(context.Context, string) error { return nil },
	}
	inv := NewInventory(svc, time.Minute, clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0)))
	ctx := context.Background()
	get := func() Listing {
		t.Helper()
		l, err := inv.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	before := get()
	if _, err := inv.Create(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	afterCreate := get()
	if err := inv.Delete(ctx, "key_a"); err != nil {
		t.Fatal(err)
	}
	afterDelete := get()
	for _, tc := range []struct {
		name string
		l    Listing
		want []string
	}{
		{"handed out before the create", before, []string{"key_a", "key_b"}},
		{"handed out after the create", afterCreate, []string{"key_a", "key_b", "key_c"}},
		{"handed out after the delete", afterDelete, []string{"key_b", "key_c"}},
	} {
		if got := idsOf(tc.l); !slices.Equal(got, tc.want) {
			t.Errorf("listing %s: %v, want %v", tc.name, got, tc.want)
		}
		for _, id := range []string{"key_a", "key_b", "key_c"} {
			if _, ok := tc.l.Lookup(id); ok != slices.Contains(tc.want, id) {
				t.Errorf("listing %s: Lookup(%s) = %v, want %v", tc.name, id, ok, !ok)
			}
		}
	}
	if k, _ := afterDelete.Lookup("key_b"); k.Suffix != "bbbb" {
		t.Errorf("a listed key lost what the API said of it: %+v", k)
	}
}

// What a create or a delete costs must not grow with the organization: with
// every key copied on each change, 5,000 creates on a 5,000-key listing
// would copy 25 million keys.
func TestInventoryChangesCostTheSameWhateverTheListingsSize(t *testing.T) {
	allocs := func(listed int) float64 {
		keys := make([]mobilenext.Key, listed)
		for i := range keys {
			keys[i] = mobilenext.Key{ID: fmt.Sprintf("key_%06d", i), Suffix: "ssss"}
		}
		n := 0
		svc := KeyServiceFuncs{
			List: func(context.Context) ([]mobilenext.Key, error) { return keys, nil },
			Create: func(_ context.Context, name string) (*mobilenext.CreatedKey, error) {
				n++
				return &mobilenext.CreatedKey{ID: fmt.Sprintf("new_%06d", n), Name: name}, nil
			},
			Delete: func(context.Context, string) error { return nil },
		}
		inv := NewInventory(svc, time.Hour, clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0)))
		ctx := context.Background()
		if _, err := inv.Get(ctx); err != nil {
			t.Fatal(err)
		}
		return testing.AllocsPerRun(200, func() {
			created, err := inv.Create(ctx, "k")
			if err == nil {
				err = inv.Delete(ctx, created.ID)
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(10), allocs(50_000)
	// Map growth of the bookkeeping is amortized over the runs; a copy of
	// the listing would cost thousands of allocations per change.
	if large > small+5 {
		t.Fatalf("a create and a delete allocate %.1f times on a 50,000-key listing, %.1f on a 10-key one: "+
			"a change copies the listing", large, small)
	}
}
