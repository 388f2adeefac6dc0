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
// Command localcluster starts a local control plane (etcd, kube-apiserver
// and kube-controller-manager) with the operator's CRDs installed, writes an
// admin kubeconfig, and runs until interrupted. make demo uses it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mobile-next/apikey-operator/test/localcluster"
)

func main() {
	dir := flag.String("dir", "", "directory for the kubeconfig and logs (required)")
	crds := flag.String("crds", "config/crd/bases", "directory of the CRDs to install")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "localcluster: --dir is required")
		os.Exit(2)
	}
	c, err := localcluster.Start(localcluster.Options{CRDDirectory: *crds, Dir: *dir, ControllerManager: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
	fmt.Printf("kubeconfig: %s\n", c.Kubeconfig)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster: stop:", err)
		os.Exit(1)
	}
}
