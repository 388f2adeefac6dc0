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
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/emulator"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// These specs are the ordinary situations in which no key may be forgotten:
// a listing that leaves keys out, a key moved to another organization, a
// delete while the server still commits a create, throttling, and writes
// whose outcome is unclear.

// connectionTo creates a Connection of the tenant's emulator with an
// organization id and a credentials Secret of its own.
func (t *tenant) connectionTo(name, orgID, token string) {
	GinkgoHelper()
	remember(token)
	t.credentials(name+"-credentials", token)
	c := &iamv1alpha1.Connection{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: name},
		Spec: iamv1alpha1.ConnectionSpec{ConnectionParameters: iamv1alpha1.ConnectionParameters{
			URL:                  t.url,
			OrganizationID:       orgID,
			CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: name + "-credentials"},
		}},
	}
	Expect(k8sClient.Create(ctx, c)).To(Succeed())
	t.connectionReason(name, iamv1alpha1.ReasonValid)
}

// keysIn lists the ids of the keys in one organization of the tenant's emulator.
func (t *tenant) keysIn(orgID string) []string {
	keys := t.emu.Keys(orgID)
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids
}

// update applies a change to an ApiKey, retrying on conflicts.
func (t *tenant) update(name string, mutate func(*iamv1alpha1.ApiKey)) {
	GinkgoHelper()
	Eventually(func() error {
		k := t.get(name)
		mutate(k)
		return k8sClient.Update(ctx, k)
	}).WithTimeout(10 * time.Second).Should(Succeed())
}

// deleteAndWaitGone deletes an ApiKey and waits until it is gone.
func (t *tenant) deleteAndWaitGone(name string, timeout time.Duration) {
	GinkgoHelper()
	Expect(k8sClient.Delete(ctx, t.get(name))).To(Succeed())
	Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: name}, &iamv1alpha1.ApiKey{}))
	}).WithTimeout(timeout).Should(BeTrue(), "ApiKey %s was not released", name)
}

var _ = Describe("Guarantees", func() {
	It("never replaces a key on one list answer that leaves it out", func() {
		t := newTenant()
		names := []string{"lag-a", "lag-b", "lag-c"}
		for _, n := range names {
			t.apiKey(n)
		}
		ids := map[string]string{}
		values := map[string]string{}
		for _, n := range names {
			ids[n] = t.waitReady(n).Status.KeyID
			values[n] = string(t.secret(n).Data["apiKey"])
		}
		// A lagging read replica: the next listing answers without any key.
		var omitted atomic.Int32
		var lagging atomic.Bool
		lagging.Store(true)
		t.failRemote(func(svc KeyService) KeyService {
			return KeyServiceFuncs{
				Create: svc.CreateKey, Delete: svc.DeleteKey,
				List: func(ctx context.Context) ([]mobilenext.Key, error) {
					keys, err := svc.ListKeys(ctx)
					if err == nil && lagging.CompareAndSwap(true, false) {
						omitted.Add(1)
						return nil, nil
					}
					return keys, err
				},
			}
		})
		Eventually(omitted.Load).WithTimeout(4 * testSyncPeriod).Should(BeEquivalentTo(1))
		Consistently(func(g Gomega) {
			for _, n := range names {
				k := t.get(n)
				g.Expect(k.Status.KeyID).To(Equal(ids[n]))
				g.Expect(string(t.secret(n).Data["apiKey"])).To(Equal(values[n]))
			}
		}).WithTimeout(4 * testSyncPeriod).WithPolling(500 * time.Millisecond).Should(Succeed())
		Expect(t.emu.Stats().Create).To(Equal(len(names)), "an incomplete listing created keys")
		Expect(t.remoteIDs()).To(ConsistOf(ids["lag-a"], ids["lag-b"], ids["lag-c"]))
		for _, n := range names {
			Expect(t.get(n).Status.KeyMissingSince).To(BeNil(), "the next complete listing clears the miss")
		}
	})

	It("replaces a revoked key only after a second listing and keeps the revoked one in previousKeys", func() {
		t := newTenant()
		t.apiKey("revoked")
		old := t.waitReady("revoked").Status.KeyID
		Expect(t.emu.RevokeKey(t.orgID, old)).To(Succeed())
		k := t.waitRotatedFrom("revoked", old)
		Expect(k.Status.PreviousKeys).To(ContainElement(HaveField("KeyID", old)))
		Eventually(func() []string { return t.eventReasons("revoked") }).WithTimeout(10 * time.Second).Should(ContainElement(EventDriftRepaired))
		Expect(t.emu.Stats().Create).To(Equal(2))
	})

	It("retires the old key in its own organization when the ApiKey moves to a Connection of another", func() {
		t := newTenant()
		otherOrg := t.emu.AddOrganization("Other")
		Expect(t.emu.AddMember(otherOrg, t.userID, emulator.RoleAdmin)).To(Succeed())
		t.connectionTo("other", otherOrg, t.token)
		t.apiKey("mover", func(k *iamv1alpha1.ApiKey) {
			k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: time.Hour}}
		})
		old := t.waitReady("mover")
		Expect(t.keysIn(t.orgID)).To(ConsistOf(old.Status.KeyID))
		Expect(old.Status.Location).NotTo(BeNil())

		t.update("mover", func(k *iamv1alpha1.ApiKey) { k.Spec.ConnectionRef.Name = "other" })
		k := t.waitRotatedFrom("mover", old.Status.KeyID)
		Expect(t.keysIn(otherOrg)).To(ConsistOf(k.Status.KeyID))
		Expect(k.Status.Location.OrganizationID).To(Equal(otherOrg))
		Expect(k.Status.PreviousKeys).To(ConsistOf(HaveField("Location", Equal(old.Status.Location))))
		Expect(t.emu.UseKey(string(t.secret("mover").Data["apiKey"]))).To(BeTrue())

		By("deleting the ApiKey during the grace period: each key is deleted where it lives")
		t.deleteAndWaitGone("mover", 30*time.Second)
		Expect(t.keysIn(t.orgID)).To(BeEmpty(), "the old key stayed in the first organization")
		Expect(t.keysIn(otherOrg)).To(BeEmpty())
	})

	It("rotates when its Connection is pointed at another organization and deletes both keys where they live", func() {
		t := newTenant()
		otherOrg := t.emu.AddOrganization("Other")
		Expect(t.emu.AddMember(otherOrg, t.userID, emulator.RoleAdmin)).To(Succeed())
		t.connectionTo("pinned", t.orgID, t.token)
		t.apiKey("repointed", func(k *iamv1alpha1.ApiKey) {
			k.Spec.ConnectionRef.Name = "pinned"
			k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: time.Hour}}
		})
		old := t.waitReady("repointed")
		Eventually(func() error {
			var c iamv1alpha1.Connection
			if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "pinned"}, &c); err != nil {
				return err
			}
			c.Spec.OrganizationID = otherOrg
			return k8sClient.Update(ctx, &c)
		}).WithTimeout(10 * time.Second).Should(Succeed())
		k := t.waitRotatedFrom("repointed", old.Status.KeyID)
		Expect(t.keysIn(otherOrg)).To(ConsistOf(k.Status.KeyID))
		Expect(t.keysIn(t.orgID)).To(ConsistOf(old.Status.KeyID), "the old key lives on in its grace period")

		t.deleteAndWaitGone("repointed", 30*time.Second)
		Expect(t.keysIn(t.orgID)).To(BeEmpty(), "the old key stayed in the first organization")
		Expect(t.keysIn(otherOrg)).To(BeEmpty())
	})

	It("says ConnectionChanged and keeps its finalizer while the old organization cannot be reached", func() {
		t := newTenant()
		// A second user who is not a member of the first organization.
		otherOrg := t.emu.AddOrganization("Elsewhere")
		stranger := t.emu.AddUser("stranger@example.com", otherOrg)
		Expect(t.emu.AddMember(otherOrg, stranger, emulator.RoleAdmin)).To(Succeed())
		strangerToken, err := t.emu.IssueToken(stranger, time.Hour)
		Expect(err).NotTo(HaveOccurred())
		t.connectionTo("elsewhere", otherOrg, strangerToken)
		t.apiKey("stranded", func(k *iamv1alpha1.ApiKey) {
			k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: time.Hour}}
		})
		old := t.waitReady("stranded")
		t.update("stranded", func(k *iamv1alpha1.ApiKey) { k.Spec.ConnectionRef.Name = "elsewhere" })
		t.waitRotatedFrom("stranded", old.Status.KeyID)

		By("losing the only credentials for the first organization")
		var api iamv1alpha1.Connection
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "api"}, &api)).To(Succeed())
		before := api.Status.CredentialsExpireAt
		t.credentials("credentials", strangerToken)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "api"}, &api)).To(Succeed())
			g.Expect(api.Status.CredentialsExpireAt).NotTo(Equal(before), "the Connection has not read the new token yet")
		}).WithTimeout(20 * time.Second).Should(Succeed())
		t.connectionReason("api", iamv1alpha1.ReasonValid)
		Expect(k8sClient.Delete(ctx, t.get("stranded"))).To(Succeed())
		cond := t.waitReason("stranded", iamv1alpha1.ReasonConnectionChanged)
		Expect(cond.Message).To(ContainSubstring(old.Status.Location.String()))
		Expect(cond.Message).To(ContainSubstring("Orphan"))
		Expect(t.keysIn(t.orgID)).To(ConsistOf(old.Status.KeyID))

		By("restoring them: the deletion completes")
		t.credentials("credentials", t.token)
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "stranded"}, &iamv1alpha1.ApiKey{}))
		}).WithTimeout(90 * time.Second).Should(BeTrue())
		Expect(t.keysIn(t.orgID)).To(BeEmpty())
		Expect(t.keysIn(otherOrg)).To(BeEmpty())
	})

	for _, policy := range []iamv1alpha1.DeletionPolicy{iamv1alpha1.DeletionPolicyDelete, iamv1alpha1.DeletionPolicyOrphan} {
		It(fmt.Sprintf("waits for a create the server commits after the client gave up (deletionPolicy %s)", policy), func() {
			t := newTenant()
			// Every create times out on the client; the server still holds
			// it, and commits it when the test says so.
			var mu sync.Mutex
			var held []string
			var server KeyService
			t.failRemote(func(svc KeyService) KeyService {
				return KeyServiceFuncs{
					List: svc.ListKeys, Delete: svc.DeleteKey,
					Create: func(_ context.Context, name string) (*mobilenext.CreatedKey, error) {
						mu.Lock()
						held, server = append(held, name), svc
						mu.Unlock()
						return nil, fmt.Errorf("POST /api/v1/keys: %w", context.DeadlineExceeded)
					},
				}
			})
			t.apiKey("late", func(k *iamv1alpha1.ApiKey) { k.Spec.DeletionPolicy = policy })
			t.waitReason("late", iamv1alpha1.ReasonRemoteError)
			Expect(k8sClient.Delete(ctx, t.get("late"))).To(Succeed())
			Eventually(func() string { return t.waitReason("late", iamv1alpha1.ReasonDeleting).Message }).
				WithTimeout(20 * time.Second).Should(ContainSubstring("waiting until"))

			By("the server committing the creates the client gave up on, after the ApiKey was deleted")
			mu.Lock()
			names := held
			mu.Unlock()
			Expect(names).NotTo(BeEmpty())
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "late"}, &iamv1alpha1.ApiKey{})).
				To(Succeed(), "the ApiKey was released before its creates could land")
			for _, name := range names {
				k, err := server.CreateKey(context.Background(), name)
				Expect(err).NotTo(HaveOccurred())
				remember(k.Secret.Reveal())
			}
			Expect(t.remoteIDs()).To(HaveLen(len(names)))
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "late"}, &iamv1alpha1.ApiKey{}))
			}).WithTimeout(testCreateWindow + 4*testSyncPeriod).Should(BeTrue())
			Expect(t.remoteIDs()).To(BeEmpty(), "the late key was left behind")
		})
	}

	It("backs off a throttled connection as a whole, not per ApiKey", func() {
		t := newTenant()
		names := make([]string, 10)
		for i := range names {
			names[i] = fmt.Sprintf("throttled-%d", i)
			t.apiKey(names[i])
		}
		olds := map[string]string{}
		for _, n := range names {
			olds[n] = t.waitReady(n).Status.KeyID
		}
		var throttling atomic.Bool
		var calls atomic.Int32
		throttled := func() error {
			calls.Add(1)
			return &mobilenext.APIError{Method: "POST", Path: "/api/v1/keys", StatusCode: 429}
		}
		t.failRemote(func(svc KeyService) KeyService {
			return KeyServiceFuncs{
				List: func(ctx context.Context) ([]mobilenext.Key, error) {
					if throttling.Load() {
						return nil, throttled()
					}
					return svc.ListKeys(ctx)
				},
				Create: func(ctx context.Context, name string) (*mobilenext.CreatedKey, error) {
					if throttling.Load() {
						return nil, throttled()
					}
					return svc.CreateKey(ctx, name)
				},
				Delete: func(ctx context.Context, id string) error {
					if throttling.Load() {
						return throttled()
					}
					return svc.DeleteKey(ctx, id)
				},
			}
		})
		throttling.Store(true)
		for _, n := range names {
			t.annotate(n, iamv1alpha1.RotateAnnotation, "now")
		}
		// 429 without Retry-After: 1s, 2s, 4s, 8s... for the connection as
		// a whole: a handful of calls in 15s, where ten ApiKeys backing off
		// each on their own made dozens. The figure is a rate, so it is
		// watched over a window; it fails as soon as it is exceeded.
		Eventually(calls.Load).WithTimeout(10*time.Second).Should(BeNumerically(">=", 2), "no 429 reached the manager")
		Consistently(calls.Load).WithTimeout(15*time.Second).WithPolling(250*time.Millisecond).
			Should(BeNumerically("<=", 6), "calls that reached the API while it answered 429")
		throttling.Store(false)
		for _, n := range names {
			t.waitRotatedFrom(n, olds[n])
		}
	})

	It("checks a Secret write with an unclear outcome instead of deleting the key it may hold", func() {
		t := newTenant()
		var unclear atomic.Int32
		t.failKube(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if _, ok := obj.(*corev1.Secret); ok && unclear.CompareAndSwap(0, 1) {
					// The write lands, but its answer is lost.
					if err := c.Create(ctx, obj, opts...); err != nil {
						return err
					}
					return errors.New("create Secret: http2: client connection lost")
				}
				return c.Create(ctx, obj, opts...)
			},
		})
		t.apiKey("unclear")
		k := t.waitReady("unclear")
		Expect(unclear.Load()).To(BeEquivalentTo(1))
		Eventually(t.remoteIDs).WithTimeout(10 * time.Second).Should(ConsistOf(k.Status.KeyID))
		Expect(t.emu.Stats().Create).To(Equal(1), "the key the Secret held was deleted and made again")
		Expect(t.emu.Stats().Delete).To(Equal(0))
		Expect(t.emu.UseKey(string(t.secret("unclear").Data["apiKey"]))).To(BeTrue())
	})

	It("recovers an interrupted create from the Secret the attempt wrote to, after secretName changed", func() {
		t := newTenant()
		var blocking atomic.Bool
		blocking.Store(true)
		t.failKube(interceptor.Funcs{
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				if k, ok := obj.(*iamv1alpha1.ApiKey); ok && blocking.Load() && k.Status.KeyID != "" {
					// The process dies after the Secret write, before the
					// status names the key.
					return errors.New("connection refused")
				}
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
		})
		t.apiKey("renamed", func(k *iamv1alpha1.ApiKey) { k.Spec.SecretName = "first" })
		Eventually(func(g Gomega) {
			var s corev1.Secret
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "first"}, &s)).To(Succeed())
			g.Expect(s.Data["apiKey"]).NotTo(BeEmpty())
		}).WithTimeout(20 * time.Second).Should(Succeed())
		Expect(t.get("renamed").Status.PendingCreate).NotTo(BeNil())
		t.update("renamed", func(k *iamv1alpha1.ApiKey) { k.Spec.SecretName = "second" })
		blocking.Store(false)
		k := t.waitReady("renamed")
		Expect(k.Status.SecretName).To(Equal("second"))
		Expect(t.emu.Stats().Create).To(Equal(1), "recovery looked in the wrong Secret and made a new key")
		Eventually(t.remoteIDs).WithTimeout(10 * time.Second).Should(ConsistOf(k.Status.KeyID))
		Expect(t.emu.UseKey(string(t.secret("second").Data["apiKey"]))).To(BeTrue())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "first"}, &corev1.Secret{}))
		}).WithTimeout(10 * time.Second).Should(BeTrue())
	})

	It("does not retire a previous key early while a rollout restart has not happened, and retires it at its grace period with a warning", func() {
		t := newTenant()
		t.apiKey("held", func(k *iamv1alpha1.ApiKey) {
			k.Spec.Rotation = &iamv1alpha1.Rotation{
				GracePeriod:         &metav1.Duration{Duration: 20 * time.Second},
				RetireWhenUnusedFor: &metav1.Duration{Duration: time.Second},
			}
			k.Spec.RolloutRestartTargets = []iamv1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "not-there"}}
		})
		old := t.waitReady("held").Status.KeyID
		t.annotate("held", iamv1alpha1.RotateAnnotation, "1")
		t.waitRotatedFrom("held", old)
		// The unused window (one sync period) passes well before the grace period.
		Consistently(t.remoteIDs).WithTimeout(3 * testSyncPeriod).Should(ContainElement(old))
		Eventually(t.remoteIDs).WithTimeout(30 * time.Second).ShouldNot(ContainElement(old))
		Eventually(func() []string { return eventMessages(t, "held", EventRetired) }).
			WithTimeout(10 * time.Second).Should(ContainElement(ContainSubstring("not restarted")))
	})

	It("retries a delete the API refuses with 422 instead of freezing", func() {
		t := newTenant()
		var refusals atomic.Int32
		t.failRemote(func(svc KeyService) KeyService {
			return KeyServiceFuncs{
				List: svc.ListKeys, Create: svc.CreateKey,
				Delete: func(ctx context.Context, id string) error {
					if refusals.Add(1) <= 2 {
						return &mobilenext.APIError{Method: "DELETE", Path: "/api/v1/keys/" + id, StatusCode: 422}
					}
					return svc.DeleteKey(ctx, id)
				},
			}
		})
		t.apiKey("refused", func(k *iamv1alpha1.ApiKey) {
			k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{}}
		})
		old := t.waitReady("refused").Status.KeyID
		t.annotate("refused", iamv1alpha1.RotateAnnotation, "1")
		k := t.waitRotatedFrom("refused", old)
		Eventually(func() []iamv1alpha1.PreviousKey { return t.get("refused").Status.PreviousKeys }).
			WithTimeout(20 * time.Second).Should(BeEmpty())
		Expect(refusals.Load()).To(BeNumerically(">=", 3))
		Eventually(t.remoteIDs).WithTimeout(10 * time.Second).Should(ConsistOf(k.Status.KeyID))
		t.deleteAndWaitGone("refused", 30*time.Second)
		Expect(t.remoteIDs()).To(BeEmpty())
	})
})

var _ = Describe("Ready means the Secret holds a key that works", func() {
	It("stays Ready when the session token expires, says so in Synced, and holds rotations until it is renewed", func() {
		t := newTenant()
		short, err := t.emu.IssueToken(t.userID, 8*time.Second)
		Expect(err).NotTo(HaveOccurred())
		t.connectionTo("short", "", short)
		t.apiKey("outlives", func(k *iamv1alpha1.ApiKey) { k.Spec.ConnectionRef.Name = "short" })
		old := t.waitReady("outlives").Status.KeyID
		t.connectionReason("short", iamv1alpha1.ReasonExpired)
		Eventually(func() string {
			c := meta.FindStatusCondition(t.get("outlives").Status.Conditions, iamv1alpha1.ConditionSynced)
			return string(c.Status) + "/" + c.Reason
		}).WithTimeout(4 * testSyncPeriod).Should(Equal("False/" + iamv1alpha1.ReasonExpired))
		creates := t.emu.Stats().Create
		t.annotate("outlives", iamv1alpha1.RotateAnnotation, "while-expired")
		Consistently(func(g Gomega) {
			k := t.get("outlives")
			g.Expect(readyReason(k)).To(Equal(iamv1alpha1.ReasonKeyReady))
			g.Expect(k.Status.KeyID).To(Equal(old))
		}).WithTimeout(2 * testSyncPeriod).Should(Succeed())
		Expect(t.emu.Stats().Create).To(Equal(creates), "a rotation was tried with an expired token")
		Expect(meta.FindStatusCondition(t.get("outlives").Status.Conditions, iamv1alpha1.ConditionSynced).Message).To(ContainSubstring("wait"))

		By("renewing the token: the rotation goes ahead")
		t.credentials("short-credentials", t.token)
		t.waitRotatedFrom("outlives", old)
	})
})
