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
package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// ConnectionOptions are the settings shared by both connection reconcilers.
type ConnectionOptions struct {
	// SyncPeriod is how often each connection's keys are listed.
	SyncPeriod time.Duration
	// CredentialsPollInterval is how often the credentials Secret is read
	// again, so a new token is picked up without a restart. The Secret is read
	// directly rather than watched: watching would cache every Secret of the
	// cluster.
	CredentialsPollInterval time.Duration
	// NewClient builds the API client; NewMobileNextClient by default.
	NewClient ClientFactory
	// Clock tells the time; the real clock by default.
	Clock clock.PassiveClock
	// ExpiryWarning is how long before the session token expires a
	// CredentialsExpiring warning is recorded (at most daily);
	// DefaultExpiryWarning when zero.
	ExpiryWarning time.Duration
	// Entropy is where the jitter of the shared backoff comes from;
	// crypto/rand when nil. It must be safe for concurrent use.
	Entropy io.Reader
	// MaxConcurrentReconciles is how many connections of one kind are
	// checked at once; one when zero. A connection is only ever checked by
	// one worker at a time (the work queue sees to it).
	MaxConcurrentReconciles int
}

func (o ConnectionOptions) withDefaults() ConnectionOptions {
	if o.SyncPeriod <= 0 {
		o.SyncPeriod = DefaultSyncPeriod
	}
	if o.CredentialsPollInterval <= 0 {
		o.CredentialsPollInterval = DefaultCredentialsPollInterval
	}
	if o.NewClient == nil {
		o.NewClient = NewMobileNextClient
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.ExpiryWarning <= 0 {
		o.ExpiryWarning = DefaultExpiryWarning
	}
	return o
}

// connectionChecker holds what both connection kinds share: reading the
// token, checking it with one list call, and the status it leads to.
type connectionChecker struct {
	client.Client
	// APIReader reads credentials Secrets without caching them.
	APIReader   client.Reader
	Connections *Connections
	Options     ConnectionOptions
	// Recorder records the connection's state changes; none when nil.
	Recorder recorder.EventRecorder
}

// check computes the state of a connection and fills its status, in two
// phases: read the credentials, then verify them with the shared listing.
func (c *connectionChecker) check(ctx context.Context, key ConnectionKey, generation int64, params iamv1alpha1.ConnectionParameters, secretNamespace string, status *iamv1alpha1.ConnectionStatus) (ctrl.Result, error) {
	opts := c.Options.withDefaults()
	now := opts.Clock.Now()
	status.ObservedGeneration = generation
	requeue := ctrl.Result{RequeueAfter: opts.CredentialsPollInterval}

	token, problem, err := c.readCredentials(ctx, params, secretNamespace, now, status)
	if err != nil {
		return ctrl.Result{}, err
	}
	if problem != nil {
		c.notReady(key, generation, status, problem.reason, problem.message)
		return requeue, nil
	}
	if until := status.CredentialsExpireAt.Sub(now); until < requeue.RequeueAfter {
		// Checked again as it expires, so Expired shows at once.
		requeue.RequeueAfter = until + time.Second
	}
	return c.verify(ctx, key, generation, params, token, status, requeue)
}

// credentialsProblem is why a connection's credentials cannot be used.
type credentialsProblem struct{ reason, message string }

// readCredentials reads the session token from the credentials Secret,
// uncached, and judges it without calling the API: missing, an API key, not
// a JWT, expired. It records the token's expiry in status.
func (c *connectionChecker) readCredentials(ctx context.Context, params iamv1alpha1.ConnectionParameters, secretNamespace string, now time.Time, status *iamv1alpha1.ConnectionStatus) (mobilenext.Token, *credentialsProblem, error) {
	status.CredentialsExpireAt = nil
	secretKey := params.CredentialsSecretRef.Key
	if secretKey == "" {
		secretKey = "token"
	}
	var secret corev1.Secret
	ref := types.NamespacedName{Namespace: secretNamespace, Name: params.CredentialsSecretRef.Name}
	if err := c.APIReader.Get(ctx, ref, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return mobilenext.Token{}, &credentialsProblem{iamv1alpha1.ReasonSecretNotFound, fmt.Sprintf("Secret %s not found: create it with the session token from 'mobilecli auth token' under the key %q", ref, secretKey)}, nil
		}
		return mobilenext.Token{}, nil, fmt.Errorf("read credentials Secret %s: %w", ref, err)
	}
	raw, ok := secret.Data[secretKey]
	if !ok || len(strings.TrimSpace(string(raw))) == 0 {
		return mobilenext.Token{}, &credentialsProblem{iamv1alpha1.ReasonSecretNotFound, fmt.Sprintf("Secret %s has no key %q holding the session token", ref, secretKey)}, nil
	}
	token := mobilenext.NewToken(strings.TrimSpace(string(raw)))
	if token.IsAPIKey() {
		return token, &credentialsProblem{iamv1alpha1.ReasonNotASessionToken, fmt.Sprintf("Secret %s key %q holds an API key (mob_...), which the API refuses for managing keys: store an interactive session token from 'mobilecli auth token' instead", ref, secretKey)}, nil
	}
	exp, err := token.ExpiresAt()
	if err != nil {
		return token, &credentialsProblem{iamv1alpha1.ReasonInvalidToken, fmt.Sprintf("Secret %s key %q does not hold a session token (a JWT with an exp claim): %v", ref, secretKey, err)}, nil
	}
	status.CredentialsExpireAt = &metav1.Time{Time: exp}
	if !exp.After(now) {
		return token, &credentialsProblem{iamv1alpha1.ReasonExpired, fmt.Sprintf("the session token in Secret %s expired at %s: run 'mobilecli auth login' and store a new 'mobilecli auth token'", ref, exp.UTC().Format(time.RFC3339))}, nil
	}
	return token, nil, nil
}

// notReady records a connection that cannot be used; the inventory it had
// is kept, so that its backoff and listing survive a passing problem.
func (c *connectionChecker) notReady(key ConnectionKey, generation int64, status *iamv1alpha1.ConnectionStatus, reason, message string) {
	setCondition(status, generation, iamv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	prev, _ := c.Connections.Get(key)
	c.Connections.set(key, ConnectionState{Reason: reason, Message: message, Inventory: prev.Inventory, Location: prev.Location, cfg: prev.cfg, fingerprint: prev.fingerprint})
}

// verify finds the place the credentials reach (URL, organization or the
// token's user) and checks them with the shared listing of that place.
func (c *connectionChecker) verify(ctx context.Context, key ConnectionKey, generation int64, params iamv1alpha1.ConnectionParameters, token mobilenext.Token, status *iamv1alpha1.ConnectionStatus, requeue ctrl.Result) (ctrl.Result, error) {
	url := params.URL
	if url == "" {
		url = mobilenext.DefaultURL
	}
	sum := sha256.Sum256([]byte(url + "\x00" + params.OrganizationID + "\x00" + token.Reveal()))
	fingerprint := hex.EncodeToString(sum[:])
	cfg := mobilenext.Config{URL: url, Token: token, OrganizationID: params.OrganizationID}
	loc := iamv1alpha1.KeyLocation{URL: url, OrganizationID: params.OrganizationID}
	if loc.OrganizationID == "" {
		// Without an organization id the caller's default organization is
		// used: whose it is, is what tells two such places apart.
		loc.Subject = token.Subject()
	}

	prev, known := c.Connections.Get(key)
	inv, err := c.Connections.inventory(cfg, key)
	if err != nil {
		c.notReady(key, generation, status, iamv1alpha1.ReasonUnreachable, fmt.Sprintf("cannot use url %q: %v", url, err))
		return requeue, nil
	}
	if prev.fingerprint != fingerprint {
		logf.FromContext(ctx).Info("using new credentials", "connection", key.String(), "expiresAt", status.CredentialsExpireAt.UTC())
	}

	var listing Listing
	if known && prev.Inventory == inv && !prev.Ready && prev.Reason == iamv1alpha1.ReasonUnauthorized {
		// The API refused these credentials to an ApiKey: do not trust a
		// listing taken before that.
		listing, err = inv.Fresh(ctx)
	} else {
		listing, err = inv.Get(ctx)
	}
	if err != nil {
		reason, message := classifyConnectionError(err, url)
		setCondition(status, generation, iamv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
		c.Connections.set(key, ConnectionState{Reason: reason, Message: message, Inventory: inv, Location: loc, cfg: cfg, fingerprint: fingerprint})
		if wait := inv.HeldBackFor(); wait > 0 && wait < requeue.RequeueAfter {
			requeue.RequeueAfter = wait
		}
		return requeue, nil
	}
	// Refreshed at most every checkRecordInterval while the outcome stays
	// the same: a status write per connection and sync period would be the
	// operator's only write at rest.
	checked := metav1.Time{Time: listing.StartedAt.Truncate(time.Second)}
	if last := status.LastCheckedTime; last == nil || !meta.IsStatusConditionTrue(status.Conditions, iamv1alpha1.ConditionReady) ||
		checked.Sub(last.Time) >= checkRecordInterval {
		status.LastCheckedTime = &checked
	}
	org := params.OrganizationID
	if org == "" {
		org = "the caller's default organization"
	}
	message := fmt.Sprintf("credentials accepted by %s for %s", url, org)
	setCondition(status, generation, iamv1alpha1.ConditionReady, metav1.ConditionTrue, iamv1alpha1.ReasonValid, message)
	c.Connections.set(key, ConnectionState{Ready: true, Reason: iamv1alpha1.ReasonValid, Message: message, Inventory: inv, Location: loc, cfg: cfg, fingerprint: fingerprint})
	return requeue, nil
}

// checkRecordInterval is how stale status.lastCheckedTime may grow while a
// connection stays Ready.
const checkRecordInterval = time.Hour

// reconcile reads a connection of either kind, checks it, and writes its
// status when it changed. view returns the parts of obj the check needs,
// once obj has been read.
func (c *connectionChecker) reconcile(ctx context.Context, key ConnectionKey, obj client.Object, view func() (iamv1alpha1.ConnectionParameters, string, *iamv1alpha1.ConnectionStatus)) (ctrl.Result, error) {
	if err := c.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			c.Connections.forget(key)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	params, secretNamespace, status := view()
	// Keeping or releasing the connection comes first: a connection being
	// deleted is checked as long as ApiKeys need it, and not after.
	prot, err := c.protect(ctx, key, obj, types.NamespacedName{Namespace: secretNamespace, Name: params.CredentialsSecretRef.Name}, status)
	if apierrors.IsConflict(err) {
		// A write raced with another; read again.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if prot.released() {
		c.Connections.forget(key)
		return ctrl.Result{}, nil
	}
	before := status.DeepCopy()
	res, err := c.check(ctx, key, obj.GetGeneration(), params, secretNamespace, status)
	if err != nil {
		return ctrl.Result{}, err
	}
	describeProtection(status, prot)
	c.recordTransitions(obj, before, status)
	if !equality.Semantic.DeepEqual(*before, *status) {
		if err := c.Status().Update(ctx, obj); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	return res, nil
}

// classifyConnectionError turns a failed check into a Ready reason and a
// message a person can act on.
func classifyConnectionError(err error, url string) (string, string) {
	switch mobilenext.Classify(err) {
	case mobilenext.ClassUnauthorized:
		return iamv1alpha1.ReasonUnauthorized, fmt.Sprintf("%s refused the session token (%v): log in again with 'mobilecli auth login' and store a new 'mobilecli auth token'", url, err)
	case mobilenext.ClassForbidden:
		return iamv1alpha1.ReasonForbidden, fmt.Sprintf("%s refused access (%v): check organizationId and that the user is a member of it", url, err)
	default:
		return iamv1alpha1.ReasonUnreachable, fmt.Sprintf("cannot reach %s: %v", url, err)
	}
}

// setCondition sets a condition on a connection status.
func setCondition(status *iamv1alpha1.ConnectionStatus, generation int64, condType string, s metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type: condType, Status: s, Reason: reason, Message: message, ObservedGeneration: generation,
	})
}

// ConnectionReconciler checks the credentials of a namespaced Connection.
type ConnectionReconciler struct {
	connectionChecker
}

// NewConnectionReconciler returns a ConnectionReconciler.
func NewConnectionReconciler(c client.Client, apiReader client.Reader, conns *Connections, opts ConnectionOptions) *ConnectionReconciler {
	return &ConnectionReconciler{connectionChecker{Client: c, APIReader: apiReader, Connections: conns, Options: opts}}
}

// +kubebuilder:rbac:groups=iam.mobilenexthq.com,resources=connections;clusterconnections,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=iam.mobilenexthq.com,resources=connections/status;clusterconnections/status,verbs=update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete

// Reconcile checks a Connection's credentials and records the result.
func (r *ConnectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var conn iamv1alpha1.Connection
	key := ConnectionKey{Kind: iamv1alpha1.ConnectionKind, Namespace: req.Namespace, Name: req.Name}
	return r.reconcile(ctx, key, &conn, func() (iamv1alpha1.ConnectionParameters, string, *iamv1alpha1.ConnectionStatus) {
		return conn.Spec.ConnectionParameters, conn.Namespace, &conn.Status
	})
}

// SetupWithManager sets up the controller with the Manager.
func (r *ConnectionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&iamv1alpha1.Connection{}).
		Watches(&iamv1alpha1.ApiKey{}, r.connectionsOfNamespace(), builder.WithPredicates(dependentsChanged)).
		WatchesRawSource(source.Channel(r.Connections.recheckConnection, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Options.MaxConcurrentReconciles, 1)}).
		Named("connection").
		Complete(r)
}

// ClusterConnectionReconciler checks the credentials of a ClusterConnection.
type ClusterConnectionReconciler struct {
	connectionChecker
}

// NewClusterConnectionReconciler returns a ClusterConnectionReconciler.
func NewClusterConnectionReconciler(c client.Client, apiReader client.Reader, conns *Connections, opts ConnectionOptions) *ClusterConnectionReconciler {
	return &ClusterConnectionReconciler{connectionChecker{Client: c, APIReader: apiReader, Connections: conns, Options: opts}}
}

// Reconcile checks a ClusterConnection's credentials and records the result.
func (r *ClusterConnectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var conn iamv1alpha1.ClusterConnection
	key := ConnectionKey{Kind: iamv1alpha1.ClusterConnectionKind, Name: req.Name}
	return r.reconcile(ctx, key, &conn, func() (iamv1alpha1.ConnectionParameters, string, *iamv1alpha1.ConnectionStatus) {
		return conn.Spec.ConnectionParameters, conn.Spec.CredentialsSecretRef.Namespace, &conn.Status
	})
}

// SetupWithManager sets up the controller with the Manager.
func (r *ClusterConnectionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := indexClusterConnectionUsers(context.Background(), mgr); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&iamv1alpha1.ClusterConnection{}).
		Watches(&iamv1alpha1.ApiKey{}, r.clusterConnectionsOfApiKey(), builder.WithPredicates(dependentsChanged)).
		WatchesRawSource(source.Channel(r.Connections.recheckClusterConnection, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Options.MaxConcurrentReconciles, 1)}).
		Named("clusterconnection").
		Complete(r)
}
