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
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// ConnectionKey identifies a Connection or ClusterConnection.
type ConnectionKey struct {
	Kind      string
	Namespace string
	Name      string
}

// String is Kind/name or Kind/namespace/name, as shown in status and events.
func (k ConnectionKey) String() string {
	if k.Namespace == "" {
		return k.Kind + "/" + k.Name
	}
	return k.Kind + "/" + k.Namespace + "/" + k.Name
}

// connectionKeyFor is the connection an ApiKey refers to, defaults applied.
func connectionKeyFor(key *iamv1alpha1.ApiKey) ConnectionKey {
	ref := key.Spec.ConnectionRef
	kind, name := ref.Kind, ref.Name
	if kind == "" {
		kind = iamv1alpha1.ClusterConnectionKind
	}
	if name == "" {
		name = "default"
	}
	if kind == iamv1alpha1.ConnectionKind {
		return ConnectionKey{Kind: kind, Namespace: key.Namespace, Name: name}
	}
	return ConnectionKey{Kind: kind, Name: name}
}

// ConnectionState is what the connection reconcilers learnt about one
// connection, shared in memory with the ApiKey reconciler.
type ConnectionState struct {
	Ready   bool
	Reason  string
	Message string
	// Inventory lists and caches the connection's keys; nil until the
	// credentials could be read.
	Inventory *Inventory
	// Location is where keys created through the connection live.
	Location iamv1alpha1.KeyLocation

	// cfg reaches the connection's API with its credentials; with another
	// organization id it reaches the keys of that organization.
	cfg         mobilenext.Config
	fingerprint string
}

// Connections is the in-memory registry of checked connections, and of the
// inventories of every place keys live. The ApiKey reconciler never reads a
// token itself: it asks this registry.
type Connections struct {
	options ConnectionOptions

	mu     sync.RWMutex
	states map[ConnectionKey]*ConnectionState
	places map[string]*place

	// Recheck receives a connection whose credentials the API refused while
	// an ApiKey used them, so that its reconciler checks it again now.
	recheckConnection        chan event.GenericEvent
	recheckClusterConnection chan event.GenericEvent
}

// place is the inventory of one API URL, organization and set of
// credentials, with when it was last asked for.
type place struct {
	inv      *Inventory
	lastUsed time.Time
}

// placeIdleTTL is how long an inventory nobody asked for is kept: old tokens
// and organizations do not pile up in memory.
const placeIdleTTL = time.Hour

// NewConnections returns an empty registry whose inventories list at most
// once per opts.SyncPeriod and are built with opts.NewClient.
func NewConnections(opts ConnectionOptions) *Connections {
	return &Connections{
		options:                  opts.withDefaults(),
		states:                   map[ConnectionKey]*ConnectionState{},
		places:                   map[string]*place{},
		recheckConnection:        make(chan event.GenericEvent, 64),
		recheckClusterConnection: make(chan event.GenericEvent, 64),
	}
}

// inventory returns the one inventory of the place cfg reaches, so that
// every connection and every ApiKey that reaches the same place shares its
// listing, its throttling and its backoff.
func (c *Connections) inventory(cfg mobilenext.Config, via ConnectionKey) (*Inventory, error) {
	sum := sha256.Sum256([]byte(cfg.URL + "\x00" + cfg.OrganizationID + "\x00" + cfg.Token.Reveal()))
	id := hex.EncodeToString(sum[:])
	now := c.options.Clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.places[id]; ok {
		p.lastUsed = now
		return p.inv, nil
	}
	if cfg.WrapTransport == nil {
		cfg.WrapTransport = instrumentTransport(via.String())
	}
	svc, err := c.options.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	for k, p := range c.places {
		if now.Sub(p.lastUsed) > placeIdleTTL {
			delete(c.places, k)
		}
	}
	inv := NewInventory(svc, c.options.SyncPeriod, c.options.Clock)
	inv.entropy = c.options.Entropy
	c.places[id] = &place{inv: inv, lastUsed: now}
	return inv, nil
}

// Reach returns the inventory that reaches loc through one of the given
// connections: one whose own location is loc first, else one of the same
// API whose credentials can name loc's organization (or, for a default
// organization, belong to the same user). ok is false when none can.
func (c *Connections) Reach(loc iamv1alpha1.KeyLocation, candidates []ConnectionKey) (*Inventory, ConnectionKey, bool) {
	var fallback *ConnectionState
	var fallbackKey ConnectionKey
	for _, k := range candidates {
		s, ok := c.Get(k)
		if !ok || !s.Ready || s.Inventory == nil || s.Location.URL != loc.URL {
			continue
		}
		if s.Location == loc {
			return s.Inventory, k, true
		}
		if fallback != nil {
			continue
		}
		if loc.OrganizationID != "" || (loc.Subject != "" && s.Location.Subject == loc.Subject) {
			fallback, fallbackKey = &s, k
		}
	}
	if fallback == nil {
		return nil, ConnectionKey{}, false
	}
	cfg := fallback.cfg
	cfg.OrganizationID = loc.OrganizationID
	inv, err := c.inventory(cfg, fallbackKey)
	if err != nil {
		return nil, ConnectionKey{}, false
	}
	return inv, fallbackKey, true
}

// Get returns the state of a connection, if it was checked.
func (c *Connections) Get(key ConnectionKey) (ConnectionState, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.states[key]
	if !ok {
		return ConnectionState{}, false
	}
	return *s, true
}

func (c *Connections) set(key ConnectionKey, s ConnectionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states[key] = &s
}

func (c *Connections) forget(key ConnectionKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.states, key)
}

// ReportUnauthorized marks a connection not Ready after the API answered 401
// to one of its calls, and asks its reconciler to check it again.
func (c *Connections) ReportUnauthorized(key ConnectionKey, message string) {
	c.mu.Lock()
	if s, ok := c.states[key]; ok {
		s.Ready = false
		s.Reason = iamv1alpha1.ReasonUnauthorized
		s.Message = message
	}
	c.mu.Unlock()

	var obj client.Object
	ch := c.recheckClusterConnection
	if key.Kind == iamv1alpha1.ConnectionKind {
		obj = &iamv1alpha1.Connection{}
		ch = c.recheckConnection
	} else {
		obj = &iamv1alpha1.ClusterConnection{}
	}
	obj.SetNamespace(key.Namespace)
	obj.SetName(key.Name)
	select {
	case ch <- event.GenericEvent{Object: obj}:
	default:
		// A full queue already holds rechecks; the periodic check catches up.
	}
}
