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

package sim

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/controller"
)

// process is one run of the operator, from start to crash: everything it
// holds in memory (the connection registry and its inventories, the work
// queues, the cache) goes with it.
type process struct {
	dead bool
	// crashIn counts the writes and API calls left before the crash point;
	// negative when no crash is armed.
	crashIn int
	cache   *cache
	queues  []*queue
	// client is the operator's client: reads from cache.
	client client.Client
}

// queue is a controller's work queue: requests by when they are due, and
// the failures of each, for the exponential backoff of failed reconciles.
type queue struct {
	name      string
	reconcile reconcile.Reconciler
	due       map[reconcile.Request]time.Time
	failures  map[reconcile.Request]int
	// base and limit bound the backoff of a failing request, as the
	// controller's rate limiter does.
	base, limit time.Duration
}

func newQueue(name string, r reconcile.Reconciler, base, limit time.Duration) *queue {
	return &queue{
		name: name, reconcile: r,
		due: map[reconcile.Request]time.Time{}, failures: map[reconcile.Request]int{},
		base: base, limit: limit,
	}
}

// add makes a request due at t, unless it is due earlier already: the
// queue holds each request once.
func (q *queue) add(req reconcile.Request, t time.Time) {
	if cur, ok := q.due[req]; ok && !t.Before(cur) {
		return
	}
	q.due[req] = t
}

func (q *queue) backoff(req reconcile.Request) time.Duration {
	n := q.failures[req]
	q.failures[req] = n + 1
	d := q.base
	for range n {
		if d >= q.limit {
			break
		}
		d *= 2
	}
	return min(d, q.limit)
}

// connBackoffBase and connBackoffLimit bound the backoff of the connection
// controllers' queues: the exponential part of controller-runtime's
// default rate limiter.
const (
	connBackoffBase  = 5 * time.Millisecond
	connBackoffLimit = 1000 * time.Second
)

const (
	apiKeyQueue = iota
	connectionQueue
	clusterConnectionQueue
)

// start runs a new operator process: reconcilers constructed as
// SetupWithManager does, a cache filled from the store, and every cached
// object queued, as the informers' initial lists do.
func (w *World) start() {
	p := &process{crashIn: -1, cache: newCache(w.scheme)}
	w.syncedAt = -1
	c := w.operatorClient(p)
	p.client = c
	reader := w.apiReader(p)
	connOpts := controller.ConnectionOptions{
		SyncPeriod:              syncPeriod,
		CredentialsPollInterval: credentialsPollInterval,
		NewClient:               w.newClientFactory(p),
		Clock:                   w.clock,
		Entropy:                 w.entropy,
	}
	conns := controller.NewConnections(connOpts)
	apiKeys := &controller.ApiKeyReconciler{
		Client:      c,
		APIReader:   reader,
		Recorder:    &recorder{w: w},
		Connections: conns,
		Options:     controller.ApiKeyOptions{SyncPeriod: syncPeriod, Clock: w.clock, Entropy: w.entropy},
	}
	connections := controller.NewConnectionReconciler(c, reader, conns, connOpts)
	clusterConnections := controller.NewClusterConnectionReconciler(c, reader, conns, connOpts)
	p.queues = []*queue{
		apiKeyQueue:            newQueue("apikey", apiKeys, time.Second, 5*time.Minute),
		connectionQueue:        newQueue("connection", connections, connBackoffBase, connBackoffLimit),
		clusterConnectionQueue: newQueue("clusterconnection", clusterConnections, connBackoffBase, connBackoffLimit),
	}
	w.proc = p
	w.syncCache(true, false)
}

// syncCache brings the cache up to date (all kinds, or one at random) and
// delivers the changes to the queues; with drop, the seed may lose some.
func (w *World) syncCache(all, drop bool) {
	p := w.proc
	kinds := cachedKinds
	if !all {
		kinds = []cachedKind{cachedKinds[w.rng.IntN(len(cachedKinds))]}
	} else {
		if w.syncedAt == w.writes {
			return
		}
		w.syncedAt = w.writes
	}
	for _, kind := range kinds {
		changes, err := p.cache.sync(context.Background(), w.store, kind)
		if err != nil {
			w.violatef("simulator: sync %s: %v", kind.name, err)
			return
		}
		w.stats.NoopWrites += p.cache.noops
		p.cache.noops = 0
		for _, ch := range changes {
			if drop && w.fault(faultEventDropped) {
				w.tracef("  fault %s: %s", faultEventDropped, ch.key)
				continue
			}
			w.deliver(ch)
		}
	}
}

// deliver maps one observed change to requests, with the watches and
// predicates of the reconcilers' SetupWithManager.
func (w *World) deliver(ch change) {
	p, now := w.proc, w.clock.Now()
	obj := ch.new
	if obj == nil {
		obj = ch.old
	}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}}
	switch ch.key.kind {
	case apiKeyKind:
		// For(ApiKey) with GenerationChanged or AnnotationChanged; the
		// API server bumps the generation when deletion starts.
		if ch.old == nil || ch.new == nil || ch.old.GetGeneration() != ch.new.GetGeneration() ||
			!equalMaps(ch.old.GetAnnotations(), ch.new.GetAnnotations()) ||
			ch.old.GetDeletionTimestamp().IsZero() != ch.new.GetDeletionTimestamp().IsZero() {
			p.queues[apiKeyQueue].add(req, now)
		}
		// The connections' watches of ApiKeys (dependentsChanged), mapped
		// from the old and the new object as for an update event.
		if ch.old != nil && (ch.new == nil || dependentsChanged(ch.old.(*iamv1alpha1.ApiKey), ch.new.(*iamv1alpha1.ApiKey))) {
			for _, o := range []client.Object{ch.old, ch.new} {
				if o == nil {
					continue
				}
				for _, ck := range controller.ReleasableConnections(context.Background(), p.client, o.(*iamv1alpha1.ApiKey)) {
					q := connectionQueue
					if ck.Kind == iamv1alpha1.ClusterConnectionKind {
						q = clusterConnectionQueue
					}
					nn := types.NamespacedName{Namespace: ck.Namespace, Name: ck.Name}
					p.queues[q].add(reconcile.Request{NamespacedName: nn}, now)
				}
			}
		}
	case secretKind:
		// Owns(Secret): the controlling ApiKey.
		if ref := metav1.GetControllerOf(obj); ref != nil && ref.Kind == apiKeyKind {
			owner := types.NamespacedName{Namespace: obj.GetNamespace(), Name: ref.Name}
			p.queues[apiKeyQueue].add(reconcile.Request{NamespacedName: owner}, now)
		}
	case iamv1alpha1.ConnectionKind, iamv1alpha1.ClusterConnectionKind:
		q, kind := connectionQueue, iamv1alpha1.ConnectionKind
		if ch.key.kind == iamv1alpha1.ClusterConnectionKind {
			q, kind = clusterConnectionQueue, iamv1alpha1.ClusterConnectionKind
		}
		p.queues[q].add(req, now)
		if ch.old == nil || ch.new == nil || readiness(ch.old) != readiness(ch.new) ||
			ch.old.GetGeneration() != ch.new.GetGeneration() {
			ck := controller.ConnectionKey{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
			var keys iamv1alpha1.ApiKeyList
			_ = p.cache.list(apiKeyKind, &keys, client.MatchingFields{controller.ConnectionIndexName: ck.String()})
			for _, k := range keys.Items {
				p.queues[apiKeyQueue].add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&k)}, now)
			}
		}
	}
}

// dependentsChanged is the predicate of the connections' ApiKey watch.
func dependentsChanged(old, new *iamv1alpha1.ApiKey) bool {
	if new == nil {
		return true
	}
	if controllerutil.ContainsFinalizer(old, iamv1alpha1.Finalizer) &&
		!controllerutil.ContainsFinalizer(new, iamv1alpha1.Finalizer) {
		return true
	}
	needed := controller.ApiKeyFieldIndexes()[controller.ClusterConnectionUsersIndexName]
	return !slices.Equal(needed(old), needed(new))
}

func readiness(o client.Object) string {
	var conds []metav1.Condition
	switch c := o.(type) {
	case *iamv1alpha1.Connection:
		conds = c.Status.Conditions
	case *iamv1alpha1.ClusterConnection:
		conds = c.Status.Conditions
	}
	if c := meta.FindStatusCondition(conds, iamv1alpha1.ConditionReady); c != nil {
		return string(c.Status) + "/" + c.Reason
	}
	return ""
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// resync queues every cached object, as an informer's periodic resync does:
// what a lost event left undone is picked up here at the latest.
func (w *World) resync() {
	p, now := w.proc, w.clock.Now()
	keys := make([]objKey, 0, len(p.cache.objs))
	for k := range p.cache.objs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b objKey) int { return strings.Compare(a.String(), b.String()) })
	for _, k := range keys {
		obj := p.cache.objs[k]
		if k.kind == namespaceKind {
			continue
		}
		w.deliver(change{key: k, new: obj})
	}
	w.nextResync = now.Add(resyncPeriod)
}

// work is one due request of one queue.
type work struct {
	q   *queue
	req reconcile.Request
}

// dueWork lists the requests due now, in a fixed order.
func (w *World) dueWork() []work {
	now := w.clock.Now()
	queued := 0
	for _, q := range w.proc.queues {
		queued += len(q.due)
	}
	out := make([]work, 0, queued)
	for _, q := range w.proc.queues {
		var reqs []reconcile.Request
		for req, t := range q.due {
			if !t.After(now) {
				reqs = append(reqs, req)
			}
		}
		slices.SortFunc(reqs, func(a, b reconcile.Request) int { return strings.Compare(a.String(), b.String()) })
		for _, r := range reqs {
			out = append(out, work{q, r})
		}
	}
	return out
}

// nextDue is the earliest time something is due: a queued request, a late
// create the server commits, or the resync.
func (w *World) nextDue() time.Time {
	next := w.nextResync
	for _, q := range w.proc.queues {
		for _, t := range q.due {
			if t.Before(next) {
				next = t
			}
		}
	}
	for _, l := range w.late {
		if l.due.Before(next) {
			next = l.due
		}
	}
	return next
}

// runReconcile runs one reconcile of a due request and queues it again as
// the controller would: with backoff after an error, after RequeueAfter,
// or not at all.
func (w *World) runReconcile(wk work) {
	q, req := wk.q, wk.req
	delete(q.due, req)
	if w.roll(faultCrash) {
		w.proc.crashIn = 1 + w.rng.IntN(6)
	}
	w.stats.Reconciles++
	w.tracef("reconcile %s %s", q.name, req)
	res, err := q.reconcile.Reconcile(w.ctx, req)
	if w.proc.dead {
		w.restart()
		return
	}
	w.proc.crashIn = -1
	now := w.clock.Now()
	switch {
	case err != nil:
		w.scan("reconcile error", err.Error())
		d := q.backoff(req)
		w.tracef("  → error (retry in %s): %v", d, err)
		q.add(req, now.Add(d))
	case res.RequeueAfter > 0:
		delete(q.failures, req)
		d := res.RequeueAfter
		w.tracef("  → requeue after %s", d)
		q.add(req, now.Add(d))
	default:
		delete(q.failures, req)
		w.tracef("  → done")
	}
}

// restart replaces a crashed process with a new one.
func (w *World) restart() {
	w.stats.Restarts++
	w.tracef("operator restarts: memory, queues and cache rebuilt from the store")
	w.start()
}

// crashPoint is called before every write and API call of the operator. It
// reports an error when the process is dead or crashes before the call, and
// after=true when it crashes right after it (the call takes effect, its
// answer is lost with the process).
func (w *World) crashPoint(p *process, what string) (after bool, err error) {
	if p.dead {
		return false, errDead
	}
	if p.crashIn < 0 {
		return false, nil
	}
	p.crashIn--
	if p.crashIn > 0 {
		return false, nil
	}
	p.crashIn = -1
	if w.rng.IntN(2) == 0 {
		w.tracef("  crash before %s", what)
		return false, w.crashNow(p)
	}
	w.tracef("  crash right after %s", what)
	return true, nil
}

func (w *World) crashNow(p *process) error {
	p.dead = true
	w.stats.Faults[faultCrash]++
	w.note(faultCrash, "in a reconcile")
	return errDead
}

// recorder collects the operator's events for the checks and the trace.
type recorder struct{ w *World }

func (r *recorder) Eventf(regarding runtime.Object, _ runtime.Object,
	eventtype, reason, action, note string, args ...any) {
	msg := fmt.Sprintf(note, args...)
	name := ""
	if o, ok := regarding.(client.Object); ok {
		name = o.GetNamespace() + "/" + o.GetName()
	}
	r.w.tracef("  event %s %s %s: %s", eventtype, reason, name, msg)
	r.w.scan("event", reason+" "+action+" "+msg)
}

func (r *recorder) AnnotatedEventf(regarding, related runtime.Object, _ map[string]string,
	eventtype, reason, action, note string, args ...any) {
	r.Eventf(regarding, related, eventtype, reason, action, note, args...)
}
