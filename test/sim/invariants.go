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
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/emulator"
)

// The invariants of DESIGN.md section 5, checked after every step, and the
// convergence checked once the system is quiet.

var (
	// secretPattern is an API key secret: mob_ and 40 base62 characters;
	// twelve are already far more than a suffix shows.
	secretPattern = regexp.MustCompile(`mob_[0-9A-Za-z]{12,}`)
	// tokenPattern is the start of a JWT: a base64url JSON header and a dot.
	tokenPattern = regexp.MustCompile(`eyJ[0-9A-Za-z_-]{8,}\.`)
	// markerPattern finds the create attempt in an operator key's name.
	markerPattern = regexp.MustCompile(`\[k8s-([0-9a-f]+)\]`)
)

// scan checks one string the operator produced (a log line, an event, an
// error, a status) for a secret or a session token (invariant 2).
func (w *World) scan(where, s string) {
	if secretPattern.MatchString(s) || tokenPattern.MatchString(s) {
		w.violatef("a secret or session token in a %s: %s", where, redact(s))
		return
	}
	for _, t := range w.tokens {
		if i := strings.LastIndexByte(t, '.'); i > 0 && strings.Contains(s, t[i+1:]) {
			w.violatef("a session token's signature in a %s: %s", where, redact(s))
			return
		}
	}
}

// redact keeps a reported leak out of the test output itself.
func redact(s string) string {
	s = secretPattern.ReplaceAllString(s, "mob_<REDACTED>")
	return tokenPattern.ReplaceAllString(s, "<TOKEN REDACTED>.")
}

// liveKey is a key the API holds.
type liveKey struct {
	emulator.Key
	org string
}

func (w *World) liveKeys() map[string]liveKey {
	out := map[string]liveKey{}
	for _, org := range w.orgIDs {
		for _, k := range w.emu.Keys(org) {
			out[k.ID] = liveKey{k, org}
		}
	}
	return out
}

// liveKeyIDs lists the ids of liveKeys in a fixed order.
func liveKeyIDs(live map[string]liveKey) []string {
	ids := make([]string, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// references maps key ids and attempt ids to the ApiKeys whose status
// holds them.
type references struct {
	byKey, byAttempt map[string][]string
}

func referencesOf(keys []iamv1alpha1.ApiKey) references {
	r := references{byKey: map[string][]string{}, byAttempt: map[string][]string{}}
	for i := range keys {
		k := &keys[i]
		who := k.Namespace + "/" + k.Name
		st := &k.Status
		if st.KeyID != "" {
			r.byKey[st.KeyID] = append(r.byKey[st.KeyID], who)
		}
		for _, p := range st.PreviousKeys {
			r.byKey[p.KeyID] = append(r.byKey[p.KeyID], who)
		}
		if st.PendingCreate != nil {
			r.byAttempt[st.PendingCreate.ID] = append(r.byAttempt[st.PendingCreate.ID], who)
		}
		for _, a := range st.UnresolvedAttempts {
			r.byAttempt[a.ID] = append(r.byAttempt[a.ID], who)
		}
	}
	return r
}

// holders are the ApiKeys that reference a remote key, each once.
func (r references) holders(k liveKey) []string {
	var out []string
	out = append(out, r.byKey[k.ID]...)
	if m := markerPattern.FindStringSubmatch(k.Name); m != nil {
		out = append(out, r.byAttempt[m[1]]...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// check runs the invariants that hold after every step.
func (w *World) check() {
	// The invariants are a function of the store and the API: unchanged
	// since the last check, they hold as they did then.
	if v := w.writes + w.stats.APICalls + len(w.revoked); v == w.checkedAt {
		return
	} else {
		w.checkedAt = v
	}
	if w.cfg.extra != nil {
		if v := w.cfg.extra(w); v != "" {
			w.violatef("%s", v)
		}
	}
	ctx := context.Background()
	keys := w.liveApiKeys()
	w.noteOrphans(keys)
	live := w.liveKeys()
	refs := referencesOf(keys)

	// Invariant 1: every key the operator created is referenced by exactly
	// one ApiKey, or was deleted (or left on purpose by Orphan).
	for _, id := range liveKeyIDs(live) {
		k := live[id]
		if !markerPattern.MatchString(k.Name) || w.leftOnPurpose(id, k.Name) {
			continue
		}
		switch h := w.referencesOrLeak(refs, k); {
		case len(h) == 0:
			w.violatef("leaked key %s (%q) in organization %s: no ApiKey references it", id, k.Name, w.orgName(k.org))
		case len(h) > 1:
			w.violatef("key %s (%q) is referenced by %d ApiKeys: %v", id, k.Name, len(h), h)
		}
	}

	// Invariant 2, on what the operator stores: statuses, annotations.
	for i := range keys {
		b, _ := json.Marshal(keys[i].Status)
		w.scan("status of ApiKey "+keys[i].Namespace+"/"+keys[i].Name,
			string(b)+" "+strings.Join(mapValues(keys[i].Annotations), " "))
	}
	var conns iamv1alpha1.ConnectionList
	must(w.store.List(ctx, &conns))
	for i := range conns.Items {
		b, _ := json.Marshal(conns.Items[i].Status)
		w.scan("status of Connection", string(b))
	}
	var cconns iamv1alpha1.ClusterConnectionList
	must(w.store.List(ctx, &cconns))
	for i := range cconns.Items {
		b, _ := json.Marshal(cconns.Items[i].Status)
		w.scan("status of ClusterConnection", string(b))
	}

	var secrets corev1.SecretList
	must(w.store.List(ctx, &secrets))
	byUID := map[types.UID]*iamv1alpha1.ApiKey{}
	for i := range keys {
		byUID[keys[i].UID] = &keys[i]
	}
	for i := range secrets.Items {
		s := &secrets.Items[i]
		nn := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
		w.scan("Secret's metadata", strings.Join(mapValues(s.Annotations), " ")+" "+strings.Join(mapValues(s.Labels), " "))

		// Invariant 3: foreign Secrets are never touched.
		if fp, ok := w.model.foreign[nn]; ok && fp != fingerprint(s) {
			w.violatef("foreign Secret %s was changed", nn)
		}

		// No key is deleted while a Secret still serves it, unless its
		// ApiKey is being deleted or the key was revoked.
		ref := metav1.GetControllerOf(s)
		if ref == nil || ref.Kind != apiKeyKind {
			continue
		}
		owner := byUID[ref.UID]
		if owner == nil || !owner.DeletionTimestamp.IsZero() {
			continue
		}
		for _, dataKey := range sortedKeys(s.Data) {
			id, ok := w.secretOf[string(s.Data[dataKey])]
			if !ok || w.revoked[id] {
				continue
			}
			if _, alive := live[id]; !alive {
				w.violatef("key %s was deleted while Secret %s (key %s) of ApiKey %s still serves it", id, nn, dataKey, owner.Name)
			}
		}
	}
	for nn := range w.model.foreign {
		var s corev1.Secret
		if err := w.store.Get(ctx, nn, &s); err != nil {
			w.violatef("foreign Secret %s is gone: %v", nn, err)
		}
	}
}

// referencesOrLeak returns the holders of a key.
func (w *World) referencesOrLeak(refs references, k liveKey) []string {
	return refs.holders(k)
}

// noteOrphans remembers the keys of ApiKeys released with deletionPolicy
// Orphan: they stay in the organization on purpose. The last version the
// store held of an ApiKey tells its policy and keys.
func (w *World) noteOrphans(keys []iamv1alpha1.ApiKey) {
	now := map[types.UID]bool{}
	for i := range keys {
		now[keys[i].UID] = true
		w.lastSeen[keys[i].UID] = keys[i].DeepCopy()
	}
	for uid, k := range w.lastSeen {
		if now[uid] {
			continue
		}
		if k.Spec.DeletionPolicy == iamv1alpha1.DeletionPolicyOrphan {
			if k.Status.KeyID != "" {
				w.orphaned[k.Status.KeyID] = true
			}
			for _, p := range k.Status.PreviousKeys {
				w.orphaned[p.KeyID] = true
			}
			// Keys of create attempts it could not delete (a read-only
			// role, say) are named in its Orphaned event and left too.
			if a := k.Status.PendingCreate; a != nil {
				w.orphaned[attemptKey(a.ID)] = true
			}
			for _, a := range k.Status.UnresolvedAttempts {
				w.orphaned[attemptKey(a.ID)] = true
			}
		}
		delete(w.lastSeen, uid)
	}
}

// retirementSlack is how late after its deadline a previous key may still
// be alive at a check: its reconcile is due within a second of it.
const retirementSlack = 2 * time.Second

// attemptKey is how an orphaned create attempt is remembered in orphaned.
func attemptKey(id string) string { return "attempt:" + id }

// leftOnPurpose reports whether a key was left in the organization by an
// ApiKey released with deletionPolicy Orphan.
func (w *World) leftOnPurpose(id, name string) bool {
	if w.orphaned[id] {
		return true
	}
	m := markerPattern.FindStringSubmatch(name)
	return m != nil && w.orphaned[attemptKey(m[1])]
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		out = append(out, m[k])
	}
	return out
}

func sortedKeys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// humanReasons are the Ready=False reasons that wait for a person, and say
// what to do.
var humanReasons = []string{
	iamv1alpha1.ReasonSecretConflict, iamv1alpha1.ReasonPaused, iamv1alpha1.ReasonConnectionChanged,
	iamv1alpha1.ReasonDeleteFailed, iamv1alpha1.ReasonInvalidSpec, iamv1alpha1.ReasonForbidden,
}

func condition(k *iamv1alpha1.ApiKey, t string) *metav1.Condition {
	return meta.FindStatusCondition(k.Status.Conditions, t)
}

// waitsForHuman reports whether an ApiKey is stopped for a reason only a
// person can remove.
func waitsForHuman(k *iamv1alpha1.ApiKey) bool {
	if k.Annotations[iamv1alpha1.PausedAnnotation] == "true" {
		return true
	}
	c := condition(k, iamv1alpha1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionFalse && slices.Contains(humanReasons, c.Reason)
}

// checkQuiescent checks convergence, once faults are off and the clock ran
// past every window.
func (w *World) checkQuiescent() {
	keys := w.liveApiKeys()
	w.noteOrphans(keys)
	live := w.liveKeys()
	byName := map[string]*iamv1alpha1.ApiKey{}
	for i := range keys {
		byName[keys[i].Namespace+"/"+keys[i].Name] = &keys[i]
	}
	w.checkOperatorKeysSettled(live, referencesOf(keys), byName)
	for i := range keys {
		w.checkApiKeySettled(&keys[i], live)
	}
	w.checkDeletedGone(keys, byName)
	w.checkAPIUseBounded(len(keys))
}

// checkOperatorKeysSettled checks that every operator key is some ApiKey's
// current key, or a previous key inside its grace period.
func (w *World) checkOperatorKeysSettled(
	live map[string]liveKey, refs references, byName map[string]*iamv1alpha1.ApiKey,
) {
	now := w.clock.Now()
	for _, id := range liveKeyIDs(live) {
		k := live[id]
		if !markerPattern.MatchString(k.Name) || w.leftOnPurpose(id, k.Name) {
			continue
		}
		for _, who := range refs.holders(k) {
			a := byName[who]
			if a.Status.KeyID == id || waitsForHuman(a) {
				continue
			}
			inGrace := slices.ContainsFunc(a.Status.PreviousKeys, func(p iamv1alpha1.PreviousKey) bool {
				// A key whose grace period ends right now is retired by the
				// reconcile due just after it (status times are whole
				// seconds, and requeues land a little past a deadline).
				return p.KeyID == id && now.Before(p.DeleteAfter.Add(retirementSlack))
			})
			if !inGrace {
				w.violatef("at quiescence key %s (%q) of ApiKey %s is neither its current key "+
					"nor a previous key in its grace period (status: %s)", id, k.Name, who, statusSummary(a))
			}
		}
	}
}

// checkApiKeySettled checks that an ApiKey is Ready and Synced with its
// current key in the Secret its spec names, unless it waits for a person.
func (w *World) checkApiKeySettled(a *iamv1alpha1.ApiKey, live map[string]liveKey) {
	who := a.Namespace + "/" + a.Name
	if !a.DeletionTimestamp.IsZero() {
		if !waitsForHuman(a) {
			w.violatef("at quiescence ApiKey %s is still being deleted without a reason for a person (status: %s)",
				who, statusSummary(a))
		}
		return
	}
	ready := condition(a, iamv1alpha1.ConditionReady)
	switch {
	case ready == nil:
		w.violatef("at quiescence ApiKey %s has no Ready condition", who)
		return
	case ready.Status == metav1.ConditionFalse:
		if !waitsForHuman(a) {
			w.violatef("at quiescence ApiKey %s is stuck: Ready=False %s: %s", who, ready.Reason, ready.Message)
		}
		return
	case waitsForHuman(a):
		return
	}
	if ready.Reason != iamv1alpha1.ReasonKeyReady {
		w.violatef("at quiescence ApiKey %s is Ready with reason %s: %s", who, ready.Reason, ready.Message)
	}
	if synced := condition(a, iamv1alpha1.ConditionSynced); synced == nil || synced.Status != metav1.ConditionTrue {
		w.violatef("at quiescence ApiKey %s is not Synced: %+v", who, synced)
	}
	if a.Status.ObservedGeneration != a.Generation {
		w.violatef("at quiescence ApiKey %s observed generation %d of %d", who, a.Status.ObservedGeneration, a.Generation)
	}
	if !w.checkSecretSettled(a, live) {
		return
	}
	if want := a.Spec.Name; want != "" && !strings.HasPrefix(a.Status.KeyName, want+" [k8s-") {
		w.violatef("at quiescence ApiKey %s wants the name %q but its key is %q", who, want, a.Status.KeyName)
	}
}

// checkSecretSettled checks that the Secret of a Ready ApiKey holds the
// secret of its current key, where the spec says. It reports false when the
// Secret cannot be read, and nothing more of the ApiKey is worth checking.
func (w *World) checkSecretSettled(a *iamv1alpha1.ApiKey, live map[string]liveKey) bool {
	who := a.Namespace + "/" + a.Name
	wantName, wantKey := a.Spec.SecretName, a.Spec.SecretKey
	if wantName == "" {
		wantName = a.Name
	}
	if wantKey == "" {
		wantKey = defaultSecretKey
	}
	if a.Status.SecretName != wantName || a.Status.SecretKey != wantKey {
		w.violatef("at quiescence ApiKey %s is Ready but its key is in Secret %s key %s, not %s key %s",
			who, a.Status.SecretName, a.Status.SecretKey, wantName, wantKey)
	}
	var s corev1.Secret
	nn := types.NamespacedName{Namespace: a.Namespace, Name: a.Status.SecretName}
	if err := w.store.Get(context.Background(), nn, &s); err != nil {
		w.violatef("at quiescence ApiKey %s is Ready but its Secret %s: %v", who, a.Status.SecretName, err)
		return false
	}
	id, known := w.secretOf[string(s.Data[a.Status.SecretKey])]
	_, alive := live[a.Status.KeyID]
	switch {
	case !metav1.IsControlledBy(&s, a):
		w.violatef("at quiescence ApiKey %s is Ready but does not control its Secret %s", who, s.Name)
	case !known || id != a.Status.KeyID:
		w.violatef("at quiescence the Secret %s of ApiKey %s does not hold the secret of key %s",
			s.Name, who, a.Status.KeyID)
	case !alive:
		w.violatef("at quiescence ApiKey %s is Ready but its key %s does not exist", who, a.Status.KeyID)
	}
	return true
}

// checkDeletedGone checks that deleted ApiKeys and namespaces are gone,
// unless an ApiKey waits for a person (their keys are checked by
// checkOperatorKeysSettled: nothing references a key of a gone ApiKey).
func (w *World) checkDeletedGone(keys []iamv1alpha1.ApiKey, byName map[string]*iamv1alpha1.ApiKey) {
	for _, uid := range slices.Sorted(maps.Keys(w.model.deleted)) {
		name := w.model.deleted[uid]
		if a := byName[name]; a != nil && a.UID == uid && !waitsForHuman(a) {
			w.violatef("at quiescence the deleted ApiKey %s is still there (status: %s)", name, statusSummary(a))
		}
	}
	for _, ns := range w.model.deletedNS {
		var n corev1.Namespace
		if err := w.store.Get(context.Background(), types.NamespacedName{Name: ns}, &n); err == nil {
			stuck := false
			for i := range keys {
				stuck = stuck || (keys[i].Namespace == ns && waitsForHuman(&keys[i]))
			}
			if !stuck {
				w.violatef("at quiescence the deleted namespace %s is still there", ns)
			}
		}
	}
}

// checkAPIUseBounded checks that the API use is bounded: no hot loop once
// quiet.
func (w *World) checkAPIUseBounded(apiKeys int) {
	limit := 40*(apiKeys+len(w.model.namespaces)+1) + 100
	for _, n := range w.calls {
		w.stats.MaxCallsPerHour = max(w.stats.MaxCallsPerHour, n)
	}
	if w.stats.MaxCallsPerHour > limit {
		w.violatef("at quiescence %d API calls in one simulated hour, more than %d for %d ApiKeys",
			w.stats.MaxCallsPerHour, limit, apiKeys)
	}
}

func statusSummary(a *iamv1alpha1.ApiKey) string {
	var parts []string
	if c := condition(a, iamv1alpha1.ConditionReady); c != nil {
		parts = append(parts, "Ready="+string(c.Status)+"/"+c.Reason+": "+c.Message)
	}
	if c := condition(a, iamv1alpha1.ConditionSynced); c != nil {
		parts = append(parts, "Synced="+string(c.Status)+"/"+c.Reason+": "+c.Message)
	}
	parts = append(parts, "keyId="+a.Status.KeyID)
	for _, p := range a.Status.PreviousKeys {
		parts = append(parts, "previous="+p.KeyID+" until "+p.DeleteAfter.UTC().Format("15:04:05"))
	}
	if p := a.Status.PendingCreate; p != nil {
		parts = append(parts, "pendingCreate="+p.ID)
	}
	for _, u := range a.Status.UnresolvedAttempts {
		parts = append(parts, "unresolved="+u.ID+" until "+u.WatchUntil.UTC().Format("15:04:05"))
	}
	return strings.Join(parts, "; ")
}
