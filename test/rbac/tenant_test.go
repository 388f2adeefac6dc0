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
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// access is one question to the authorizer: may user do verb on resource
// (of the operator's API group) in namespace ("" for cluster-wide)?
type access struct {
	user, verb, resource, namespace string
	allowed                         bool
}

func (a access) String() string {
	where := "cluster-wide"
	if a.namespace != "" {
		where = "in " + a.namespace
	}
	return fmt.Sprintf("%s %s %s %s", a.user, a.verb, a.resource, where)
}

func TestTenantsUseApiKeysAndConnectionsThroughTheBuiltInRoles(t *testing.T) {
	ctx := newContext(t, 5*time.Minute)
	const team, other = "tenant-team", "tenant-other"
	for _, ns := range []string{team, other} {
		mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		t.Cleanup(func() {
			_ = k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		})
	}
	// Each user is bound to one built-in ClusterRole in the team's
	// namespace, as a cluster administrator would do.
	for user, role := range map[string]string{"editor": "edit", "viewer": "view", "admin": "admin"} {
		mustCreate(t, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		})
	}

	table := []access{
		{"editor", "create", "apikeys", team, true},
		{"editor", "patch", "apikeys", team, true},
		{"editor", "delete", "apikeys", team, true},
		{"editor", "create", "connections", team, true},
		{"editor", "update", "connections", team, true},
		{"editor", "get", "apikeys/status", team, true},
		// Status is the operator's: a tenant who could write it could
		// forge which key the operator believes it holds.
		{"editor", "update", "apikeys/status", team, false},
		{"editor", "patch", "connections/status", team, false},
		{"editor", "create", "apikeys", other, false},
		{"editor", "create", "clusterconnections", "", false},
		{"editor", "list", "clusterconnections", "", false},
		{"viewer", "list", "apikeys", team, true},
		{"viewer", "watch", "connections", team, true},
		{"viewer", "create", "apikeys", team, false},
		{"viewer", "delete", "connections", team, false},
		{"admin", "deletecollection", "apikeys", team, true},
		{"admin", "create", "connections", team, true},
		{"admin", "create", "clusterconnections", "", false},
		{"admin", "get", "clusterconnections", "", false},
		{"nobody", "get", "apikeys", team, false},
	}
	// The clusterrole-aggregation controller fills edit, view and admin
	// with the operator's roles shortly after they are applied.
	eventually(t, time.Minute, "the built-in roles grant what the table says", func() error {
		var wrong []string
		for _, a := range table {
			allowed, err := mayDo(a)
			if err != nil {
				return err
			}
			if allowed != a.allowed {
				wrong = append(wrong, fmt.Sprintf("%s: allowed=%v, want %v", a, allowed, a.allowed))
			}
		}
		if len(wrong) > 0 {
			return fmt.Errorf("\n%s", strings.Join(wrong, "\n"))
		}
		return nil
	})

	// The same, for real, as the editor.
	editor := impersonate(t, "editor")
	if err := editor.Create(ctx, &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "team-api"},
		Spec: iamv1alpha1.ConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: "team-credentials"},
		}},
	}); err != nil {
		t.Errorf("an editor of %s creates a Connection there: %v", team, err)
	}
	key := &iamv1alpha1.ApiKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "ci"},
		Spec: iamv1alpha1.ApiKeySpec{
			ConnectionRef: iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ConnectionKind, Name: "team-api"},
		},
	}
	if err := editor.Create(ctx, key); err != nil {
		t.Errorf("an editor of %s creates an ApiKey there: %v", team, err)
	}
	key.Status.KeyID = "key_forged"
	if err := editor.Status().Update(ctx, key); !apierrors.IsForbidden(err) {
		t.Errorf("an editor writes an ApiKey's status: got %v, want Forbidden", err)
	}
	err := editor.Create(ctx, &iamv1alpha1.ClusterConnection{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant-made"},
		Spec: iamv1alpha1.ClusterConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: "team-credentials", Namespace: team},
		}},
	})
	if !apierrors.IsForbidden(err) {
		t.Errorf("an editor of a namespace creates a ClusterConnection: got %v, want Forbidden", err)
	}
}

// mayDo asks the API server's authorizer, as a SubjectAccessReview.
func mayDo(a access) (bool, error) {
	resource, subresource, _ := strings.Cut(a.resource, "/")
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: a.user,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Group: iamv1alpha1.GroupVersion.Group, Version: iamv1alpha1.GroupVersion.Version,
			Resource: resource, Subresource: subresource, Verb: a.verb, Namespace: a.namespace,
		},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := k8sClient.Create(ctx, review); err != nil {
		return false, err
	}
	return review.Status.Allowed, nil
}

// impersonate returns a client that acts as user.
func impersonate(t *testing.T, user string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
