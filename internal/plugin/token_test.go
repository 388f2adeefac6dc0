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
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// tokenFile writes a token into a file of the test's own.
func tokenFile(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// unsignedJWT builds a JWT with the given payload and a dummy signature.
func unsignedJWT(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload)) + "." + enc([]byte("signature"))
}

func connectionTo(t *testing.T, ns, name string, ref iamv1alpha1.SecretKeyReference) {
	t.Helper()
	create(t, &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: iamv1alpha1.ConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			CredentialsSecretRef: ref,
		}},
	})
}

func secretData(t *testing.T, ns, name string) map[string]string {
	t.Helper()
	s := &corev1.Secret{}
	get(t, ns, name, s)
	data := map[string]string{}
	for k, v := range s.Data {
		data[k] = string(v)
	}
	return data
}

func TestTokenSetCreatesTheCredentialsSecretOfAConnection(t *testing.T) {
	a := newAPI(t)
	ns := newNamespace(t)
	connectionTo(t, ns, "api", iamv1alpha1.SecretKeyReference{Name: "creds", Key: "session"})

	r := run(t, "token", "set", "api", "-n", ns, "--from-file", tokenFile(t, a.token))
	if r.err != nil {
		t.Fatalf("token set: %v", r.err)
	}
	s := &corev1.Secret{}
	get(t, ns, "creds", s)
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("the Secret has type %q, want Opaque", s.Type)
	}
	// Compared without printing either side: a diff would show the token.
	if got := secretData(t, ns, "creds"); len(got) != 1 || got["session"] != a.token {
		t.Errorf("the Secret does not hold exactly the token in key session (keys %v)", keysOf(got))
	}
	exp, err := mobilenext.NewToken(a.token).ExpiresAt()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"secret " + ns + "/creds created", `key "session"`, "Connection " + ns + "/api", exp.UTC().Format(time.RFC3339)} {
		if !strings.Contains(r.out, want) {
			t.Errorf("the output lacks %q: %q", want, r.out)
		}
	}
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestTokenSetFromStandardInputUpdatesOnlyItsKeyOfAnExistingSecret(t *testing.T) {
	a := newAPI(t)
	ns := newNamespace(t)
	connectionTo(t, ns, "api", iamv1alpha1.SecretKeyReference{Name: "credentials"})
	old := unsignedJWT(`{"exp":1900000000}`)
	remember(old)
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "credentials", Labels: map[string]string{"team": "payments"}},
		Data:       map[string][]byte{"token": []byte(old), "note": []byte("kept")},
	})

	r := invocation{stdin: strings.NewReader(a.token + "\n")}.run(t, "token", "set", "api", "-n", ns, "--from-file", "-")
	if r.err != nil {
		t.Fatalf("token set: %v", r.err)
	}
	got := secretData(t, ns, "credentials")
	if got["token"] != a.token {
		t.Errorf("the Secret's key token does not hold the new token")
	}
	if got["note"] != "kept" || len(got) != 2 {
		t.Errorf("the Secret's other data was changed (keys %v)", keysOf(got))
	}
	s := &corev1.Secret{}
	get(t, ns, "credentials", s)
	if diff := cmp.Diff(map[string]string{"team": "payments"}, s.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.out, "secret "+ns+"/credentials updated") {
		t.Errorf("the output does not say the Secret was updated: %q", r.out)
	}
}

func TestTokenSetOfAClusterConnectionWritesTheSecretItsRefNames(t *testing.T) {
	a := newAPI(t)
	ns := newNamespace(t)
	name := "cc-" + ns
	create(t, &iamv1alpha1.ClusterConnection{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: iamv1alpha1.ClusterConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Namespace: ns, Name: "mobilenext-credentials"},
		}},
	})
	// The namespace given with -n is not where a ClusterConnection's Secret is.
	r := run(t, "token", "set", name, "--cluster", "-n", "default", "--from-file", tokenFile(t, a.token))
	if r.err != nil {
		t.Fatalf("token set --cluster: %v", r.err)
	}
	if got := secretData(t, ns, "mobilenext-credentials"); got["token"] != a.token {
		t.Errorf("the Secret named by the ClusterConnection does not hold the token")
	}
	if err := k8sClient.Get(t.Context(), client.ObjectKey{Namespace: "default", Name: "mobilenext-credentials"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Secret was written in the namespace of -n: %v", err)
	}
}

func TestTokenSetRefusesWhatIsNotAUsableSessionToken(t *testing.T) {
	a := newAPI(t)
	apiKeyValue := a.createKey(t, "a key").Secret.Reveal()
	notJWT := "this-is-no-jwt-8d1f0c"
	noExp := unsignedJWT(`{"sub":"usr_1"}`)
	remember(notJWT, noExp)
	exp, err := mobilenext.NewToken(a.token).ExpiresAt()
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		reason string
		input  string
		now    time.Time
		want   string
	}{
		{reason: "an API key", input: apiKeyValue, want: "the input is an API key (it starts with mob_), not a session token"},
		{reason: "not a JWT", input: notJWT, want: "the input is not a session token (a JWT with an exp claim"},
		{reason: "a JWT without exp", input: noExp, want: "token has no exp claim"},
		{reason: "an expired session token", input: a.token, now: exp.Add(time.Second), want: "the session token expired at " + exp.UTC().Format(time.RFC3339)},
		{reason: "nothing", input: "", want: "the input is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			ns := newNamespace(t)
			connectionTo(t, ns, "api", iamv1alpha1.SecretKeyReference{Name: "credentials"})
			r := invocation{now: tc.now, stdin: strings.NewReader(tc.input)}.run(t, "token", "set", "api", "-n", ns, "--from-file", "-")
			if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", r.err, tc.want)
			}
			err := k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "credentials"}, &corev1.Secret{})
			if !apierrors.IsNotFound(err) {
				t.Errorf("the refused value was stored: %v", err)
			}
		})
	}
}

func TestTokenSetNeedsAFileAndAnExistingConnection(t *testing.T) {
	a := newAPI(t)
	ns := newNamespace(t)
	r := run(t, "token", "set", "api", "-n", ns)
	if r.err == nil || !strings.Contains(r.err.Error(), "--from-file is required") {
		t.Errorf("without --from-file: got %v", r.err)
	}
	r = run(t, "token", "set", "api", "-n", ns, "--from-file", tokenFile(t, a.token))
	if r.err == nil || !strings.Contains(r.err.Error(), "use --cluster for a ClusterConnection") {
		t.Errorf("for a missing Connection: got %v", r.err)
	}
}

func TestTokenSetRefusesKubectlsTokenFlagBeforeCallingTheCluster(t *testing.T) {
	a := newAPI(t)
	ns := newNamespace(t)
	connectionTo(t, ns, "api", iamv1alpha1.SecretKeyReference{Name: "credentials"})
	// The kubeconfig's own credentials would work; a bearer token given
	// with --token replaces them, and it must not be sent anywhere.
	r := run(t, "token", "set", "api", "-n", ns, "--token", a.token, "--from-file", tokenFile(t, a.token))
	if r.err == nil || !strings.Contains(r.err.Error(), "--token is the bearer token for the Kubernetes API, not the session token") {
		t.Errorf("got %v, want --token refused", r.err)
	}
	if err := k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "credentials"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Secret was written: %v", err)
	}
}

func TestTokenSetLeavesTheSecretOfAnApiKeyAlone(t *testing.T) {
	a := newAPI(t)
	ns := newNamespace(t)
	connectionTo(t, ns, "api", iamv1alpha1.SecretKeyReference{Name: "ci"})
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci", Labels: map[string]string{
			iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue, iamv1alpha1.ApiKeyLabel: "ci",
		}},
		Data: map[string][]byte{"apiKey": []byte("mob_placeholder")},
	})
	r := run(t, "token", "set", "api", "-n", ns, "--from-file", tokenFile(t, a.token))
	if r.err == nil || !strings.Contains(r.err.Error(), `holds the key of ApiKey "ci" and is managed by the operator`) {
		t.Errorf("got %v, want the ApiKey's Secret refused", r.err)
	}
	if got := secretData(t, ns, "ci"); len(got) != 1 {
		t.Errorf("the ApiKey's Secret was changed (keys %v)", keysOf(got))
	}
}
