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

package plugin

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/emulator"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

func TestKeyTag(t *testing.T) {
	cases := []struct {
		name, reason string
		wantID       string
		wantOK       bool
	}{
		{name: "team-a/ci [k8s-7f3a9c1e]", reason: "the operator's tag at the end", wantID: "7f3a9c1e", wantOK: true},
		{name: "[k8s-0] [k8s-ab]", reason: "only the last tag counts", wantID: "ab", wantOK: true},
		{name: "ci", reason: "no tag"},
		{name: "ci [k8s-]", reason: "an empty attempt id"},
		{name: "ci [k8s-7F3A]", reason: "the operator writes lower-case hex only"},
		{name: "ci [k8s-xyz]", reason: "not hex"},
		{name: "ci [k8s-7f3a] copy", reason: "the tag is not at the end"},
		{name: "ci[k8s-7f3a]", reason: "no space before the tag"},
		{name: "ci [k8s-7f3a", reason: "no closing bracket"},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			id, ok := keyTag(tc.name)
			if id != tc.wantID || ok != tc.wantOK {
				t.Errorf("keyTag(%q) = %q, %v; want %q, %v", tc.name, id, ok, tc.wantID, tc.wantOK)
			}
		})
	}
}

func TestOrphanedKeys(t *testing.T) {
	keys := []iamv1alpha1.ApiKey{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "current"},
		Status: iamv1alpha1.ApiKeyStatus{
			KeyID:              "key_cur",
			PreviousKeys:       []iamv1alpha1.PreviousKey{{KeyID: "key_prev"}},
			PendingCreate:      &iamv1alpha1.CreateAttempt{ID: "0001"},
			UnresolvedAttempts: []iamv1alpha1.UnresolvedAttempt{{ID: "0002"}},
		},
	}}
	remote := []mobilenext.Key{
		{ID: "key_cur", Name: "a/current [k8s-aaaa]"},
		{ID: "key_prev", Name: "a/current [k8s-bbbb]"},
		{ID: "key_pending", Name: "a/current [k8s-0001]"},
		{ID: "key_unresolved", Name: "a/current [k8s-0002]"},
		{ID: "key_orphan", Name: "a/gone [k8s-0003]"},
		{ID: "key_untagged", Name: "made by hand"},
		{ID: "key_untagged_referenced", Name: "made by hand too"},
	}
	keys[0].Status.PreviousKeys = append(keys[0].Status.PreviousKeys, iamv1alpha1.PreviousKey{KeyID: "key_untagged_referenced"})
	got := orphanedKeys(remote, collectReferences(keys))
	if diff := cmp.Diff([]mobilenext.Key{{ID: "key_orphan", Name: "a/gone [k8s-0003]"}}, got); diff != "" {
		t.Errorf("orphaned keys (-want +got):\n%s", diff)
	}
}

// orphanWorld is an organization whose keys are referenced in every way an
// ApiKey can reference one, plus two orphans and keys without the tag.
type orphanWorld struct {
	api     *api
	ns      string
	orphans []string // ids of the tagged keys no ApiKey references
	all     []string // ids of every remote key
}

func newOrphanWorld(t *testing.T) *orphanWorld {
	t.Helper()
	w := &orphanWorld{api: newAPI(t), ns: newNamespace(t)}
	otherNS := newNamespace(t)
	credentials(t, w.ns, "credentials", w.api.token)
	w.api.connection(t, w.ns, "api")

	now := metav1.NewTime(time.Now().Truncate(time.Second))
	later := metav1.NewTime(now.Add(10 * time.Minute))
	key := func(name string) *mobilenext.CreatedKey { return w.api.createKey(t, name) }

	current, previous := key(w.ns+"/a [k8s-aaaa0001]"), key(w.ns+"/a [k8s-aaaa0002]")
	apiKey(t, w.ns, "a", &iamv1alpha1.ApiKeyStatus{
		KeyID:        current.ID,
		PreviousKeys: []iamv1alpha1.PreviousKey{{KeyID: previous.ID, ReplacedAt: now, DeleteAfter: later}},
	})
	pending := key(w.ns + "/b [k8s-bbbb0001]")
	apiKey(t, w.ns, "b", &iamv1alpha1.ApiKeyStatus{
		PendingCreate: &iamv1alpha1.CreateAttempt{ID: "bbbb0001", Name: pending.Name, StartedAt: now},
	})
	key(w.ns + "/c [k8s-cccc0001]")
	apiKey(t, w.ns, "c", &iamv1alpha1.ApiKeyStatus{
		UnresolvedAttempts: []iamv1alpha1.UnresolvedAttempt{{ID: "cccc0001", WatchUntil: later}},
	})
	// An ApiKey of another namespace counts as much as one of this one.
	elsewhere := key(otherNS + "/z [k8s-eeee0001]")
	apiKey(t, otherNS, "z", &iamv1alpha1.ApiKeyStatus{KeyID: elsewhere.ID})

	orphan1, orphan2 := key(w.ns+"/x [k8s-dead0001]"), key(w.ns+"/y [k8s-dead0002]")
	w.api.emu.UseKey(orphan2.Secret.Reveal())
	w.orphans = []string{orphan1.ID, orphan2.ID}

	// Keys the operator did not make are never its business.
	key("made by hand")
	key("lookalike [k8s-zzzz]")
	key(w.ns + "/w [k8s-dead0003] copy")

	w.all = w.api.remoteIDs()
	if len(w.all) != 10 {
		t.Fatalf("the organization holds %d keys, want 10", len(w.all))
	}
	return w
}

// keyIDPattern is the documented format of key ids: a UUID.
var keyIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// listedIDs returns the key ids in the first column of a command's output.
func listedIDs(out string) []string {
	var ids []string
	for l := range strings.Lines(out) {
		if f := strings.Fields(l); len(f) > 0 && keyIDPattern.MatchString(f[0]) {
			ids = append(ids, f[0])
		}
	}
	slices.Sort(ids)
	return ids
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestOrphansListsTheTaggedKeysNoApiKeyReferences(t *testing.T) {
	w := newOrphanWorld(t)
	r := run(t, "orphans", "api", "-n", w.ns)
	if r.err != nil {
		t.Fatalf("orphans: %v", r.err)
	}
	if diff := cmp.Diff(sorted(w.orphans), listedIDs(r.out)); diff != "" {
		t.Errorf("listed keys (-want +got):\n%s", diff)
	}
	want := fmt.Sprintf("organization %s at %s: 7 keys with the operator's tag, 5 referenced by ApiKeys, 2 orphaned.", w.api.org, w.api.url)
	if !strings.Contains(r.out, want) {
		t.Errorf("the summary is missing; want %q", want)
	}
	for _, k := range w.api.emu.Keys(w.api.org) {
		if !slices.Contains(w.orphans, k.ID) {
			continue
		}
		row := lines(r.out, k.ID)
		if len(row) != 1 {
			t.Fatalf("want one row for %s, got %q", k.ID, row)
		}
		used := "never"
		if k.LastUsedAt != nil {
			used = k.LastUsedAt.UTC().Format(time.RFC3339)
		}
		for _, field := range []string{k.Name, k.Suffix, k.CreatedAt.UTC().Format(time.RFC3339), used} {
			if !strings.Contains(row[0], field) {
				t.Errorf("the row of %s lacks %q: %q", k.ID, field, row[0])
			}
		}
	}
	if diff := cmp.Diff(sorted(w.all), sorted(w.api.remoteIDs())); diff != "" {
		t.Errorf("listing changed the remote keys (-want +got):\n%s", diff)
	}
}

func TestOrphansDeleteWithYesDeletesExactlyTheOrphans(t *testing.T) {
	w := newOrphanWorld(t)
	r := run(t, "orphans", "api", "-n", w.ns, "--delete", "--yes")
	if r.err != nil {
		t.Fatalf("orphans --delete --yes: %v", r.err)
	}
	wantLeft := slices.DeleteFunc(slices.Clone(w.all), func(id string) bool { return slices.Contains(w.orphans, id) })
	if diff := cmp.Diff(sorted(wantLeft), sorted(w.api.remoteIDs())); diff != "" {
		t.Errorf("remote keys after the deletion (-want +got):\n%s", diff)
	}
	for _, id := range w.orphans {
		if len(lines(r.out, "deleted "+id)) != 1 {
			t.Errorf("the output does not report the deletion of %s", id)
		}
	}
	if !strings.Contains(r.out, "Deleted 2 of 2 orphaned keys.") {
		t.Errorf("the output lacks the count of deleted keys")
	}
}

func TestOrphansDeleteAsksForConfirmation(t *testing.T) {
	cases := []struct {
		answer      string
		wantDeleted bool
	}{
		{answer: "y\n", wantDeleted: true},
		{answer: "YES\n", wantDeleted: true},
		{answer: "n\n"},
		{answer: "\n"},
		{answer: ""}, // standard input closed, as in a script
		{answer: "yess\n"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("answer %q", tc.answer), func(t *testing.T) {
			w := newOrphanWorld(t)
			r := invocation{stdin: strings.NewReader(tc.answer)}.run(t, "orphans", "api", "-n", w.ns, "--delete")
			if !strings.Contains(r.errOut, "Delete 2 orphaned keys from organization "+w.api.org) {
				t.Errorf("no confirmation was asked on standard error")
			}
			want := w.all
			if tc.wantDeleted {
				want = slices.DeleteFunc(slices.Clone(w.all), func(id string) bool { return slices.Contains(w.orphans, id) })
				if r.err != nil {
					t.Errorf("orphans --delete: %v", r.err)
				}
			} else if r.err == nil || !strings.Contains(r.err.Error(), "not confirmed") {
				t.Errorf("an unconfirmed deletion returned %v, want an error saying it was not confirmed", r.err)
			}
			if diff := cmp.Diff(sorted(want), sorted(w.api.remoteIDs())); diff != "" {
				t.Errorf("remote keys (-want +got):\n%s", diff)
			}
		})
	}
}

// answerAfter answers the confirmation only after running do, as if it
// happened while the question was open.
type answerAfter struct {
	do     func()
	answer io.Reader
}

func (a *answerAfter) Read(p []byte) (int, error) {
	if a.do != nil {
		a.do()
		a.do = nil
	}
	return a.answer.Read(p)
}

func TestOrphansDeleteSkipsAKeyAnApiKeyTookWhileAsking(t *testing.T) {
	w := newOrphanWorld(t)
	taken := w.orphans[0]
	stdin := &answerAfter{answer: strings.NewReader("y\n"), do: func() {
		apiKey(t, w.ns, "restored", &iamv1alpha1.ApiKeyStatus{KeyID: taken})
	}}
	r := invocation{stdin: stdin}.run(t, "orphans", "api", "-n", w.ns, "--delete")
	if r.err != nil {
		t.Fatalf("orphans --delete: %v", r.err)
	}
	left := w.api.remoteIDs()
	if !slices.Contains(left, taken) {
		t.Errorf("the key an ApiKey took while the question was open was deleted")
	}
	if slices.Contains(left, w.orphans[1]) {
		t.Errorf("the other orphan was not deleted")
	}
	if len(lines(r.out, "skipped "+taken, w.ns+"/restored")) != 1 {
		t.Errorf("the output does not say why %s was skipped", taken)
	}
}

func TestOrphansOfAClusterConnection(t *testing.T) {
	w := newOrphanWorld(t)
	name := "cc-" + w.ns
	create(t, &iamv1alpha1.ClusterConnection{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: iamv1alpha1.ClusterConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			URL:                  w.api.url,
			OrganizationID:       w.api.org,
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Namespace: w.ns, Name: "credentials", Key: "token"},
		}},
	})
	r := run(t, "orphans", name, "--cluster", "--delete", "--yes")
	if r.err != nil {
		t.Fatalf("orphans --cluster --delete --yes: %v", r.err)
	}
	left := w.api.remoteIDs()
	for _, id := range w.all {
		if slices.Contains(w.orphans, id) == slices.Contains(left, id) {
			t.Errorf("key %s: orphan %v, still there %v", id, slices.Contains(w.orphans, id), slices.Contains(left, id))
		}
	}
}

func TestOrphansWithAReadOnlyTokenReportsForbiddenAndKeepsTheKeys(t *testing.T) {
	w := newOrphanWorld(t)
	readOnly := w.api.tokenFor(t, "viewer@example.com", emulator.RoleReadOnly)
	credentials(t, w.ns, "read-only", readOnly)
	create(t, &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "viewer"},
		Spec: iamv1alpha1.ConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			URL: w.api.url, OrganizationID: w.api.org,
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: "read-only"},
		}},
	})
	r := run(t, "orphans", "viewer", "-n", w.ns, "--delete", "--yes")
	if r.err == nil {
		t.Fatal("deleting with a read-only token succeeded")
	}
	if !strings.Contains(r.err.Error(), "read-write or admin role") {
		t.Errorf("the error does not say which role deleting needs")
	}
	if st := w.api.emu.Stats(); st.Delete != 1 {
		t.Errorf("%d deletes were sent; after the first 403 the others would be refused too", st.Delete)
	}
	if diff := cmp.Diff(sorted(w.all), sorted(w.api.remoteIDs())); diff != "" {
		t.Errorf("remote keys (-want +got):\n%s", diff)
	}
}

func TestOrphansFailsWhenApiKeysCannotBeListedInEveryNamespace(t *testing.T) {
	w := newOrphanWorld(t)
	// This user may read the connection and its Secret and list the
	// ApiKeys of this namespace, but not those of the others: an ApiKey
	// it cannot see could hold any of the keys.
	user := "ns-admin-" + w.ns
	create(t, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "plugin"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{iamv1alpha1.GroupVersion.Group}, Resources: []string{"connections", "apikeys"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
		},
	})
	create(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "plugin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "plugin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	})
	kubeconfig, err := kubeconfigFor(envtest.User{Name: user})
	if err != nil {
		t.Fatal(err)
	}
	r := invocation{kubeconfig: kubeconfig}.run(t, "orphans", "api", "-n", w.ns, "--delete", "--yes")
	if r.err == nil || !strings.Contains(r.err.Error(), "list ApiKeys in all namespaces") {
		t.Errorf("got error %v, want one saying the ApiKeys of all namespaces could not be listed", r.err)
	}
	if ids := listedIDs(r.out); len(ids) != 0 {
		t.Errorf("keys were listed as orphans without knowing every ApiKey: %v", ids)
	}
	if diff := cmp.Diff(sorted(w.all), sorted(w.api.remoteIDs())); diff != "" {
		t.Errorf("remote keys (-want +got):\n%s", diff)
	}
}

func TestOrphansYesWithoutDeleteIsRefused(t *testing.T) {
	r := run(t, "orphans", "api", "--yes")
	if r.err == nil || !strings.Contains(r.err.Error(), "--yes only applies with --delete") {
		t.Errorf("got error %v, want --yes refused without --delete", r.err)
	}
}

func TestOrphansRefusesAnApiKeyStoredAsTheToken(t *testing.T) {
	a := newAPI(t)
	ns := newNamespace(t)
	k := a.createKey(t, "a key")
	credentials(t, ns, "credentials", k.Secret.Reveal())
	a.connection(t, ns, "api")
	a.emu.ResetStats()
	r := run(t, "orphans", "api", "-n", ns)
	if r.err == nil || !strings.Contains(r.err.Error(), "holds an API key (mob_...), not a session token") {
		t.Errorf("got error %v, want the API key refused as a token", r.err)
	}
	if got := a.emu.Stats(); got.List+got.Delete != 0 {
		t.Errorf("the API was called with an API key as the token: %+v", got)
	}
}
