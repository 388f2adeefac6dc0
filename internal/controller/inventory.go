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
	"io"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// Backoff of a connection after 429s without Retry-After and after failures
// (5xx, timeouts, dropped connections): it doubles from backoffBase up to
// backoffCap, with jitter, and is shared by every call made through the
// connection.
const (
	backoffBase = time.Second
	backoffCap  = 5 * time.Minute
)

// Listing is one connection's remote keys as last listed, by id, with the
// keys this process created or deleted since folded in. A Listing never
// changes once handed out: later local changes are seen by listings handed
// out after them.
type Listing struct {
	set *keySet
	// version is the last change of set this listing sees.
	version uint64
	// StartedAt is when the list call behind this listing was sent.
	StartedAt time.Time
}

// keySet holds the keys of one list answer and the local changes made
// after it, each stamped with the version that made it, so that a create or
// a delete costs the same however many keys the organization has: the
// listings handed out before it keep their view by their version, instead
// of each change copying every key.
type keySet struct {
	mu      sync.RWMutex
	keys    map[string]versionedKey
	version uint64
}

// versionedKey is a key with the versions that added it (0: the list
// answer) and removed it (0: not removed).
type versionedKey struct {
	key            mobilenext.Key
	added, removed uint64
}

func (k versionedKey) seenAt(version uint64) bool {
	return k.added <= version && (k.removed == 0 || k.removed > version)
}

func newKeySet(keys []mobilenext.Key) *keySet {
	s := &keySet{keys: make(map[string]versionedKey, len(keys))}
	for _, k := range keys {
		s.keys[k.ID] = versionedKey{key: k}
	}
	return s
}

// add adds a key unless it is there already, and returns the version that
// sees it.
func (s *keySet) add(k mobilenext.Key) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.keys[k.ID]; ok && old.seenAt(s.version) {
		return s.version
	}
	s.version++
	s.keys[k.ID] = versionedKey{key: k, added: s.version}
	return s.version
}

// remove removes a key if it is there, and returns the version that no
// longer sees it.
func (s *keySet) remove(id string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.keys[id]
	if !ok || !old.seenAt(s.version) {
		return s.version
	}
	s.version++
	old.removed = s.version
	s.keys[id] = old
	return s.version
}

// Lookup returns the listed key with this id.
func (l Listing) Lookup(id string) (mobilenext.Key, bool) {
	if l.set == nil {
		return mobilenext.Key{}, false
	}
	l.set.mu.RLock()
	defer l.set.mu.RUnlock()
	k, ok := l.set.keys[id]
	if !ok || !k.seenAt(l.version) {
		return mobilenext.Key{}, false
	}
	return k.key, true
}

// Len is the number of listed keys.
func (l Listing) Len() int { return len(l.Keys()) }

// Keys returns the listed keys, in no particular order.
func (l Listing) Keys() []mobilenext.Key {
	if l.set == nil {
		return nil
	}
	l.set.mu.RLock()
	defer l.set.mu.RUnlock()
	out := make([]mobilenext.Key, 0, len(l.set.keys))
	for _, k := range l.set.keys {
		if k.seenAt(l.version) {
			out = append(out, k.key)
		}
	}
	return out
}

// Inventory is the one door to a place where keys live (an API URL, an
// organization and the credentials used there). Every call to that place
// goes through it:
//
//   - Listings are shared: every ApiKey reads the same one, refreshed at most
//     once per maxAge however many reconciles ask, and concurrent reads are
//     coalesced into one call (invariant 5).
//   - Throttling and failures are shared: after a 429 (for its Retry-After,
//     or with exponential backoff without one) or a failure, every call of
//     every ApiKey and finalizer waits, so an outage costs one call per
//     backoff step, not one per ApiKey.
//   - Keys this process creates or deletes are folded into listings at
//     once, so a listing taken before a create does not make a fresh key
//     look revoked.
type Inventory struct {
	svc    KeyService
	maxAge time.Duration
	clock  clock.PassiveClock
	// entropy gives the backoff its jitter; crypto/rand when nil.
	entropy io.Reader

	mu       sync.Mutex
	listing  *Listing
	inflight *listCall
	created  map[string]localChange
	deleted  map[string]time.Time

	// notBefore holds every call back; failures counts the failed calls
	// since the last answer, for the exponential backoff.
	notBefore time.Time
	failures  int
	lastErr   error
	// probing is set while the one call allowed after a failure is in
	// flight: concurrent workers wait for its outcome instead of all
	// calling the API the moment the backoff ends.
	probing bool
}

type localChange struct {
	key mobilenext.Key
	at  time.Time
}

// listCall is a list call in flight that other readers may join.
type listCall struct {
	started time.Time
	done    chan struct{}
	listing Listing
	err     error
}

// NewInventory returns an empty inventory over svc.
func NewInventory(svc KeyService, maxAge time.Duration, clk clock.PassiveClock) *Inventory {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Inventory{
		svc:     svc,
		maxAge:  maxAge,
		clock:   clk,
		created: map[string]localChange{},
		deleted: map[string]time.Time{},
	}
}

// Get returns a listing no older than the inventory's maxAge, listing the
// remote keys only when the last listing is too old.
func (i *Inventory) Get(ctx context.Context) (Listing, error) {
	// A listing exactly maxAge old is too old.
	return i.Since(ctx, i.clock.Now().Add(-i.maxAge+1))
}

// Fresh returns a listing started no earlier than now. Crash recovery uses
// it, since it must see keys created after the last listing.
func (i *Inventory) Fresh(ctx context.Context) (Listing, error) {
	return i.Since(ctx, i.clock.Now())
}

// Since returns a listing whose call started at or after t: the last one if
// it is recent enough, the call in flight if it started late enough, or a
// new call that later readers may join.
func (i *Inventory) Since(ctx context.Context, t time.Time) (Listing, error) {
	// No listing can start later than now: asking for one would only
	// make call after call.
	if now := i.clock.Now(); t.After(now) {
		t = now
	}
	for {
		i.mu.Lock()
		if l := i.listing; l != nil && !l.StartedAt.Before(t) {
			i.mu.Unlock()
			return *l, nil
		}
		c := i.inflight
		if c == nil {
			if err := i.admitLocked(); err != nil {
				i.mu.Unlock()
				return Listing{}, err
			}
			c = &listCall{started: i.clock.Now(), done: make(chan struct{})}
			i.inflight = c
			// The shared call must not be cancelled by whichever reconcile
			// happened to start it; the client bounds it with its own timeout.
			go i.runList(context.WithoutCancel(ctx), c)
		}
		i.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return Listing{}, ctx.Err()
		}
		if c.err != nil {
			// A failed listing is shared too: its readers all get the error,
			// and the backoff it started holds back the next call.
			return Listing{}, c.err
		}
		if !c.started.Before(t) {
			return c.listing, nil
		}
		// That call started too early for this reader: go round for a new one.
	}
}

func (i *Inventory) runList(ctx context.Context, c *listCall) {
	keys, err := i.svc.ListKeys(ctx)
	i.mu.Lock()
	defer i.mu.Unlock()
	defer close(c.done)
	i.inflight = nil
	i.recordLocked(err)
	if err != nil {
		c.err = err
		return
	}
	set := newKeySet(keys)
	// Fold in what this process changed while the call was in flight; older
	// local changes are already reflected by the API. Nobody sees this set
	// yet: it is changed in place.
	for id, ch := range i.created {
		if ch.at.Before(c.started) {
			delete(i.created, id)
			continue
		}
		if _, ok := set.keys[id]; !ok {
			set.keys[id] = versionedKey{key: ch.key}
		}
	}
	for id, at := range i.deleted {
		if at.Before(c.started) {
			delete(i.deleted, id)
			continue
		}
		delete(set.keys, id)
	}
	l := Listing{set: set, StartedAt: c.started}
	if i.listing == nil || !c.started.Before(i.listing.StartedAt) {
		i.listing = &l
	}
	c.listing = l
}

// Create creates a key, unless the connection is held back.
func (i *Inventory) Create(ctx context.Context, name string) (*mobilenext.CreatedKey, error) {
	if err := i.admit(); err != nil {
		return nil, err
	}
	created, err := i.svc.CreateKey(ctx, name)
	i.record(err)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	k := mobilenext.Key{ID: created.ID, Name: created.Name, CreatedAt: created.CreatedAt}
	i.created[k.ID] = localChange{key: k, at: i.clock.Now()}
	if i.listing != nil {
		i.listing.version = i.listing.set.add(k)
	}
	return created, nil
}

// Delete deletes a key, unless the connection is held back. A key already
// gone (404) counts as deleted.
func (i *Inventory) Delete(ctx context.Context, id string) error {
	i.mu.Lock()
	_, gone := i.deleted[id]
	i.mu.Unlock()
	if gone {
		// This process deleted it already, and ids are never reused: a
		// reconcile that read its ApiKey before that was seen need not ask
		// again.
		return nil
	}
	if err := i.admit(); err != nil {
		return err
	}
	err := i.svc.DeleteKey(ctx, id)
	i.record(err)
	if err != nil && !mobilenext.IsNotFound(err) {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.deleted[id] = i.clock.Now()
	delete(i.created, id)
	if i.listing != nil {
		i.listing.version = i.listing.set.remove(id)
	}
	return nil
}

// HeldBackFor is how long calls through this inventory must still wait.
func (i *Inventory) HeldBackFor() time.Duration {
	i.mu.Lock()
	defer i.mu.Unlock()
	return max(i.notBefore.Sub(i.clock.Now()), 0)
}

func (i *Inventory) admit() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.admitLocked()
}

func (i *Inventory) admitLocked() error {
	if d := i.notBefore.Sub(i.clock.Now()); d > 0 {
		return &heldBackError{wait: d, cause: i.lastErr}
	}
	if i.failures > 0 {
		if i.probing {
			return &heldBackError{wait: backoffBase, cause: i.lastErr}
		}
		i.probing = true
	}
	return nil
}

func (i *Inventory) record(err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.recordLocked(err)
}

// recordLocked updates the shared backoff with the outcome of a call. Any
// answer of the API but a 429 or a 5xx shows that it is there again.
func (i *Inventory) recordLocked(err error) {
	i.probing = false
	var hold time.Duration
	switch mobilenext.Classify(err) {
	case mobilenext.ClassThrottled:
		i.failures++
		hold = mobilenext.RetryAfter(err)
		if hold <= 0 {
			hold = backoffStep(i.failures, i.entropy)
		}
	case mobilenext.ClassTransient:
		i.failures++
		hold = backoffStep(i.failures, i.entropy)
	default:
		i.failures, i.lastErr = 0, nil
		return
	}
	i.lastErr = err
	if until := i.clock.Now().Add(hold); until.After(i.notBefore) {
		i.notBefore = until
	}
}

// backoffStep is the wait after the n-th failure in a row: backoffBase
// doubled n-1 times, capped, with up to 20% jitter so that connections that
// failed together do not retry together.
func backoffStep(n int, src io.Reader) time.Duration {
	d := backoffBase
	for range n - 1 {
		if d >= backoffCap {
			break
		}
		d *= 2
	}
	return jitter(src, min(d, backoffCap), 0.2)
}

// heldBackError is returned without calling the API while a connection is
// held back by an earlier 429 or failure.
type heldBackError struct {
	wait  time.Duration
	cause error
}

func (e *heldBackError) Error() string {
	msg := "calls to the API are held back for " + e.wait.Round(time.Second).String()
	if e.cause != nil {
		msg += " after: " + e.cause.Error()
	}
	return msg
}

// heldBack reports how long an error says to wait, if it is a heldBackError.
func heldBack(err error) (time.Duration, bool) {
	if h, ok := errors.AsType[*heldBackError](err); ok {
		return h.wait, true
	}
	return 0, false
}
