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

// Package manifests reads what the operator ships (dist/install.yaml and the
// Helm chart in dist/chart) for the tests that prove it installs: it decodes
// multi-document YAML, renders the chart with a helm binary, and applies
// objects to a real API server.
package manifests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Environment variables `make test` sets for the packaging and RBAC tests.
const (
	// InstallYAMLEnv names dist/install.yaml as make build-installer wrote it.
	InstallYAMLEnv = "INSTALL_YAML"
	// InstallImageEnv is the image make build-installer was given (IMG).
	InstallImageEnv = "INSTALL_IMG"
	// HelmEnv names the helm binary hack/helm.sh built.
	HelmEnv = "HELM"
)

// FieldOwner is the field manager of every object the tests apply.
const FieldOwner = "apikey-operator-tests"

// Require returns the values of environment variables, or an error naming
// those that are missing and how to get them: the tests fail, never skip,
// without what they check.
func Require(names ...string) (map[string]string, error) {
	values := map[string]string{}
	var missing []string
	for _, n := range names {
		v := os.Getenv(n)
		if v == "" {
			missing = append(missing, n)
		}
		values[n] = v
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s not set: run these tests with `make test`, which builds dist/install.yaml "+
			"(make build-installer), helm (hack/helm.sh) and the control plane (hack/controlplane.sh) and "+
			"points the tests at them", strings.Join(missing, ", "))
	}
	return values, nil
}

// Decode splits multi-document YAML into objects, leaving out empty
// documents (comments only, or a lone separator).
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", len(objs)+1, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("a document lacks apiVersion, kind or metadata.name:\n%s", doc)
		}
		objs = append(objs, u)
	}
}

// Load decodes a manifest file.
func Load(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

// Find returns the object of a kind and name, or nil.
func Find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	i := slices.IndexFunc(objs, func(u *unstructured.Unstructured) bool {
		return u.GetKind() == kind && u.GetName() == name
	})
	if i < 0 {
		return nil
	}
	return objs[i]
}

// OfKind returns the objects of the given kinds, in order.
func OfKind(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range objs {
		if slices.Contains(kinds, u.GetKind()) {
			out = append(out, u)
		}
	}
	return out
}

// Convert turns an object into a typed one.
func Convert(u *unstructured.Unstructured, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into)
}

// Rules returns the rules of a ClusterRole or Role.
func Rules(u *unstructured.Unstructured) ([]rbacv1.PolicyRule, error) {
	var role rbacv1.ClusterRole
	if err := Convert(u, &role); err != nil {
		return nil, err
	}
	return role.Rules, nil
}

// Helm renders a chart with `helm template`: release name, namespace and any
// further arguments (such as --values files).
func Helm(ctx context.Context, helm, chart, release, namespace string, args ...string) ([]byte, error) {
	cmdArgs := append([]string{"template", release, chart, "--namespace", namespace}, args...)
	return run(ctx, helm, cmdArgs...)
}

// HelmObjects renders a chart as Helm does and decodes the result.
func HelmObjects(
	ctx context.Context, helm, chart, release, namespace string, args ...string,
) ([]*unstructured.Unstructured, error) {
	out, err := Helm(ctx, helm, chart, release, namespace, args...)
	if err != nil {
		return nil, err
	}
	return Decode(out)
}

// run runs a command and returns its standard output; its standard error is
// part of the error when it fails.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// Run runs a command, as for `helm lint`, and returns everything it printed.
func Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Apply applies objects with server-side apply, in order, stopping at the
// first the API server refuses. Field validation is strict: a field the
// object's schema does not declare is refused, not dropped (custom resources
// are otherwise pruned silently). With dryRun the server validates and admits
// each object without storing it.
func Apply(ctx context.Context, c client.Client, objs []*unstructured.Unstructured, dryRun bool) error {
	for _, u := range objs {
		data, err := json.Marshal(u.Object)
		if err != nil {
			return err
		}
		// A raw apply patch, because the typed Apply of the client takes no
		// field validation option.
		opts := []client.PatchOption{client.FieldOwner(FieldOwner), client.ForceOwnership, client.FieldValidation("Strict")}
		if dryRun {
			opts = append(opts, client.DryRunAll)
		}
		if err := c.Patch(ctx, u.DeepCopy(), client.RawPatch(types.ApplyPatchType, data), opts...); err != nil {
			return fmt.Errorf("%s %s: %w", u.GetKind(), describe(u), err)
		}
	}
	return nil
}

// describe names an object as namespace/name, or name when cluster-scoped.
func describe(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetName()
	}
	return u.GetNamespace() + "/" + u.GetName()
}

// Grants flattens RBAC rules into sorted "group resource verb" triples (and
// "url verb" pairs for non-resource URLs), so that rule sets can be compared
// however their rules are grouped.
func Grants(rules []rbacv1.PolicyRule) []string {
	seen := map[string]bool{}
	for _, r := range rules {
		for _, v := range r.Verbs {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					seen[fmt.Sprintf("%s %s %s", groupName(g), res, v)] = true
				}
			}
			for _, u := range r.NonResourceURLs {
				seen[fmt.Sprintf("%s %s", u, v)] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for g := range seen {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// groupName shows the core API group, "", as "core".
func groupName(g string) string {
	if g == "" {
		return "core"
	}
	return g
}
