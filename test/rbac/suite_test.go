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

// Package rbac proves the operator's RBAC on a real control plane, with the
// ClusterRoles, Roles and bindings of dist/install.yaml (config/rbac) applied:
//
//   - the manager, a real process whose kubeconfig impersonates the
//     ServiceAccount those bindings name, drives the whole life of ApiKeys
//     through a Connection and a ClusterConnection without a single request
//     refused, while a proxy records every answer of the API server;
//   - the rules are exactly those the operator needs (a table with the reason
//     for each, compared with config/rbac);
//   - tenants bound to the built-in edit, view and admin ClusterRoles may
//     use ApiKeys and Connections in their namespace, and never
//     ClusterConnections.
//
// kube-controller-manager runs the garbage collector, the namespace
// controller and the ClusterRole aggregation controller, and kube-apiserver
// enforces OwnerReferencesPermissionEnforcement (as some distributions do), so
// that every permission the manager's writes imply is checked.
package rbac

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/test/localcluster"
	"github.com/mobile-next/apikey-operator/test/manifests"
)

var (
	// cluster is the control plane of the package's tests.
	cluster *localcluster.Cluster
	// k8sClient is a cluster admin, without a cache.
	k8sClient client.Client
	// installed are the objects of dist/install.yaml.
	installed []*unstructured.Unstructured
	// managerBin is the manager binary under test.
	managerBin string
	scheme     = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env, err := manifests.Require("KUBEBUILDER_ASSETS", manifests.InstallYAMLEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	if installed, err = manifests.Load(env[manifests.InstallYAMLEnv]); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: read install.yaml:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "apikey-rbac-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()

	// The manager runs as a process, as in a pod: MANAGER_BIN, or built
	// here from this tree.
	if managerBin = os.Getenv("MANAGER_BIN"); managerBin == "" {
		managerBin = filepath.Join(dir, "manager")
		build := exec.Command("go", "build", "-o", managerBin, "../../cmd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: build the manager:", err)
			return 1
		}
	}

	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, iamv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			return 1
		}
	}
	cluster, err = localcluster.Start(localcluster.Options{
		CRDDirectory:      filepath.Join("..", "..", "config", "crd", "bases"),
		Dir:               filepath.Join(dir, "cluster"),
		ControllerManager: true,
		ExtraControllers:  []string{"clusterrole-aggregation-controller"},
		AdmissionPlugins:  []string{"OwnerReferencesPermissionEnforcement"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: start the control plane:", err)
		return 1
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the control plane:", err)
		}
	}()
	if k8sClient, err = client.New(cluster.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}

	// The operator's namespace, ServiceAccount and every RBAC object it
	// ships, as kubectl apply -f install.yaml creates them.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rbacObjects := manifests.OfKind(installed,
		"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
	if err := manifests.Apply(ctx, k8sClient, rbacObjects, false); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: apply the RBAC of install.yaml:", err)
		return 1
	}
	return m.Run()
}

// eventually calls check every 200ms until it returns nil, and fails the
// test with check's last error once timeout has passed.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// newContext returns a context that ends with the test.
func newContext(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}
