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
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// maxTokenBytes bounds what token set reads. Session tokens are a few hundred
// bytes; anything near this is the wrong file.
const maxTokenBytes = 16 << 10

// defaultCredentialsKey is the data key of a credentialsSecretRef without
// one; the CRD defaults it to the same value.
const defaultCredentialsKey = "token"

func newTokenCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage the session token of a connection",
	}
	cmd.AddCommand(newTokenSetCommand(o))
	return cmd
}

func newTokenSetCommand(o *Options) *cobra.Command {
	var (
		fromFile string
		cluster  bool
	)
	cmd := &cobra.Command{
		Use:   "set CONNECTION --from-file FILE",
		Short: "Store a session token in the credentials Secret of a connection",
		Long: `Writes a session token (from 'mobilecli auth token') into the Secret named by
the connection's spec.credentialsSecretRef, creating the Secret if it does
not exist. The token is read from FILE, or from standard input with
--from-file -, never from the command line, so that it stays out of the shell
history and the process list. The operator picks the new token up without a
restart.

The value must be a session token: a JWT with an exp claim that has not
passed. An API key (mob_...) is refused: the API does not accept API keys for
managing keys.`,
		Example: `  # A Connection in namespace team-a
  mobilecli auth token | kubectl mobilenext token set api -n team-a --from-file -

  # A ClusterConnection
  mobilecli auth token > token.jwt
  kubectl mobilenext token set default --cluster --from-file token.jwt && rm token.jwt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// kubectl's --token is the bearer token for the Kubernetes API.
			// Given here it is most likely the session token, mistaken for
			// a way to pass it: refused before anything is sent, so the
			// API server never receives it.
			if cmd.Flags().Changed("token") {
				return errors.New("token set: --token is the bearer token for the Kubernetes API, not the session token; " +
					"pass the session token with --from-file (- for standard input), and authenticate to Kubernetes with a kubeconfig")
			}
			if fromFile == "" {
				return errors.New("token set: --from-file is required (use --from-file - to read standard input)")
			}
			token, err := o.readToken(fromFile)
			if err != nil {
				return fmt.Errorf("token set: %w", err)
			}
			exp, err := checkSessionToken(token, o.Clock.Now())
			if err != nil {
				return fmt.Errorf("token set: %w", err)
			}
			if err := o.setToken(cmd.Context(), args[0], cluster, token, exp); err != nil {
				return fmt.Errorf("token set: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&fromFile, "from-file", "f", "", "file holding the session token; - reads standard input")
	cmd.Flags().BoolVar(&cluster, "cluster", false, "CONNECTION is a ClusterConnection rather than a Connection of the namespace")
	return cmd
}

// readToken reads the token from a file or, for "-", from standard input;
// from a terminal without echoing it.
func (o *Options) readToken(path string) (mobilenext.Token, error) {
	var (
		raw []byte
		err error
	)
	switch {
	case path == "-" && isTerminal(o.IOStreams.In):
		_, _ = fmt.Fprint(o.IOStreams.ErrOut, "Session token (input is hidden): ")
		raw, err = term.ReadPassword(int(o.IOStreams.In.(*os.File).Fd()))
		_, _ = fmt.Fprintln(o.IOStreams.ErrOut)
	case path == "-":
		raw, err = readLimited(o.IOStreams.In)
	default:
		var f *os.File
		if f, err = os.Open(path); err != nil {
			return mobilenext.Token{}, fmt.Errorf("read the token: %w", err)
		}
		defer func() { _ = f.Close() }()
		raw, err = readLimited(f)
	}
	if err != nil {
		// The errors are the reader's (a path, a size), never content.
		return mobilenext.Token{}, fmt.Errorf("read the token: %w", err)
	}
	// NewToken trims the newline that files and pipes end with.
	return mobilenext.NewToken(string(raw)), nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxTokenBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxTokenBytes {
		return nil, fmt.Errorf("the input is larger than %d bytes, far more than a session token", maxTokenBytes)
	}
	return b, nil
}

// checkSessionToken refuses what the operator would refuse: an empty value,
// an API key, a value that is not a JWT with an exp claim, and an expired
// token. It returns the expiry. Its messages describe the value, never quote
// it.
func checkSessionToken(token mobilenext.Token, now time.Time) (time.Time, error) {
	if token.IsZero() {
		return time.Time{}, errors.New("the input is empty: expected a session token from 'mobilecli auth token'")
	}
	if token.IsAPIKey() {
		return time.Time{}, errors.New("the input is an API key (it starts with mob_), not a session token: " +
			"the API refuses API keys for managing keys; store the output of 'mobilecli auth token' instead")
	}
	exp, err := token.ExpiresAt()
	if err != nil {
		return time.Time{}, fmt.Errorf("the input is not a session token (a JWT with an exp claim, from 'mobilecli auth token'): %w", err)
	}
	if !exp.After(now) {
		return time.Time{}, fmt.Errorf("the session token expired at %s: log in again with 'mobilecli auth login' and store a fresh 'mobilecli auth token'",
			exp.UTC().Format(time.RFC3339))
	}
	return exp, nil
}

// setToken writes token into the credentials Secret of a connection.
func (o *Options) setToken(ctx context.Context, name string, cluster bool, token mobilenext.Token, exp time.Time) error {
	c, err := o.kubeClient()
	if err != nil {
		return err
	}
	conn, err := o.getConnection(ctx, c, name, cluster)
	if err != nil {
		return err
	}
	ref := conn.secret

	secret := &corev1.Secret{}
	err = c.Get(ctx, ref.objectKey(), secret)
	switch {
	case apierrors.IsNotFound(err):
		secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{ref.Key: []byte(token.Reveal())},
		}
		if err := c.Create(ctx, secret); err != nil {
			return fmt.Errorf("create Secret %s: %w", ref, err)
		}
		_, _ = fmt.Fprintf(o.IOStreams.Out, "secret %s created with the session token in key %q for %s\n", ref, ref.Key, conn)
	case err != nil:
		return fmt.Errorf("get Secret %s: %w", ref, err)
	default:
		// An ApiKey's Secret is the operator's to write; a token there
		// would be overwritten, and would mean the reference is wrong.
		if secret.Labels[iamv1alpha1.ManagedByLabel] == iamv1alpha1.ManagedByValue {
			return fmt.Errorf("secret %s holds the key of ApiKey %q and is managed by the operator: point %s at a Secret of its own",
				ref, secret.Labels[iamv1alpha1.ApiKeyLabel], conn)
		}
		// A merge patch of this one data key leaves the Secret's other
		// keys, labels and finalizers as they are.
		patch, err := json.Marshal(map[string]any{"data": map[string][]byte{ref.Key: []byte(token.Reveal())}})
		if err != nil {
			return fmt.Errorf("encode the patch: %w", err)
		}
		if err := c.Patch(ctx, secret, client.RawPatch(types.MergePatchType, patch)); err != nil {
			return fmt.Errorf("update Secret %s: %w", ref, err)
		}
		_, _ = fmt.Fprintf(o.IOStreams.Out, "secret %s updated with the session token in key %q for %s\n", ref, ref.Key, conn)
	}
	_, _ = fmt.Fprintf(o.IOStreams.Out, "the token expires at %s (%s); the operator picks it up without a restart\n",
		exp.UTC().Format(time.RFC3339), relative(exp, o.Clock.Now()))
	return nil
}
