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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// DefaultExpiryWarning is how long before a session token expires the
// CredentialsExpiring warning starts: the operator cannot renew the token,
// a person must, and a weekend should not be enough to miss it.
const DefaultExpiryWarning = 72 * time.Hour

// expiryWarningRepeat is how often the CredentialsExpiring warning repeats.
const expiryWarningRepeat = 24 * time.Hour

// Event reasons of connections.
const (
	EventCredentialsExpiring = "CredentialsExpiring"
)

// recordTransitions records an event when the connection's Ready reason
// changes, and warns, at most daily, that its token expires soon. The
// warning's time is kept in status so that restarts do not repeat it.
func (c *connectionChecker) recordTransitions(obj client.Object, before, after *iamv1alpha1.ConnectionStatus) {
	if c.Recorder == nil {
		return
	}
	was := meta.FindStatusCondition(before.Conditions, iamv1alpha1.ConditionReady)
	now := meta.FindStatusCondition(after.Conditions, iamv1alpha1.ConditionReady)
	if now != nil && (was == nil || was.Reason != now.Reason) {
		kind := corev1.EventTypeWarning
		if now.Status == metav1.ConditionTrue {
			kind = corev1.EventTypeNormal
		}
		c.Recorder.Eventf(obj, nil, kind, now.Reason, "Check", "%s", now.Message)
	}
	exp := after.CredentialsExpireAt
	opts := c.Options.withDefaults()
	clockNow := opts.Clock.Now()
	if exp == nil || !exp.After(clockNow) || exp.Sub(clockNow) > opts.ExpiryWarning {
		return
	}
	if w := after.ExpiryWarningTime; w != nil && clockNow.Sub(w.Time) < expiryWarningRepeat {
		return
	}
	after.ExpiryWarningTime = &metav1.Time{Time: clockNow.Truncate(time.Second)}
	c.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventCredentialsExpiring, "Check",
		"the session token expires at %s (in %s): run 'mobilecli auth login' and store a new 'mobilecli auth token' in the credentials Secret",
		exp.UTC().Format(time.RFC3339), exp.Sub(clockNow).Round(time.Minute))
}
