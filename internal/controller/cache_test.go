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
	"bytes"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// maxSecretSize is the most data the API server accepts in one Secret.
const maxSecretSize = 1 << 20

var _ = Describe("The manager's cache", func() {
	It("keeps no data of a labelled Secret no ApiKey controls, and never touches it", func() {
		t := newTenant()
		t.apiKey("owned")
		owned := t.waitReady("owned")

		// Anyone allowed to create Secrets can set the label that selects
		// Secrets into the cache, and claim an ApiKey by label as well.
		large := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: "large", Labels: map[string]string{
				iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue,
				iamv1alpha1.ApiKeyLabel:    "owned",
			}},
			Data: map[string][]byte{"blob": bytes.Repeat([]byte{'x'}, maxSecretSize)},
		}
		Expect(k8sClient.Create(ctx, large)).To(Succeed())
		// Claiming control by an ApiKey of another API group is no control
		// either.
		impostor := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: t.ns, Name: "impostor",
				Labels: map[string]string{iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue},
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "example.com/v1", Kind: "ApiKey", Name: "owned", UID: types.UID("impostor-uid"),
					Controller: new(true),
				}},
			},
			Data: map[string][]byte{"blob": []byte("not the operator's")},
		}
		Expect(k8sClient.Create(ctx, impostor)).To(Succeed())

		By("serving the labelled Secrets from the cache without their data")
		for _, s := range []*corev1.Secret{large, impostor} {
			Eventually(func(g Gomega) {
				var cached corev1.Secret
				g.Expect(managerCache.Get(ctx, client.ObjectKeyFromObject(s), &cached)).To(Succeed())
				g.Expect(cached.Data).To(BeEmpty(), "Secret %s is cached with its data", s.Name)
				g.Expect(cached.StringData).To(BeEmpty())
				g.Expect(cached.ManagedFields).To(BeEmpty())
				g.Expect(cached.Labels).To(Equal(s.Labels), "the metadata stays")
			}).WithTimeout(20 * time.Second).Should(Succeed())
		}

		By("keeping the data of the Secret the ApiKey controls")
		var stored corev1.Secret
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: "owned"}, &stored)).To(Succeed())
		Expect(stored.Data["apiKey"]).To(HavePrefix("mob_"))
		remember(string(stored.Data["apiKey"]))
		Eventually(func(g Gomega) {
			var cached corev1.Secret
			g.Expect(managerCache.Get(ctx, client.ObjectKeyFromObject(&stored), &cached)).To(Succeed())
			g.Expect(metav1.IsControlledBy(&cached, owned)).To(BeTrue())
			g.Expect(cached.Data).To(Equal(stored.Data), "the reconciler compares this value with the key's suffix")
			g.Expect(cached.ManagedFields).To(BeEmpty())
		}).WithTimeout(20 * time.Second).Should(Succeed())

		By("leaving the labelled Secrets untouched for more than a sync period")
		// Two more listings of the connection are at least one full sync
		// period, in which the ApiKey they claim was reconciled.
		lists := t.emu.Stats().List
		Eventually(func() int { return t.emu.Stats().List }).
			WithTimeout(4 * testSyncPeriod).Should(BeNumerically(">=", lists+2))
		for _, s := range []*corev1.Secret{large, impostor} {
			var now corev1.Secret
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(s), &now)).To(Succeed())
			Expect(now.ResourceVersion).To(Equal(s.ResourceVersion), "Secret %s was written to", s.Name)
			Expect(now.Data).To(Equal(s.Data), "Secret %s lost its data", s.Name)
		}
		Expect(t.waitReady("owned").Status.KeyID).To(Equal(owned.Status.KeyID))
	})

	It("keeps no managedFields of the objects it caches, while the API server keeps them", func() {
		t := newTenant()
		t.apiKey("lean")
		t.waitReady("lean")
		var stored iamv1alpha1.ApiKey
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: "lean"}, &stored)).To(Succeed())
		Expect(stored.ManagedFields).NotTo(BeEmpty(), "the API server tracks who wrote what")
		Eventually(func(g Gomega) {
			var cached iamv1alpha1.ApiKey
			g.Expect(managerCache.Get(ctx, client.ObjectKeyFromObject(&stored), &cached)).To(Succeed())
			g.Expect(cached.Status.KeyID).NotTo(BeEmpty())
			g.Expect(cached.ManagedFields).To(BeEmpty())
		}).WithTimeout(20 * time.Second).Should(Succeed())
		// The operator's later writes, made from cached copies without
		// managedFields, leave the API server's record of who wrote what in
		// place: every writer on record before is on record after.
		writers := func(k *iamv1alpha1.ApiKey) []string {
			out := make([]string, 0, len(k.ManagedFields))
			for _, f := range k.ManagedFields {
				out = append(out, fmt.Sprintf("%s/%s/%s", f.Manager, f.Operation, f.Subresource))
			}
			return out
		}
		before := writers(&stored)
		Expect(before).To(ContainElement(HaveSuffix("/status")), "the operator's status writes are on record")
		t.annotate("lean", iamv1alpha1.RotateAnnotation, "1")
		rotated := t.waitRotatedFrom("lean", stored.Status.KeyID)
		var now iamv1alpha1.ApiKey
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(rotated), &now)).To(Succeed())
		Expect(now.ResourceVersion).NotTo(Equal(stored.ResourceVersion))
		Expect(writers(&now)).To(ContainElements(before), "managedFields after the operator's writes: %+v", now.ManagedFields)
	})

	DescribeTable("drops the data of every Secret an ApiKey does not control, and indexes the others by that ApiKey",
		func(owners []metav1.OwnerReference, keepsData bool) {
			s := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Name: "s", OwnerReferences: owners,
					ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
				},
				Data:       map[string][]byte{"k": []byte("v")},
				StringData: map[string]string{"k": "v"},
			}
			out, err := TransformSecret(s)
			Expect(err).NotTo(HaveOccurred())
			got := out.(*corev1.Secret)
			byController := SecretFieldIndexes()[SecretControllerIndexName](got)
			Expect(got.ManagedFields).To(BeNil())
			Expect(got.Labels).To(Equal(s.Labels))
			if keepsData {
				Expect(got.Data).To(HaveKeyWithValue("k", []byte("v")))
				Expect(got.StringData).To(HaveKeyWithValue("k", "v"))
				Expect(byController).To(Equal([]string{"owner"}))
			} else {
				Expect(got.Data).To(BeNil())
				Expect(got.StringData).To(BeNil())
				Expect(byController).To(BeEmpty(), "an ApiKey would sweep a Secret it does not control")
			}
		},
		Entry("no owner", nil, false),
		Entry("controlled by an ApiKey",
			[]metav1.OwnerReference{apiKeyOwner(iamv1alpha1.GroupVersion.String(), "ApiKey", true)}, true),
		Entry("controlled by an ApiKey of another version of the group",
			[]metav1.OwnerReference{apiKeyOwner(iamv1alpha1.GroupVersion.Group+"/v1", "ApiKey", true)}, true),
		Entry("owned, not controlled, by an ApiKey",
			[]metav1.OwnerReference{apiKeyOwner(iamv1alpha1.GroupVersion.String(), "ApiKey", false)}, false),
		Entry("controlled by another kind of the group",
			[]metav1.OwnerReference{apiKeyOwner(iamv1alpha1.GroupVersion.String(), "Connection", true)}, false),
		Entry("controlled by an ApiKey of another group",
			[]metav1.OwnerReference{apiKeyOwner("example.com/v1alpha1", "ApiKey", true)}, false),
		Entry("controlled by an owner with a malformed apiVersion",
			[]metav1.OwnerReference{apiKeyOwner("a/b/c", "ApiKey", true)}, false),
	)

	It("passes tombstones of deleted Secrets through unchanged", func() {
		tombstone := toolscache.DeletedFinalStateUnknown{Key: "ns/s", Obj: &corev1.Secret{Data: map[string][]byte{"k": nil}}}
		out, err := TransformSecret(tombstone)
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(Equal(tombstone))
	})
})

// apiKeyOwner is an owner reference to an object named "owner".
func apiKeyOwner(apiVersion, kind string, controller bool) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: apiVersion, Kind: kind, Name: "owner", UID: types.UID("uid"), Controller: new(controller),
	}
}
