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
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

func newRotateCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate NAME",
		Short: "Ask the operator to rotate an ApiKey now",
		Long: `Sets the annotation iam.mobilenexthq.com/rotate of the ApiKey to the current
time. The operator rotates once for each new value: it creates a new key,
writes it into the Secret, restarts the rollout targets and retires the old
key after the grace period.`,
		Example: `  kubectl mobilenext rotate ci-pipeline -n team-a`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Nanoseconds keep two requests in the same second distinct:
			// an unchanged value would not rotate again.
			value := o.Clock.Now().UTC().Format(time.RFC3339Nano)
			key, err := o.annotate(cmd.Context(), args[0], iamv1alpha1.RotateAnnotation, &value)
			if err != nil {
				return fmt.Errorf("rotate: %w", err)
			}
			_, _ = fmt.Fprintf(o.IOStreams.Out, "apikey %s/%s: rotation requested (%s=%s)\n",
				key.Namespace, key.Name, iamv1alpha1.RotateAnnotation, value)
			if key.Annotations[iamv1alpha1.PausedAnnotation] == "true" {
				_, _ = fmt.Fprintf(o.IOStreams.Out, "apikey %s/%s is paused: it rotates once resumed\n", key.Namespace, key.Name)
			}
			return nil
		},
	}
}

func newPauseCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "pause NAME",
		Short: "Stop every remote call for an ApiKey",
		Long: `Sets iam.mobilenexthq.com/paused: "true" on the ApiKey. The operator then makes
no call to the API for it: no create, rotation, repair or deletion. The
Secret keeps the key it holds. A paused ApiKey that is deleted keeps its
finalizer until it is resumed (unless its deletionPolicy is Orphan).`,
		Example: `  kubectl mobilenext pause ci-pipeline -n team-a`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			paused := "true"
			key, err := o.annotate(cmd.Context(), args[0], iamv1alpha1.PausedAnnotation, &paused)
			if err != nil {
				return fmt.Errorf("pause: %w", err)
			}
			_, _ = fmt.Fprintf(o.IOStreams.Out, "apikey %s/%s paused\n", key.Namespace, key.Name)
			return nil
		},
	}
}

func newResumeCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:     "resume NAME",
		Short:   "Let the operator manage a paused ApiKey again",
		Long:    `Removes the annotation iam.mobilenexthq.com/paused from the ApiKey.`,
		Example: `  kubectl mobilenext resume ci-pipeline -n team-a`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := o.annotate(cmd.Context(), args[0], iamv1alpha1.PausedAnnotation, nil)
			if err != nil {
				return fmt.Errorf("resume: %w", err)
			}
			_, _ = fmt.Fprintf(o.IOStreams.Out, "apikey %s/%s resumed\n", key.Namespace, key.Name)
			return nil
		},
	}
}

// annotate sets (value non-nil) or removes (nil) one annotation of an ApiKey
// in the current namespace with a JSON merge patch, which touches that
// annotation only: a concurrent write of the operator or of anyone else to
// any other field is neither lost nor a conflict. It returns the patched
// ApiKey.
func (o *Options) annotate(ctx context.Context, name, annotation string, value *string) (*iamv1alpha1.ApiKey, error) {
	c, err := o.kubeClient()
	if err != nil {
		return nil, err
	}
	ns, err := o.namespace()
	if err != nil {
		return nil, err
	}
	patch, err := annotationPatch(annotation, value)
	if err != nil {
		return nil, err
	}
	key := &iamv1alpha1.ApiKey{}
	key.Namespace, key.Name = ns, name
	if err := c.Patch(ctx, key, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return nil, fmt.Errorf("patch ApiKey %s/%s: %w", ns, name, err)
	}
	return key, nil
}

// annotationPatch is a JSON merge patch that sets one annotation, or removes
// it when value is nil (null deletes a key in a merge patch).
func annotationPatch(annotation string, value *string) ([]byte, error) {
	var v any
	if value != nil {
		v = *value
	}
	return json.Marshal(map[string]any{
		"metadata": map[string]any{
			"annotations": map[string]any{annotation: v},
		},
	})
}
