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
// Package localcluster starts a real, local control plane for end-to-end
// tests and the demo: etcd and kube-apiserver through envtest, plus a
// kube-controller-manager running the garbage collector (envtest runs none),
// so that ownerReference deletion is seen end to end.
package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Options configure a Cluster.
type Options struct {
	// AssetsDir holds etcd, kube-apiserver, kube-controller-manager and
	// kubectl (hack/controlplane.sh builds them). Defaults to KUBEBUILDER_ASSETS.
	AssetsDir string
	// CRDDirectory holds the CRDs to install.
	CRDDirectory string
	// Dir receives the kubeconfig and the controller manager's log.
	Dir string
	// ControllerManager also starts kube-controller-manager.
	ControllerManager bool
	// ExtraControllers are kube-controller-manager controllers to run besides
	// the garbage collector and the namespace controller, such as
	// "clusterrole-aggregation-controller" (which fills the built-in admin,
	// edit and view ClusterRoles). Only with ControllerManager.
	ExtraControllers []string
	// AdmissionPlugins are enabled in kube-apiserver besides its defaults,
	// such as "OwnerReferencesPermissionEnforcement", which some distributions
	// enable and which makes setting blockOwnerDeletion need RBAC.
	AdmissionPlugins []string
}

// Cluster is a running control plane.
type Cluster struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig for kubectl and the manager.
	Kubeconfig string
	// Kubectl is the path of the kubectl built with the control plane.
	Kubectl string

	env *envtest.Environment
	kcm *exec.Cmd
}

// Start starts the control plane.
func Start(opts Options) (*Cluster, error) {
	if opts.AssetsDir == "" {
		opts.AssetsDir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if opts.AssetsDir == "" {
		return nil, errors.New(
			"no control plane binaries: set KUBEBUILDER_ASSETS to the directory hack/controlplane.sh prints")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	env := &envtest.Environment{BinaryAssetsDirectory: opts.AssetsDir, ErrorIfCRDPathMissing: true}
	if opts.CRDDirectory != "" {
		env.CRDDirectoryPaths = []string{opts.CRDDirectory}
	}
	if len(opts.AdmissionPlugins) > 0 {
		env.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", opts.AdmissionPlugins...)
	}
	cfg, err := env.Start()
	if err != nil {
		// envtest leaves what it started running when a later step (such
		// as installing the CRDs) fails.
		_ = env.Stop()
		return nil, fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	c := &Cluster{Config: cfg, env: env, Kubectl: filepath.Join(opts.AssetsDir, "kubectl")}
	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("add admin user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	c.Kubeconfig = filepath.Join(opts.Dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig, 0o600); err != nil {
		_ = c.Stop()
		return nil, err
	}
	if opts.ControllerManager {
		if err := c.startControllerManager(opts); err != nil {
			_ = c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// startControllerManager runs the garbage collector (and the namespace
// controller, so deleted namespaces go away) against the API server.
func (c *Cluster) startControllerManager(opts Options) error {
	logPath := filepath.Join(opts.Dir, "kube-controller-manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(opts.AssetsDir, "kube-controller-manager"),
		"--kubeconfig="+c.Kubeconfig,
		"--authentication-kubeconfig="+c.Kubeconfig,
		"--authorization-kubeconfig="+c.Kubeconfig,
		"--controllers="+strings.Join(append([]string{"garbage-collector-controller", "namespace-controller"},
			opts.ExtraControllers...), ","),
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--use-service-account-credentials=false",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start kube-controller-manager: %w", err)
	}
	c.kcm = cmd
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
	}()
	return nil
}

// Stop stops every process of the control plane.
func (c *Cluster) Stop() error {
	if c.kcm != nil && c.kcm.Process != nil {
		_ = c.kcm.Process.Kill()
		deadline, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for c.kcm.ProcessState == nil && deadline.Err() == nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c.env.Stop()
}
