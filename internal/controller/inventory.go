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
	"maps"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// Listing is one connection's remote keys as last listed, by id.
type Listing struct {
	keys map[string]mobilenext.Key
	// StartedAt is when the list call behind this listing was sent.
	StartedAt time.Time
}

// Lookup returns the listed key with this id.
func (l Listing) Lookup(id string) (mobilenext.Key, bool) {
	k, ok := l.keys[id]
	return k, ok
}

// Len is the number of listed keys.
func (l Listing) Len() int { return len(l.keys) }

// Inventory is the shared view of one connection's remote keys. Every ApiKey
// on the connection reads the same listing, which is refreshed at most once
// per maxAge however many reconciles ask for it, and concurrent refreshes are
// coalesced into one call (invariant 5: one GET per connection per sync
// period, not one per ApiKey).
//
// Keys this process creates or deletes are folded into the listing at once,
// so a listing taken before a create does not make a fresh key look revoked.
type Inventory struct {
	svc    KeyService
	maxAge time.Duration
	now    func() time.Time

	flight singleflight.Group

	mu        sync.Mutex
	listing   *Listing
	created   map[string]localChange
	deleted   map[string]time.Time
	notBefore time.Time
	lastErr   error
}

type localChange struct {
	key mobilenext.Key
	at  time.Time
}

// NewInventory returns an empty inventory over svc.
func NewInventory(svc KeyService, maxAge time.Duration, now func() time.Time) *Inventory {
	if now == nil {
		now = time.Now
	}
	return &Inventory{
		svc:     svc,
		maxAge:  maxAge,
		now:     now,
		created: map[string]localChange{},
		deleted: map[string]time.Time{},
	}
}

// Service is the client the inventory lists with.
func (i *Inventory) Service() KeyService { return i.svc }

// Get returns a listing no older than the inventory's maxAge, listing the
// remote keys only when the last listing is too old.
func (i *Inventory) Get(ctx context.Context) (Listing, error) {
	return i.get(ctx, i.maxAge)
}

// Fresh returns a listing started no earlier than now: it never reuses a
// listing or joins a call already in flight. Crash recovery uses it, since it
// must see keys created after the last listing.
func (i *Inventory) Fresh(ctx context.Context) (Listing, error) {
	if wait := i.ThrottledFor(); wait > 0 {
		return Listing{}, &throttledError{wait: wait}
	}
	return i.list(ctx)
}

func (i *Inventory) get(ctx context.Context, maxAge time.Duration) (Listing, error) {
	i.mu.Lock()
	if l := i.listing; l != nil && i.now().Sub(l.StartedAt) < maxAge {
		i.mu.Unlock()
		return *l, nil
	}
	i.mu.Unlock()
	if wait := i.ThrottledFor(); wait > 0 {
		return Listing{}, &throttledError{wait: wait}
	}
	// The shared call must not be cancelled by whichever reconcile happened to
	// start it; it has its own timeout in the client.
	ch := i.flight.DoChan("list", func() (any, error) {
		return i.list(context.WithoutCancel(ctx))
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Listing{}, res.Err
		}
		return res.Val.(Listing), nil
	case <-ctx.Done():
		return Listing{}, ctx.Err()
	}
}

func (i *Inventory) list(ctx context.Context) (Listing, error) {
	started := i.now()
	keys, err := i.svc.ListKeys(ctx)
	i.mu.Lock()
	defer i.mu.Unlock()
	if err != nil {
		i.noteErrorLocked(err)
		return Listing{}, err
	}
	i.lastErr = nil
	l := Listing{keys: make(map[string]mobilenext.Key, len(keys)), StartedAt: started}
	for _, k := range keys {
		l.keys[k.ID] = k
	}
	// Fold in what this process changed while the call was in flight; older
	// local changes are already reflected by the API.
	for id, c := range i.created {
		if c.at.Before(started) {
			delete(i.created, id)
			continue
		}
		if _, ok := l.keys[id]; !ok {
			l.keys[id] = c.key
		}
	}
	for id, at := range i.deleted {
		if at.Before(started) {
			delete(i.deleted, id)
			continue
		}
		delete(l.keys, id)
	}
	if i.listing == nil || !started.Before(i.listing.StartedAt) {
		i.listing = &l
	}
	return l, nil
}

// Created records a key this process just created.
func (i *Inventory) Created(k mobilenext.Key) {
	i.mu.Lock()
	defer i.mu.Unlock()
	at := i.now()
	i.created[k.ID] = localChange{key: k, at: at}
	if i.listing != nil {
		i.listing.keys = cloneKeys(i.listing.keys)
		i.listing.keys[k.ID] = k
	}
}

// Deleted records a key this process just deleted (or found gone).
func (i *Inventory) Deleted(id string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.deleted[id] = i.now()
	delete(i.created, id)
	if i.listing != nil {
		if _, ok := i.listing.keys[id]; ok {
			i.listing.keys = cloneKeys(i.listing.keys)
			delete(i.listing.keys, id)
		}
	}
}

// NoteError records the outcome of a call made with the inventory's client,
// so that a 429 holds back every ApiKey of the connection, not just the one
// that got it.
func (i *Inventory) NoteError(err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.noteErrorLocked(err)
}

func (i *Inventory) noteErrorLocked(err error) {
	i.lastErr = err
	if mobilenext.IsThrottled(err) {
		wait := max(mobilenext.RetryAfter(err), time.Second)
		if until := i.now().Add(wait); until.After(i.notBefore) {
			i.notBefore = until
		}
	}
}

// ThrottledFor is how long calls on this connection must still wait after a 429.
func (i *Inventory) ThrottledFor() time.Duration {
	i.mu.Lock()
	defer i.mu.Unlock()
	if d := i.notBefore.Sub(i.now()); d > 0 {
		return d
	}
	return 0
}

func cloneKeys(m map[string]mobilenext.Key) map[string]mobilenext.Key {
	out := make(map[string]mobilenext.Key, len(m)+1)
	maps.Copy(out, m)
	return out
}

// throttledError is returned without calling the API while a connection is
// held back by an earlier 429.
type throttledError struct{ wait time.Duration }

func (e *throttledError) Error() string {
	return "the API asked to slow down; waiting " + e.wait.Round(time.Second).String() + " before the next call"
}

// Keys returns the listed keys, in no particular order.
func (l Listing) Keys() []mobilenext.Key {
	out := make([]mobilenext.Key, 0, len(l.keys))
	for _, k := range l.keys {
		out = append(out, k)
	}
	return out
}
