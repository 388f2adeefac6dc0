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

// setReady sets the Ready condition of an ApiKey.
func setReady(key *iamv1alpha1.ApiKey, ok bool, reason, message string) {
	setKeyCondition(key, iamv1alpha1.ConditionReady, ok, reason, message)
}

// setSynced sets the Synced condition of an ApiKey.
func setSynced(key *iamv1alpha1.ApiKey, ok bool, reason, message string) {
	setKeyCondition(key, iamv1alpha1.ConditionSynced, ok, reason, message)
}

func setKeyCondition(key *iamv1alpha1.ApiKey, condType string, ok bool, reason, message string) {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&key.Status.Conditions, metav1.Condition{
		Type: condType, Status: s, Reason: reason, Message: message, ObservedGeneration: key.Generation,
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
