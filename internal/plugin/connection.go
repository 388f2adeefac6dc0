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

package plugin

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// connection is a Connection or a ClusterConnection, with its credentials
// Secret resolved to a namespace and a data key.
type connection struct {
	kind      string
	namespace string // empty for a ClusterConnection
	name      string
	params    iamv1alpha1.ConnectionParameters
	secret    secretRef
}

func (c connection) String() string {
	if c.namespace == "" {
		return c.kind + " " + c.name
	}
	return c.kind + " " + c.namespace + "/" + c.name
}

// secretRef is one data key of one Secret.
type secretRef struct {
	Namespace, Name, Key string
}

func (r secretRef) objectKey() types.NamespacedName {
	return types.NamespacedName{Namespace: r.Namespace, Name: r.Name}
}

func (r secretRef) String() string { return r.Namespace + "/" + r.Name }

// getConnection reads the ClusterConnection name (cluster) or the Connection
// name of the current namespace.
func (o *Options) getConnection(ctx context.Context, c client.Client, name string, cluster bool) (connection, error) {
	if cluster {
		cc := &iamv1alpha1.ClusterConnection{}
		if err := c.Get(ctx, types.NamespacedName{Name: name}, cc); err != nil {
			return connection{}, fmt.Errorf("get ClusterConnection %s: %w", name, err)
		}
		ref := cc.Spec.CredentialsSecretRef
		if ref.Namespace == "" {
			// Admission refuses this; an object stored before the rule
			// existed could still lack it.
			return connection{}, fmt.Errorf("ClusterConnection %s: spec.credentialsSecretRef.namespace is not set", name)
		}
		return connection{
			kind:   iamv1alpha1.ClusterConnectionKind,
			name:   name,
			params: cc.Spec.ConnectionParameters,
			secret: secretRef{Namespace: ref.Namespace, Name: ref.Name, Key: keyOrDefault(ref.Key)},
		}, nil
	}
	ns, err := o.namespace()
	if err != nil {
		return connection{}, err
	}
	conn := &iamv1alpha1.Connection{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, conn); err != nil {
		return connection{}, fmt.Errorf("get Connection %s/%s (use --cluster for a ClusterConnection): %w", ns, name, err)
	}
	ref := conn.Spec.CredentialsSecretRef
	return connection{
		kind:      iamv1alpha1.ConnectionKind,
		namespace: ns,
		name:      name,
		params:    conn.Spec.ConnectionParameters,
		// A Connection's Secret is always in its own namespace.
		secret: secretRef{Namespace: ns, Name: ref.Name, Key: keyOrDefault(ref.Key)},
	}, nil
}

func keyOrDefault(key string) string {
	if key == "" {
		return defaultCredentialsKey
	}
	return key
}
