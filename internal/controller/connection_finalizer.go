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

// Deleting a namespace deletes everything in it at once: the ApiKeys, their
// Connection and its credentials Secret. An ApiKey's finalizer deletes its
// remote keys through a connection, so connections and their credentials
// Secrets are kept while an ApiKey may still need them, as Kubernetes keeps a
// PersistentVolumeClaim that a pod still uses. The rules:
//
//   - Every Connection and ClusterConnection carries InUseFinalizer. Once its
//     deletion is requested it is released, and loses the finalizer, when no
//     ApiKey carrying the ApiKey Finalizer needs it any more. For a
//     Connection that is any such ApiKey of its namespace (an ApiKey may need
//     any Connection of its namespace to reach where its older keys live).
//     For a ClusterConnection it is any such ApiKey that refers to it by
//     spec.connectionRef or by status.connection. Until it is released, a
//     connection being deleted is checked exactly as before, so that the
//     finalizers of its ApiKeys can still use it.
//   - The credentials Secret of every connection that is not released
//     carries CredentialsInUseFinalizer. A connection records the Secret in
//     status.heldCredentialsSecrets before it puts the finalizer on it, and
//     drops the record only after it has decided about the finalizer; only a
//     connection carrying InUseFinalizer records anything, so no record
//     vanishes with its connection before it was handled. A Secret therefore
//     never keeps the finalizer once no connection records it, which would
//     block the deletion of its namespace forever.
//   - A Secret is released (its connection is released, or now uses another
//     Secret) in two steps: its record is first marked released, then the
//     finalizer is removed unless another connection records the Secret
//     without the mark, as read from the API server rather than the cache.
//     Of two connections releasing one Secret at once, the one that reads
//     last sees the other's mark, so the finalizer is never left to each
//     other.
//
// ApiKeys are watched so that a connection being deleted is reconciled, and
// can be released, when the ApiKeys that kept it go away. A connection that
// is not being deleted keeps its finalizer whatever its ApiKeys do, so their
// events are no work of its: deleting 5,000 ApiKeys does not check their
// connection 5,000 times.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// clusterConnectionUsersIndex indexes ApiKeys by the ClusterConnections they
// may need for their finalizer, as ConnectionKey strings.
const clusterConnectionUsersIndex = ".clusterConnectionUsers"

// deletingPrefix starts the Ready message of a connection kept while
// ApiKeys still need it.
const deletingPrefix = "being deleted, kept until "

// protection is what keeps a connection, as one reconcile saw it.
type protection struct {
	// deleting is true once the connection's deletion was requested.
	deleting bool
	// dependents are the ApiKeys (namespace/name) that may still need it;
	// only listed while it is being deleted.
	dependents []string
}

// released reports whether the connection is being deleted and nothing keeps
// it any more.
func (p protection) released() bool {
	return p.deleting && len(p.dependents) == 0
}

// protect keeps a connection and its credentials Secret, or releases them;
// see the comment at the top of this file. secret is the credentials Secret
// the connection's spec names. When the result says released, the connection
// let go of everything and is not to be checked any more.
func (c *connectionChecker) protect(ctx context.Context, key ConnectionKey, obj client.Object, secret types.NamespacedName, status *iamv1alpha1.ConnectionStatus) (protection, error) {
	p := protection{deleting: !obj.GetDeletionTimestamp().IsZero()}
	if p.deleting {
		// Only a connection being deleted is released when they are gone.
		var err error
		if p.dependents, err = c.dependents(ctx, key); err != nil {
			return p, err
		}
	} else {
		if err := c.setInUse(ctx, obj, true); err != nil {
			return p, err
		}
	}
	// A connection deleted before it got its finalizer may vanish at any
	// moment: it must not hold a Secret, for nothing would release it.
	holds := controllerutil.ContainsFinalizer(obj, iamv1alpha1.InUseFinalizer) && !p.released() && secret.Namespace != "" && secret.Name != ""
	if holds {
		if err := c.holdSecret(ctx, obj, status, secret); err != nil {
			return p, err
		}
	}
	for _, held := range slices.Clone(status.HeldCredentialsSecrets) {
		ref := types.NamespacedName{Namespace: held.Namespace, Name: held.Name}
		if holds && ref == secret {
			continue
		}
		if err := c.releaseSecret(ctx, key, obj, status, ref); err != nil {
			return p, err
		}
	}
	if p.released() {
		if err := c.setInUse(ctx, obj, false); err != nil {
			return p, err
		}
		logf.FromContext(ctx).Info("released the connection: no ApiKey needs it any more", "connection", key.String())
	}
	return p, nil
}

// dependents lists the ApiKeys that may still need a connection for their
// finalizer, from the cache.
func (c *connectionChecker) dependents(ctx context.Context, key ConnectionKey) ([]string, error) {
	var keys iamv1alpha1.ApiKeyList
	var opt client.ListOption = client.InNamespace(key.Namespace)
	if key.Kind == iamv1alpha1.ClusterConnectionKind {
		opt = client.MatchingFields{clusterConnectionUsersIndex: key.String()}
	}
	// Only read, never kept: copying every ApiKey of a connection on each
	// of its reconciles would cost it O(ApiKeys) allocations each time.
	if err := c.List(ctx, &keys, opt, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list the ApiKeys that may need %s: %w", key, err)
	}
	var names []string
	for i := range keys.Items {
		if controllerutil.ContainsFinalizer(&keys.Items[i], iamv1alpha1.Finalizer) {
			names = append(names, keys.Items[i].Namespace+"/"+keys.Items[i].Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// clusterConnectionsNeededBy are the ClusterConnections an ApiKey may need:
// the one its spec names and the one its current key was created through.
func clusterConnectionsNeededBy(key *iamv1alpha1.ApiKey) []string {
	var needed []string
	if ck := connectionKeyFor(key); ck.Kind == iamv1alpha1.ClusterConnectionKind {
		needed = append(needed, ck.String())
	}
	if s := key.Status.Connection; strings.HasPrefix(s, iamv1alpha1.ClusterConnectionKind+"/") && !slices.Contains(needed, s) {
		needed = append(needed, s)
	}
	return needed
}

// setInUse adds or removes the connection's InUseFinalizer. It patches the
// metadata alone, so that it never overwrites a status write.
func (c *connectionChecker) setInUse(ctx context.Context, obj client.Object, want bool) error {
	if controllerutil.ContainsFinalizer(obj, iamv1alpha1.InUseFinalizer) == want {
		return nil
	}
	orig := obj.DeepCopyObject().(client.Object)
	if want {
		controllerutil.AddFinalizer(obj, iamv1alpha1.InUseFinalizer)
	} else {
		controllerutil.RemoveFinalizer(obj, iamv1alpha1.InUseFinalizer)
	}
	if err := c.Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("update the finalizers of %s: %w", obj.GetName(), err)
	}
	return nil
}

// holdSecret records the credentials Secret in status, then puts the
// finalizer on it. The finalizer is ensured on every reconcile: a
// concurrent release may have taken it off just before the record appeared.
func (c *connectionChecker) holdSecret(ctx context.Context, obj client.Object, status *iamv1alpha1.ConnectionStatus, secret types.NamespacedName) error {
	i := heldIndex(status, secret)
	if i < 0 || status.HeldCredentialsSecrets[i].Released {
		err := c.patchHeld(ctx, obj, func() {
			if i < 0 {
				status.HeldCredentialsSecrets = append(status.HeldCredentialsSecrets, iamv1alpha1.HeldSecret{Namespace: secret.Namespace, Name: secret.Name})
			} else {
				status.HeldCredentialsSecrets[i].Released = false
			}
		})
		if err != nil {
			return err
		}
	}
	return c.setCredentialsInUse(ctx, secret, true)
}

// releaseSecret lets go of a credentials Secret the connection recorded:
// mark the record, remove the finalizer unless another connection holds the
// Secret, then drop the record. Each step can be repeated after a crash.
func (c *connectionChecker) releaseSecret(ctx context.Context, key ConnectionKey, obj client.Object, status *iamv1alpha1.ConnectionStatus, secret types.NamespacedName) error {
	if i := heldIndex(status, secret); i >= 0 && !status.HeldCredentialsSecrets[i].Released {
		if err := c.patchHeld(ctx, obj, func() { status.HeldCredentialsSecrets[i].Released = true }); err != nil {
			return err
		}
	}
	holder, err := c.otherHolder(ctx, key, secret)
	if err != nil {
		return err
	}
	if holder == "" {
		if err := c.setCredentialsInUse(ctx, secret, false); err != nil {
			return err
		}
	}
	logf.FromContext(ctx).Info("released the credentials Secret", "connection", key.String(), "secret", secret.String(), "stillHeldBy", holder)
	return c.patchHeld(ctx, obj, func() {
		status.HeldCredentialsSecrets = slices.DeleteFunc(status.HeldCredentialsSecrets, func(h iamv1alpha1.HeldSecret) bool {
			return h.Namespace == secret.Namespace && h.Name == secret.Name
		})
	})
}

// otherHolder names a connection other than self that holds the Secret with
// a record not marked released, or returns "". It reads from the API server:
// a stale cache could hide another connection's mark, and then two releases
// would each leave the finalizer to the other.
func (c *connectionChecker) otherHolder(ctx context.Context, self ConnectionKey, secret types.NamespacedName) (string, error) {
	// Only a Connection of the Secret's own namespace can name it.
	var conns iamv1alpha1.ConnectionList
	if err := c.APIReader.List(ctx, &conns, client.InNamespace(secret.Namespace)); err != nil {
		return "", fmt.Errorf("list the Connections of namespace %s: %w", secret.Namespace, err)
	}
	for i := range conns.Items {
		k := ConnectionKey{Kind: iamv1alpha1.ConnectionKind, Namespace: conns.Items[i].Namespace, Name: conns.Items[i].Name}
		if k != self && holding(&conns.Items[i].Status, secret) {
			return k.String(), nil
		}
	}
	var clusterConns iamv1alpha1.ClusterConnectionList
	if err := c.APIReader.List(ctx, &clusterConns); err != nil {
		return "", fmt.Errorf("list the ClusterConnections: %w", err)
	}
	for i := range clusterConns.Items {
		k := ConnectionKey{Kind: iamv1alpha1.ClusterConnectionKind, Name: clusterConns.Items[i].Name}
		if k != self && holding(&clusterConns.Items[i].Status, secret) {
			return k.String(), nil
		}
	}
	return "", nil
}

// holding reports whether a connection's status holds the Secret.
func holding(status *iamv1alpha1.ConnectionStatus, secret types.NamespacedName) bool {
	i := heldIndex(status, secret)
	return i >= 0 && !status.HeldCredentialsSecrets[i].Released
}

// heldIndex is the position of the Secret's record in status, or -1.
func heldIndex(status *iamv1alpha1.ConnectionStatus, secret types.NamespacedName) int {
	return slices.IndexFunc(status.HeldCredentialsSecrets, func(h iamv1alpha1.HeldSecret) bool {
		return h.Namespace == secret.Namespace && h.Name == secret.Name
	})
}

// patchHeld changes status.heldCredentialsSecrets through the status
// subresource, at once: the order of these writes and of the Secret's
// finalizer changes is what keeps a finalizer from being left behind. The
// optimistic lock refuses a write based on a stale read.
func (c *connectionChecker) patchHeld(ctx context.Context, obj client.Object, change func()) error {
	orig := obj.DeepCopyObject().(client.Object)
	change()
	if err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("record the held credentials Secrets of %s: %w", obj.GetName(), err)
	}
	return nil
}

// setCredentialsInUse adds or removes CredentialsInUseFinalizer on a
// credentials Secret. Only the Secret's metadata is read and patched: the
// operator never holds a token it does not need.
func (c *connectionChecker) setCredentialsInUse(ctx context.Context, ref types.NamespacedName, want bool) error {
	s := &metav1.PartialObjectMetadata{}
	s.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := c.APIReader.Get(ctx, ref, s); err != nil {
		// A missing Secret needs no finalizer; the check reports it missing.
		return client.IgnoreNotFound(err)
	}
	if controllerutil.ContainsFinalizer(s, iamv1alpha1.CredentialsInUseFinalizer) == want {
		return nil
	}
	if want && !s.DeletionTimestamp.IsZero() {
		// The API server refuses new finalizers on an object being deleted.
		return nil
	}
	orig := s.DeepCopy()
	if want {
		controllerutil.AddFinalizer(s, iamv1alpha1.CredentialsInUseFinalizer)
	} else {
		controllerutil.RemoveFinalizer(s, iamv1alpha1.CredentialsInUseFinalizer)
	}
	if err := c.Patch(ctx, s, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update the finalizers of Secret %s: %w", ref, err)
	}
	return nil
}

// describeProtection says in the Ready message of a connection being deleted
// which ApiKeys keep it.
func describeProtection(status *iamv1alpha1.ConnectionStatus, p protection) {
	if !p.deleting || len(p.dependents) == 0 {
		return
	}
	cond := meta.FindStatusCondition(status.Conditions, iamv1alpha1.ConditionReady)
	if cond == nil || strings.HasPrefix(cond.Message, deletingPrefix) {
		return
	}
	const shown = 3
	names := strings.Join(p.dependents[:min(shown, len(p.dependents))], ", ")
	if n := len(p.dependents); n > shown {
		names += fmt.Sprintf(" and %d more", n-shown)
	}
	cond.Message = fmt.Sprintf("%sthe finalizers of ApiKey(s) %s have run; %s", deletingPrefix, names, cond.Message)
}

// dependentsChanged passes the ApiKey events after which a connection may be
// released: an ApiKey gone, its finalizer removed, or the ClusterConnections
// it may need changed. Creations and finalizers added are left out: every
// connection carries InUseFinalizer while it lives, so a new dependent
// changes nothing for it (and 1,000 new ApiKeys would otherwise cost 1,000
// reconciles of their connection).
var dependentsChanged = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	DeleteFunc: func(event.DeleteEvent) bool { return true },
	UpdateFunc: func(e event.UpdateEvent) bool {
		if controllerutil.ContainsFinalizer(e.ObjectOld, iamv1alpha1.Finalizer) && !controllerutil.ContainsFinalizer(e.ObjectNew, iamv1alpha1.Finalizer) {
			return true
		}
		oldKey, okOld := e.ObjectOld.(*iamv1alpha1.ApiKey)
		newKey, okNew := e.ObjectNew.(*iamv1alpha1.ApiKey)
		return okOld && okNew && !slices.Equal(clusterConnectionsNeededBy(oldKey), clusterConnectionsNeededBy(newKey))
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// connectionsOfNamespace maps an ApiKey to the Connections of its namespace
// that are being deleted; see ReleasableConnections.
func (c *connectionChecker) connectionsOfNamespace() handler.EventHandler {
	return c.releasable(iamv1alpha1.ConnectionKind)
}

// clusterConnectionsOfApiKey maps an ApiKey to the ClusterConnections it may
// need that are being deleted; see ReleasableConnections.
func (c *connectionChecker) clusterConnectionsOfApiKey() handler.EventHandler {
	return c.releasable(iamv1alpha1.ClusterConnectionKind)
}

func (c *connectionChecker) releasable(kind string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		key, ok := o.(*iamv1alpha1.ApiKey)
		if !ok {
			return nil
		}
		var reqs []reconcile.Request
		for _, ck := range ReleasableConnections(ctx, c.Client, key) {
			if ck.Kind == kind {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ck.Namespace, Name: ck.Name}})
			}
		}
		return reqs
	})
}

// ReleasableConnections are the connections an event of this ApiKey may let
// go: those being deleted, as the cache r tells, among the Connections of its
// namespace and the ClusterConnections it may need. A connection whose
// deletion the cache does not show yet is reconciled by the event of its own
// deletion, which finds this ApiKey's change in the cache already.
func ReleasableConnections(ctx context.Context, r client.Reader, key *iamv1alpha1.ApiKey) []ConnectionKey {
	var out []ConnectionKey
	var conns iamv1alpha1.ConnectionList
	if err := r.List(ctx, &conns, client.InNamespace(key.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "list the Connections an ApiKey may have kept", "namespace", key.Namespace)
	}
	for i := range conns.Items {
		if !conns.Items[i].DeletionTimestamp.IsZero() {
			out = append(out, ConnectionKey{Kind: iamv1alpha1.ConnectionKind, Namespace: key.Namespace, Name: conns.Items[i].Name})
		}
	}
	for _, s := range clusterConnectionsNeededBy(key) {
		name := strings.TrimPrefix(s, iamv1alpha1.ClusterConnectionKind+"/")
		var cc iamv1alpha1.ClusterConnection
		if err := r.Get(ctx, types.NamespacedName{Name: name}, &cc); err != nil {
			continue
		}
		if !cc.DeletionTimestamp.IsZero() {
			out = append(out, ConnectionKey{Kind: iamv1alpha1.ClusterConnectionKind, Name: name})
		}
	}
	return out
}

// indexClusterConnectionUsers lets a ClusterConnection find the ApiKeys that
// may need it without reading every ApiKey.
func indexClusterConnectionUsers(ctx context.Context, mgr manager.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(ctx, &iamv1alpha1.ApiKey{}, clusterConnectionUsersIndex,
		ApiKeyFieldIndexes()[clusterConnectionUsersIndex])
	if err != nil {
		return fmt.Errorf("index ApiKeys by the ClusterConnections they may need: %w", err)
	}
	return nil
}
