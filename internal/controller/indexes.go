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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// ApiKeyFieldIndexes are the field indexes over ApiKeys that the reconcilers
// and their watches list by, by index name. A manager's cache gets them in
// SetupWithManager; a client that is not one (the deterministic simulation's
// in-memory store) must serve the same ones, from these very functions.
func ApiKeyFieldIndexes() map[string]client.IndexerFunc {
	return map[string]client.IndexerFunc{
		connectionRefIndex: func(o client.Object) []string {
			key, ok := o.(*iamv1alpha1.ApiKey)
			if !ok {
				return nil
			}
			return []string{connectionKeyFor(key).String()}
		},
		clusterConnectionUsersIndex: func(o client.Object) []string {
			key, ok := o.(*iamv1alpha1.ApiKey)
			if !ok {
				return nil
			}
			return clusterConnectionsNeededBy(key)
		},
	}
}

// SecretFieldIndexes are the field indexes over the cached Secrets, by index
// name, served like ApiKeyFieldIndexes.
func SecretFieldIndexes() map[string]client.IndexerFunc {
	return map[string]client.IndexerFunc{
		secretControllerIndex: func(o client.Object) []string {
			if !controlledByApiKey(o) {
				return nil
			}
			return []string{metav1.GetControllerOfNoCopy(o).Name}
		},
	}
}

// secretControllerIndex indexes Secrets by the name of the ApiKey whose
// controller reference they carry (in the Secret's own namespace, as every
// index of a namespaced kind is), so that an ApiKey finds its Secrets without
// reading every Secret of its namespace.
const secretControllerIndex = ".metadata.controller.apikey"

// SecretControllerIndexName is the Secret index by controlling ApiKey; see
// SecretFieldIndexes.
const SecretControllerIndexName = secretControllerIndex

// ConnectionIndexName is the ApiKey index by the connection its spec names,
// with values ConnectionKey.String(); see ApiKeyFieldIndexes.
const ConnectionIndexName = connectionRefIndex

// ClusterConnectionUsersIndexName is the ApiKey index by the
// ClusterConnections it may need for its finalizer; see ApiKeyFieldIndexes.
const ClusterConnectionUsersIndexName = clusterConnectionUsersIndex
