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
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/emulator"
)

// annotate sets an annotation on an ApiKey.
func (t *tenant) annotate(name, key, value string) {
	GinkgoHelper()
	Eventually(func() error {
		k := t.get(name)
		if k.Annotations == nil {
			k.Annotations = map[string]string{}
		}
		k.Annotations[key] = value
		return k8sClient.Update(ctx, k)
	}).WithTimeout(10 * time.Second).Should(Succeed())
}

// waitRotatedFrom waits until the ApiKey holds a key other than old, Ready.
func (t *tenant) waitRotatedFrom(name, old string) *iamv1alpha1.ApiKey {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(t.get(name).Status.KeyID).NotTo(Equal(old))
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	return t.waitReady(name)
}

// deployment creates a Deployment that reads nothing; no kubelet runs it.
func (t *tenant) deployment(name string) *appsv1.Deployment {
	GinkgoHelper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
	Expect(k8sClient.Create(ctx, d)).To(Succeed())
	return d
}

var _ = Describe("Rotation", func() {
	It("rotates on the schedule counted from when the operator recorded the key", func() {
		t := newTenant()
		t.apiKey("scheduled", func(k *iamv1alpha1.ApiKey) {
			k.Spec.Rotation = &iamv1alpha1.Rotation{Every: &metav1.Duration{Duration: 10 * time.Second}, GracePeriod: &metav1.Duration{Duration: 0}}
		})
		first := t.waitReady("scheduled")
		Expect(first.Status.NextRotationTime).NotTo(BeNil())
		Expect(first.Status.KeyRecordedAt).NotTo(BeNil())
		Expect(first.Status.NextRotationTime.Sub(first.Status.KeyRecordedAt.Time)).To(Equal(10 * time.Second))
		Expect(first.Status.LastRotationTime).To(BeNil())

		second := t.waitRotatedFrom("scheduled", first.Status.KeyID)
		Expect(second.Status.LastRotationTime).NotTo(BeNil())
		Expect(second.Status.NextRotationTime.Time).To(BeTemporally(">", first.Status.NextRotationTime.Time))
		Eventually(func() []string { return t.eventReasons("scheduled") }).WithTimeout(10 * time.Second).Should(ContainElement(EventRotated))
		Eventually(t.remoteIDs).WithTimeout(20 * time.Second).ShouldNot(ContainElement(first.Status.KeyID))
	})

	It("rotates once per value of the rotate annotation", func() {
		t := newTenant()
		t.apiKey("ondemand", func(k *iamv1alpha1.ApiKey) {
			k.Annotations = map[string]string{iamv1alpha1.RotateAnnotation: "initial"}
		})
		first := t.waitReady("ondemand")
		Expect(first.Status.HandledRotateRequest).To(Equal("initial"), "an annotation present at creation is not a rotation")

		t.annotate("ondemand", iamv1alpha1.RotateAnnotation, "2026-11-27")
		second := t.waitRotatedFrom("ondemand", first.Status.KeyID)
		Expect(second.Status.HandledRotateRequest).To(Equal("2026-11-27"))
		Consistently(func() string { return t.get("ondemand").Status.KeyID }).
			WithTimeout(3 * testSyncPeriod).Should(Equal(second.Status.KeyID))
		Expect(t.emu.Stats().Create).To(Equal(2))

		By("a value already handled does not rotate again")
		t.annotate("ondemand", "unrelated", "change")
		Consistently(func() int { return t.emu.Stats().Create }).WithTimeout(2 * testSyncPeriod).Should(Equal(2))
	})

	It("rotates when spec.name changes", func() {
		t := newTenant()
		t.apiKey("renamed", func(k *iamv1alpha1.ApiKey) { k.Spec.Name = "before" })
		first := t.waitReady("renamed")
		Expect(first.Status.KeyName).To(HavePrefix("before [k8s-"))
		Eventually(func() error {
			k := t.get("renamed")
			k.Spec.Name = "after"
			return k8sClient.Update(ctx, k)
		}).Should(Succeed())
		second := t.waitRotatedFrom("renamed", first.Status.KeyID)
		Expect(second.Status.KeyName).To(HavePrefix("after [k8s-"))
	})

	It("keeps the previous key for its grace period, then deletes it", func() {
		t := newTenant()
		t.apiKey("graceful", func(k *iamv1alpha1.ApiKey) {
			k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: 6 * time.Second}}
		})
		first := t.waitReady("graceful")
		oldValue := string(t.secret("graceful").Data["apiKey"])
		t.annotate("graceful", iamv1alpha1.RotateAnnotation, "now")
		second := t.waitRotatedFrom("graceful", first.Status.KeyID)
		Expect(second.Status.PreviousKeys).To(HaveLen(1))
		prev := second.Status.PreviousKeys[0]
		Expect(prev.KeyID).To(Equal(first.Status.KeyID))
		Expect(prev.DeleteAfter.Sub(prev.ReplacedAt.Time)).To(Equal(6 * time.Second))
		Expect(t.remoteIDs()).To(ConsistOf(first.Status.KeyID, second.Status.KeyID), "the old key still works during its grace period")
		Expect(t.emu.UseKey(oldValue)).To(BeTrue())

		Eventually(t.remoteIDs).WithTimeout(30 * time.Second).Should(ConsistOf(second.Status.KeyID))
		Eventually(func() []iamv1alpha1.PreviousKey { return t.get("graceful").Status.PreviousKeys }).Should(BeEmpty())
		Expect(t.emu.UseKey(oldValue)).To(BeFalse())
		Eventually(func() []string { return t.eventReasons("graceful") }).WithTimeout(10 * time.Second).Should(ContainElement(EventRetired))
	})

	It("retires an idle previous key early and keeps a used one until its grace period", func() {
		t := newTenant()
		rotation := func(k *iamv1alpha1.ApiKey) {
			k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: 25 * time.Second}, RetireWhenUnusedFor: &metav1.Duration{Duration: 4 * time.Second}}
		}
		t.apiKey("idle", rotation)
		t.apiKey("busy", rotation)
		idle, busy := t.waitReady("idle"), t.waitReady("busy")
		busyValue := string(t.secret("busy").Data["apiKey"])

		// A workload that keeps using the old key of "busy".
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(300 * time.Millisecond):
					t.emu.UseKey(busyValue)
				}
			}
		})
		DeferCleanup(func() { close(stop); wg.Wait() })

		t.annotate("idle", iamv1alpha1.RotateAnnotation, "1")
		t.annotate("busy", iamv1alpha1.RotateAnnotation, "1")
		idleNow := t.waitRotatedFrom("idle", idle.Status.KeyID)
		busyNow := t.waitRotatedFrom("busy", busy.Status.KeyID)

		By("retiring the idle key well before its grace period ends")
		Eventually(t.remoteIDs).WithTimeout(20 * time.Second).ShouldNot(ContainElement(idle.Status.KeyID))
		Expect(time.Now()).To(BeTemporally("<", idleNow.Status.LastRotationTime.Add(25*time.Second)),
			"the idle key must go before its grace period ends")

		By("keeping the used key until the grace period ends")
		Expect(t.remoteIDs()).To(ContainElement(busy.Status.KeyID))
		Eventually(t.remoteIDs).WithTimeout(40 * time.Second).ShouldNot(ContainElement(busy.Status.KeyID))
		Expect(time.Now()).To(BeTemporally(">=", busyNow.Status.LastRotationTime.Add(25*time.Second)),
			"a key in use must live out its grace period")
		Eventually(func() []iamv1alpha1.PreviousKey { return t.get("idle").Status.PreviousKeys }).Should(BeEmpty())
		Expect(eventMessages(t, "idle", EventRetired)).To(ContainElement(ContainSubstring("unused")))
		Expect(eventMessages(t, "busy", EventRetired)).To(ContainElement(ContainSubstring("grace period")))
	})

	It("restarts the rollout targets once per new key", func() {
		t := newTenant()
		d := t.deployment("worker")
		t.apiKey("restarting", func(k *iamv1alpha1.ApiKey) {
			k.Spec.RolloutRestartTargets = []iamv1alpha1.RolloutRestartTarget{{Kind: "Deployment", Name: "worker"}}
			k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: 0}}
		})
		first := t.waitReady("restarting")
		getDeployment := func() *appsv1.Deployment {
			GinkgoHelper()
			out := &appsv1.Deployment{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), out)).To(Succeed())
			return out
		}
		Expect(getDeployment().Spec.Template.Annotations).NotTo(HaveKey(iamv1alpha1.RestartedForAnnotation), "the first key is no reason to restart")

		t.annotate("restarting", iamv1alpha1.RotateAnnotation, "1")
		second := t.waitRotatedFrom("restarting", first.Status.KeyID)
		Eventually(func() map[string]string { return getDeployment().Spec.Template.Annotations }).
			Should(HaveKeyWithValue(iamv1alpha1.RestartedForAnnotation, second.Status.KeyID))
		generation := getDeployment().Generation

		By("re-running the reconcile without a new key restarts nothing")
		t.annotate("restarting", "touched", "yes")
		Consistently(func() int64 { return getDeployment().Generation }).WithTimeout(2 * testSyncPeriod).Should(Equal(generation))
		Expect(eventMessages(t, "restarting", EventRestarted)).To(HaveLen(1))
	})

	It("reports a missing rollout restart target without blocking the key", func() {
		t := newTenant()
		t.apiKey("ghostly", func(k *iamv1alpha1.ApiKey) {
			k.Spec.RolloutRestartTargets = []iamv1alpha1.RolloutRestartTarget{{Kind: "StatefulSet", Name: "ghost"}}
		})
		first := t.waitReady("ghostly")
		t.annotate("ghostly", iamv1alpha1.RotateAnnotation, "1")
		t.waitRotatedFrom("ghostly", first.Status.KeyID)
		Eventually(func() string { return readyMessage(t.get("ghostly")) }).Should(ContainSubstring("StatefulSet/ghost"))
		Eventually(func() []string { return t.eventReasons("ghostly") }).Should(ContainElement(EventRestartTargetMiss))
	})

	It("deletes the current and the previous key when deleted during a grace period", func() {
		t := newTenant()
		t.apiKey("both", func(k *iamv1alpha1.ApiKey) {
			k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: time.Hour}}
		})
		first := t.waitReady("both")
		t.annotate("both", iamv1alpha1.RotateAnnotation, "1")
		second := t.waitRotatedFrom("both", first.Status.KeyID)
		Expect(t.remoteIDs()).To(ConsistOf(first.Status.KeyID, second.Status.KeyID))
		Expect(k8sClient.Delete(ctx, second)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: "both"}, &iamv1alpha1.ApiKey{}))
		}).WithTimeout(30 * time.Second).Should(BeTrue())
		Expect(t.remoteIDs()).To(BeEmpty())
	})

	It("leaks no key when a create response is lost during a rotation", func() {
		t := newTenant()
		t.apiKey("lossy-rotation", func(k *iamv1alpha1.ApiKey) {
			k.Spec.Rotation = &iamv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: 0}}
		})
		first := t.waitReady("lossy-rotation")
		t.emu.SetFaults(emulator.Faults{LoseCreateRate: 1, DropConnection: true})
		t.annotate("lossy-rotation", iamv1alpha1.RotateAnnotation, "1")
		Eventually(func() int { return t.emu.Stats().LostCreates }).WithTimeout(20 * time.Second).Should(BeNumerically(">=", 1))
		t.emu.SetFaults(emulator.Faults{})
		second := t.waitRotatedFrom("lossy-rotation", first.Status.KeyID)
		Eventually(t.remoteIDs).WithTimeout(20 * time.Second).Should(ConsistOf(second.Status.KeyID))
		Expect(t.emu.UseKey(string(t.secret("lossy-rotation").Data["apiKey"]))).To(BeTrue())
	})
})

// eventMessages lists the messages of an ApiKey's events with a reason.
func eventMessages(t *tenant, name, reason string) []string {
	GinkgoHelper()
	var events eventsv1.EventList
	Expect(k8sClient.List(context.Background(), &events, client.InNamespace(t.ns))).To(Succeed())
	var out []string
	for _, e := range events.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			out = append(out, e.Note)
		}
	}
	return out
}
