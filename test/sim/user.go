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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/emulator"
)

// The user: the person with kubectl and the web UI, whose actions the seed
// decides. The user writes to the store directly (no faults: a failed
// kubectl command is simply repeated), as the API server would apply them.

const (
	operatorNamespace = "operator-system"
	credentialsSecret = "creds"
	connectionName    = "conn"
	// credentialsKey is the key of a credentials Secret that holds the
	// session token.
	credentialsKey = "token"
	// clusterConnectionName is the name of the one ClusterConnection.
	clusterConnectionName = "default"
	// defaultSecretKey is where an ApiKey's Secret holds the key when
	// spec.secretKey is empty; customSecretKey is the other key the user
	// may ask for.
	defaultSecretKey = "apiKey"
	customSecretKey  = "token"
)

// secretNames is the small pool spec.secretName is drawn from, so that
// ApiKeys and foreign Secrets meet.
var secretNames = []string{"", "", "app-key", "ci-key"}

// userModel is what the user did, for the checks.
type userModel struct {
	namespaces []string
	nsSeq      int
	keySeq     int
	deletedNS  []string
	// deleted are the ApiKeys the user deleted, directly or with their
	// namespace, by UID.
	deleted map[types.UID]string
	// foreign are the Secrets the user put in the way, with their content.
	foreign map[types.NamespacedName]string
}

func (w *World) setup() {
	ctx := context.Background()
	w.model = userModel{deleted: map[types.UID]string{}, foreign: map[types.NamespacedName]string{}}
	a := w.emu.AddOrganization("A")
	b := w.emu.AddOrganization("B")
	w.orgIDs = []string{a, b}
	w.orgNames[a], w.orgNames[b] = "A", "B"
	w.user = w.emu.AddUser("dev@example.com", a)
	for _, org := range w.orgIDs {
		must(w.emu.AddMember(org, w.user, emulator.RoleAdmin))
	}
	w.createNamespace(operatorNamespace)
	w.writeToken(operatorNamespace, 24*time.Hour)
	must(w.store.Create(ctx, &iamv1alpha1.ClusterConnection{
		ObjectMeta: metav1.ObjectMeta{Name: clusterConnectionName},
		Spec: iamv1alpha1.ClusterConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			URL: apiURL, OrganizationID: w.orgIDs[w.rng.IntN(2)],
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{
				Name: credentialsSecret, Namespace: operatorNamespace, Key: credentialsKey,
			},
		}},
	}))
	for range 2 {
		w.newTenantNamespace()
	}
	for range 2 + w.rng.IntN(3) {
		w.createApiKey()
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func (w *World) createNamespace(name string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: []string{namespaceFinalizer}}}
	must(w.store.Create(context.Background(), ns))
}

// newTenantNamespace creates a namespace with a Connection and its
// credentials Secret.
func (w *World) newTenantNamespace() {
	w.model.nsSeq++
	ns := fmt.Sprintf("ns-%d", w.model.nsSeq)
	w.createNamespace(ns)
	if w.rng.IntN(2) == 0 {
		w.toggleTierOf(ns)
	}
	w.createWorkload(ns)
	w.writeToken(ns, 24*time.Hour)
	must(w.store.Create(context.Background(), &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: connectionName},
		Spec: iamv1alpha1.ConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			URL: apiURL, OrganizationID: w.orgIDs[w.rng.IntN(2)],
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: credentialsSecret, Key: credentialsKey},
		}},
	}))
	w.model.namespaces = append(w.model.namespaces, ns)
	w.tracef("user: namespace %s with Connection %s", ns, connectionName)
}

// writeToken stores a fresh session token of the user in a namespace's
// credentials Secret.
func (w *World) writeToken(ns string, ttl time.Duration) {
	token, err := w.emu.IssueToken(w.user, ttl)
	must(err)
	w.tokens = append(w.tokens, token)
	ctx := context.Background()
	var s corev1.Secret
	err = w.store.Get(ctx, types.NamespacedName{Namespace: ns, Name: credentialsSecret}, &s)
	if err != nil {
		must(client.IgnoreNotFound(err))
		must(w.store.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: credentialsSecret},
			Data:       map[string][]byte{credentialsKey: []byte(token)},
		}))
		return
	}
	s.Data = map[string][]byte{credentialsKey: []byte(token)}
	must(w.store.Update(ctx, &s))
}

func (w *World) randomNamespace() string {
	return w.model.namespaces[w.rng.IntN(len(w.model.namespaces))]
}

func (w *World) createApiKey() {
	if len(w.model.namespaces) == 0 {
		return
	}
	w.model.keySeq++
	key := &iamv1alpha1.ApiKey{ObjectMeta: metav1.ObjectMeta{
		Namespace: w.randomNamespace(), Name: fmt.Sprintf("k%d", w.model.keySeq%6),
	}}
	if w.rng.IntN(2) == 0 {
		key.Spec.ConnectionRef = iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ConnectionKind, Name: connectionName}
	}
	key.Spec.SecretName = secretNames[w.rng.IntN(len(secretNames))]
	if w.rng.IntN(4) == 0 {
		key.Spec.SecretKey = customSecretKey
	}
	if w.rng.IntN(5) == 0 {
		key.Spec.DeletionPolicy = iamv1alpha1.DeletionPolicyOrphan
	}
	if w.rng.IntN(2) == 0 {
		key.Spec.Rotation = &iamv1alpha1.Rotation{}
		if w.rng.IntN(2) == 0 {
			key.Spec.Rotation.Every = &metav1.Duration{Duration: time.Duration(15+w.rng.IntN(45)) * time.Minute}
		}
		if w.rng.IntN(2) == 0 {
			key.Spec.Rotation.GracePeriod = &metav1.Duration{Duration: time.Duration(1+w.rng.IntN(10)) * time.Minute}
		}
		if w.rng.IntN(3) == 0 {
			key.Spec.Rotation.RetireWhenUnusedFor = &metav1.Duration{Duration: time.Duration(1+w.rng.IntN(5)) * time.Minute}
		}
	}
	key.Spec.RolloutRestartTargets = w.restartTargetsFor()
	err := w.store.Create(context.Background(), key)
	if err != nil {
		// The name is taken in that namespace: no new ApiKey this time.
		w.tracef("user: create ApiKey %s/%s: %v", key.Namespace, key.Name, err)
		return
	}
	w.tracef("user: create ApiKey %s/%s %s", key.Namespace, key.Name, describeSpec(key))
}

func describeSpec(k *iamv1alpha1.ApiKey) string {
	var parts []string
	if k.Spec.ConnectionRef.Kind != "" {
		parts = append(parts, "connection="+k.Spec.ConnectionRef.Kind+"/"+k.Spec.ConnectionRef.Name)
	}
	if k.Spec.SecretName != "" {
		parts = append(parts, "secretName="+k.Spec.SecretName)
	}
	if k.Spec.SecretKey != "" {
		parts = append(parts, "secretKey="+k.Spec.SecretKey)
	}
	if k.Spec.DeletionPolicy != "" {
		parts = append(parts, "deletionPolicy="+string(k.Spec.DeletionPolicy))
	}
	if r := k.Spec.Rotation; r != nil {
		if r.Every != nil {
			parts = append(parts, "every="+r.Every.Duration.String())
		}
		if r.GracePeriod != nil {
			parts = append(parts, "grace="+r.GracePeriod.Duration.String())
		}
		if r.RetireWhenUnusedFor != nil {
			parts = append(parts, "retireWhenUnusedFor="+r.RetireWhenUnusedFor.Duration.String())
		}
	}
	for _, t := range k.Spec.RolloutRestartTargets {
		parts = append(parts, "restart="+t.Kind+"/"+t.Name)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// liveApiKeys are the ApiKeys of the store, in a fixed order.
func (w *World) liveApiKeys() []iamv1alpha1.ApiKey {
	var list iamv1alpha1.ApiKeyList
	must(w.store.List(context.Background(), &list))
	slices.SortFunc(list.Items, func(a, b iamv1alpha1.ApiKey) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return list.Items
}

// userAction is one thing the user does, drawn by the seed.
func (w *World) userAction() {
	w.stats.UserActions++
	keys := w.liveApiKeys()
	var key *iamv1alpha1.ApiKey
	if len(keys) > 0 {
		key = &keys[w.rng.IntN(len(keys))]
	}
	switch r := w.rng.IntN(110); {
	case r < 15 || key == nil:
		w.createApiKey()
	case r < 25:
		w.deleteApiKey(key)
	case r < 35:
		w.editApiKey(key, "rotate", func(k *iamv1alpha1.ApiKey) {
			metav1.SetMetaDataAnnotation(&k.ObjectMeta, iamv1alpha1.RotateAnnotation, fmt.Sprintf("r%d", w.step))
		})
	case r < 41:
		w.editApiKey(key, "spec.name", func(k *iamv1alpha1.ApiKey) { k.Spec.Name = fmt.Sprintf("team-%d", w.rng.IntN(3)) })
	case r < 47:
		w.editApiKey(key, "spec.secretName", func(k *iamv1alpha1.ApiKey) {
			k.Spec.SecretName = secretNames[w.rng.IntN(len(secretNames))]
		})
	case r < 51:
		w.editApiKey(key, "spec.secretKey", func(k *iamv1alpha1.ApiKey) {
			k.Spec.SecretKey = []string{"", customSecretKey, defaultSecretKey}[w.rng.IntN(3)]
		})
	case r < 56:
		w.editApiKey(key, "spec.connectionRef", func(k *iamv1alpha1.ApiKey) {
			if k.Spec.ConnectionRef.Kind == "" {
				k.Spec.ConnectionRef = iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ConnectionKind, Name: connectionName}
			} else {
				k.Spec.ConnectionRef = iamv1alpha1.ConnectionReference{}
			}
		})
	case r < 60:
		w.editApiKey(key, "spec.deletionPolicy", func(k *iamv1alpha1.ApiKey) {
			if k.Spec.DeletionPolicy == iamv1alpha1.DeletionPolicyOrphan {
				k.Spec.DeletionPolicy = ""
			} else {
				k.Spec.DeletionPolicy = iamv1alpha1.DeletionPolicyOrphan
			}
		})
	case r < 65:
		w.editApiKey(key, "paused", func(k *iamv1alpha1.ApiKey) {
			if k.Annotations[iamv1alpha1.PausedAnnotation] == "true" {
				delete(k.Annotations, iamv1alpha1.PausedAnnotation)
			} else {
				metav1.SetMetaDataAnnotation(&k.ObjectMeta, iamv1alpha1.PausedAnnotation, "true")
			}
		})
	case r < 71:
		w.switchOrganization()
	case r < 77:
		ns := w.randomNamespace()
		if w.rng.IntN(2) == 0 {
			ns = operatorNamespace
		}
		ttl := time.Duration(2+w.rng.IntN(20)) * time.Minute
		if w.rng.IntN(2) == 0 {
			ttl = 24 * time.Hour
		}
		w.tracef("user: new session token in %s/%s, valid for %s", ns, credentialsSecret, ttl)
		w.writeToken(ns, ttl)
	case r < 81:
		w.deleteNamespace()
	case r < 85:
		w.foreignSecret()
	case r < 92:
		w.revokeKey()
	case r < 94:
		w.deleteManagedSecret(key)
	case r < 96:
		w.tamperManagedSecret(key)
	case r < 98:
		w.toggleRole()
	case r < 103:
		w.toggleSelector()
	case r < 106:
		w.toggleTier()
	case r < 108:
		w.toggleWorkload()
	default:
		if len(w.model.namespaces) < 4 {
			w.newTenantNamespace()
		}
	}
}

func (w *World) deleteApiKey(key *iamv1alpha1.ApiKey) {
	if !key.DeletionTimestamp.IsZero() {
		return
	}
	w.tracef("user: delete ApiKey %s/%s", key.Namespace, key.Name)
	w.model.deleted[key.UID] = key.Namespace + "/" + key.Name
	must(client.IgnoreNotFound(w.store.Delete(context.Background(), key)))
}

// editApiKey changes an ApiKey as kubectl edit would; a spec change bumps
// the generation, as the API server does.
func (w *World) editApiKey(key *iamv1alpha1.ApiKey, what string, change func(*iamv1alpha1.ApiKey)) {
	before := key.DeepCopy()
	change(key)
	if !equality.Semantic.DeepEqual(before.Spec, key.Spec) {
		key.Generation++
	}
	if err := w.store.Update(context.Background(), key); err != nil {
		w.tracef("user: edit %s of ApiKey %s/%s: %v", what, key.Namespace, key.Name, err)
		return
	}
	w.tracef("user: edit %s of ApiKey %s/%s → %s annotations=%v",
		what, key.Namespace, key.Name, describeSpec(key), userAnnotations(key))
}

func userAnnotations(k *iamv1alpha1.ApiKey) []string {
	var out []string
	for _, a := range []string{iamv1alpha1.RotateAnnotation, iamv1alpha1.PausedAnnotation} {
		if v, ok := k.Annotations[a]; ok {
			out = append(out, strings.TrimPrefix(a, "iam.mobilenexthq.com/")+"="+v)
		}
	}
	return out
}

// switchOrganization points a connection at the other organization; the
// user is a member of both.
func (w *World) switchOrganization() {
	ctx := context.Background()
	var obj client.Object
	var params *iamv1alpha1.ConnectionParameters
	if w.rng.IntN(2) == 0 {
		cc := &iamv1alpha1.ClusterConnection{}
		must(w.store.Get(ctx, types.NamespacedName{Name: clusterConnectionName}, cc))
		obj, params = cc, &cc.Spec.ConnectionParameters
	} else {
		c := &iamv1alpha1.Connection{}
		nn := types.NamespacedName{Namespace: w.randomNamespace(), Name: connectionName}
		if err := w.store.Get(ctx, nn, c); err != nil {
			return
		}
		obj, params = c, &c.Spec.ConnectionParameters
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return
	}
	if params.OrganizationID == w.orgIDs[0] {
		params.OrganizationID = w.orgIDs[1]
	} else {
		params.OrganizationID = w.orgIDs[0]
	}
	obj.SetGeneration(obj.GetGeneration() + 1)
	must(w.store.Update(ctx, obj))
	w.tracef("user: %s %s/%s now uses organization %s",
		kindName(w.scheme, obj), obj.GetNamespace(), obj.GetName(), w.orgName(params.OrganizationID))
}

func (w *World) deleteNamespace() {
	if len(w.model.namespaces) < 2 {
		return
	}
	i := w.rng.IntN(len(w.model.namespaces))
	ns := w.model.namespaces[i]
	w.model.namespaces = slices.Delete(w.model.namespaces, i, i+1)
	w.model.deletedNS = append(w.model.deletedNS, ns)
	for _, k := range w.liveApiKeys() {
		if k.Namespace == ns {
			w.model.deleted[k.UID] = k.Namespace + "/" + k.Name
		}
	}
	w.tracef("user: delete namespace %s", ns)
	must(w.store.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	for k := range w.model.foreign {
		if k.Namespace == ns {
			delete(w.model.foreign, k)
		}
	}
}

// foreignSecret puts a Secret the operator does not control where an ApiKey
// may want to write; some carry the managed-by label, which anyone can set.
func (w *World) foreignSecret() {
	ns := w.randomNamespace()
	name := secretNames[2+w.rng.IntN(len(secretNames)-2)]
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{"owner": "someone else"}},
		Data:       map[string][]byte{defaultSecretKey: []byte("not-a-key"), customSecretKey: []byte("also-not-a-key")},
	}
	if w.rng.IntN(2) == 0 {
		s.Labels = map[string]string{iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue}
	}
	if err := w.store.Create(context.Background(), s); err != nil {
		return
	}
	nn := types.NamespacedName{Namespace: ns, Name: name}
	w.model.foreign[nn] = fingerprint(s)
	w.tracef("user: foreign Secret %s", nn)
}

// fingerprint is what must not change in a foreign Secret.
func fingerprint(s *corev1.Secret) string {
	return fmt.Sprintf("%v|%v|%v|%v|%v|%v", s.Data, s.StringData, s.Labels, s.Annotations, s.OwnerReferences, s.Finalizers)
}

// revokeKey deletes a key in the web UI.
func (w *World) revokeKey() {
	org := w.orgIDs[w.rng.IntN(len(w.orgIDs))]
	keys := w.emu.Keys(org)
	if len(keys) == 0 {
		return
	}
	k := keys[w.rng.IntN(len(keys))]
	must(w.emu.RevokeKey(org, k.ID))
	w.revoked[k.ID] = true
	w.tracef("user: revoke key %s (%q) in organization %s in the web UI", k.ID, k.Name, w.orgName(org))
}

func (w *World) deleteManagedSecret(key *iamv1alpha1.ApiKey) {
	name := key.Status.SecretName
	if name == "" {
		return
	}
	var s corev1.Secret
	nn := types.NamespacedName{Namespace: key.Namespace, Name: name}
	if err := w.store.Get(context.Background(), nn, &s); err != nil {
		return
	}
	if !metav1.IsControlledBy(&s, key) {
		return
	}
	w.tracef("user: delete Secret %s/%s", s.Namespace, s.Name)
	must(client.IgnoreNotFound(w.store.Delete(context.Background(), &s)))
}

// tamperManagedSecret overwrites the value of an ApiKey's Secret.
func (w *World) tamperManagedSecret(key *iamv1alpha1.ApiKey) {
	var s corev1.Secret
	nn := types.NamespacedName{Namespace: key.Namespace, Name: key.Status.SecretName}
	if err := w.store.Get(context.Background(), nn, &s); err != nil || !metav1.IsControlledBy(&s, key) {
		return
	}
	for k := range s.Data {
		s.Data[k] = []byte("tampered")
	}
	must(w.store.Update(context.Background(), &s))
	w.tracef("user: overwrite the value of Secret %s/%s", s.Namespace, s.Name)
}

// toggleRole makes the user read-only in an organization (deletes get
// 403), or admin again.
func (w *World) toggleRole() {
	org := w.orgIDs[w.rng.IntN(len(w.orgIDs))]
	role := emulator.RoleReadOnly
	if w.readOnly[org] {
		role = emulator.RoleAdmin
	}
	w.readOnly[org] = role == emulator.RoleReadOnly
	must(w.emu.AddMember(org, w.user, role))
	w.tracef("user: role %s in organization %s", role, w.orgName(org))
}

// renewTokens replaces every expired or expiring token, as the user does
// once the connections report Expired.
func (w *World) renewTokens() {
	for _, org := range w.orgIDs {
		if w.readOnly[org] {
			must(w.emu.AddMember(org, w.user, emulator.RoleAdmin))
			w.readOnly[org] = false
			w.tracef("user: role admin in organization %s again", w.orgName(org))
		}
	}
	for _, ns := range append([]string{operatorNamespace}, w.model.namespaces...) {
		w.writeToken(ns, 48*time.Hour)
	}
	for _, ns := range w.model.deletedNS {
		var s corev1.Secret
		nn := types.NamespacedName{Namespace: ns, Name: credentialsSecret}
		if err := w.store.Get(context.Background(), nn, &s); err == nil {
			w.writeToken(ns, 48*time.Hour)
		}
	}
	w.tracef("user: renewed every session token")
}
