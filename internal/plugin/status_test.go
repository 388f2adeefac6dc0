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
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

func condition(typ string, status metav1.ConditionStatus, reason, message string, at time.Time) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.NewTime(at)}
}

// section returns the lines of out from the line equal to title up to the
// next blank line.
func section(out, title string) string {
	var b strings.Builder
	in := false
	for l := range strings.Lines(out) {
		switch {
		case strings.TrimSpace(l) == title:
			in = true
		case in && strings.TrimSpace(l) == "":
			return b.String()
		case in:
			b.WriteString(l)
		}
	}
	return b.String()
}

// groups maps each "Ready=... REASON (n)" header of the API KEYS section to
// the names of the ApiKeys listed under it.
func groups(out string) map[string][]string {
	got := map[string][]string{}
	var current string
	for l := range strings.Lines(section(out, "API KEYS")) {
		f := strings.Fields(l)
		switch {
		case len(f) == 0:
		case strings.HasPrefix(f[0], "Ready="):
			current = strings.TrimSpace(l)
			got[current] = nil
		case f[0] != "NAMESPACE" && len(f) > 1:
			got[current] = append(got[current], f[1])
		}
	}
	return got
}

func TestStatusShowsConnectionsApiKeysByReasonRetiringKeysAndAttempts(t *testing.T) {
	ns := newNamespace(t)
	now := time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(d)) }
	loc := &iamv1alpha1.KeyLocation{URL: "https://api.example.test", OrganizationID: "org_acme"}

	conn := &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
		Spec: iamv1alpha1.ConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			OrganizationID:       "org_acme",
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: "credentials"},
		}},
	}
	create(t, conn)
	expires := at(2 * time.Hour)
	conn.Status = iamv1alpha1.ConnectionStatus{
		Conditions:          []metav1.Condition{condition("Ready", metav1.ConditionTrue, "Valid", "", now)},
		CredentialsExpireAt: &expires,
	}
	setStatus(t, conn)

	expired := &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "old"},
		Spec: iamv1alpha1.ConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: "old"},
		}},
	}
	create(t, expired)
	expiredAt := at(-3 * 24 * time.Hour)
	expired.Status = iamv1alpha1.ConnectionStatus{
		Conditions:          []metav1.Condition{condition("Ready", metav1.ConditionFalse, "Expired", "the session token expired: log in again", now)},
		CredentialsExpireAt: &expiredAt,
	}
	setStatus(t, expired)

	ready := []metav1.Condition{
		condition("Ready", metav1.ConditionTrue, "KeyReady", "", now),
		condition("Synced", metav1.ConditionTrue, "ReconcileSuccess", "", now),
	}
	used := at(-5 * time.Minute)
	apiKey(t, ns, "ci", &iamv1alpha1.ApiKeyStatus{
		Conditions: ready, KeyID: "key_ci2", APIKeySuffix: "Xs5MCdEJ", SecretName: "ci", LastUsedAt: &used,
		PreviousKeys: []iamv1alpha1.PreviousKey{{
			KeyID: "key_ci1", APIKeySuffix: "Ab12Cd34", ReplacedAt: at(-time.Minute), DeleteAfter: at(9 * time.Minute), Location: loc,
		}},
	})
	apiKey(t, ns, "web", &iamv1alpha1.ApiKeyStatus{
		Conditions: []metav1.Condition{
			condition("Ready", metav1.ConditionTrue, "KeyReady", "", now),
			condition("Synced", metav1.ConditionFalse, "BackingOff", "calls held back until 12:05", now),
		},
		KeyID: "key_web", APIKeySuffix: "Qq9Rr8Ss", SecretName: "web",
	})
	apiKey(t, ns, "batch", &iamv1alpha1.ApiKeyStatus{
		Conditions: []metav1.Condition{
			condition("Ready", metav1.ConditionFalse, "ConnectionNotReady", "Connection old is not Ready: Expired", now),
			condition("Synced", metav1.ConditionFalse, "ConnectionNotReady", "Connection old is not Ready: Expired", now),
		},
	})
	apiKey(t, ns, "fresh", &iamv1alpha1.ApiKeyStatus{
		Conditions: []metav1.Condition{condition("Ready", metav1.ConditionFalse, "Creating", "creating the key", now)},
		PendingCreate: &iamv1alpha1.CreateAttempt{
			ID: "7f3a9c1e", Name: ns + "/fresh [k8s-7f3a9c1e]", StartedAt: at(-10 * time.Second), Reason: "Create", Location: loc,
		},
		UnresolvedAttempts: []iamv1alpha1.UnresolvedAttempt{{ID: "0badf00d", WatchUntil: at(4 * time.Minute), Location: loc}},
	})
	apiKey(t, ns, "new", nil)

	r := invocation{now: now}.run(t, "status", "-n", ns)
	if r.err != nil {
		t.Fatalf("status: %v", r.err)
	}

	conns := section(r.out, "CONNECTIONS")
	if got := lines(conns, "Connection", ns, "api", "True", "Valid", "org_acme", "2030-05-01T14:00:00Z (in 120m)"); len(got) != 1 {
		t.Errorf("the Connection api is not shown Ready with its organization and expiry:\n%s", conns)
	}
	if got := lines(conns, "Connection", ns, "old", "False", "Expired", "(default)", "2030-04-28T12:00:00Z (3d ago)", "log in again"); len(got) != 1 {
		t.Errorf("the Connection old is not shown expired with its message:\n%s", conns)
	}

	wantGroups := map[string][]string{
		"Ready=True KeyReady (2)":              {"ci", "web"},
		"Ready=False ConnectionNotReady (1)":   {"batch"},
		"Ready=False Creating (1)":             {"fresh"},
		"Ready=Unknown (no condition yet) (1)": {"new"},
	}
	if diff := cmp.Diff(wantGroups, groups(r.out)); diff != "" {
		t.Errorf("ApiKeys by Ready reason (-want +got):\n%s", diff)
	}
	keys := section(r.out, "API KEYS")
	if len(lines(keys, "ci", "Connection", "True", "Xs5MCdEJ", "2030-05-01T11:55:00Z (5m ago)")) != 1 {
		t.Errorf("ci is not shown synced with its suffix and last use:\n%s", keys)
	}
	if len(lines(keys, "web", "False (BackingOff)", "calls held back until 12:05")) != 1 {
		t.Errorf("web is not shown with Synced=False BackingOff and its message:\n%s", keys)
	}

	retiring := section(r.out, "KEYS AWAITING RETIREMENT")
	if len(lines(retiring, ns, "ci", "key_ci1", "Ab12Cd34", "2030-05-01T12:09:00Z (in 9m)", "organization org_acme at https://api.example.test")) != 1 {
		t.Errorf("the previous key of ci is not shown with its deadline:\n%s", retiring)
	}
	if strings.Contains(retiring, "key_ci2") {
		t.Errorf("the current key is shown as awaiting retirement:\n%s", retiring)
	}

	attempts := section(r.out, "CREATE ATTEMPTS (in flight or unresolved)")
	if len(lines(attempts, "fresh", "7f3a9c1e", "in flight (Create)", "(10s ago)")) != 1 {
		t.Errorf("the create in flight is not shown:\n%s", attempts)
	}
	if len(lines(attempts, "fresh", "0badf00d", "unresolved", "watched until 2030-05-01T12:04:00Z (in 4m)")) != 1 {
		t.Errorf("the unresolved attempt is not shown:\n%s", attempts)
	}
}

func TestStatusShowsOneNamespaceOrAllOfThem(t *testing.T) {
	ns, other := newNamespace(t), newNamespace(t)
	apiKey(t, ns, "here", nil)
	apiKey(t, other, "there", nil)

	r := run(t, "status", "-n", ns)
	if r.err != nil {
		t.Fatalf("status: %v", r.err)
	}
	if len(lines(r.out, ns, "here")) != 1 || strings.Contains(r.out, "there") {
		t.Errorf("status -n %s does not show exactly the ApiKeys of %s:\n%s", ns, ns, r.out)
	}

	r = run(t, "status", "-A")
	if r.err != nil {
		t.Fatalf("status -A: %v", r.err)
	}
	if len(lines(r.out, ns, "here")) != 1 || len(lines(r.out, other, "there")) != 1 {
		t.Errorf("status -A does not show the ApiKeys of every namespace:\n%s", r.out)
	}

	empty := newNamespace(t)
	r = run(t, "status", "-n", empty)
	if r.err != nil || !strings.Contains(r.out, "No ApiKeys in namespace "+empty+".") {
		t.Errorf("status of an empty namespace: %v\n%s", r.err, r.out)
	}
}

func TestStatusShowsClusterConnectionsAndSaysWhenItMayNotListThem(t *testing.T) {
	ns := newNamespace(t)
	name := "cc-" + ns
	create(t, &iamv1alpha1.ClusterConnection{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: iamv1alpha1.ClusterConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			OrganizationID:       "org_cluster",
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Namespace: ns, Name: "credentials"},
		}},
	})
	apiKey(t, ns, "mine", nil)

	r := run(t, "status", "-n", ns)
	if r.err != nil {
		t.Fatalf("status: %v", r.err)
	}
	if len(lines(section(r.out, "CONNECTIONS"), "ClusterConnection", name, "Unknown", "org_cluster")) != 1 {
		t.Errorf("the ClusterConnection is not shown:\n%s", r.out)
	}

	// A namespace user may read its own namespace only.
	user := "reader-" + ns
	create(t, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{iamv1alpha1.GroupVersion.Group}, Resources: []string{"connections", "apikeys"}, Verbs: []string{"get", "list"},
		}},
	})
	create(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "reader"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	})
	kubeconfig, err := kubeconfigFor(envtest.User{Name: user})
	if err != nil {
		t.Fatal(err)
	}
	r = invocation{kubeconfig: kubeconfig}.run(t, "status", "-n", ns)
	if r.err != nil {
		t.Fatalf("status as a namespace user: %v", r.err)
	}
	if !strings.Contains(r.out, "ClusterConnections are not shown: you may not list them") || strings.Contains(r.out, name) {
		t.Errorf("status as a namespace user does not say ClusterConnections are hidden:\n%s", r.out)
	}
	if len(lines(r.out, ns, "mine")) != 1 {
		t.Errorf("status as a namespace user does not show its ApiKeys:\n%s", r.out)
	}
}
