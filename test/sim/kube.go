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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/controller"
)

// The Kubernetes side of the simulation. The store (controller-runtime's fake
// client, wrapped) plays the API server: resourceVersion conflicts, status
// subresources, finalizers and deletionTimestamp come from the fake client;
// UIDs, creation times, refusing creates in a terminating namespace, the
// garbage collector and the namespace controller are added here. The
// operator reads its cached kinds from a cache that follows the store only
// when the scheduler syncs it, as an informer does, so it can lag behind
// writes and skip intermediate versions.

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := iamv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Kind names of the objects the simulation tells apart; the connection
// kinds are iamv1alpha1.ConnectionKind and iamv1alpha1.ClusterConnectionKind.
const (
	apiKeyKind    = "ApiKey"
	secretKind    = "Secret"
	namespaceKind = "Namespace"
)

// cachedKind is a kind the manager's cache holds, and so a kind whose
// changes the operator hears about.
type cachedKind struct {
	name    string
	newList func() client.ObjectList
	// opts select what the cache holds of the kind.
	opts []client.ListOption
}

// cachedKinds are listed in a fixed order: the schedule must not depend on
// map iteration.
var cachedKinds = []cachedKind{
	{name: apiKeyKind, newList: func() client.ObjectList { return &iamv1alpha1.ApiKeyList{} }},
	{name: iamv1alpha1.ConnectionKind, newList: func() client.ObjectList { return &iamv1alpha1.ConnectionList{} }},
	{name: iamv1alpha1.ClusterConnectionKind,
		newList: func() client.ObjectList { return &iamv1alpha1.ClusterConnectionList{} }},
	// Only the Secrets the operator writes are cached (controller.CacheOptions).
	{name: secretKind, newList: func() client.ObjectList { return &corev1.SecretList{} },
		opts: []client.ListOption{client.MatchingLabelsSelector{Selector: controller.ManagedSecretSelector()}}},
	{name: namespaceKind, newList: func() client.ObjectList { return &corev1.NamespaceList{} }},
}

func isCachedKind(kind string) bool {
	return slices.ContainsFunc(cachedKinds, func(k cachedKind) bool { return k.name == kind })
}

type objKey struct {
	kind, namespace, name string
}

func (k objKey) String() string {
	if k.namespace == "" {
		return k.kind + "/" + k.name
	}
	return k.kind + "/" + k.namespace + "/" + k.name
}

// change is one difference between the cache and the store that a sync
// applied: old is nil for an add, new is nil for a delete.
type change struct {
	key      objKey
	old, new client.Object
}

// cache is the operator's informer cache: typed objects by kind and name,
// updated only by sync.
type cache struct {
	// noops counts writes that changed nothing but the resourceVersion.
	noops  int
	scheme *runtime.Scheme
	objs   map[objKey]client.Object
	// indexes are the field indexes by kind, then by index name.
	indexes map[string]map[string]client.IndexerFunc
}

func newCache(scheme *runtime.Scheme) *cache {
	return &cache{scheme: scheme, objs: map[objKey]client.Object{}, indexes: map[string]map[string]client.IndexerFunc{
		apiKeyKind: controller.ApiKeyFieldIndexes(),
		"Secret":   controller.SecretFieldIndexes(),
	}}
}

// sync brings one kind of the cache in line with the store and returns the
// changes, sorted. Versions written between two syncs are never seen: the
// operator observes only the last one, as with a real watch that fell behind.
func (c *cache) sync(ctx context.Context, store client.Client, kind cachedKind) ([]change, error) {
	list := kind.newList()
	if err := store.List(ctx, list, kind.opts...); err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	seen := map[objKey]bool{}
	var changes []change
	for _, item := range items {
		obj := item.(client.Object)
		if s, ok := obj.(*corev1.Secret); ok {
			if _, err := controller.TransformSecret(s); err != nil {
				return nil, err
			}
		}
		k := objKey{kind.name, obj.GetNamespace(), obj.GetName()}
		seen[k] = true
		old, ok := c.objs[k]
		if ok && old.GetResourceVersion() == obj.GetResourceVersion() {
			continue
		}
		c.objs[k] = obj
		if ok && sameButVersion(old, obj) {
			// The API server neither stores nor announces a write that
			// changes nothing (times are kept to the second); the fake
			// client gives it a new resourceVersion all the same.
			c.noops++
			continue
		}
		changes = append(changes, change{key: k, old: old, new: obj})
	}
	for k, old := range c.objs {
		if k.kind == kind.name && !seen[k] {
			delete(c.objs, k)
			changes = append(changes, change{key: k, old: old})
		}
	}
	slices.SortFunc(changes, func(a, b change) int { return strings.Compare(a.key.String(), b.key.String()) })
	return changes, nil
}

// sameButVersion reports whether two versions of an object differ only in
// their resourceVersion and managedFields.
func sameButVersion(a, b client.Object) bool {
	a, b = a.DeepCopyObject().(client.Object), b.DeepCopyObject().(client.Object)
	for _, o := range []client.Object{a, b} {
		o.SetResourceVersion("")
		o.SetManagedFields(nil)
	}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

func (c *cache) kindOf(obj runtime.Object) (string, error) {
	gvk, err := apiutil.GVKForObject(obj, c.scheme)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(gvk.Kind, "List"), nil
}

func (c *cache) get(key client.ObjectKey, kind string, obj client.Object) error {
	src, ok := c.objs[objKey{kind, key.Namespace, key.Name}]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: strings.ToLower(kind) + "s"}, key.Name)
	}
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(src.DeepCopyObject()).Elem())
	return nil
}

func (c *cache) list(kind string, list client.ObjectList, opts ...client.ListOption) error {
	lo := &client.ListOptions{}
	lo.ApplyOptions(opts)
	var reqs fields.Requirements
	if lo.FieldSelector != nil {
		reqs = lo.FieldSelector.Requirements()
	}
	var keys []objKey
	for k := range c.objs {
		if k.kind == kind && (lo.Namespace == "" || k.namespace == lo.Namespace) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b objKey) int { return strings.Compare(a.String(), b.String()) })
	var items []runtime.Object
	for _, k := range keys {
		obj := c.objs[k]
		if lo.LabelSelector != nil && !lo.LabelSelector.Matches(labels.Set(obj.GetLabels())) {
			continue
		}
		match := true
		for _, r := range reqs {
			index, ok := c.indexes[kind][r.Field]
			if !ok {
				return fmt.Errorf("field selector %q: no such index on %s", r.Field, kind)
			}
			if !slices.Contains(index(obj), r.Value) {
				match = false
			}
		}
		if match {
			items = append(items, obj.DeepCopyObject())
		}
	}
	return meta.SetList(list, items)
}

// newStore returns the simulated API server: the fake client, with the
// object metadata an API server fills in on create.
func (w *World) newStore() client.WithWatch {
	// The plain object tracker: the fake client's default one also keeps
	// managedFields, which costs more than the rest of a run together and
	// which the operator never reads.
	raw := fake.NewClientBuilder().
		WithScheme(w.scheme).
		WithObjectTracker(clienttesting.NewObjectTracker(w.scheme, serializer.NewCodecFactory(w.scheme).UniversalDecoder())).
		WithStatusSubresource(&iamv1alpha1.ApiKey{}, &iamv1alpha1.Connection{}, &iamv1alpha1.ClusterConnection{}).
		WithGlobalResourceVersionCounter().
		Build()
	return interceptor.NewClient(raw, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if obj.GetUID() == "" {
				w.uidSeq++
				obj.SetUID(types.UID(fmt.Sprintf("uid-%06d", w.uidSeq)))
			}
			obj.SetCreationTimestamp(metav1.NewTime(w.clock.Now()))
			if obj.GetGeneration() == 0 {
				obj.SetGeneration(1)
			}
			w.writes++
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			w.writes++
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch,
			opts ...client.PatchOption) error {
			w.writes++
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			w.writes++
			return c.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object,
			opts ...client.SubResourceUpdateOption) error {
			w.writes++
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch,
			opts ...client.SubResourcePatchOption) error {
			w.writes++
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
}

// errDead is what every call of a crashed operator process gets: nothing it
// does after the crash point reaches the store or the API.
var errDead = errors.New("the operator process has crashed")

// operatorClient is the client the reconcilers get from their manager:
// reads of cached kinds come from the cache, everything else from the store,
// and every write may suffer an injected fault or be the crash point.
func (w *World) operatorClient(p *process) client.Client {
	return interceptor.NewClient(w.store, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object,
			opts ...client.GetOption) error {
			if p.dead {
				return errDead
			}
			if _, partial := obj.(*metav1.PartialObjectMetadata); !partial {
				if kind, err := p.cache.kindOf(obj); err == nil && isCachedKind(kind) {
					return p.cache.get(key, kind, obj)
				}
			}
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if p.dead {
				return errDead
			}
			if _, partial := list.(*metav1.PartialObjectMetadataList); !partial {
				if kind, err := p.cache.kindOf(list); err == nil && isCachedKind(kind) {
					return p.cache.list(kind, list, opts...)
				}
			}
			return c.List(ctx, list, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return w.kubeWrite(p, "create", obj, false, func() error {
				if err := w.namespaceAccepts(ctx, obj.GetNamespace()); err != nil {
					return err
				}
				return c.Create(ctx, obj, opts...)
			})
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return w.kubeWrite(p, "update", obj, true, func() error { return c.Update(ctx, obj, opts...) })
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch,
			opts ...client.PatchOption) error {
			return w.kubeWrite(p, "patch", obj, false, func() error { return c.Patch(ctx, obj, patch, opts...) })
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			return w.kubeWrite(p, "delete", obj, false, func() error { return c.Delete(ctx, obj, opts...) })
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object,
			opts ...client.SubResourceUpdateOption) error {
			return w.kubeWrite(p, sub+" update", obj, true, func() error {
				return c.SubResource(sub).Update(ctx, obj, opts...)
			})
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch,
			opts ...client.SubResourcePatchOption) error {
			return w.kubeWrite(p, sub+" patch", obj, false, func() error {
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			})
		},
	})
}

// apiReader is the operator's uncached reader (manager.GetAPIReader).
func (w *World) apiReader(p *process) client.Reader {
	return interceptor.NewClient(w.store, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object,
			opts ...client.GetOption) error {
			if p.dead {
				return errDead
			}
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if p.dead {
				return errDead
			}
			return c.List(ctx, list, opts...)
		},
	})
}

// kubeWrite runs one write of the operator through the crash point and the
// injected faults: a conflict (only for writes that carry a resourceVersion,
// as the API server would), an error with nothing written, or an unclear
// outcome (written, then an error).
func (w *World) kubeWrite(p *process, verb string, obj client.Object, rvChecked bool, write func() error) error {
	what := fmt.Sprintf("kube %s %s %s/%s", verb, kindName(w.scheme, obj), obj.GetNamespace(), obj.GetName())
	after, err := w.crashPoint(p, what)
	if err != nil {
		return err
	}
	switch {
	case rvChecked && w.fault(faultKubeConflict):
		w.tracef("  fault %s: %s", faultKubeConflict, what)
		resource := schema.GroupResource{Resource: strings.ToLower(kindName(w.scheme, obj)) + "s"}
		return apierrors.NewConflict(resource, obj.GetName(), errors.New("injected conflict"))
	case w.fault(faultKubeError):
		w.tracef("  fault %s: %s", faultKubeError, what)
		return apierrors.NewInternalError(errors.New("injected: etcdserver: request timed out"))
	}
	err = write()
	w.tracef("  %s → %s", what, errString(err))
	if a, ok := obj.(*iamv1alpha1.ApiKey); ok && err == nil {
		w.lastSeen[a.UID] = a.DeepCopy()
	}
	if after {
		return w.crashNow(p)
	}
	if err == nil && w.fault(faultKubeUnclear) {
		w.tracef("  fault %s: %s (written)", faultKubeUnclear, what)
		return apierrors.NewTimeoutError("injected: the write was applied but the answer was lost", 1)
	}
	return err
}

// namespaceAccepts refuses creates in a namespace that is missing or being
// deleted, as the API server does.
func (w *World) namespaceAccepts(ctx context.Context, namespace string) error {
	if namespace == "" {
		return nil
	}
	var ns corev1.Namespace
	if err := w.store.Get(ctx, types.NamespacedName{Name: namespace}, &ns); err != nil {
		return err
	}
	if !ns.DeletionTimestamp.IsZero() {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "",
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", namespace))
	}
	return nil
}

func kindName(scheme *runtime.Scheme, obj runtime.Object) string {
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return fmt.Sprintf("%T", obj)
	}
	return gvk.Kind
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// collectGarbage is the garbage collector: it deletes the Secrets whose
// controller, an ApiKey, is gone (no object of that name with that UID).
func (w *World) collectGarbage(ctx context.Context) error {
	var secrets corev1.SecretList
	if err := w.store.List(ctx, &secrets); err != nil {
		return err
	}
	for i := range secrets.Items {
		s := &secrets.Items[i]
		ref := metav1.GetControllerOf(s)
		if ref == nil || ref.Kind != apiKeyKind || !s.DeletionTimestamp.IsZero() {
			continue
		}
		var owner iamv1alpha1.ApiKey
		err := w.store.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: ref.Name}, &owner)
		if err == nil && owner.UID == ref.UID {
			continue
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		w.tracef("gc: delete Secret %s/%s (its ApiKey %s is gone)", s.Namespace, s.Name, ref.Name)
		if err := w.store.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// namespaceFinalizer stands for the namespace controller's own finalizer
// (spec.finalizers "kubernetes"): it keeps a deleted namespace until it is
// empty.
const namespaceFinalizer = "sim.apikey-operator/namespace"

// finalizeNamespaces is the namespace controller: every object of a
// namespace being deleted is deleted (objects with finalizers stay until
// they are released), and the namespace goes once it is empty.
func (w *World) finalizeNamespaces(ctx context.Context) error {
	var nss corev1.NamespaceList
	if err := w.store.List(ctx, &nss); err != nil {
		return err
	}
	for i := range nss.Items {
		ns := &nss.Items[i]
		if ns.DeletionTimestamp.IsZero() {
			continue
		}
		left := 0
		namespaced := []client.ObjectList{&iamv1alpha1.ApiKeyList{}, &iamv1alpha1.ConnectionList{}, &corev1.SecretList{}}
		for _, list := range namespaced {
			if err := w.store.List(ctx, list, client.InNamespace(ns.Name)); err != nil {
				return err
			}
			items, _ := meta.ExtractList(list)
			for _, item := range items {
				obj := item.(client.Object)
				left++
				if obj.GetDeletionTimestamp().IsZero() {
					if err := w.store.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
						return err
					}
				}
			}
		}
		if left == 0 {
			w.tracef("namespace controller: namespace %s is empty and goes", ns.Name)
			before := ns.DeepCopy()
			ns.Finalizers = slices.DeleteFunc(ns.Finalizers, func(f string) bool { return f == namespaceFinalizer })
			if err := w.store.Patch(ctx, ns, client.MergeFrom(before)); err != nil {
				return err
			}
		}
	}
	return nil
}
