// Command kube-controller-manager builds the upstream controller manager; the
// demo and end-to-end tests run it for its garbage collector.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
