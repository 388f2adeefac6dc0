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

package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Label and annotation keys, all under the API group's domain.
const (
	// Finalizer holds an ApiKey until its remote keys are deleted (or orphaned).
	Finalizer = "iam.mobilenexthq.com/finalizer"
	// InUseFinalizer holds a Connection or ClusterConnection while an ApiKey
	// may still need it to delete its remote keys.
	InUseFinalizer = "iam.mobilenexthq.com/in-use"
	// CredentialsInUseFinalizer holds a credentials Secret while a connection
	// that is not yet released uses it.
	CredentialsInUseFinalizer = "iam.mobilenexthq.com/credentials-in-use"

	// RotateAnnotation on an ApiKey asks for one rotation for each new value.
	RotateAnnotation = "iam.mobilenexthq.com/rotate"
	// PausedAnnotation set to "true" on an ApiKey stops every remote call for it.
	PausedAnnotation = "iam.mobilenexthq.com/paused"

	// ApiKeyLabel on a managed Secret names the ApiKey that owns it.
	ApiKeyLabel = "iam.mobilenexthq.com/apikey"
	// ManagedByLabel is the well-known label that marks the operator's Secrets.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel on managed Secrets.
	ManagedByValue = "apikey-operator"

	// KeyIDAnnotation on a managed Secret records the id of the remote key it holds.
	KeyIDAnnotation = "iam.mobilenexthq.com/key-id"
	// KeySuffixAnnotation on a managed Secret records the suffix of the key it holds.
	KeySuffixAnnotation = "iam.mobilenexthq.com/key-suffix"
	// RestartedForAnnotation is put on the pod template of a rollout restart
	// target; its value derives from the key id, so it changes once per key.
	RestartedForAnnotation = "iam.mobilenexthq.com/restarted-for-key"
)

// Condition types.
const (
	// ConditionReady on an ApiKey: the Secret holds a key the API still lists.
	// On a connection: the credentials were accepted by the API.
	ConditionReady = "Ready"
	// ConditionSynced on an ApiKey: the last reconcile reached the API without error.
	ConditionSynced = "Synced"
)

// Condition reasons.
const (
	ReasonKeyReady           = "KeyReady"
	ReasonCreating           = "Creating"
	ReasonRotating           = "Rotating"
	ReasonConnectionNotReady = "ConnectionNotReady"
	ReasonSecretConflict     = "SecretConflict"
	ReasonForbidden          = "Forbidden"
	ReasonRemoteError        = "RemoteError"
	ReasonInvalidSpec        = "InvalidSpec"
	ReasonDeleting           = "Deleting"
	ReasonDeleteFailed       = "DeleteFailed"
	ReasonPaused             = "Paused"
	ReasonReconcileSuccess   = "ReconcileSuccess"
	ReasonReconcileError     = "ReconcileError"
	// ReasonConnectionChanged: a key lives where no connection the ApiKey
	// may use reaches any more (its connection moved to another
	// organization or API), so it cannot be retired or deleted yet.
	ReasonConnectionChanged = "ConnectionChanged"
	// ReasonBackingOff: calls on the connection are held back after 429s or
	// failures; the message says until when.
	ReasonBackingOff = "BackingOff"
	// ReasonRotationHeld: previousKeys is full, so a rotation waits until
	// an older key is retired.
	ReasonRotationHeld = "RotationHeld"

	ReasonValid            = "Valid"
	ReasonSecretNotFound   = "SecretNotFound"
	ReasonNotASessionToken = "NotASessionToken"
	ReasonInvalidToken     = "InvalidToken"
	ReasonUnauthorized     = "Unauthorized"
	ReasonExpired          = "Expired"
	ReasonUnreachable      = "Unreachable"
)

// SecretKeyReference points at one data key of a Secret.
type SecretKeyReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// namespace of the Secret. Required on a ClusterConnection; not allowed on
	// a Connection, whose Secret is always in the Connection's own namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// key in the Secret's data that holds the session token.
	// +kubebuilder:default=token
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// ConnectionParameters says where the Mobile Next API is and which credentials to
// use with it. It is shared by Connection and ClusterConnection.
//
// Only http URLs are judged here; any other scheme is refused by the rules on
// url itself. The host is matched in the URL string, whose length is bounded:
// a loopback IPv4 address must be written in full dotted-decimal form, and a
// host name such as 127.0.0.1.example.com is not on the loopback.
// +kubebuilder:validation:XValidation:rule="!isURL(self.url) || url(self.url).getScheme() != 'http' || self.url.matches('^(?i:http)://(localhost|[[]::1[]]|127([.](25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3})(:[0-9]*)?([/].*)?$')",message="url must use https; plain http is only allowed for loopback hosts (localhost, 127.0.0.0/8, ::1)"
type ConnectionParameters struct {
	// url of the Mobile Next API.
	// +kubebuilder:default="https://api.mobilenexthq.com"
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="url must be an absolute http or https URL such as https://api.mobilenexthq.com"
	// +kubebuilder:validation:XValidation:rule="!self.contains('@') && !self.contains('?') && !self.contains('#')",message="url must not carry credentials, a query or a fragment"
	// +optional
	URL string `json:"url,omitempty"`

	// organizationId is sent as X-Organization-Id with every request. When it
	// is absent the caller's default organization is used.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.:-]+$`
	// +optional
	OrganizationID string `json:"organizationId,omitempty"`

	// credentialsSecretRef names the Secret that holds the interactive session
	// token (a JWT from `mobilecli auth token`). API keys (mob_...) are refused
	// by the key endpoints and are reported as NotASessionToken.
	CredentialsSecretRef SecretKeyReference `json:"credentialsSecretRef"`
}

// ConnectionStatus is the observed state of a Connection or ClusterConnection.
type ConnectionStatus struct {
	// observedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready tells whether ApiKeys may use this connection.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// credentialsExpireAt is the expiry (exp claim) of the session token,
	// decoded without verifying its signature.
	// +optional
	CredentialsExpireAt *metav1.Time `json:"credentialsExpireAt,omitempty"`

	// lastCheckedTime is when the credentials were last checked against the
	// API; while the connection stays Ready it is refreshed at most hourly.
	// +optional
	LastCheckedTime *metav1.Time `json:"lastCheckedTime,omitempty"`

	// expiryWarningTime is when the last CredentialsExpiring warning was
	// recorded; it repeats at most daily.
	// +optional
	ExpiryWarningTime *metav1.Time `json:"expiryWarningTime,omitempty"`

	// heldCredentialsSecrets are the Secrets on which this connection put the
	// iam.mobilenexthq.com/credentials-in-use finalizer: the one it uses, and
	// any it stopped using whose finalizer is not handled yet. Recording a
	// Secret here before putting the finalizer on it is what guarantees the
	// finalizer is taken off again.
	// +listType=map
	// +listMapKey=namespace
	// +listMapKey=name
	// +optional
	HeldCredentialsSecrets []HeldSecret `json:"heldCredentialsSecrets,omitempty"`
}

// HeldSecret is a credentials Secret a connection keeps from deletion.
type HeldSecret struct {
	// namespace of the Secret.
	Namespace string `json:"namespace"`

	// name of the Secret.
	Name string `json:"name"`

	// released is true once the connection no longer needs the Secret: its
	// finalizer is removed unless another connection still holds it.
	// +optional
	Released bool `json:"released,omitempty"`
}
