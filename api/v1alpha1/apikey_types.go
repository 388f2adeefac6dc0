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

import (
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Kinds a connectionRef may name.
const (
	ConnectionKind        = "Connection"
	ClusterConnectionKind = "ClusterConnection"
)

// DeletionPolicy says what happens to the remote key when its ApiKey goes.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyDelete deletes the remote keys with the ApiKey.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan leaves the remote keys alone.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// ConnectionReference names the Connection or ClusterConnection an ApiKey uses.
// +kubebuilder:validation:XValidation:rule="!has(self.__namespace__)",message="connectionRef.namespace is not allowed: a Connection is always looked up in the ApiKey's own namespace and a ClusterConnection is cluster-scoped"
type ConnectionReference struct {
	// kind is ClusterConnection or Connection.
	// +kubebuilder:default=ClusterConnection
	// +kubebuilder:validation:Enum=ClusterConnection;Connection
	// +optional
	Kind string `json:"kind,omitempty"`

	// name of the Connection (in the ApiKey's namespace) or ClusterConnection.
	// +kubebuilder:default=default
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Name string `json:"name,omitempty"`

	// namespace must not be set; it exists only so that setting it is refused
	// with an explanation instead of being silently dropped.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// The values of SecretTemplate's maps are aliases of string: the maps stay
// plain string maps in Go, while the CRD still validates every value.

// labelValue is a label value: empty, or at most 63 letters, digits, '-', '_'
// and '.' that start and end with a letter or digit.
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`
type labelValue = string

// annotationValue is an annotation value of at most 4096 characters.
// Kubernetes caps all of an object's annotations at 256 KiB; this bounds what
// a template adds.
// +kubebuilder:validation:MaxLength=4096
type annotationValue = string

// SecretTemplate holds metadata put on the managed Secret.
//
// Keys and values are checked as Kubernetes checks them on the Secret, so a
// template the Secret would refuse is refused here instead of failing every
// write of the Secret.
// +kubebuilder:validation:XValidation:rule="!has(self.labels) || self.labels.all(k, !k.startsWith('iam.mobilenexthq.com/') && k != 'app.kubernetes.io/managed-by')",message="secretTemplate.labels may not set app.kubernetes.io/managed-by or keys under iam.mobilenexthq.com/: the operator owns them"
// +kubebuilder:validation:XValidation:rule="!has(self.annotations) || self.annotations.all(k, !k.startsWith('iam.mobilenexthq.com/'))",message="secretTemplate.annotations may not set keys under iam.mobilenexthq.com/: the operator owns them"
// +kubebuilder:object:generate=false
type SecretTemplate struct {
	// labels added to the Secret, at most 64. Each key is a qualified name:
	// an optional prefix (a DNS subdomain of at most 253 characters) and
	// '/', then a name of at most 63 letters, digits, '-', '_' and '.' that
	// starts and ends with a letter or digit. Each value is empty or at most
	// 63 characters of the same kind.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$') && k.indexOf('/') <= 253)",message="secretTemplate.labels keys must be qualified names: an optional DNS subdomain prefix of at most 253 characters and '/', then a name of at most 63 letters, digits, '-', '_' or '.' that starts and ends with a letter or digit"
	// +optional
	Labels map[string]labelValue `json:"labels,omitempty"`

	// annotations added to the Secret, at most 64. Each key is a qualified
	// name, as for labels except that the prefix may hold upper-case letters.
	// Each value is at most 4096 characters.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.lowerAscii().matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$') && k.indexOf('/') <= 253)",message="secretTemplate.annotations keys must be qualified names: an optional DNS subdomain prefix of at most 253 characters and '/', then a name of at most 63 letters, digits, '-', '_' or '.' that starts and ends with a letter or digit"
	// +optional
	Annotations map[string]annotationValue `json:"annotations,omitempty"`
}

// DeepCopyInto copies the receiver into out. It is written by hand because
// the object generator cannot copy maps whose values are type aliases.
func (in *SecretTemplate) DeepCopyInto(out *SecretTemplate) {
	*out = *in
	out.Labels = maps.Clone(in.Labels)
	out.Annotations = maps.Clone(in.Annotations)
}

// DeepCopy returns a copy of the receiver.
func (in *SecretTemplate) DeepCopy() *SecretTemplate {
	if in == nil {
		return nil
	}
	out := new(SecretTemplate)
	in.DeepCopyInto(out)
	return out
}

// Rotation configures how keys are replaced.
//
// Each duration is refused at admission unless it decodes as a Go duration:
// a stored value the operator could not decode would stop it from reading
// any ApiKey at all. The patterns admit durations longer than a Go duration
// can hold (about 292 years). Those fail to convert in the rules below,
// which refuses them with the rule's message.
// +kubebuilder:validation:XValidation:rule="!has(self.every) || !self.every.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.every) >= duration('10s')",message="rotation.every must be a duration of at least 10s and at most 2562047h"
// +kubebuilder:validation:XValidation:rule="!has(self.gracePeriod) || !self.gracePeriod.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.gracePeriod) >= duration('0s')",message="rotation.gracePeriod must be a duration of at most 2562047h"
// +kubebuilder:validation:XValidation:rule="!has(self.retireWhenUnusedFor) || !self.retireWhenUnusedFor.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.retireWhenUnusedFor) >= duration('1s')",message="rotation.retireWhenUnusedFor must be a duration of at least 1s and at most 2562047h"
type Rotation struct {
	// every rotates the key on a schedule, counted from the current key's
	// creation (a Go duration such as 720h, at least 10s). Absent, keys
	// rotate only on demand.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	Every *metav1.Duration `json:"every,omitempty"`

	// gracePeriod is the longest the previous key lives after the Secret
	// switched to a new one, whatever replaced it (schedule, annotation, name
	// change, drift repair). A Go duration; defaults to 10m, and 0s deletes
	// it at once.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	GracePeriod *metav1.Duration `json:"gracePeriod,omitempty"`

	// retireWhenUnusedFor deletes the previous key before its grace period
	// ends once its lastUsedAt has not moved for this long (a Go duration of
	// at least 1s), so idle keys go early while keys still in use keep
	// working until gracePeriod.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	RetireWhenUnusedFor *metav1.Duration `json:"retireWhenUnusedFor,omitempty"`
}

// RolloutRestartTarget is a workload restarted after its Secret gets a new key.
type RolloutRestartTarget struct {
	// kind of the workload.
	// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet
	Kind string `json:"kind"`

	// name of the workload, in the ApiKey's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// ApiKeySpec is the desired state of an ApiKey.
type ApiKeySpec struct {
	// connectionRef names the connection that creates and deletes the key.
	// Defaults to the ClusterConnection named "default".
	// +kubebuilder:default={kind: ClusterConnection, name: default}
	// +optional
	ConnectionRef ConnectionReference `json:"connectionRef,omitzero"`

	// name is the label of the remote key, as shown in the Mobile Next web UI.
	// Defaults to "<namespace>/<metadata.name>". The operator appends a marker
	// " [k8s-<attempt id>]" that lets it find the key again after a crash.
	// Changing it rotates the key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:XValidation:rule="!self.contains('[k8s-')",message="name may not contain '[k8s-': the operator uses that marker to track create attempts"
	// +optional
	Name string `json:"name,omitempty"`

	// secretName is the Secret, in the ApiKey's namespace, that receives the
	// key. Defaults to the ApiKey's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// secretKey is the data key of the Secret that holds the key: letters,
	// digits, '-', '_' and '.', at most 253 characters, neither "." nor
	// starting with "..". Kubernetes refuses any other Secret data key, so
	// the operator could never write the Secret.
	// +kubebuilder:default=apiKey
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && !self.startsWith('..')",message="secretKey may not be '.' or start with '..': Kubernetes refuses such Secret data keys"
	// +optional
	SecretKey string `json:"secretKey,omitempty"`

	// secretTemplate holds labels and annotations put on the Secret.
	// +optional
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`

	// deletionPolicy: Delete removes the remote keys with the ApiKey; Orphan
	// leaves them in the organization.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// rotation configures scheduled rotation and how long a replaced key lives.
	// +optional
	Rotation *Rotation `json:"rotation,omitempty"`

	// rolloutRestartTargets are restarted (as by kubectl rollout restart)
	// after the Secret gets a new key.
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +optional
	RolloutRestartTargets []RolloutRestartTarget `json:"rolloutRestartTargets,omitempty"`
}

// PreviousKey is a replaced key kept alive for its grace period.
type PreviousKey struct {
	// keyId of the remote key.
	KeyID string `json:"keyId"`
	// apiKeySuffix of the remote key.
	// +optional
	APIKeySuffix string `json:"apiKeySuffix,omitempty"`
	// replacedAt is when the Secret switched away from this key.
	ReplacedAt metav1.Time `json:"replacedAt"`
	// deleteAfter is when the key is deleted at the latest.
	DeleteAfter metav1.Time `json:"deleteAfter"`
	// lastUsedAt as last listed by the API.
	// +optional
	LastUsedAt *metav1.Time `json:"lastUsedAt,omitempty"`
	// lastUsedChangedAt is when lastUsedAt was last seen to move (or
	// replacedAt); retireWhenUnusedFor counts from it.
	// +optional
	LastUsedChangedAt *metav1.Time `json:"lastUsedChangedAt,omitempty"`
	// location is where the key lives; it is deleted there.
	// +optional
	Location *KeyLocation `json:"location,omitempty"`
}

// CreateAttempt records a create that may have reached the API without its
// answer being stored. It is written (conflict-checked) before every POST and
// its id is part of the remote key's name, so that after a crash or a lost
// response the keys it made can be found and deleted: their secret was never
// stored anywhere.
type CreateAttempt struct {
	// id is the marker put in the remote key's name as "[k8s-<id>]".
	ID string `json:"id"`
	// name is the full remote name used for the attempt.
	Name string `json:"name"`
	// startedAt is when the attempt was recorded.
	StartedAt metav1.Time `json:"startedAt"`
	// reason the key is being created: Create, or what replaces the key.
	// +optional
	Reason string `json:"reason,omitempty"`
	// rotateRequest is the value of the rotate annotation this attempt answers.
	// +optional
	RotateRequest string `json:"rotateRequest,omitempty"`
	// location is where the attempt creates its key.
	// +optional
	Location *KeyLocation `json:"location,omitempty"`
	// secretName is the Secret the attempt writes its key to.
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// secretKey is the data key the attempt writes its key to.
	// +optional
	SecretKey string `json:"secretKey,omitempty"`
}

// UnresolvedAttempt is a create attempt that may still produce a key.
type UnresolvedAttempt struct {
	// id of the attempt, as in its marker "[k8s-<id>]".
	ID string `json:"id"`
	// watchUntil is when the attempt is forgotten: by then no server still
	// commits the create it sent.
	WatchUntil metav1.Time `json:"watchUntil"`
	// location is where a key of the attempt would appear.
	// +optional
	Location *KeyLocation `json:"location,omitempty"`
	// missingSince is when a listing that started after watchUntil first
	// did not show a key of the attempt; like a current key, the attempt is
	// forgotten only when a second listing, well after it, confirms.
	// +optional
	MissingSince *metav1.Time `json:"missingSince,omitempty"`
	// keyIds are the keys a listing showed with the attempt's marker,
	// recorded before they are deleted: the attempt stays until each is
	// deleted, whatever later listings leave out.
	// +kubebuilder:validation:MaxItems=8
	// +optional
	KeyIDs []string `json:"keyIds,omitempty"`
}

// ApiKeyStatus is the observed state of an ApiKey.
type ApiKeyStatus struct {
	// observedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (the Secret holds a key the API still lists) and
	// Synced (the last reconcile reached the API without error).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// keyId of the current remote key.
	// +optional
	KeyID string `json:"keyId,omitempty"`

	// apiKeySuffix of the current key: the end of the secret, safe to show.
	// +optional
	APIKeySuffix string `json:"apiKeySuffix,omitempty"`

	// keyName is the remote name of the current key.
	// +optional
	KeyName string `json:"keyName,omitempty"`

	// createdAt of the current key.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`

	// lastUsedAt of the current key, from the periodic list call.
	// +optional
	LastUsedAt *metav1.Time `json:"lastUsedAt,omitempty"`

	// secretName is the Secret that holds the current key.
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// secretKey is the data key that holds the current key.
	// +optional
	SecretKey string `json:"secretKey,omitempty"`

	// connection the current key was created through, as Kind/name.
	// +optional
	Connection string `json:"connection,omitempty"`

	// location is where the current key lives: the API's URL and the
	// organization. The key is retired or deleted there, even after the
	// ApiKey moved to another connection.
	// +optional
	Location *KeyLocation `json:"location,omitempty"`

	// keyRecordedAt is when the operator recorded the current key. The
	// rotation schedule counts from it, so a remote clock that is off
	// cannot make keys rotate early or in a loop.
	// +optional
	KeyRecordedAt *metav1.Time `json:"keyRecordedAt,omitempty"`

	// keyMissingSince is when a listing that started after the current key
	// was recorded first left it out. The key counts as revoked only when a
	// second listing, started well after that one, leaves it out too: one
	// incomplete answer never replaces a key.
	// +optional
	KeyMissingSince *metav1.Time `json:"keyMissingSince,omitempty"`

	// lastRotationTime is when the Secret last switched to a new key.
	// +optional
	LastRotationTime *metav1.Time `json:"lastRotationTime,omitempty"`

	// nextRotationTime is when the schedule rotates the key next.
	// +optional
	NextRotationTime *metav1.Time `json:"nextRotationTime,omitempty"`

	// previousKeys are replaced keys still alive, each with its deadline.
	// The list is bounded: while it is full, rotations wait (the Synced
	// condition says so) and repairs retire the oldest entry early.
	// +listType=map
	// +listMapKey=keyId
	// +kubebuilder:validation:MaxItems=16
	// +optional
	PreviousKeys []PreviousKey `json:"previousKeys,omitempty"`

	// pendingCreate is the create in flight; see CreateAttempt.
	// +optional
	PendingCreate *CreateAttempt `json:"pendingCreate,omitempty"`

	// handledRotateRequest is the last value of the rotate annotation acted on.
	// +optional
	HandledRotateRequest string `json:"handledRotateRequest,omitempty"`

	// unresolvedAttempts are create attempts whose key was not found when
	// they were recovered. A create the client gave up on may still complete
	// on the server; until the entry expires, any key that shows up with its
	// marker is deleted.
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=32
	// +optional
	UnresolvedAttempts []UnresolvedAttempt `json:"unresolvedAttempts,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=mobilenext,shortName=apik
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Suffix",type=string,JSONPath=`.status.apiKeySuffix`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.status.secretName`
// +kubebuilder:printcolumn:name="Last Used",type=date,JSONPath=`.status.lastUsedAt`
// +kubebuilder:printcolumn:name="Next Rotation",type=string,JSONPath=`.status.nextRotationTime`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ApiKey is an API key of the Mobile Next API whose secret is kept in a Secret.
type ApiKey struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is a standard object metadata
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec defines the desired state of ApiKey
	// +required
	Spec ApiKeySpec `json:"spec"`

	// status defines the observed state of ApiKey
	// +optional
	Status ApiKeyStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// ApiKeyList contains a list of ApiKey.
type ApiKeyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []ApiKey `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &ApiKey{}, &ApiKeyList{})
		return nil
	})
}
