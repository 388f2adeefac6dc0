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
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// connectionReady waits for a Connection's Ready condition to carry a reason.
func (t *tenant) connectionReason(name, reason string) *iamv1alpha1.Connection {
	GinkgoHelper()
	c := &iamv1alpha1.Connection{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: t.ns, Name: name}, c)).To(Succeed())
		cond := meta.FindStatusCondition(c.Status.Conditions, iamv1alpha1.ConditionReady)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(reason), cond.Message)
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	return c
}

var _ = Describe("Connection", func() {
	It("is Ready with the token's expiry when the API accepts the session token", func() {
		t := newTenant()
		c := t.connectionReason("api", iamv1alpha1.ReasonValid)
		Expect(meta.IsStatusConditionTrue(c.Status.Conditions, iamv1alpha1.ConditionReady)).To(BeTrue())
		Expect(c.Status.CredentialsExpireAt).NotTo(BeNil())
		Expect(c.Status.CredentialsExpireAt.Time).To(BeTemporally("~", time.Now().Add(24*time.Hour), time.Minute))
		Expect(c.Status.LastCheckedTime).NotTo(BeNil())
	})

	It("refuses an API key as credentials without calling the API", func() {
		t := newTenant()
		t.credentials("apikey-creds", "mob_thisIsAnApiKeyNotASessionToken0000")
		remember("mob_thisIsAnApiKeyNotASessionToken0000")
		t.connection("wrong", "apikey-creds")
		t.emu.ResetStats()
		c := t.connectionReason("wrong", iamv1alpha1.ReasonNotASessionToken)
		Expect(meta.FindStatusCondition(c.Status.Conditions, iamv1alpha1.ConditionReady).Message).To(ContainSubstring("mobilecli auth token"))
		t.apiKey("on-wrong", func(k *iamv1alpha1.ApiKey) { k.Spec.ConnectionRef.Name = "wrong" })
		cond := t.waitReason("on-wrong", iamv1alpha1.ReasonConnectionNotReady)
		Expect(cond.Message).To(ContainSubstring(iamv1alpha1.ReasonNotASessionToken))
		// The tenant's own Connection keeps listing with its valid token; a
		// call with the API key would be answered 401.
		Consistently(func() int { return t.emu.Stats().Unauthorized }).WithTimeout(2 * testPollInterval).Should(BeZero())
		Expect(t.emu.Stats().Create).To(BeZero())
	})

	It("reports an expired session token and makes no calls with it", func() {
		t := newTenant()
		token, err := t.emu.IssueToken(t.userID, time.Second)
		Expect(err).NotTo(HaveOccurred())
		remember(token)
		time.Sleep(2 * time.Second)
		t.credentials("old", token)
		t.connection("expired", "old")
		t.emu.ResetStats()
		c := t.connectionReason("expired", iamv1alpha1.ReasonExpired)
		Expect(c.Status.CredentialsExpireAt.Time).To(BeTemporally("<", time.Now()))
		t.apiKey("on-expired", func(k *iamv1alpha1.ApiKey) { k.Spec.ConnectionRef.Name = "expired" })
		t.waitReason("on-expired", iamv1alpha1.ReasonConnectionNotReady)
		Expect(t.emu.Stats().Create).To(BeZero())
	})

	It("picks up a new token from the Secret without a restart", func() {
		t := newTenant()
		t.credentials("rotating", "not-a-jwt")
		t.connection("renewed", "rotating")
		t.connectionReason("renewed", iamv1alpha1.ReasonInvalidToken)
		t.apiKey("on-renewed", func(k *iamv1alpha1.ApiKey) { k.Spec.ConnectionRef.Name = "renewed" })
		t.waitReason("on-renewed", iamv1alpha1.ReasonConnectionNotReady)

		t.credentials("rotating", t.token)
		t.connectionReason("renewed", iamv1alpha1.ReasonValid)
		t.waitReady("on-renewed")
	})

	It("reports Unauthorized when the API refuses the token", func() {
		t := newTenant()
		other := newTenant() // its emulator signs with another key
		t.credentials("foreign", other.token)
		t.connection("refused", "foreign")
		c := t.connectionReason("refused", iamv1alpha1.ReasonUnauthorized)
		Expect(meta.FindStatusCondition(c.Status.Conditions, iamv1alpha1.ConditionReady).Message).To(ContainSubstring("mobilecli auth login"))
	})

	It("reports a missing credentials Secret", func() {
		t := newTenant()
		t.connection("nosecret", "does-not-exist")
		t.connectionReason("nosecret", iamv1alpha1.ReasonSecretNotFound)
	})
})

var _ = Describe("ClusterConnection", func() {
	It("serves only the namespaces its namespaceSelector admits", func() {
		admitted := newTenant(func(ns *corev1.Namespace) { ns.Labels = map[string]string{"team": "mobile"} })
		refused := newTenant()
		cc := &iamv1alpha1.ClusterConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "mobile-team-" + admitted.ns},
			Spec: iamv1alpha1.ClusterConnectionSpec{
				ConnectionParameters: iamv1alpha1.ConnectionParameters{
					URL:                  admitted.url,
					CredentialsSecretRef: iamv1alpha1.SecretKeyReference{Name: "credentials", Namespace: admitted.ns},
				},
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "mobile"}},
			},
		}
		Expect(k8sClient.Create(ctx, cc)).To(Succeed())
		DeferCleanup(func() { _ = k8sClient.Delete(ctx, cc) })
		useCluster := func(k *iamv1alpha1.ApiKey) {
			k.Spec.ConnectionRef = iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ClusterConnectionKind, Name: cc.Name}
		}
		admitted.apiKey("allowed", useCluster)
		refused.apiKey("denied", useCluster)
		admitted.waitReady("allowed")
		cond := refused.waitReason("denied", iamv1alpha1.ReasonConnectionNotReady)
		Expect(cond.Message).To(ContainSubstring("namespaceSelector"))
		Expect(admitted.emu.Stats().Create).To(Equal(1), "only the admitted namespace's key was created")
	})
})

// connectionEvents lists the reasons of the events about a Connection.
func connectionEvents(t *tenant, name string) []eventsv1.Event {
	GinkgoHelper()
	var events eventsv1.EventList
	Expect(k8sClient.List(ctx, &events, client.InNamespace(t.ns))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range events.Items {
		if e.Regarding.Kind == iamv1alpha1.ConnectionKind && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

var _ = Describe("Connection events", func() {
	It("records state changes and warns once a day before the session token expires", func() {
		t := newTenant() // its token expires in 24h, inside the 72h warning window
		reasons := func() []string {
			r := make([]string, 0, 8)
			for _, e := range connectionEvents(t, "api") {
				r = append(r, e.Type+"/"+e.Reason)
			}
			return r
		}
		Eventually(reasons).WithTimeout(20 * time.Second).Should(ContainElements(
			"Normal/"+iamv1alpha1.ReasonValid, "Warning/"+EventCredentialsExpiring))
		for _, e := range connectionEvents(t, "api") {
			if e.Reason == EventCredentialsExpiring {
				Expect(e.Note).To(ContainSubstring("mobilecli auth login"))
				Expect(e.Note).NotTo(ContainSubstring(t.token))
			}
		}
		var c iamv1alpha1.Connection
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "api"}, &c)).To(Succeed())
		Expect(c.Status.ExpiryWarningTime).NotTo(BeNil())

		By("breaking the token: a warning with the new reason")
		t.credentials("credentials", "not-a-jwt")
		Eventually(reasons).WithTimeout(20 * time.Second).Should(ContainElement("Warning/" + iamv1alpha1.ReasonInvalidToken))
		t.credentials("credentials", t.token)
		t.connectionReason("api", iamv1alpha1.ReasonValid)
		Consistently(func() int {
			n := 0
			for _, r := range reasons() {
				if r == "Warning/"+EventCredentialsExpiring {
					n++
				}
			}
			return n
		}).WithTimeout(3*testPollInterval).Should(Equal(1), "the expiry warning repeated within a day")
	})
})

var _ = Describe("Metrics", func() {
	It("exposes the state of connections and ApiKeys, and the API calls by connection", func() {
		t := newTenant()
		t.apiKey("measured")
		t.waitReady("measured")
		conn := "Connection/" + t.ns + "/api"
		Eventually(func(g Gomega) {
			families, err := metrics.Registry.Gather()
			g.Expect(err).NotTo(HaveOccurred())
			found := map[string]bool{}
			for _, f := range families {
				for _, m := range f.GetMetric() {
					labels := map[string]string{}
					for _, l := range m.GetLabel() {
						labels[l.GetName()] = l.GetValue()
					}
					switch f.GetName() {
					case "apikey_operator_apikey_status_condition":
						if labels["namespace"] == t.ns && labels["name"] == "measured" && labels["type"] == "Ready" && labels["status"] == "True" {
							found["ready"] = m.GetGauge().GetValue() == 1
						}
					case "apikey_operator_connection_ready":
						if labels["namespace"] == t.ns && labels["name"] == "api" {
							found["connection"] = m.GetGauge().GetValue() == 1
						}
					case "apikey_operator_credentials_expiry_timestamp_seconds":
						if labels["namespace"] == t.ns && labels["name"] == "api" {
							found["expiry"] = m.GetGauge().GetValue() > float64(time.Now().Unix())
						}
					case "apikey_operator_api_requests_total":
						if labels["connection"] == conn && labels["method"] == "get" && labels["code"] == "200" {
							found["calls"] = m.GetCounter().GetValue() >= 1
						}
					case "apikey_operator_build_info":
						found["build"] = m.GetGauge().GetValue() == 1
					}
				}
			}
			g.Expect(found).To(Equal(map[string]bool{"ready": true, "connection": true, "expiry": true, "calls": true, "build": true}))
		}).WithTimeout(20 * time.Second).Should(Succeed())
	})
})
