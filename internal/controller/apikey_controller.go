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
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// connectionRefIndex indexes ApiKeys by the connection they use.
const connectionRefIndex = ".spec.connectionRef"

// DefaultCreateWindow is how long after a create was sent its key may still
// appear: a server can commit a create after the client gave up on it (the
// client's own timeout is 30s). Until the window has passed, an ApiKey whose
// create could not be resolved keeps its finalizer and deletes the key if it
// shows up.
const DefaultCreateWindow = 10 * time.Minute

// ApiKeyOptions configure the ApiKey reconciler.
type ApiKeyOptions struct {
	// SyncPeriod is how often each ApiKey is compared with the shared listing.
	SyncPeriod time.Duration
	// CreateWindow is how long an unresolved create attempt is watched for
	// a late key; DefaultCreateWindow when zero.
	CreateWindow time.Duration
	// MaxConcurrentReconciles is how many ApiKeys are reconciled at once.
	MaxConcurrentReconciles int
	// Clock tells the time; the real clock by default.
	Clock clock.PassiveClock
	// Entropy is where attempt ids and jitter come from; crypto/rand when
	// nil. It must be safe for concurrent use (crypto/rand is).
	Entropy io.Reader
}

// ApiKeyReconciler keeps a remote key and its Secret in line with an ApiKey.
type ApiKeyReconciler struct {
	client.Client
	// APIReader reads without the cache: to confirm a Secret is really gone
	// before acting on it, and to see Secrets the cache does not hold.
	APIReader   client.Reader
	Recorder    recorder.EventRecorder
	Connections *Connections
	Options     ApiKeyOptions
}

// +kubebuilder:rbac:groups=iam.mobilenexthq.com,resources=apikeys,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=iam.mobilenexthq.com,resources=apikeys/status,verbs=update
// +kubebuilder:rbac:groups=iam.mobilenexthq.com,resources=apikeys/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;patch

// Reconcile reads top-down: get, deleting?, finalizer, connection, recover an
// interrupted create, then create / repair / rotate, retire old keys, and
// write status once at the end.
func (r *ApiKeyReconciler) Reconcile(ctx context.Context, req reconcile.Request) (result reconcile.Result, err error) {
	key := &iamv1alpha1.ApiKey{}
	if err := r.Get(ctx, req.NamespacedName, key); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	ctx = logf.IntoContext(ctx, logf.FromContext(ctx).WithValues("apikey", req.String()))
	// Status stores times to the second: a time kept finer would never
	// compare equal to what was stored, and every reconcile would write.
	now := r.now().Truncate(time.Second)
	rc := &reconcileContext{r: r, key: key, baseline: key.Status.DeepCopy(), readyBefore: readyReason(key), now: now}
	defer func() {
		if serr := rc.commitStatus(ctx); serr != nil && err == nil {
			if apierrors.IsConflict(serr) {
				result = reconcile.Result{RequeueAfter: time.Second}
				return
			}
			err = serr
		}
	}()

	if !key.DeletionTimestamp.IsZero() {
		return rc.finalize(ctx)
	}
	if before := key.DeepCopy(); controllerutil.AddFinalizer(key, iamv1alpha1.Finalizer) {
		// A patch, not an update: an update would send the whole spec back
		// in Go's spelling (720h as 720h0m0s), a change GitOps tools see.
		status := key.Status.DeepCopy()
		if err := r.Patch(ctx, key, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
		key.Status = *status
	}
	if key.Annotations[iamv1alpha1.PausedAnnotation] == "true" {
		rc.setReady(false, iamv1alpha1.ReasonPaused, "paused by the "+iamv1alpha1.PausedAnnotation+" annotation: no remote calls are made until it is removed")
		return reconcile.Result{}, nil
	}
	return rc.sync(ctx)
}

func (r *ApiKeyReconciler) now() time.Time {
	if r.Options.Clock != nil {
		return r.Options.Clock.Now()
	}
	return time.Now()
}

func (r *ApiKeyReconciler) syncPeriod() time.Duration {
	if r.Options.SyncPeriod > 0 {
		return r.Options.SyncPeriod
	}
	return DefaultSyncPeriod
}

func (r *ApiKeyReconciler) createWindow() time.Duration {
	if r.Options.CreateWindow > 0 {
		return r.Options.CreateWindow
	}
	return DefaultCreateWindow
}

// reconcileContext carries one reconcile of one ApiKey.
type reconcileContext struct {
	r           *ApiKeyReconciler
	key         *iamv1alpha1.ApiKey
	baseline    *iamv1alpha1.ApiKeyStatus
	readyBefore string
	now         time.Time

	// conn is the connection the spec names; inv and loc are set once it
	// resolved to a Ready connection.
	conn ConnectionKey
	inv  *Inventory
	loc  iamv1alpha1.KeyLocation

	// candidates are the connections this ApiKey may use, looked up once
	// when a key lives elsewhere than its connection.
	candidates []ConnectionKey
	// requeue is the earliest a step asked to look again.
	requeue time.Duration
	// unsynced is set when a step of this reconcile set Synced=False.
	unsynced bool
	// revocationConfirmed is set by observe when two listings confirmed
	// that the current key is gone.
	revocationConfirmed bool
	// secret is the Secret the spec names, nil when it does not exist.
	secret *corev1.Secret
	// pendingRestarts are rollout restart targets not restarted for the
	// current key yet.
	pendingRestarts []string
}

// commitStatus writes the status if it changed since it was read or last
// written. The write is conflict-checked: status carries the create protocol,
// and a stale write could lose a key id.
func (rc *reconcileContext) commitStatus(ctx context.Context) error {
	rc.key.Status.ObservedGeneration = rc.key.Generation
	if equality.Semantic.DeepEqual(*rc.baseline, rc.key.Status) {
		return nil
	}
	if err := rc.r.Status().Update(ctx, rc.key); err != nil {
		return client.IgnoreNotFound(err)
	}
	rc.baseline = rc.key.Status.DeepCopy()
	return nil
}

// event records an event about the ApiKey.
func (rc *reconcileContext) event(eventType, reason, action, format string, args ...any) {
	if rc.r.Recorder == nil {
		return
	}
	rc.r.Recorder.Eventf(rc.key, nil, eventType, reason, action, format, args...)
}

// fail sets Ready=False with a reason and records a warning event when the
// reason is new, so a failure that persists is reported once, not per poll.
func (rc *reconcileContext) fail(reason, message string) {
	rc.setReady(false, reason, message)
	if rc.readyBefore != reason {
		rc.event(corev1.EventTypeWarning, reason, "Reconcile", "%s", message)
		rc.readyBefore = reason
	}
}

// soon asks for the next reconcile no later than d from now.
func (rc *reconcileContext) soon(d time.Duration) {
	d = max(d, 100*time.Millisecond)
	if rc.requeue == 0 || d < rc.requeue {
		rc.requeue = d
	}
}

// step is one phase of a reconcile. stop ends the reconcile with res and
// err; otherwise the next phase runs.
type step func(ctx context.Context) (stop bool, res reconcile.Result, err error)

// sync brings a live ApiKey in line, one phase after the other: resolve the
// connection, recover an interrupted create, check the Secret, observe the
// listing, create / repair / rotate, retire, then say Ready.
func (rc *reconcileContext) sync(ctx context.Context) (reconcile.Result, error) {
	for _, phase := range []step{rc.connect, rc.recover, rc.checkSecret, rc.observeRemote, rc.act, rc.retire} {
		if stop, res, err := phase(ctx); stop || err != nil {
			return res, err
		}
	}
	return rc.ready(), nil
}

// connect resolves the connection and waits while it is held back.
func (rc *reconcileContext) connect(ctx context.Context) (bool, reconcile.Result, error) {
	if res, ok := rc.resolveConnection(ctx); !ok {
		return true, res, nil
	}
	if wait := rc.inv.HeldBackFor(); wait > 0 {
		rc.notSynced(iamv1alpha1.ReasonBackingOff, fmt.Sprintf("calls to the API through %s are held back after 429s or failures; next call in %s", rc.conn, wait.Round(time.Second)))
		return true, reconcile.Result{RequeueAfter: wait}, nil
	}
	return false, reconcile.Result{}, nil
}

// recover finishes a create that was interrupted.
func (rc *reconcileContext) recover(ctx context.Context) (bool, reconcile.Result, error) {
	if rc.key.Status.PendingCreate == nil {
		return false, reconcile.Result{}, nil
	}
	if err := rc.recoverCreate(ctx); err != nil {
		res, err := rc.remoteError(ctx, opList, "recover an interrupted create", err)
		return true, res, err
	}
	return false, reconcile.Result{}, nil
}

// checkSecret reads the Secret the spec names and stops on one this ApiKey
// does not control, or on a spec the API refused.
func (rc *reconcileContext) checkSecret(ctx context.Context) (bool, reconcile.Result, error) {
	key := rc.key
	secret, err := rc.r.getSecret(ctx, key.Namespace, desiredSecretName(key))
	if err != nil {
		return true, reconcile.Result{}, err
	}
	if secret != nil && !metav1.IsControlledBy(secret, key) {
		rc.fail(iamv1alpha1.ReasonSecretConflict, fmt.Sprintf("Secret %s already exists and is not managed by this ApiKey: it is left untouched; delete it or choose another spec.secretName", secret.Name))
		return true, reconcile.Result{RequeueAfter: time.Minute}, nil
	}
	if isTerminal(key) {
		// The API refused this spec; retrying before it changes would only
		// be refused again.
		return true, reconcile.Result{}, nil
	}
	rc.secret = secret
	return false, reconcile.Result{}, nil
}

// observeRemote reads the shared listing of the place the current key
// lives, copies what it says into status, and deletes keys that unresolved
// attempts made meanwhile.
func (rc *reconcileContext) observeRemote(ctx context.Context) (bool, reconcile.Result, error) {
	key := rc.key
	var listing *Listing
	if key.Status.KeyID != "" && rc.livesHere(key.Status.Location) {
		l, err := rc.inv.Since(ctx, rc.listingNeededSince())
		if err != nil {
			res, err := rc.remoteError(ctx, opList, "list keys", err)
			return true, res, err
		}
		listing = &l
		if key.Status.Location == nil && key.Status.Connection == rc.conn.String() {
			// Recorded before keys recorded their location: it lives here.
			key.Status.Location = rc.here()
		}
		rc.observe(l)
	}
	if err := rc.resolveAttempts(ctx, listing, rc.r.syncPeriod()); err != nil {
		res, err := rc.remoteError(ctx, opDelete, "delete a key of an interrupted create", err)
		return true, res, err
	}
	return false, reconcile.Result{}, nil
}

// act creates, repairs or rotates the key when something calls for it, and
// otherwise keeps the Secret where and how the spec says.
func (rc *reconcileContext) act(ctx context.Context) (bool, reconcile.Result, error) {
	key := rc.key
	trigger, err := rc.replacementTrigger(ctx, rc.secret)
	if err != nil {
		return true, reconcile.Result{}, err
	}
	if trigger != "" && rc.namespaceTerminating(ctx) {
		// The namespace controller deletes the Secret before the ApiKey;
		// a new key would only be refused its Secret, and deleted again.
		rc.notSynced(iamv1alpha1.ReasonDeleting, fmt.Sprintf("namespace %s is being deleted: no new key is made (%s); the ApiKey's deletion follows", key.Namespace, trigger))
		return true, reconcile.Result{RequeueAfter: rc.r.syncPeriod()}, nil
	}
	if trigger != "" && !rc.roomForPreviousKey(ctx, trigger) {
		trigger = ""
	}
	if trigger == "" {
		moved, err := rc.moveSecretIfNeeded(ctx, rc.secret)
		if err == nil && !moved {
			err = rc.r.ensureSecretMetadata(ctx, key, rc.secret)
		}
		return err != nil, reconcile.Result{}, err
	}
	if err := rc.replaceKey(ctx, trigger, rc.secret); err != nil {
		res, err := rc.remoteError(ctx, opCreate, "create key", err)
		return true, res, err
	}
	if key.Status.PendingCreate != nil || key.Status.KeyID == "" {
		// Stopped before completion on purpose (a refused create); the
		// condition says why.
		return true, rc.requeueAfterFailure(), nil
	}
	return false, reconcile.Result{}, nil
}

// retire restarts the workloads for a new key, then retires the previous
// keys whose time has come.
func (rc *reconcileContext) retire(ctx context.Context) (bool, reconcile.Result, error) {
	if err := rc.sweepStaleSecrets(ctx); err != nil {
		return true, reconcile.Result{}, err
	}
	rc.pendingRestarts = rc.restartTargets(ctx)
	if err := rc.retirePreviousKeys(ctx, rc.pendingRestarts); err != nil {
		res, err := rc.remoteError(ctx, opDelete, "delete a previous key", err)
		return true, res, err
	}
	return false, reconcile.Result{}, nil
}

// ready says the Secret holds a working key, and when to look again.
func (rc *reconcileContext) ready() reconcile.Result {
	rc.markReady()
	return reconcile.Result{RequeueAfter: rc.nextCheck()}
}

// markReady sets Ready=True (KeyReady) and, unless a step of this reconcile
// could not do its part, Synced=True.
func (rc *reconcileContext) markReady() {
	key := rc.key
	message := fmt.Sprintf("Secret %s holds key %s", key.Status.SecretName, key.Status.KeyID)
	if len(rc.pendingRestarts) > 0 {
		message += "; rollout restart targets not restarted yet: " + joinTargets(rc.pendingRestarts)
	}
	if t := key.Status.KeyMissingSince; t != nil {
		message += fmt.Sprintf("; the key was missing from a listing at %s and is checked again before it is replaced", t.UTC().Format(time.RFC3339))
	}
	rc.setReady(true, iamv1alpha1.ReasonKeyReady, message)
	rc.readyBefore = iamv1alpha1.ReasonKeyReady
	if !rc.unsynced {
		rc.setSynced(true, iamv1alpha1.ReasonReconcileSuccess, "the last reconcile reached the API without error")
	}
}

// notSynced sets Synced=False for this reconcile: something it could not
// do, while the key itself may well be Ready.
func (rc *reconcileContext) notSynced(reason, message string) {
	rc.setSynced(false, reason, message)
	rc.unsynced = true
}

// keyWorks reports whether a live ApiKey's Secret holds a key that works:
// it is Ready, and failures elsewhere (the connection, the API, a rotation)
// leave it so.
func keyWorks(key *iamv1alpha1.ApiKey) bool {
	return key.DeletionTimestamp.IsZero() && key.Status.KeyID != "" &&
		meta.IsStatusConditionTrue(key.Status.Conditions, iamv1alpha1.ConditionReady)
}

// isTerminal reports whether the API refused the current spec with a 400.
func isTerminal(key *iamv1alpha1.ApiKey) bool {
	c := meta.FindStatusCondition(key.Status.Conditions, iamv1alpha1.ConditionReady)
	return c != nil && c.Reason == iamv1alpha1.ReasonInvalidSpec && c.ObservedGeneration == key.Generation
}

// requeueAfterFailure waits long enough not to spin after a refused create.
func (rc *reconcileContext) requeueAfterFailure() reconcile.Result {
	if isTerminal(rc.key) {
		return reconcile.Result{}
	}
	return reconcile.Result{RequeueAfter: rc.r.syncPeriod()}
}

// nextCheck is when this ApiKey needs looking at again: the sync period
// (with jitter, so many ApiKeys do not wake together), or sooner for a
// rotation, a previous key's deadline, a listing that must confirm a
// missing key, or a step that asked for it.
//
// Only deadlines still ahead count. This reconcile acted on every deadline
// already passed, or could not, and then the step that could not asked for
// its own retry (a rotation held until a previous key retires, a previous
// key that waits for its workloads to restart, an unreachable location): a
// passed deadline would otherwise wake the ApiKey again and again for
// nothing.
func (rc *reconcileContext) nextCheck() time.Duration {
	period := rc.r.syncPeriod()
	next := jitter(rc.r.Options.Entropy, period, 0.1)
	consider := func(t *metav1.Time) {
		if t == nil || !t.After(rc.now) {
			return
		}
		if d := t.Sub(rc.now) + 100*time.Millisecond; d < next {
			next = d
		}
	}
	consider(rc.key.Status.NextRotationTime)
	if t := rc.key.Status.KeyMissingSince; t != nil {
		consider(&metav1.Time{Time: t.Add(rc.confirmDelay())})
	}
	for _, p := range rc.key.Status.PreviousKeys {
		consider(&p.DeleteAfter)
		// Early retirement waits for the restarts, which retry on their
		// own schedule.
		if d := rc.unusedWindow(); d > 0 && p.LastUsedChangedAt != nil && len(rc.pendingRestarts) == 0 {
			t := metav1.NewTime(p.LastUsedChangedAt.Add(d))
			consider(&t)
		}
	}
	if t, ok := rc.suffixPending(); ok {
		// Never sooner than suffixDebounce from now, so a listing that has
		// not shown the suffix yet is not asked for again at once.
		if d := max(t.Sub(rc.now), suffixDebounce); d < next {
			next = d
		}
	}
	if rc.requeue > 0 && rc.requeue < next {
		next = rc.requeue
	}
	return next
}

// resolveConnection finds the connection the ApiKey may use; false means the
// ApiKey must wait for it, with the condition saying why.
func (rc *reconcileContext) resolveConnection(ctx context.Context) (reconcile.Result, bool) {
	key := rc.key
	rc.conn = connectionKeyFor(key)
	wait := reconcile.Result{RequeueAfter: time.Minute}
	if problem := rc.admits(ctx, rc.conn); problem != "" {
		rc.fail(iamv1alpha1.ReasonConnectionNotReady, problem)
		return wait, false
	}
	state, ok := rc.r.Connections.Get(rc.conn)
	if !ok {
		// Right after the manager starts, the connection reconciler may not
		// have run yet: that says nothing about the key, so a Ready key stays
		// Ready instead of flapping on every restart.
		if readyReason(key) != iamv1alpha1.ReasonKeyReady {
			rc.fail(iamv1alpha1.ReasonConnectionNotReady, fmt.Sprintf("%s has not been checked yet", rc.conn))
		}
		return reconcile.Result{RequeueAfter: 2 * time.Second}, false
	}
	if !state.Ready || state.Inventory == nil {
		message := fmt.Sprintf("%s is not ready (%s): %s; new keys, rotations and deletions wait for it", rc.conn, state.Reason, state.Message)
		if keyWorks(key) {
			// An expired token or an outage of the API says nothing about
			// the key the Secret holds: it stays Ready, and Synced says
			// why nothing could be checked or changed meanwhile.
			rc.notSynced(state.Reason, message)
			return wait, false
		}
		rc.fail(iamv1alpha1.ReasonConnectionNotReady, message)
		return wait, false
	}
	rc.inv, rc.loc = state.Inventory, state.Location
	return reconcile.Result{}, true
}

// remoteError turns a failed API call into conditions and a retry plan,
// following decideFailure.
func (rc *reconcileContext) remoteError(ctx context.Context, op remoteOp, what string, err error) (reconcile.Result, error) {
	key := rc.key
	var heldFor time.Duration
	if rc.inv != nil {
		heldFor = rc.inv.HeldBackFor()
	}
	refusedRetry := rc.r.syncPeriod()
	if op == opDelete && !key.DeletionTimestamp.IsZero() {
		refusedRetry = rc.deleteBackoff()
	}
	o := decideFailure(op, what, err, rc.conn.String(), heldFor, refusedRetry)
	rc.setSynced(false, o.syncedReason, o.message)
	if o.unauthorized {
		rc.r.Connections.ReportUnauthorized(rc.conn, o.message)
	}
	switch {
	case o.readyReason == "":
	case o.readyReason == iamv1alpha1.ReasonInvalidSpec:
		// Ready carries the refusal that holds retries until the spec changes.
		rc.fail(o.readyReason, o.message)
	case keyWorks(key):
		// A failure to rotate, retire or list says nothing about the key
		// the Secret holds: Synced says what failed.
	case o.readyReason == iamv1alpha1.ReasonDeleteFailed && key.DeletionTimestamp.IsZero():
		rc.fail(iamv1alpha1.ReasonRemoteError, o.message)
	default:
		rc.fail(o.readyReason, o.message)
	}
	switch o.retry {
	case retryOnSpecChange:
		return reconcile.Result{}, nil
	case retryBackoff:
		logf.FromContext(ctx).Info("remote call failed; backing off", "call", what, "error", err.Error())
		// Returning the error hands the retry to the controller's
		// exponential backoff.
		return reconcile.Result{}, fmt.Errorf("%s", o.message)
	default:
		return reconcile.Result{RequeueAfter: o.after}, nil
	}
}

// SetupWithManager sets up the controller with the Manager.
func (r *ApiKeyReconciler) SetupWithManager(mgr manager.Manager) error {
	ctx := context.Background()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &iamv1alpha1.ApiKey{}, connectionRefIndex,
		ApiKeyFieldIndexes()[connectionRefIndex]); err != nil {
		return fmt.Errorf("index ApiKeys by connection: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Secret{}, secretControllerIndex,
		SecretFieldIndexes()[secretControllerIndex]); err != nil {
		return fmt.Errorf("index Secrets by the ApiKey that controls them: %w", err)
	}
	byConnection := func(kind string) handler.EventHandler {
		return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			ck := ConnectionKey{Kind: kind, Namespace: o.GetNamespace(), Name: o.GetName()}
			var list iamv1alpha1.ApiKeyList
			if err := r.List(ctx, &list, client.MatchingFields{connectionRefIndex: ck.String()}); err != nil {
				return nil
			}
			reqs := make([]reconcile.Request, 0, len(list.Items))
			for _, k := range list.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&k)})
			}
			return reqs
		})
	}
	// ApiKeys care about a connection's readiness, not about every status
	// write.
	readinessChanged := predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return readyOf(e.ObjectOld) != readyOf(e.ObjectNew) || e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration()
		},
	}
	return builder.ControllerManagedBy(mgr).
		For(&iamv1alpha1.ApiKey{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		Watches(&iamv1alpha1.Connection{}, byConnection(iamv1alpha1.ConnectionKind), builder.WithPredicates(readinessChanged)).
		Watches(&iamv1alpha1.ClusterConnection{}, byConnection(iamv1alpha1.ClusterConnectionKind), builder.WithPredicates(readinessChanged)).
		WithOptions(controller.Options{
			// Workers act on different ApiKeys only (the work queue sees
			// to it); they share each connection's listing and backoff.
			MaxConcurrentReconciles: max(r.Options.MaxConcurrentReconciles, 1),
			// Failures back off from 1s to 5m: no error path spins the API.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](time.Second, 5*time.Minute),
		}).
		Named("apikey").
		Complete(r)
}

// readyOf summarises a connection's Ready condition for change detection.
func readyOf(o client.Object) string {
	var conds []metav1.Condition
	switch c := o.(type) {
	case *iamv1alpha1.Connection:
		conds = c.Status.Conditions
	case *iamv1alpha1.ClusterConnection:
		conds = c.Status.Conditions
	}
	if c := meta.FindStatusCondition(conds, iamv1alpha1.ConditionReady); c != nil {
		return string(c.Status) + "/" + c.Reason
	}
	return ""
}
