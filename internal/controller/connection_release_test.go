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

package controller

import (
	"context"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// An ApiKey's events wake only the connections they may release: those
// being deleted. Any other connection keeps its finalizer whatever its
// ApiKeys do, and checking it on each of their events would make deleting
// N ApiKeys cost N checks of their connection.
func TestReleasableConnectionsAreTheOnesBeingDeleted(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := iamv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	deleting := func(o client.Object) client.Object {
		now := metav1.Now()
		o.SetDeletionTimestamp(&now)
		o.SetFinalizers([]string{iamv1alpha1.InUseFinalizer})
		return o
	}
	objs := []client.Object{
		&iamv1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "live"}},
		deleting(&iamv1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "going"}}),
		deleting(&iamv1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "going"}}),
		&iamv1alpha1.ClusterConnection{ObjectMeta: metav1.ObjectMeta{Name: "shared"}},
		deleting(&iamv1alpha1.ClusterConnection{ObjectMeta: metav1.ObjectMeta{Name: "old-shared"}}),
		deleting(&iamv1alpha1.ClusterConnection{ObjectMeta: metav1.ObjectMeta{Name: "unrelated"}}),
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()

	key := &iamv1alpha1.ApiKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "k"},
		Spec: iamv1alpha1.ApiKeySpec{ConnectionRef: iamv1alpha1.ConnectionReference{
			Kind: iamv1alpha1.ClusterConnectionKind, Name: "shared",
		}},
		// Its key was made through the ClusterConnection now being deleted.
		Status: iamv1alpha1.ApiKeyStatus{Connection: iamv1alpha1.ClusterConnectionKind + "/old-shared"},
	}
	releasable := ReleasableConnections(context.Background(), c, key)
	got := make([]string, 0, len(releasable))
	for _, ck := range releasable {
		got = append(got, ck.String())
	}
	slices.Sort(got)
	want := []string{
		ConnectionKey{Kind: iamv1alpha1.ClusterConnectionKind, Name: "old-shared"}.String(),
		ConnectionKey{Kind: iamv1alpha1.ConnectionKind, Namespace: "team", Name: "going"}.String(),
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("ReleasableConnections = %v, want %v", got, want)
	}
}
