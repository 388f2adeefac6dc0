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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// annotatedKey creates an ApiKey with an annotation of someone else's, which
// the commands must leave alone.
func annotatedKey(t *testing.T, ns, name string) {
	t.Helper()
	create(t, &iamv1alpha1.ApiKey{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: name, Annotations: map[string]string{"team.example.com/owner": "payments"},
	}})
}

func annotations(t *testing.T, ns, name string) map[string]string {
	t.Helper()
	k := &iamv1alpha1.ApiKey{}
	get(t, ns, name, k)
	return k.Annotations
}

func TestRotateSetsTheRotateAnnotationToANewValueEachTime(t *testing.T) {
	ns := newNamespace(t)
	annotatedKey(t, ns, "ci")
	first := time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)

	for _, now := range []time.Time{first, first.Add(time.Second), first.Add(time.Second + time.Millisecond)} {
		r := invocation{now: now}.run(t, "rotate", "ci", "-n", ns)
		if r.err != nil {
			t.Fatalf("rotate: %v", r.err)
		}
		want := map[string]string{
			"team.example.com/owner":     "payments",
			iamv1alpha1.RotateAnnotation: now.Format(time.RFC3339Nano),
		}
		if diff := cmp.Diff(want, annotations(t, ns, "ci")); diff != "" {
			t.Errorf("annotations after rotate at %v (-want +got):\n%s", now, diff)
		}
		if !strings.Contains(r.out, "apikey "+ns+"/ci: rotation requested") {
			t.Errorf("rotate does not say what it did: %q", r.out)
		}
	}
}

func TestRotateOfAPausedApiKeySaysItWaits(t *testing.T) {
	ns := newNamespace(t)
	annotatedKey(t, ns, "ci")
	if r := run(t, "pause", "ci", "-n", ns); r.err != nil {
		t.Fatalf("pause: %v", r.err)
	}
	r := run(t, "rotate", "ci", "-n", ns)
	if r.err != nil {
		t.Fatalf("rotate: %v", r.err)
	}
	if !strings.Contains(r.out, "is paused: it rotates once resumed") {
		t.Errorf("rotate of a paused ApiKey does not say it waits: %q", r.out)
	}
}

func TestPauseAndResumeSetAndRemoveThePausedAnnotation(t *testing.T) {
	ns := newNamespace(t)
	annotatedKey(t, ns, "ci")

	r := run(t, "pause", "ci", "-n", ns)
	if r.err != nil {
		t.Fatalf("pause: %v", r.err)
	}
	want := map[string]string{"team.example.com/owner": "payments", iamv1alpha1.PausedAnnotation: "true"}
	if diff := cmp.Diff(want, annotations(t, ns, "ci")); diff != "" {
		t.Errorf("annotations after pause (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.out, "apikey "+ns+"/ci paused") {
		t.Errorf("pause does not say what it did: %q", r.out)
	}

	r = run(t, "resume", "ci", "-n", ns)
	if r.err != nil {
		t.Fatalf("resume: %v", r.err)
	}
	want = map[string]string{"team.example.com/owner": "payments"}
	if diff := cmp.Diff(want, annotations(t, ns, "ci")); diff != "" {
		t.Errorf("annotations after resume (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.out, "apikey "+ns+"/ci resumed") {
		t.Errorf("resume does not say what it did: %q", r.out)
	}
}

func TestAnnotatingAMissingApiKeyFailsWithoutCreatingIt(t *testing.T) {
	ns := newNamespace(t)
	for _, command := range []string{"rotate", "pause", "resume"} {
		r := run(t, command, "nope", "-n", ns)
		if r.err == nil || !strings.Contains(r.err.Error(), `"nope" not found`) {
			t.Errorf("%s of a missing ApiKey returned %v, want not found", command, r.err)
		}
	}
	var keys iamv1alpha1.ApiKeyList
	if err := k8sClient.List(t.Context(), &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys.Items {
		if k.Namespace == ns {
			t.Errorf("ApiKey %s/%s exists", k.Namespace, k.Name)
		}
	}
}
