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

package rbac

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mobile-next/apikey-operator/test/manifests"
)

// need is one rule the operator needs, and why. README.md (RBAC) says the
// same to users.
type need struct {
	group     string
	resources []string
	verbs     []string
	why       string
}

// managerNeeds is the manager's ClusterRole (config/rbac/role.yaml,
// generated from the +kubebuilder:rbac markers): nothing more, nothing less.
var managerNeeds = []need{
	{"iam.mobilenexthq.com", []string{"apikeys", "connections", "clusterconnections"}, []string{"get", "list", "watch"},
		"the reconcilers watch all three kinds through the cache " +
			"(list for API servers that do not stream the initial listing)"},
	{"iam.mobilenexthq.com", []string{"apikeys", "connections", "clusterconnections"}, []string{"patch"},
		"adding and removing the operator's finalizers (an optimistic-lock merge patch); nothing else of a spec is written"},
	{"iam.mobilenexthq.com", []string{"apikeys/status"}, []string{"update"},
		"an ApiKey's status is written once per reconcile, conflict-checked (the create protocol depends on it)"},
	{"iam.mobilenexthq.com", []string{"connections/status", "clusterconnections/status"}, []string{"update", "patch"},
		"readiness and expiry of a connection (update), the credentials Secrets it holds (patch)"},
	{"iam.mobilenexthq.com", []string{"apikeys/finalizers"}, []string{"update"},
		"a Secret's controller reference to its ApiKey blocks the ApiKey's deletion, which " +
			"OwnerReferencesPermissionEnforcement allows only to who may update apikeys/finalizers " +
			"(nothing refers to a connection: no connections/finalizers)"},
	{"", []string{"secrets"}, []string{"get", "list", "watch"},
		"the Secrets the operator writes are cached (selected by label); credentials Secrets are read one at a time"},
	{"", []string{"secrets"}, []string{"create", "update", "patch", "delete"},
		"writing the key's Secret, restoring its template labels, the credentials-in-use finalizer, " +
			"removing a Secret when secretName changes"},
	{"", []string{"namespaces"}, []string{"get", "list", "watch"},
		"a ClusterConnection's namespaceSelector is matched against the labels of the ApiKey's namespace"},
	{"apps", []string{"deployments", "statefulsets", "daemonsets"}, []string{"get", "patch"},
		"rolloutRestartTargets: the pod template gets the restarted-for-key annotation"},
	{"events.k8s.io", []string{"events"}, []string{"create", "patch"},
		"events on transitions (created, rotated, drift repaired, deleted, failures); patch counts repeats"},
}

// leaderElectionNeeds is the Role in the manager's namespace.
var leaderElectionNeeds = []need{
	{"coordination.k8s.io", []string{"leases"}, []string{"get", "create", "update"},
		"the leader election Lease (client-go's LeaseLock gets, creates and updates it, also to release it)"},
	{"", []string{"events"}, []string{"create", "patch"},
		"the leader elector's event when a replica becomes the leader (core/v1 events)"},
}

// metricsAuthNeeds is the ClusterRole that protects the metrics endpoint.
var metricsAuthNeeds = []need{
	{"authentication.k8s.io", []string{"tokenreviews"}, []string{"create"},
		"the metrics endpoint authenticates the scraper's bearer token"},
	{"authorization.k8s.io", []string{"subjectaccessreviews"}, []string{"create"},
		"and asks whether the scraper may get /metrics"},
}

func rulesOf(needs []need) []rbacv1.PolicyRule {
	rules := make([]rbacv1.PolicyRule, 0, len(needs))
	for _, n := range needs {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{n.group}, Resources: n.resources, Verbs: n.verbs})
	}
	return rules
}

func TestRolesGrantWhatTheOperatorNeedsAndNothingMore(t *testing.T) {
	roleYAML, err := manifests.Load(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		role  []rbacv1.PolicyRule
		needs []need
	}{
		{"config/rbac/role.yaml (the manager's ClusterRole)",
			mustRules(t, manifests.Find(roleYAML, "ClusterRole", "manager-role")), managerNeeds},
		{"install.yaml manager ClusterRole",
			mustRules(t, manifests.Find(installed, "ClusterRole", "apikey-operator-manager-role")), managerNeeds},
		{"install.yaml leader election Role",
			mustRules(t, manifests.Find(installed, "Role", "apikey-operator-leader-election-role")), leaderElectionNeeds},
		{"install.yaml metrics auth ClusterRole",
			mustRules(t, manifests.Find(installed, "ClusterRole", "apikey-operator-metrics-auth-role")), metricsAuthNeeds},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(manifests.Grants(rulesOf(tc.needs)), manifests.Grants(tc.role)); diff != "" {
				t.Errorf("the role differs from what the operator needs (-needed +granted); a new need gets a row "+
					"with its reason here and in README.md (RBAC):\n%s", diff)
			}
		})
	}
}

func TestReadmeExplainsEveryRule(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start := strings.Index(readme, "### RBAC")
	if start < 0 {
		t.Fatal("README.md has no RBAC section")
	}
	section := readme[start:]
	if end := strings.Index(section[len("### RBAC"):], "\n## "); end >= 0 {
		section = section[:len("### RBAC")+end]
	}
	for _, n := range slices.Concat(managerNeeds, leaderElectionNeeds, metricsAuthNeeds) {
		for _, r := range n.resources {
			if !strings.Contains(section, "`"+r+"`") {
				t.Errorf("README.md (RBAC) does not mention `%s`", r)
			}
		}
	}
}

// mustRules returns the rules of a role of a manifest, failing the test if
// there is no such role.
func mustRules(t *testing.T, role *unstructured.Unstructured) []rbacv1.PolicyRule {
	t.Helper()
	if role == nil {
		t.Fatal("no such role in the manifest")
	}
	rules, err := manifests.Rules(role)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}
