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

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// Event reasons, recorded on transitions only.
const (
	EventCreated           = "Created"
	EventRotated           = "Rotated"
	EventDriftRepaired     = "DriftRepaired"
	EventSecretMoved       = "SecretMoved"
	EventRetired           = "Retired"
	EventDeleted           = "Deleted"
	EventOrphaned          = "Orphaned"
	EventUnclaimedDeleted  = "UnclaimedKeyDeleted"
	EventAdopted           = "Adopted"
	EventRestarted         = "RolloutRestarted"
	EventRestartTargetMiss = "RestartTargetMissing"
)

// setReady sets the Ready condition of the ApiKey.
func (rc *reconcileContext) setReady(ok bool, reason, message string) {
	setKeyCondition(rc.key, iamv1alpha1.ConditionReady, ok, reason, message, rc.now)
}

// setSynced sets the Synced condition of the ApiKey.
func (rc *reconcileContext) setSynced(ok bool, reason, message string) {
	setKeyCondition(rc.key, iamv1alpha1.ConditionSynced, ok, reason, message, rc.now)
}

// setKeyCondition sets a condition, its transition time from the
// reconciler's clock: the same clock its backoffs are measured with.
func setKeyCondition(key *iamv1alpha1.ApiKey, condType string, ok bool, reason, message string, now time.Time) {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&key.Status.Conditions, metav1.Condition{
		Type: condType, Status: s, Reason: reason, Message: message, ObservedGeneration: key.Generation,
		LastTransitionTime: metav1.NewTime(now),
	})
}

// readyReason is the reason of the Ready condition, "" when unset.
func readyReason(key *iamv1alpha1.ApiKey) string {
	if c := meta.FindStatusCondition(key.Status.Conditions, iamv1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

// readyMessage is the message of the Ready condition, "" when unset.
func readyMessage(key *iamv1alpha1.ApiKey) string {
	if c := meta.FindStatusCondition(key.Status.Conditions, iamv1alpha1.ConditionReady); c != nil {
		return c.Message
	}
	return ""
}
