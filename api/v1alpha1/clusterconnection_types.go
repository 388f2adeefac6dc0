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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ClusterConnectionSpec is the desired state of a ClusterConnection.
// +kubebuilder:validation:XValidation:rule="has(self.credentialsSecretRef.__namespace__)",message="credentialsSecretRef.namespace is required on a ClusterConnection: it is cluster-scoped and must say where its Secret lives"
type ClusterConnectionSpec struct {
	ConnectionParameters `json:",inline"`

	// namespaceSelector selects the namespaces whose ApiKeys may use this
	// ClusterConnection. Absent, every namespace may; an empty selector ({})
	// also selects every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=mobilenext,shortName=mncconn
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Organization",type=string,JSONPath=`.spec.organizationId`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.credentialsExpireAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ClusterConnection is a cluster-wide set of credentials for the Mobile Next
// API, usable by the ApiKeys of the namespaces its namespaceSelector admits.
// An ApiKey that names no connection uses the ClusterConnection "default".
type ClusterConnection struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is a standard object metadata
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec defines the desired state of ClusterConnection
	// +required
	Spec ClusterConnectionSpec `json:"spec"`

	// status defines the observed state of ClusterConnection
	// +optional
	Status ConnectionStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// ClusterConnectionList contains a list of ClusterConnection.
type ClusterConnectionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []ClusterConnection `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &ClusterConnection{}, &ClusterConnectionList{})
		return nil
	})
}
