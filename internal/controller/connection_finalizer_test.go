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
	"fmt"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

var _ = Describe("Connection and credentials Secret protection", func() {
	// waitTimeout bounds every wait: generous, as the manager serves every
	// spec's tenants at once; a wait only ever ends early.
	const waitTimeout = 30 * time.Second

	// deleteEverything deletes objects the way the namespace controller
	// does: all at once, in no particular order.
	deleteEverything := func(objs ...client.Object) {
		GinkgoHelper()
		for _, o := range objs {
			Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		}
	}
	gone := func(o client.Object) func() error {
		return func() error {
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o)
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%T %s still exists (finalizers %v)", o, o.GetName(), o.GetFinalizers())
		}
	}
	connection := func(t *tenant, name string) *iamv1alpha1.Connection {
		return &iamv1alpha1.Connection{ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: name}}
	}
	secretOf := func(t *tenant, name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: name}}
	}
	finalizers := func(o client.Object) func(Gomega) []string {
		return func(g Gomega) []string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
			return o.GetFinalizers()
		}
	}
	held := func(t *tenant, name string) func(Gomega) []iamv1alpha1.HeldSecret {
		return func(g Gomega) []iamv1alpha1.HeldSecret {
			c := connection(t, name)
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
			return c.Status.HeldCredentialsSecrets
		}
	}
	waitProtected := func(t *tenant, conn, secret string) {
		GinkgoHelper()
		Eventually(finalizers(connection(t, conn))).WithTimeout(waitTimeout).Should(ContainElement(iamv1alpha1.InUseFinalizer))
		Eventually(held(t, conn)).WithTimeout(waitTimeout).Should(ConsistOf(iamv1alpha1.HeldSecret{Namespace: t.ns, Name: secret}))
		Eventually(finalizers(secretOf(t, secret))).WithTimeout(waitTimeout).Should(ContainElement(iamv1alpha1.CredentialsInUseFinalizer))
	}

	It("keeps the Connection and its Secret until the ApiKeys deleted with them have deleted their remote keys", func() {
		t := newTenant()
		// Deleting the remote keys waits at a gate, so that the test can see
		// what is kept while the ApiKeys' finalizers run.
		gate := make(chan struct{})
		var deletes atomic.Int32
		t.failRemote(func(svc KeyService) KeyService {
			return KeyServiceFuncs{
				List:   svc.ListKeys,
				Create: svc.CreateKey,
				Delete: func(ctx context.Context, id string) error {
					deletes.Add(1)
					select {
					case <-gate:
					case <-ctx.Done():
						return ctx.Err()
					}
					return svc.DeleteKey(ctx, id)
				},
			}
		})

		names := []string{"one", "two", "three"}
		keys := make([]client.Object, 0, len(names))
		for _, n := range names {
			t.apiKey(n)
		}
		for _, n := range names {
			keys = append(keys, t.waitReady(n))
			t.secret(n)
		}
		Expect(t.remoteIDs()).To(HaveLen(3))
		waitProtected(t, "api", "credentials")

		deleteEverything(append([]client.Object{connection(t, "api"), secretOf(t, "credentials")}, keys...)...)
		Eventually(deletes.Load).WithTimeout(waitTimeout).Should(BeNumerically(">", 0), "an ApiKey's finalizer started deleting its remote keys")

		By("keeping the Connection and the Secret while the ApiKeys need them")
		Eventually(func(g Gomega) {
			c := connection(t, "api")
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
			g.Expect(c.DeletionTimestamp).NotTo(BeNil())
			cond := meta.FindStatusCondition(c.Status.Conditions, iamv1alpha1.ConditionReady)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Status).To(Equal(metav1.ConditionTrue), cond.Message)
			g.Expect(cond.Message).To(HavePrefix("being deleted, kept until the finalizers of ApiKey(s) "))
			g.Expect(cond.Message).To(ContainSubstring(t.ns + "/one"))
		}).WithTimeout(waitTimeout).Should(Succeed())
		s := secretOf(t, "credentials")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(s), s)).To(Succeed())
		Expect(s.DeletionTimestamp).NotTo(BeNil())
		Expect(s.Finalizers).To(ContainElement(iamv1alpha1.CredentialsInUseFinalizer))

		close(gate)
		Eventually(func(g Gomega) {
			var list iamv1alpha1.ApiKeyList
			g.Expect(k8sClient.List(ctx, &list, client.InNamespace(t.ns))).To(Succeed())
			g.Expect(list.Items).To(BeEmpty())
		}).WithTimeout(time.Minute).Should(Succeed())
		Expect(t.emu.Keys(t.orgID)).To(BeEmpty())
		Eventually(gone(connection(t, "api"))).WithTimeout(waitTimeout).Should(Succeed())
		Eventually(gone(secretOf(t, "credentials"))).WithTimeout(waitTimeout).Should(Succeed())
	})

	It("deletes a Connection no ApiKey uses at once and releases its credentials Secret", func() {
		t := newTenant()
		waitProtected(t, "api", "credentials")

		Expect(k8sClient.Delete(ctx, connection(t, "api"))).To(Succeed())
		Eventually(gone(connection(t, "api"))).WithTimeout(waitTimeout).Should(Succeed())
		// The Secret is released before the Connection lets go of its own
		// finalizer: nothing is left for later.
		Expect(finalizers(secretOf(t, "credentials"))(Default)).NotTo(ContainElement(iamv1alpha1.CredentialsInUseFinalizer))
	})

	It("removes the finalizer from the old credentials Secret when the Connection switches to another", func() {
		t := newTenant()
		t.credentials("renewed", t.token)
		waitProtected(t, "api", "credentials")

		Eventually(func() error {
			c := connection(t, "api")
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(c), c); err != nil {
				return err
			}
			c.Spec.CredentialsSecretRef.Name = "renewed"
			return k8sClient.Update(ctx, c)
		}).WithTimeout(waitTimeout).Should(Succeed())

		waitProtected(t, "api", "renewed")
		Eventually(finalizers(secretOf(t, "credentials"))).WithTimeout(waitTimeout).ShouldNot(ContainElement(iamv1alpha1.CredentialsInUseFinalizer))
	})

	It("keeps a credentials Secret that two Connections use until both are released", func() {
		t := newTenant()
		t.connection("second", "credentials")
		waitProtected(t, "api", "credentials")
		waitProtected(t, "second", "credentials")

		Expect(k8sClient.Delete(ctx, connection(t, "api"))).To(Succeed())
		Eventually(gone(connection(t, "api"))).WithTimeout(waitTimeout).Should(Succeed())
		Expect(finalizers(secretOf(t, "credentials"))(Default)).To(ContainElement(iamv1alpha1.CredentialsInUseFinalizer),
			"the Secret lost its finalizer while Connection second still uses it")

		Expect(k8sClient.Delete(ctx, connection(t, "second"))).To(Succeed())
		Eventually(gone(connection(t, "second"))).WithTimeout(waitTimeout).Should(Succeed())
		Expect(finalizers(secretOf(t, "credentials"))(Default)).NotTo(ContainElement(iamv1alpha1.CredentialsInUseFinalizer))
	})

	It("keeps a ClusterConnection until the ApiKeys that use it have deleted their remote keys", func() {
		t := newTenant()
		cc := &iamv1alpha1.ClusterConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "teardown-" + t.ns},
			Spec: iamv1alpha1.ClusterConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
				URL:                  t.url,
				CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: "credentials", Namespace: t.ns},
			}},
		}
		Expect(k8sClient.Create(ctx, cc)).To(Succeed())
		useCluster := func(k *iamv1alpha1.ApiKey) {
			k.Spec.ConnectionRef = iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ClusterConnectionKind, Name: cc.Name}
		}
		t.apiKey("a", useCluster)
		t.apiKey("b", useCluster)
		keys := []client.Object{t.waitReady("a"), t.waitReady("b")}
		Eventually(finalizers(cc)).WithTimeout(waitTimeout).Should(ContainElement(iamv1alpha1.InUseFinalizer))
		Eventually(func(g Gomega) []iamv1alpha1.HeldSecret {
			g.Expect(k8sClient.Get(ctx, types.NamespacedName{Name: cc.Name}, cc)).To(Succeed())
			return cc.Status.HeldCredentialsSecrets
		}).WithTimeout(waitTimeout).Should(ConsistOf(iamv1alpha1.HeldSecret{Namespace: t.ns, Name: "credentials"}))

		// The namespace's Connection uses the same Secret: both must let go
		// of it before it goes.
		deleteEverything(append([]client.Object{cc, connection(t, "api"), secretOf(t, "credentials")}, keys...)...)
		Eventually(func(g Gomega) {
			var list iamv1alpha1.ApiKeyList
			g.Expect(k8sClient.List(ctx, &list, client.InNamespace(t.ns))).To(Succeed())
			g.Expect(list.Items).To(BeEmpty())
		}).WithTimeout(time.Minute).Should(Succeed())
		Expect(t.emu.Keys(t.orgID)).To(BeEmpty())
		Eventually(gone(&iamv1alpha1.ClusterConnection{ObjectMeta: metav1.ObjectMeta{Name: cc.Name}})).WithTimeout(waitTimeout).Should(Succeed())
		Eventually(gone(connection(t, "api"))).WithTimeout(waitTimeout).Should(Succeed())
		Eventually(gone(secretOf(t, "credentials"))).WithTimeout(waitTimeout).Should(Succeed())
	})
})
