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
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// tagPrefix starts the marker the operator appends to the name of every key
// it creates: " [k8s-<attempt id>]". spec.name may not contain "[k8s-", so
// a name carries at most one.
const tagPrefix = " [k8s-"

func newOrphansCommand(o *Options) *cobra.Command {
	var (
		cluster, del, yes bool
	)
	cmd := &cobra.Command{
		Use:   "orphans CONNECTION",
		Short: "List (and delete) remote keys the operator created that no ApiKey holds",
		Long: `Lists the keys of the connection's organization whose name carries the
operator's tag " [k8s-<id>]" and that no ApiKey in the cluster refers to:
not as its current key (status.keyId), not as a previous key
(status.previousKeys), and not as a create in flight or not yet resolved
(status.pendingCreate, status.unresolvedAttempts). Keys without the tag are
never shown nor touched.

Such keys are left behind by ApiKeys deleted with deletionPolicy: Orphan, or
by an operator that was removed while it still held keys. If several
clusters manage keys in the same organization, the keys of the other
clusters show up here too: check before deleting.

It needs to list ApiKeys in all namespaces, and to read the connection's
credentials Secret. With --delete it asks for confirmation on standard input
(--yes skips it), checks the ApiKeys again, and deletes the keys that are
still not referenced; deleting needs a read-write or admin role in the
organization.`,
		Example: `  kubectl mobilenext orphans default --cluster
  kubectl mobilenext orphans api -n team-a --delete`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if yes && !del {
				return errors.New("orphans: --yes only applies with --delete")
			}
			if err := o.orphans(cmd.Context(), args[0], cluster, del, yes); err != nil {
				return fmt.Errorf("orphans: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&cluster, "cluster", false, "CONNECTION is a ClusterConnection rather than a Connection of the namespace")
	cmd.Flags().BoolVar(&del, "delete", false, "delete the orphaned keys, after confirmation")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "with --delete, do not ask for confirmation")
	return cmd
}

// keyTag returns the attempt id in a remote key's name, and whether the name
// ends with the operator's tag " [k8s-<lower-case hex>]".
func keyTag(name string) (string, bool) {
	i := strings.LastIndex(name, tagPrefix)
	if i < 0 || !strings.HasSuffix(name, "]") {
		return "", false
	}
	id := name[i+len(tagPrefix) : len(name)-1]
	if id == "" {
		return "", false
	}
	for _, r := range id {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return "", false
		}
	}
	return id, true
}

// references are the remote keys and create attempts ApiKeys refer to, each
// with the ApiKey (namespace/name) that does.
type references struct {
	keyIDs   map[string]string
	attempts map[string]string
}

// collectReferences gathers every reference an ApiKey's status makes to a
// remote key: the current key, the previous keys, the create in flight and
// the unresolved create attempts.
func collectReferences(keys []iamv1alpha1.ApiKey) references {
	refs := references{keyIDs: map[string]string{}, attempts: map[string]string{}}
	for _, k := range keys {
		owner := k.Namespace + "/" + k.Name
		st := k.Status
		if st.KeyID != "" {
			refs.keyIDs[st.KeyID] = owner
		}
		for _, pk := range st.PreviousKeys {
			refs.keyIDs[pk.KeyID] = owner
		}
		if st.PendingCreate != nil && st.PendingCreate.ID != "" {
			refs.attempts[st.PendingCreate.ID] = owner
		}
		for _, ua := range st.UnresolvedAttempts {
			refs.attempts[ua.ID] = owner
		}
	}
	return refs
}

// referrer names the ApiKey that refers to a tagged key, "" if none does.
func (r references) referrer(k mobilenext.Key) string {
	if owner, ok := r.keyIDs[k.ID]; ok {
		return owner
	}
	id, _ := keyTag(k.Name)
	return r.attempts[id]
}

// orphanedKeys returns the tagged keys no ApiKey refers to, in the order
// given. Keys without the tag are never returned, whatever refers to them.
func orphanedKeys(remote []mobilenext.Key, refs references) []mobilenext.Key {
	var out []mobilenext.Key
	for _, k := range remote {
		if _, tagged := keyTag(k.Name); tagged && refs.referrer(k) == "" {
			out = append(out, k)
		}
	}
	return out
}

func (o *Options) orphans(ctx context.Context, name string, cluster, del, yes bool) error {
	c, err := o.kubeClient()
	if err != nil {
		return err
	}
	conn, err := o.getConnection(ctx, c, name, cluster)
	if err != nil {
		return err
	}
	api, where, err := o.apiClient(ctx, c, conn)
	if err != nil {
		return err
	}

	// The remote keys are listed before the ApiKeys: the operator records
	// an attempt in an ApiKey's status before it creates the key, so every
	// key in this listing was already referenced when the ApiKeys are read
	// next, unless it really is an orphan. The other order would take a
	// key created in between for one.
	tagged, err := api.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list the keys of %s: %w", where, err)
	}
	refs, err := listReferences(ctx, c)
	if err != nil {
		return err
	}
	orphans := orphanedKeys(tagged, refs)

	_, _ = fmt.Fprintf(o.IOStreams.Out, "%s: %s with the operator's tag, %d referenced by ApiKeys, %d orphaned.\n",
		where, count(len(tagged), "key"), len(tagged)-len(orphans), len(orphans))
	if len(orphans) == 0 {
		return nil
	}
	p := &printer{w: o.IOStreams.Out}
	rows := make([][]string, 0, len(orphans))
	for _, k := range orphans {
		rows = append(rows, keyRow(k))
	}
	p.table("", []string{"ID", columnName, columnSuffix, "CREATED", columnLastUsed}, rows)
	if p.err != nil || !del {
		return p.err
	}

	if !yes {
		if !o.confirm(fmt.Sprintf("Delete %s from %s? Workloads still using them will stop working. [y/N]: ", count(len(orphans), "orphaned key"), where)) {
			return errors.New("deletion not confirmed: nothing was deleted")
		}
	}

	// Time passed while the question was open: an ApiKey may have taken
	// one of the keys since (a restore from a backup, say).
	refs, err = listReferences(ctx, c)
	if err != nil {
		return err
	}
	var failed []string
	deleted := 0
	for i, k := range orphans {
		if owner := refs.referrer(k); owner != "" {
			_, _ = fmt.Fprintf(o.IOStreams.Out, "skipped %s: ApiKey %s refers to it now\n", k.ID, owner)
			continue
		}
		err := api.DeleteKey(ctx, k.ID)
		switch {
		case err == nil:
			deleted++
			_, _ = fmt.Fprintf(o.IOStreams.Out, "deleted %s (%s)\n", k.ID, k.Name)
		case mobilenext.IsNotFound(err):
			_, _ = fmt.Fprintf(o.IOStreams.Out, "%s was already deleted\n", k.ID)
		case mobilenext.IsForbidden(err), mobilenext.IsUnauthorized(err):
			// Every other key would be refused the same way.
			_, _ = fmt.Fprintf(o.IOStreams.Out, "Deleted %d of %s.\n", deleted, count(len(orphans), "orphaned key"))
			hint := "the token was refused: store a fresh one with 'kubectl mobilenext token set'"
			if mobilenext.IsForbidden(err) {
				hint = "the user of the session token may not delete keys: it needs a read-write or admin role in the organization"
			}
			return fmt.Errorf("delete %s: %s (%s left): %w", k.ID, hint, count(len(orphans)-i, "orphaned key"), err)
		default:
			failed = append(failed, k.ID)
			_, _ = fmt.Fprintf(o.IOStreams.ErrOut, "could not delete %s: %v\n", k.ID, err)
		}
	}
	_, _ = fmt.Fprintf(o.IOStreams.Out, "Deleted %d of %s.\n", deleted, count(len(orphans), "orphaned key"))
	if len(failed) > 0 {
		return fmt.Errorf("%s could not be deleted: %s", count(len(failed), "key"), strings.Join(failed, ", "))
	}
	return nil
}

// apiClient returns a client of the API for the connection, with the session
// token read from its credentials Secret, and a description of where it
// reaches. The client keeps only the keys that carry the operator's tag,
// since no other key is any of this command's business.
func (o *Options) apiClient(ctx context.Context, c client.Client, conn connection) (*mobilenext.Client, string, error) {
	secret := &corev1.Secret{}
	if err := c.Get(ctx, conn.secret.objectKey(), secret); err != nil {
		return nil, "", fmt.Errorf("read the credentials Secret %s of %s: %w", conn.secret, conn, err)
	}
	raw, ok := secret.Data[conn.secret.Key]
	if !ok {
		return nil, "", fmt.Errorf("the credentials Secret %s of %s has no key %q: store a token with 'kubectl mobilenext token set'", conn.secret, conn, conn.secret.Key)
	}
	token := mobilenext.NewToken(string(raw))
	if token.IsAPIKey() {
		return nil, "", fmt.Errorf("the credentials Secret %s of %s holds an API key (mob_...), not a session token: store one with 'kubectl mobilenext token set'", conn.secret, conn)
	}
	api, err := mobilenext.NewClient(mobilenext.Config{
		URL:            conn.params.URL,
		Token:          token,
		OrganizationID: conn.params.OrganizationID,
		UserAgent:      "kubectl-mobilenext/" + mobilenext.Version,
		Keep: func(k mobilenext.Key) bool {
			_, tagged := keyTag(k.Name)
			return tagged
		},
	})
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", conn, err)
	}
	loc := iamv1alpha1.KeyLocation{URL: strings.TrimRight(cmp.Or(conn.params.URL, mobilenext.DefaultURL), "/"), OrganizationID: conn.params.OrganizationID}
	if loc.OrganizationID == "" {
		loc.Subject = token.Subject()
	}
	return api, loc.String(), nil
}

// listReferences lists the ApiKeys of every namespace. It fails rather than
// see fewer of them: a key whose ApiKey was not seen would pass for an
// orphan.
func listReferences(ctx context.Context, c client.Client) (references, error) {
	var keys iamv1alpha1.ApiKeyList
	if err := c.List(ctx, &keys); err != nil {
		return references{}, fmt.Errorf("list ApiKeys in all namespaces (needed to know which keys are referenced): %w", err)
	}
	return collectReferences(keys.Items), nil
}

// confirm asks a yes/no question on standard error and reads the answer
// from standard input; anything but y or yes, or no answer, is a no.
func (o *Options) confirm(question string) bool {
	_, _ = fmt.Fprint(o.IOStreams.ErrOut, question)
	answer, err := bufio.NewReader(o.IOStreams.In).ReadString('\n')
	if err != nil && answer == "" {
		// No input at all (a closed stdin in a script) is not a yes.
		_, _ = fmt.Fprintln(o.IOStreams.ErrOut)
		return false
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true
	}
	return false
}

func keyRow(k mobilenext.Key) []string {
	used := neverUsed
	if k.LastUsedAt != nil {
		used = k.LastUsedAt.UTC().Format(time.RFC3339)
	}
	return []string{k.ID, k.Name, k.Suffix, k.CreatedAt.UTC().Format(time.RFC3339), used}
}

// count says how many of a thing there are, in the singular or the plural.
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
