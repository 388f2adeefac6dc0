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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/emulator"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

var _ = Describe("ApiKey", func() {
	It("creates the remote key and writes it to an owned Secret with its id and suffix", func() {
		t := newTenant()
		t.apiKey("ci", func(k *iamv1alpha1.ApiKey) {
			k.Spec.SecretTemplate = &iamv1alpha1.SecretTemplate{
				Labels:      map[string]string{"team": "mobile"},
				Annotations: map[string]string{"owner": "ci"},
			}
		})
		k := t.waitReady("ci")
		Expect(k.Status.KeyID).NotTo(BeEmpty())
		Expect(k.Status.SecretName).To(Equal("ci"))
		Expect(k.Status.KeyName).To(HavePrefix(t.ns + "/ci [k8s-"))
		Expect(k.Finalizers).To(ContainElement(iamv1alpha1.Finalizer))

		remote := t.emu.Keys(t.orgID)
		Expect(remote).To(HaveLen(1))
		Expect(remote[0].ID).To(Equal(k.Status.KeyID))

		s := t.secret("ci")
		Expect(s.Type).To(Equal(corev1.SecretTypeOpaque))
		value := string(s.Data["apiKey"])
		Expect(value).To(HavePrefix("mob_"))
		Expect(value).To(HaveSuffix(remote[0].Suffix))
		Expect(t.emu.UseKey(value)).To(BeTrue(), "the Secret must hold the live key")
		Expect(s.Labels).To(HaveKeyWithValue(iamv1alpha1.ManagedByLabel, iamv1alpha1.ManagedByValue))
		Expect(s.Labels).To(HaveKeyWithValue(iamv1alpha1.ApiKeyLabel, "ci"))
		Expect(s.Labels).To(HaveKeyWithValue("team", "mobile"))
		Expect(s.Annotations).To(HaveKeyWithValue("owner", "ci"))
		Expect(s.Annotations).To(HaveKeyWithValue(iamv1alpha1.KeyIDAnnotation, k.Status.KeyID))
		for _, v := range s.Annotations {
			Expect(v).NotTo(ContainSubstring(value))
		}
		Expect(metav1.IsControlledBy(s, k)).To(BeTrue())

		By("learning the suffix and lastUsedAt from the next shared listing")
		Eventually(func(g Gomega) {
			k := t.get("ci")
			g.Expect(k.Status.APIKeySuffix).To(Equal(remote[0].Suffix))
			g.Expect(k.Status.LastUsedAt).NotTo(BeNil())
			g.Expect(t.secret("ci").Annotations).To(HaveKeyWithValue(iamv1alpha1.KeySuffixAnnotation, remote[0].Suffix))
		}).WithTimeout(4 * testSyncPeriod).Should(Succeed())
		Eventually(func() []string { return t.eventReasons("ci") }).WithTimeout(10 * time.Second).Should(ContainElement(EventCreated))
		Expect(t.emu.Stats().Create).To(Equal(1))
		Expect(testutil.ToFloat64(apiRequests.WithLabelValues("Connection/"+t.ns+"/api", "post", "201"))).To(Equal(1.0))
	})

	It("can be waited for with kubectl wait --for=condition=Ready", func() {
		kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
		Expect(kubectl).To(BeAnExistingFile())
		t := newTenant()
		t.apiKey("waited")
		user, err := testEnv.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
		Expect(err).NotTo(HaveOccurred())
		kubeconfig, err := user.KubeConfig()
		Expect(err).NotTo(HaveOccurred())
		path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
		Expect(os.WriteFile(path, kubeconfig, 0o600)).To(Succeed())
		out, err := exec.Command(kubectl, "--kubeconfig", path, "-n", t.ns, "wait", "--for=condition=Ready", "apikey/waited", "--timeout=60s").CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring("condition met"))
		out, err = exec.Command(kubectl, "--kubeconfig", path, "-n", t.ns, "get", "mobilenext").CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring("apikey.iam.mobilenexthq.com/waited"))
		Expect(string(out)).To(ContainSubstring("connection.iam.mobilenexthq.com/api"))
	})

	It("deletes the remote key and the Secret when the ApiKey is deleted", func() {
		t := newTenant()
		t.apiKey("doomed")
		k := t.waitReady("doomed")
		Eventually(t.remoteIDs).WithTimeout(10 * time.Second).Should(ConsistOf(k.Status.KeyID))
		Expect(k8sClient.Delete(ctx, k)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), &iamv1alpha1.ApiKey{}))
		}).WithTimeout(30 * time.Second).Should(BeTrue())
		Expect(t.remoteIDs()).To(BeEmpty())
		err := k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: "doomed"}, &corev1.Secret{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Secret goes with the ApiKey")
	})

	It("leaves the remote key alone with deletionPolicy Orphan", func() {
		t := newTenant()
		t.apiKey("kept", func(k *iamv1alpha1.ApiKey) { k.Spec.DeletionPolicy = iamv1alpha1.DeletionPolicyOrphan })
		k := t.waitReady("kept")
		Expect(k8sClient.Delete(ctx, k)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), &iamv1alpha1.ApiKey{}))
		}).WithTimeout(30 * time.Second).Should(BeTrue())
		Eventually(t.remoteIDs).WithTimeout(10 * time.Second).Should(ConsistOf(k.Status.KeyID))
		Expect(t.emu.Stats().Delete).To(BeZero())
	})

	It("replaces a key revoked outside the cluster", func() {
		t := newTenant()
		t.apiKey("revoked")
		old := t.waitReady("revoked")
		Expect(t.emu.RevokeKey(t.orgID, old.Status.KeyID)).To(Succeed())
		Eventually(func(g Gomega) {
			k := t.get("revoked")
			g.Expect(k.Status.KeyID).NotTo(BeEmpty())
			g.Expect(k.Status.KeyID).NotTo(Equal(old.Status.KeyID))
		}).WithTimeout(4 * testSyncPeriod).Should(Succeed())
		k := t.waitReady("revoked")
		Eventually(t.remoteIDs).WithTimeout(10 * time.Second).Should(ConsistOf(k.Status.KeyID))
		Expect(t.emu.UseKey(string(t.secret("revoked").Data["apiKey"]))).To(BeTrue())
		Eventually(func() []string { return t.eventReasons("revoked") }).WithTimeout(10 * time.Second).Should(ContainElement(EventDriftRepaired))
	})

	It("replaces the key when its Secret is deleted and deletes the old key", func() {
		t := newTenant()
		t.apiKey("lost", func(k *iamv1alpha1.ApiKey) {
			k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: 0}}
		})
		old := t.waitReady("lost")
		Expect(k8sClient.Delete(ctx, t.secret("lost"))).To(Succeed())
		Eventually(func(g Gomega) {
			k := t.get("lost")
			g.Expect(k.Status.KeyID).NotTo(Equal(old.Status.KeyID))
			g.Eventually(t.remoteIDs).WithTimeout(10 * time.Second).Should(ConsistOf(k.Status.KeyID))
		}).WithTimeout(20 * time.Second).Should(Succeed())
		t.waitReady("lost")
		Expect(t.emu.UseKey(string(t.secret("lost").Data["apiKey"]))).To(BeTrue())
		// The write that records the new key says Ready already; the old key,
		// with no grace period, leaves previousKeys in the write after it.
		Eventually(func() []iamv1alpha1.PreviousKey { return t.get("lost").Status.PreviousKeys }).
			WithTimeout(10 * time.Second).Should(BeEmpty())
	})

	It("replaces the key when the Secret's value is tampered with", func() {
		t := newTenant()
		t.apiKey("tampered", func(k *iamv1alpha1.ApiKey) {
			k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: 0}}
		})
		t.waitReady("tampered")
		var old *iamv1alpha1.ApiKey
		Eventually(func(g Gomega) {
			old = t.get("tampered")
			g.Expect(old.Status.APIKeySuffix).NotTo(BeEmpty())
		}).WithTimeout(4 * testSyncPeriod).Should(Succeed())
		s := t.secret("tampered")
		s.Data["apiKey"] = []byte("not-the-key")
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(func(g Gomega) {
			k := t.get("tampered")
			g.Expect(k.Status.KeyID).NotTo(Equal(old.Status.KeyID))
			g.Eventually(t.remoteIDs).WithTimeout(10 * time.Second).Should(ConsistOf(k.Status.KeyID))
		}).WithTimeout(20 * time.Second).Should(Succeed())
		t.waitReady("tampered")
		Expect(t.emu.UseKey(string(t.secret("tampered").Data["apiKey"]))).To(BeTrue())
	})

	It("restores the Secret's template labels and annotations", func() {
		t := newTenant()
		t.apiKey("labelled", func(k *iamv1alpha1.ApiKey) {
			k.Spec.SecretTemplate = &iamv1alpha1.SecretTemplate{Labels: map[string]string{"team": "mobile"}}
		})
		k := t.waitReady("labelled")
		s := t.secret("labelled")
		delete(s.Labels, "team")
		s.Labels[iamv1alpha1.ApiKeyLabel] = "someone-else"
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(func(g Gomega) {
			s := t.secret("labelled")
			g.Expect(s.Labels).To(HaveKeyWithValue("team", "mobile"))
			g.Expect(s.Labels).To(HaveKeyWithValue(iamv1alpha1.ApiKeyLabel, "labelled"))
		}).WithTimeout(20 * time.Second).Should(Succeed())
		Expect(t.get("labelled").Status.KeyID).To(Equal(k.Status.KeyID), "metadata drift needs no new key")
	})

	It("caches only the Secrets it manages", func() {
		t := newTenant()
		foreign := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: "unrelated"},
			Data:       map[string][]byte{"password": []byte("hunter2")},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		t.apiKey("cached")
		t.waitReady("cached")
		Eventually(func() error {
			return managerCache.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: "cached"}, &corev1.Secret{})
		}).Should(Succeed(), "the managed Secret is served from the cache")
		var cached corev1.SecretList
		Expect(managerCache.List(ctx, &cached, client.InNamespace(t.ns))).To(Succeed())
		Expect(cached.Items).To(HaveLen(1))
		Expect(cached.Items[0].Name).To(Equal("cached"))
		err := managerCache.Get(ctx, client.ObjectKeyFromObject(foreign), &corev1.Secret{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "neither the credentials nor a foreign Secret is cached: %v", err)
	})

	It("moves the key to a new Secret name and data key without a new key", func() {
		t := newTenant()
		t.apiKey("moving")
		k := t.waitReady("moving")
		value := t.secret("moving").Data["apiKey"]
		Eventually(func() error {
			k := t.get("moving")
			k.Spec.SecretName = "moved"
			k.Spec.SecretKey = "token"
			return k8sClient.Update(ctx, k)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			moved := &iamv1alpha1.ApiKey{}
			g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: "moving"}, moved)).To(Succeed())
			g.Expect(moved.Status.SecretName).To(Equal("moved"))
			g.Expect(moved.Status.SecretKey).To(Equal("token"))
		}).WithTimeout(20 * time.Second).Should(Succeed())
		s := t.secret("moved")
		Expect(s.Data).To(Equal(map[string][]byte{"token": value}))
		Expect(s.Annotations).To(HaveKeyWithValue(iamv1alpha1.KeyIDAnnotation, k.Status.KeyID))
		err := k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: "moving"}, &corev1.Secret{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the old managed Secret is removed")
		Expect(t.get("moving").Status.KeyID).To(Equal(k.Status.KeyID))
		Expect(t.emu.Stats().Create).To(Equal(1))
		Eventually(func() []string { return t.eventReasons("moving") }).WithTimeout(10 * time.Second).Should(ContainElement(EventSecretMoved))
	})

	It("deletes a Secret it controls under a name it no longer uses, and no other", func() {
		// What a move leaves behind when the process dies between writing
		// the new Secret and deleting the old one: a second Secret
		// controlled by the ApiKey, which nothing in its status names.
		t := newTenant()
		t.apiKey("swept")
		k := t.waitReady("swept")
		t.apiKey("neighbour")
		neighbour := t.waitReady("neighbour")
		controlled := func(name string, owner *iamv1alpha1.ApiKey) {
			s := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: t.ns, Name: name,
					Labels: map[string]string{
						iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue,
						iamv1alpha1.ApiKeyLabel:    "swept",
					},
				},
				Data: map[string][]byte{"apiKey": []byte("stale")},
			}
			Expect(controllerutil.SetControllerReference(owner, s, k8sClient.Scheme())).To(Succeed())
			Expect(k8sClient.Create(ctx, s)).To(Succeed())
		}
		controlled("swept-before-move", k)
		// Labelled for "swept" but controlled by its neighbour: not swept's
		// to delete, and the neighbour does not use that name either, so
		// the neighbour sweeps it.
		controlled("claimed-by-label", neighbour)
		for _, name := range []string{"swept-before-move", "claimed-by-label"} {
			Eventually(func() bool {
				err := k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: name}, &corev1.Secret{})
				return apierrors.IsNotFound(err)
			}).WithTimeout(20*time.Second).Should(BeTrue(), "Secret %s is left behind", name)
		}
		Expect(t.secret("swept").Annotations).To(HaveKeyWithValue(iamv1alpha1.KeyIDAnnotation, k.Status.KeyID))
		Expect(t.secret("neighbour").Annotations).To(HaveKeyWithValue(iamv1alpha1.KeyIDAnnotation, neighbour.Status.KeyID))
		Expect(t.get("swept").Status.KeyID).To(Equal(k.Status.KeyID), "no new key")
		Expect(t.emu.Stats().Create).To(Equal(2))
	})

	It("never touches a Secret it does not control", func() {
		t := newTenant()
		foreign := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: "taken", Labels: map[string]string{"app": "other"}},
			Data:       map[string][]byte{"apiKey": []byte("someone else's value")},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		t.apiKey("taken")
		cond := t.waitReason("taken", iamv1alpha1.ReasonSecretConflict)
		Expect(cond.Message).To(ContainSubstring("not managed by this ApiKey"))
		Consistently(func(g Gomega) {
			s := t.secret("taken")
			g.Expect(s.ResourceVersion).To(Equal(foreign.ResourceVersion))
		}).WithTimeout(2 * testSyncPeriod).Should(Succeed())
		Expect(t.emu.Stats().Create).To(BeZero())

		By("deleting the ApiKey, which must leave the foreign Secret in place")
		Expect(k8sClient.Delete(ctx, t.get("taken"))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: "taken"}, &iamv1alpha1.ApiKey{}))
		}).WithTimeout(30 * time.Second).Should(BeTrue())
		Expect(t.secret("taken").Data["apiKey"]).To(Equal([]byte("someone else's value")))
	})

	It("reports DeleteFailed for a read-only role and releases the ApiKey once set to Orphan", func() {
		t := newTenant()
		reader := t.emu.AddUser("reader@example.com", t.orgID)
		Expect(t.emu.AddMember(t.orgID, reader, emulator.RoleReadOnly)).To(Succeed())
		token, err := t.emu.IssueToken(reader, time.Hour)
		Expect(err).NotTo(HaveOccurred())
		remember(token)
		t.credentials("reader", token)
		t.connection("readonly", "reader")
		t.apiKey("stuck", func(k *iamv1alpha1.ApiKey) { k.Spec.ConnectionRef.Name = "readonly" })
		k := t.waitReady("stuck")
		Expect(k8sClient.Delete(ctx, k)).To(Succeed())
		cond := t.waitReason("stuck", iamv1alpha1.ReasonDeleteFailed)
		Expect(cond.Message).To(ContainSubstring("deletionPolicy: Orphan"))
		Expect(cond.Message).To(ContainSubstring("read-write or admin"))
		Expect(t.eventReasons("stuck")).To(ContainElement(iamv1alpha1.ReasonDeleteFailed))

		By("retrying with a growing delay, not in a loop")
		deletes := t.emu.Stats().Delete
		time.Sleep(3 * time.Second)
		Expect(t.emu.Stats().Delete - deletes).To(BeNumerically("<=", 2))

		k = t.get("stuck")
		k.Spec.DeletionPolicy = iamv1alpha1.DeletionPolicyOrphan
		Expect(k8sClient.Update(ctx, k)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), &iamv1alpha1.ApiKey{}))
		}).WithTimeout(30 * time.Second).Should(BeTrue())
		Eventually(t.remoteIDs).WithTimeout(10 * time.Second).Should(ConsistOf(k.Status.KeyID))
	})

	It("makes no remote call while paused", func() {
		t := newTenant()
		t.apiKey("paused", func(k *iamv1alpha1.ApiKey) {
			k.Annotations = map[string]string{iamv1alpha1.PausedAnnotation: "true"}
		})
		t.waitReason("paused", iamv1alpha1.ReasonPaused)
		Consistently(func() int { return t.emu.Stats().Create }).WithTimeout(2 * testSyncPeriod).Should(BeZero())

		k := t.get("paused")
		delete(k.Annotations, iamv1alpha1.PausedAnnotation)
		Expect(k8sClient.Update(ctx, k)).To(Succeed())
		t.waitReady("paused")
		Expect(t.emu.Stats().Create).To(Equal(1))

		By("holding a deletion while paused")
		t.annotate("paused", iamv1alpha1.PausedAnnotation, "true")
		Expect(k8sClient.Delete(ctx, t.get("paused"))).To(Succeed())
		Eventually(func() string { return readyMessage(t.get("paused")) }).Should(ContainSubstring("deleted once"))
		Expect(readyReason(t.get("paused"))).To(Equal(iamv1alpha1.ReasonPaused))
		Consistently(func() int { return t.emu.Stats().Delete }).WithTimeout(testSyncPeriod).Should(BeZero())
		t.annotate("paused", iamv1alpha1.PausedAnnotation, "false")
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), &iamv1alpha1.ApiKey{}))
		}).WithTimeout(30 * time.Second).Should(BeTrue())
		Expect(t.remoteIDs()).To(BeEmpty())
	})

	It("ends with exactly one remote key when create responses are lost", func() {
		t := newTenant()
		t.emu.SetFaults(emulator.Faults{LoseCreateRate: 1})
		t.apiKey("lossy")
		Eventually(func() int { return t.emu.Stats().LostCreates }).WithTimeout(20 * time.Second).Should(BeNumerically(">=", 2))
		t.emu.SetFaults(emulator.Faults{})
		k := t.waitReady("lossy")
		Eventually(t.remoteIDs).WithTimeout(20 * time.Second).Should(ConsistOf(k.Status.KeyID))
		Expect(t.emu.UseKey(string(t.secret("lossy").Data["apiKey"]))).To(BeTrue())
		Eventually(func() []string { return t.eventReasons("lossy") }).WithTimeout(10 * time.Second).Should(ContainElement(EventUnclaimedDeleted))
	})

	It("ends with exactly one remote key when the Secret write and the cleanup after it both fail", func() {
		t := newTenant()
		// The Secret write fails, and so does the delete of the key nobody
		// can read: only the recorded attempt is left, as after a crash.
		var crashed atomic.Bool
		t.failKube(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if _, ok := obj.(*corev1.Secret); ok && crashed.CompareAndSwap(false, true) {
					return apierrors.NewServiceUnavailable("etcd leader changed")
				}
				return c.Create(ctx, obj, opts...)
			},
		})
		var deleteFailed atomic.Bool
		t.failRemote(func(svc KeyService) KeyService {
			return KeyServiceFuncs{
				List: svc.ListKeys, Create: svc.CreateKey,
				Delete: func(ctx context.Context, id string) error {
					if deleteFailed.CompareAndSwap(false, true) {
						return errors.New("connection reset by peer")
					}
					return svc.DeleteKey(ctx, id)
				},
			}
		})
		t.apiKey("crashy")
		k := t.waitReady("crashy")
		Expect(crashed.Load()).To(BeTrue())
		Expect(t.emu.Stats().Create).To(Equal(2), "one create lost to the crash, one that stuck")
		Eventually(t.remoteIDs).WithTimeout(10 * time.Second).Should(ConsistOf(k.Status.KeyID))
		Expect(k.Status.PendingCreate).To(BeNil())
		Eventually(func() []string { return t.eventReasons("crashy") }).WithTimeout(10 * time.Second).Should(ContainElement(EventUnclaimedDeleted))
	})

	It("deletes a key that an abandoned create makes after its recovery", func() {
		t := newTenant()
		var gaveUp atomic.Bool
		var late sync.WaitGroup
		t.failRemote(func(svc KeyService) KeyService {
			return KeyServiceFuncs{
				List:   svc.ListKeys,
				Delete: svc.DeleteKey,
				Create: func(ctx context.Context, name string) (*mobilenext.CreatedKey, error) {
					if !gaveUp.CompareAndSwap(false, true) {
						return svc.CreateKey(ctx, name)
					}
					// A slow server: the client gives up, and the key is
					// only created after the operator recovered the attempt.
					late.Go(func() {
						time.Sleep(2 * time.Second)
						_, _ = svc.CreateKey(context.Background(), name)
					})
					return nil, fmt.Errorf("create key: %w", context.DeadlineExceeded)
				},
			}
		})

		t.apiKey("late")
		k := t.waitReady("late")
		late.Wait()
		Expect(t.emu.Stats().Create).To(Equal(2))
		Eventually(t.remoteIDs).WithTimeout(4 * testSyncPeriod).Should(ConsistOf(k.Status.KeyID))
		Eventually(func() []iamv1alpha1.UnresolvedAttempt { return t.get("late").Status.UnresolvedAttempts }).Should(BeEmpty())
		Expect(t.emu.UseKey(string(t.secret("late").Data["apiKey"]))).To(BeTrue())
	})

	It("stops on a 400 until the spec changes", func() {
		t := newTenant()
		var refusals atomic.Int32
		t.failRemote(func(svc KeyService) KeyService {
			return KeyServiceFuncs{
				List:   svc.ListKeys,
				Delete: svc.DeleteKey,
				Create: func(ctx context.Context, name string) (*mobilenext.CreatedKey, error) {
					if strings.HasPrefix(name, "refused ") {
						refusals.Add(1)
						return nil, &mobilenext.APIError{Method: "POST", Path: "/api/v1/keys", StatusCode: 400, Message: "name is not acceptable"}
					}
					return svc.CreateKey(ctx, name)
				},
			}
		})
		t.apiKey("refused", func(k *iamv1alpha1.ApiKey) { k.Spec.Name = "refused name" })
		cond := t.waitReason("refused", iamv1alpha1.ReasonInvalidSpec)
		Expect(cond.Message).To(ContainSubstring("name is not acceptable"))
		Consistently(refusals.Load).WithTimeout(3*testSyncPeriod).Should(Equal(int32(1)), "no retry until the spec changes")

		Eventually(func() error {
			k := t.get("refused")
			k.Spec.Name = "accepted name"
			return k8sClient.Update(ctx, k)
		}).Should(Succeed())
		k := t.waitReady("refused")
		Expect(k.Status.KeyName).To(HavePrefix("accepted name [k8s-"))
		Eventually(t.remoteIDs).WithTimeout(10 * time.Second).Should(ConsistOf(k.Status.KeyID))
	})

	It("backs off exponentially while creates fail", func() {
		t := newTenant()
		var failing atomic.Bool
		failing.Store(true)
		var tries atomic.Int32
		t.failRemote(func(svc KeyService) KeyService {
			return KeyServiceFuncs{
				List:   svc.ListKeys,
				Delete: svc.DeleteKey,
				Create: func(ctx context.Context, name string) (*mobilenext.CreatedKey, error) {
					if failing.Load() {
						tries.Add(1)
						return nil, &mobilenext.APIError{Method: "POST", Path: "/api/v1/keys", StatusCode: 503, Message: "try later"}
					}
					return svc.CreateKey(ctx, name)
				},
			}
		})
		t.apiKey("failing")
		cond := t.waitReason("failing", iamv1alpha1.ReasonRemoteError)
		Expect(cond.Message).To(ContainSubstring("503"))
		time.Sleep(8 * time.Second)
		// Backing off from 1s doubles the wait each time: about five tries in
		// 8s, where a retry loop would make hundreds.
		Expect(tries.Load()).To(BeNumerically("<=", 7), "creates tried while the API failed")
		failing.Store(false)
		k := t.waitReady("failing")
		Eventually(t.remoteIDs).WithTimeout(4 * testSyncPeriod).Should(ConsistOf(k.Status.KeyID))
	})

	It("stays Ready through an API outage and says it is not synced", func() {
		t := newTenant()
		t.apiKey("steady")
		k := t.waitReady("steady")
		t.emu.SetFaults(emulator.Faults{ServerErrorRate: 1})
		t.connectionReason("api", iamv1alpha1.ReasonUnreachable)
		Eventually(func() string {
			c := meta.FindStatusCondition(t.get("steady").Status.Conditions, iamv1alpha1.ConditionSynced)
			return string(c.Status) + "/" + c.Reason
		}).WithTimeout(4 * testSyncPeriod).Should(Equal("False/" + iamv1alpha1.ReasonUnreachable))
		Consistently(func() string { return readyReason(t.get("steady")) }).
			WithTimeout(testSyncPeriod).Should(Equal(iamv1alpha1.ReasonKeyReady))
		t.emu.SetFaults(emulator.Faults{})
		t.connectionReason("api", iamv1alpha1.ReasonValid)
		Eventually(func() bool {
			return meta.IsStatusConditionTrue(t.get("steady").Status.Conditions, iamv1alpha1.ConditionSynced)
		}).WithTimeout(4 * testSyncPeriod).Should(BeTrue())
		Expect(t.get("steady").Status.KeyID).To(Equal(k.Status.KeyID))
	})

	It("holds back every call of a connection while the API answers 429", func() {
		t := newTenant()
		t.emu.SetFaults(emulator.Faults{ThrottleRate: 1, RetryAfter: 2 * time.Second})
		for _, name := range []string{"a", "b", "c", "d", "e"} {
			t.apiKey(name)
		}
		t.emu.ResetStats()
		window := 10 * time.Second
		time.Sleep(window)
		st := t.emu.Stats()
		total := st.List + st.Create + st.Delete
		// Retry-After 2s over 10s allows about five calls for the whole
		// connection; five ApiKeys retrying on their own would make dozens.
		Expect(total).To(BeNumerically("<=", 10), "requests during a 429 storm: %+v", st)
		Expect(st.Throttled).To(BeNumerically(">=", 1))
		t.emu.SetFaults(emulator.Faults{})
		for _, name := range []string{"a", "b", "c", "d", "e"} {
			t.waitReady(name)
		}
		Expect(t.emu.Keys(t.orgID)).To(HaveLen(5))
	})

	It(fmt.Sprintf("lists the keys of a connection once per sync period for 100 ApiKeys and %d workers",
		DefaultMaxConcurrentReconciles), func() {
		t := newTenant()
		const n = 100
		for i := range n {
			t.apiKey(fmt.Sprintf("bulk-%03d", i))
		}
		Eventually(func(g Gomega) {
			var list iamv1alpha1.ApiKeyList
			g.Expect(k8sClient.List(ctx, &list, client.InNamespace(t.ns))).To(Succeed())
			ready := 0
			for _, k := range list.Items {
				if readyReason(&k) == iamv1alpha1.ReasonKeyReady {
					ready++
				}
			}
			g.Expect(ready).To(Equal(n))
		}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
		Expect(t.emu.Stats().Create).To(Equal(n), "creating N keys costs N POSTs")
		Expect(t.emu.Keys(t.orgID)).To(HaveLen(n))

		t.emu.ResetStats()
		periods := 4
		time.Sleep(time.Duration(periods) * testSyncPeriod)
		st := t.emu.Stats()
		Expect(st.List).To(BeNumerically("<=", periods+1), "GETs over %d sync periods for %d ApiKeys", periods, n)
		Expect(st.List).To(BeNumerically(">=", 1), "the keys are still listed")
		Expect(st.Create).To(BeZero())
	})
})
