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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// Every run of the plugin in these tests is checked for the tokens and key
// secrets seen so far (see invocation.run). This test runs every command,
// on success and failure paths, in one world whose token and key secrets are
// all known, and checks the whole transcript once more.
func TestNoCommandPrintsATokenOrAKeySecret(t *testing.T) {
	a := newAPI(t)
	ns := newNamespace(t)
	credentials(t, ns, "credentials", a.token)
	a.connection(t, ns, "api")
	current := a.createKey(t, ns+"/ci [k8s-0a0a0a0a]")
	orphan := a.createKey(t, ns+"/gone [k8s-0b0b0b0b]")
	a.createKey(t, "made by hand")
	apiKey(t, ns, "ci", &iamv1alpha1.ApiKeyStatus{
		Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "KeyReady", LastTransitionTime: metav1.Now()}},
		KeyID:      current.ID,
	})
	create(t, &iamv1alpha1.ClusterConnection{
		ObjectMeta: metav1.ObjectMeta{Name: "cc-" + ns},
		Spec: iamv1alpha1.ClusterConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			URL: a.url, OrganizationID: a.org,
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Namespace: ns, Name: "credentials"},
		}},
	})
	credentials(t, ns, "wrong", current.Secret.Reveal())
	connectionTo(t, ns, "wrong", iamv1alpha1.SecretKeyReference{Name: "wrong"})

	var transcript strings.Builder
	for _, c := range []struct {
		inv  invocation
		args []string
	}{
		{args: []string{"status", "-n", ns}},
		{args: []string{"status", "-A"}},
		{args: []string{"rotate", "ci", "-n", ns}},
		{args: []string{"pause", "ci", "-n", ns}},
		{args: []string{"resume", "ci", "-n", ns}},
		{args: []string{"token", "set", "api", "-n", ns, "--from-file", tokenFile(t, a.token)}},
		{inv: invocation{stdin: strings.NewReader(a.token)}, args: []string{"token", "set", "cc-" + ns, "--cluster", "--from-file", "-"}},
		{inv: invocation{stdin: strings.NewReader(orphan.Secret.Reveal())}, args: []string{"token", "set", "api", "-n", ns, "--from-file", "-"}},
		{inv: invocation{stdin: strings.NewReader(a.token), now: time.Now().Add(48 * time.Hour)}, args: []string{"token", "set", "api", "-n", ns, "--from-file", "-"}},
		{args: []string{"orphans", "api", "-n", ns}},
		{args: []string{"orphans", "wrong", "-n", ns}},
		{inv: invocation{stdin: strings.NewReader("n\n")}, args: []string{"orphans", "cc-" + ns, "--cluster", "--delete"}},
		{args: []string{"orphans", "api", "-n", ns, "--delete", "--yes"}},
	} {
		r := c.inv.run(t, c.args...)
		transcript.WriteString(r.all())
	}

	// The check must be able to see a leak: the values are known to it...
	for _, v := range []string{a.token, current.Secret.Reveal(), orphan.Secret.Reveal()} {
		if leaks("output: "+v) != 1 {
			t.Fatal("the leak check does not recognise a token or key secret")
		}
	}
	// ...the commands did handle them...
	if got := secretData(t, ns, "credentials"); got["token"] != a.token {
		t.Fatal("token set did not store the token")
	}
	if !strings.Contains(transcript.String(), orphan.ID) || !strings.Contains(transcript.String(), "deleted "+orphan.ID) {
		t.Fatal("orphans did not list and delete the orphaned key")
	}
	// ...and none of them showed any.
	if n := leaks(transcript.String()); n > 0 {
		t.Errorf("%d tokens or key secrets appear in the commands' output", n)
	}
}
