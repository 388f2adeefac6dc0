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
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// neverUsed is shown for a key whose lastUsedAt is not set.
const neverUsed = "never"

// Column headers that more than one table of status and orphans shows.
const (
	columnNamespace = "NAMESPACE"
	columnName      = "NAME"
	columnSuffix    = "SUFFIX"
	columnLastUsed  = "LAST USED"
)

func newStatusCommand(o *Options) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show connections, ApiKeys, keys awaiting retirement and unresolved creates",
		Long: `Shows, for the namespace (or all namespaces with -A):
  - the Connections and every ClusterConnection: Ready, reason, organization
    and when their session token expires;
  - the ApiKeys grouped by the reason of their Ready condition, with Synced;
  - the replaced keys still alive, and when each is deleted at the latest;
  - the create attempts in flight or not resolved yet.`,
		Example: `  kubectl mobilenext status -n team-a
  kubectl mobilenext status -A`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.status(cmd.Context(), all); err != nil {
				return fmt.Errorf("status: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "show Connections and ApiKeys of every namespace")
	return cmd
}

// statusData is everything status shows, as read from the cluster.
type statusData struct {
	namespace string // empty for all namespaces
	// clusterConnections is nil when they could not be listed for lack of
	// permission; forbidden says so.
	clusterConnections []iamv1alpha1.ClusterConnection
	forbidden          string
	connections        []iamv1alpha1.Connection
	apiKeys            []iamv1alpha1.ApiKey
}

func (o *Options) status(ctx context.Context, all bool) error {
	c, err := o.kubeClient()
	if err != nil {
		return err
	}
	var d statusData
	var inNS []client.ListOption
	if !all {
		if d.namespace, err = o.namespace(); err != nil {
			return err
		}
		inNS = append(inNS, client.InNamespace(d.namespace))
	}

	var ccs iamv1alpha1.ClusterConnectionList
	switch err := c.List(ctx, &ccs); {
	case apierrors.IsForbidden(err):
		// Namespace users often may not read cluster-scoped objects; what
		// they may read is still worth showing.
		d.forbidden = "ClusterConnections are not shown: you may not list them"
	case err != nil:
		return fmt.Errorf("list ClusterConnections: %w", err)
	default:
		d.clusterConnections = ccs.Items
	}
	var conns iamv1alpha1.ConnectionList
	if err := c.List(ctx, &conns, inNS...); err != nil {
		return fmt.Errorf("list Connections: %w", err)
	}
	d.connections = conns.Items
	var keys iamv1alpha1.ApiKeyList
	if err := c.List(ctx, &keys, inNS...); err != nil {
		return fmt.Errorf("list ApiKeys: %w", err)
	}
	d.apiKeys = keys.Items

	return writeStatus(o.IOStreams.Out, d, o.Clock.Now())
}

// writeStatus prints the four sections of status.
func writeStatus(out io.Writer, d statusData, now time.Time) error {
	where := "namespace " + d.namespace
	if d.namespace == "" {
		where = "any namespace"
	}
	p := &printer{w: out}

	p.line("CONNECTIONS")
	if d.forbidden != "" {
		p.line("  (" + d.forbidden + ")")
	}
	connRows := make([][]string, 0, len(d.clusterConnections)+len(d.connections))
	for _, cc := range sortedBy(d.clusterConnections, func(c iamv1alpha1.ClusterConnection) string { return c.Name }) {
		connRows = append(connRows, connectionRow(iamv1alpha1.ClusterConnectionKind, "", cc.Name, cc.Spec.ConnectionParameters, cc.Status, now))
	}
	for _, c := range sortedBy(d.connections, func(c iamv1alpha1.Connection) string { return c.Namespace + "/" + c.Name }) {
		connRows = append(connRows, connectionRow(iamv1alpha1.ConnectionKind, c.Namespace, c.Name, c.Spec.ConnectionParameters, c.Status, now))
	}
	p.table("No connections.", []string{"KIND", columnNamespace, columnName, "READY", "REASON", "ORGANIZATION", "CREDENTIALS EXPIRE", "MESSAGE"}, connRows)

	p.line("")
	p.line("API KEYS")
	keys := sortedBy(d.apiKeys, func(k iamv1alpha1.ApiKey) string { return k.Namespace + "/" + k.Name })
	groups := map[readyGroup][][]string{}
	for _, k := range keys {
		g, row := apiKeyRow(k, now)
		groups[g] = append(groups[g], row)
	}
	if len(groups) == 0 {
		p.line("  No ApiKeys in " + where + ".")
	}
	for _, g := range sortedGroups(groups) {
		p.line(fmt.Sprintf("  Ready=%s %s (%d)", g.status, g.reason, len(groups[g])))
		p.indent = "    "
		p.table("", []string{columnNamespace, columnName, "CONNECTION", "SYNCED", columnSuffix, "SECRET", columnLastUsed, "MESSAGE"}, groups[g])
		p.indent = ""
	}

	p.line("")
	p.line("KEYS AWAITING RETIREMENT")
	type prev struct {
		key iamv1alpha1.ApiKey
		pk  iamv1alpha1.PreviousKey
	}
	var prevs []prev
	for _, k := range keys {
		for _, pk := range k.Status.PreviousKeys {
			prevs = append(prevs, prev{k, pk})
		}
	}
	slices.SortStableFunc(prevs, func(a, b prev) int { return a.pk.DeleteAfter.Compare(b.pk.DeleteAfter.Time) })
	prevRows := make([][]string, 0, len(prevs))
	for _, pv := range prevs {
		prevRows = append(prevRows, []string{
			pv.key.Namespace, pv.key.Name, pv.pk.KeyID, orDash(pv.pk.APIKeySuffix),
			timeAndRelative(&pv.pk.ReplacedAt, now), timeAndRelative(&pv.pk.DeleteAfter, now),
			timeOr(pv.pk.LastUsedAt, now, neverUsed), location(pv.pk.Location),
		})
	}
	p.table("  None.", []string{columnNamespace, "APIKEY", "KEY ID", columnSuffix, "REPLACED", "DELETE AFTER", columnLastUsed, "LOCATION"}, prevRows)

	p.line("")
	p.line("CREATE ATTEMPTS (in flight or unresolved)")
	var attemptRows [][]string
	for _, k := range keys {
		if pc := k.Status.PendingCreate; pc != nil {
			attemptRows = append(attemptRows, []string{
				k.Namespace, k.Name, pc.ID, "in flight (" + orDash(pc.Reason) + ")",
				"started " + timeAndRelative(&pc.StartedAt, now), location(pc.Location),
			})
		}
		for _, ua := range k.Status.UnresolvedAttempts {
			attemptRows = append(attemptRows, []string{
				k.Namespace, k.Name, ua.ID, "unresolved",
				"watched until " + timeAndRelative(&ua.WatchUntil, now), location(ua.Location),
			})
		}
	}
	p.table("  None.", []string{columnNamespace, "APIKEY", "ATTEMPT", "STATE", "WHEN", "LOCATION"}, attemptRows)
	return p.err
}

func connectionRow(kind, ns, name string, params iamv1alpha1.ConnectionParameters, st iamv1alpha1.ConnectionStatus, now time.Time) []string {
	ready, reason, message := string(metav1.ConditionUnknown), "-", ""
	if c := meta.FindStatusCondition(st.Conditions, iamv1alpha1.ConditionReady); c != nil {
		ready, reason = string(c.Status), c.Reason
		if c.Status != metav1.ConditionTrue {
			message = c.Message
		}
	}
	org := params.OrganizationID
	if org == "" {
		org = "(default)"
	}
	return []string{kind, orDash(ns), name, ready, reason, org, timeOr(st.CredentialsExpireAt, now, "-"), oneLine(message)}
}

// readyGroup is the Ready condition's status and reason, by which status
// groups ApiKeys.
type readyGroup struct{ status, reason string }

func apiKeyRow(k iamv1alpha1.ApiKey, now time.Time) (readyGroup, []string) {
	g := readyGroup{status: string(metav1.ConditionUnknown), reason: "(no condition yet)"}
	var message string
	ready := meta.FindStatusCondition(k.Status.Conditions, iamv1alpha1.ConditionReady)
	if ready != nil {
		g = readyGroup{status: string(ready.Status), reason: ready.Reason}
		if ready.Status != metav1.ConditionTrue {
			message = ready.Message
		}
	}
	synced := string(metav1.ConditionUnknown)
	if c := meta.FindStatusCondition(k.Status.Conditions, iamv1alpha1.ConditionSynced); c != nil {
		synced = string(c.Status)
		if c.Status != metav1.ConditionTrue {
			synced += " (" + c.Reason + ")"
			if message == "" {
				message = c.Message
			}
		}
	}
	ref := k.Spec.ConnectionRef
	conn := cmp.Or(ref.Kind, iamv1alpha1.ClusterConnectionKind) + "/" + cmp.Or(ref.Name, "default")
	return g, []string{
		k.Namespace, k.Name, conn, synced, orDash(k.Status.APIKeySuffix), orDash(k.Status.SecretName),
		timeOr(k.Status.LastUsedAt, now, neverUsed), oneLine(message),
	}
}

// sortedGroups puts the Ready ApiKeys first, then the others by status and
// reason, so the same state always prints in the same order.
func sortedGroups(groups map[readyGroup][][]string) []readyGroup {
	rank := map[string]int{
		string(metav1.ConditionTrue): 0, string(metav1.ConditionFalse): 1, string(metav1.ConditionUnknown): 2,
	}
	out := make([]readyGroup, 0, len(groups))
	for g := range groups {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b readyGroup) int {
		return cmp.Or(cmp.Compare(rank[a.status], rank[b.status]), cmp.Compare(a.reason, b.reason))
	})
	return out
}

func sortedBy[T any](items []T, key func(T) string) []T {
	out := slices.Clone(items)
	slices.SortStableFunc(out, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	return out
}

// timeAndRelative shows a time in RFC 3339 with how far it is from now.
func timeAndRelative(t *metav1.Time, now time.Time) string {
	return t.UTC().Format(time.RFC3339) + " (" + relative(t.Time, now) + ")"
}

func timeOr(t *metav1.Time, now time.Time, none string) string {
	if t == nil || t.IsZero() {
		return none
	}
	return timeAndRelative(t, now)
}

// relative says how far t is from now, as kubectl shows ages.
func relative(t, now time.Time) string {
	if t.After(now) {
		return "in " + duration.HumanDuration(t.Sub(now))
	}
	return duration.HumanDuration(now.Sub(t)) + " ago"
}

func location(l *iamv1alpha1.KeyLocation) string {
	if l == nil {
		return "-"
	}
	return l.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a condition message on its row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// printer writes lines and aligned tables, and keeps the first write error.
type printer struct {
	w      io.Writer
	indent string
	err    error
}

func (p *printer) line(s string) {
	if p.err == nil {
		_, p.err = fmt.Fprintln(p.w, s)
	}
}

// table prints header and rows aligned, or empty when there are no rows
// (nothing if empty is "").
func (p *printer) table(empty string, header []string, rows [][]string) {
	if len(rows) == 0 {
		if empty != "" {
			p.line(empty)
		}
		return
	}
	if p.err != nil {
		return
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 8, 2, ' ', 0)
	indent := p.indent
	if indent == "" {
		indent = "  "
	}
	for _, r := range append([][]string{header}, rows...) {
		_, _ = fmt.Fprintln(tw, indent+strings.Join(r, "\t"))
	}
	_ = tw.Flush()
	// An empty last column (no message) would leave padding behind.
	for l := range strings.Lines(buf.String()) {
		p.line(strings.TrimRight(l, " \n"))
	}
}
