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

// Package plugin implements kubectl-mobilenext, the kubectl plugin of the
// apikey-operator: it shows the state of connections and ApiKeys, asks for
// rotations, pauses and resumes ApiKeys, stores session tokens, and finds
// remote keys that the operator created but no ApiKey holds any more.
//
// Like the operator, the plugin never prints, logs or returns in an error a
// key's secret or a session token: a token is only ever read from a file or
// standard input, never from the command line, where it would end up in the
// shell's history and in the process list.
package plugin

import (
	"fmt"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// Options is what every command of the plugin shares: where it talks to
// Kubernetes, where it reads and writes, and what time it is.
type Options struct {
	// ConfigFlags are kubectl's connection flags (--kubeconfig, --context,
	// -n/--namespace, ...).
	ConfigFlags *genericclioptions.ConfigFlags
	// IOStreams are standard input, output and error.
	IOStreams genericiooptions.IOStreams
	// Clock gives the time for rotate requests and for telling how far away
	// an expiry or a deadline is.
	Clock clock.PassiveClock
}

// NewRootCommand returns the kubectl-mobilenext command with all its
// subcommands. The caller executes it; errors are returned, not printed, so
// that the caller decides how they are shown.
func NewRootCommand(streams genericiooptions.IOStreams, clk clock.PassiveClock) *cobra.Command {
	o := &Options{
		ConfigFlags: genericclioptions.NewConfigFlags(true),
		IOStreams:   streams,
		Clock:       clk,
	}
	// --cluster says that a command's CONNECTION is a ClusterConnection.
	// kubectl's --cluster (which cluster of the kubeconfig) is left out so
	// that one flag does not mean two things; --context selects a cluster.
	o.ConfigFlags.ClusterName = nil
	cmd := &cobra.Command{
		Use:   "kubectl-mobilenext",
		Short: "Inspect and operate the ApiKeys of the apikey-operator",
		Long: `kubectl mobilenext inspects and operates the Mobile Next ApiKeys managed by
the apikey-operator: their state, rotations, pausing, session tokens of
connections, and remote keys that no ApiKey holds any more.`,
		Annotations: map[string]string{
			// Help and usage then read as the user types it.
			cobra.CommandDisplayNameAnnotation: "kubectl mobilenext",
		},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	o.ConfigFlags.AddFlags(cmd.PersistentFlags())

	cmd.AddCommand(
		newStatusCommand(o),
		newRotateCommand(o),
		newPauseCommand(o),
		newResumeCommand(o),
		newTokenCommand(o),
		newOrphansCommand(o),
	)
	return cmd
}

// kubeClient returns a client for the cluster the flags name.
func (o *Options) kubeClient() (client.Client, error) {
	cfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := iamv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	return c, nil
}

// namespace returns the namespace of -n/--namespace, else the current
// context's, else "default", as kubectl does.
func (o *Options) namespace() (string, error) {
	ns, _, err := o.ConfigFlags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("determine the namespace: %w", err)
	}
	return ns, nil
}
