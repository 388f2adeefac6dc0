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
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

func TestJudgeMissing(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: t0.Add(d)} }
	cases := map[string]struct {
		reason       string
		listed       bool
		started      time.Time
		recordedAt   *metav1.Time
		missingSince *metav1.Time
		want         missingVerdict
	}{
		"listed key is not missing": {
			reason: "a key the listing shows clears an earlier miss",
			listed: true, started: t0.Add(time.Hour), recordedAt: at(0), missingSince: at(time.Minute),
			want: missingVerdict{},
		},
		"first miss is only noted": {
			reason:  "one incomplete answer never replaces a key",
			started: t0.Add(time.Hour), recordedAt: at(0),
			want: missingVerdict{missingSince: at(time.Hour)},
		},
		"listing older than the key says nothing": {
			reason:  "a listing that started before the key was recorded cannot show it",
			started: t0.Add(-time.Second), recordedAt: at(0),
			want: missingVerdict{},
		},
		"second miss too soon is not a confirmation": {
			reason:  "a lagging replica can answer twice in a row",
			started: t0.Add(time.Hour + 10*time.Second), recordedAt: at(0), missingSince: at(time.Hour),
			want: missingVerdict{missingSince: at(time.Hour)},
		},
		"second miss well after the first confirms": {
			reason:  "two listings, the second started confirm after the first",
			started: t0.Add(time.Hour + time.Minute), recordedAt: at(0), missingSince: at(time.Hour),
			want: missingVerdict{missingSince: at(time.Hour), gone: true},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := judgeMissing(tc.listed, tc.started, tc.recordedAt, tc.missingSince, time.Minute)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(missingVerdict{})); diff != "" {
				t.Errorf("%s: judgeMissing() -want +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestDecideFailure(t *testing.T) {
	api := func(code int, retryAfter time.Duration) error {
		return &mobilenext.APIError{Method: "POST", Path: "/api/v1/keys", StatusCode: code, RetryAfter: retryAfter}
	}
	cases := map[string]struct {
		reason      string
		op          remoteOp
		err         error
		wantReady   string
		wantRetry   retryKind
		wantAfter   time.Duration
		wantUnauthd bool
	}{
		"400 to a create is InvalidSpec": {
			reason: "only a 400 to a create says something about the spec",
			op:     opCreate, err: api(400, 0), wantReady: iamv1alpha1.ReasonInvalidSpec, wantRetry: retryOnSpecChange,
		},
		"422 to a create is retried": {
			reason: "no other 4xx freezes an ApiKey",
			op:     opCreate, err: api(422, 0), wantReady: iamv1alpha1.ReasonRemoteError, wantRetry: retryBackoff,
		},
		"400 to a list is retried": {
			reason: "a list does not carry the spec",
			op:     opList, err: api(400, 0), wantReady: iamv1alpha1.ReasonRemoteError, wantRetry: retryBackoff,
		},
		"404 to a list is retried": {
			reason: "a list does not carry the spec",
			op:     opList, err: api(404, 0), wantReady: iamv1alpha1.ReasonRemoteError, wantRetry: retryBackoff,
		},
		"422 to a delete is retried": {
			reason: "a refused delete is retried with backoff, not frozen",
			op:     opDelete, err: api(422, 0), wantReady: iamv1alpha1.ReasonDeleteFailed, wantRetry: retryBackoff,
		},
		"403 to a delete waits the refused delay": {
			reason: "a read-only role is retried with long backoff",
			op:     opDelete, err: api(403, 0), wantReady: iamv1alpha1.ReasonDeleteFailed, wantRetry: retryAfter, wantAfter: 10 * time.Minute,
		},
		"401 marks the connection": {
			reason: "a refused token is the connection's problem",
			op:     opList, err: api(401, 0), wantReady: iamv1alpha1.ReasonConnectionNotReady, wantRetry: retryAfter, wantAfter: time.Minute, wantUnauthd: true,
		},
		"429 waits for the connection's backoff": {
			reason: "throttling is per connection",
			op:     opCreate, err: api(429, 0), wantReady: iamv1alpha1.ReasonRemoteError, wantRetry: retryAfter, wantAfter: 7 * time.Second,
		},
		"5xx waits for the connection's backoff": {
			reason: "failures back the connection off",
			op:     opList, err: api(503, 0), wantReady: iamv1alpha1.ReasonRemoteError, wantRetry: retryAfter, wantAfter: 7 * time.Second,
		},
		"a held-back call waits as long as it was told": {
			reason: "no call is made while the connection is held back",
			op:     opDelete, err: &heldBackError{wait: 3 * time.Second, cause: errors.New("503")}, wantRetry: retryAfter, wantAfter: 3 * time.Second,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := decideFailure(tc.op, "call", tc.err, "Connection/ns/api", 7*time.Second, 10*time.Minute)
			if got.readyReason != tc.wantReady || got.retry != tc.wantRetry || got.after != tc.wantAfter || got.unauthorized != tc.wantUnauthd {
				t.Errorf("%s: got ready %q retry %d after %s unauthorized %v; want %q %d %s %v",
					tc.reason, got.readyReason, got.retry, got.after, got.unauthorized, tc.wantReady, tc.wantRetry, tc.wantAfter, tc.wantUnauthd)
			}
			if got.message == "" || got.syncedReason == "" {
				t.Errorf("%s: an outcome needs a Synced reason and a message, got %+v", tc.reason, got)
			}
		})
	}
}

func TestRetirementRule(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	prev := iamv1alpha1.PreviousKey{
		KeyID: "k", ReplacedAt: metav1.NewTime(t0), DeleteAfter: metav1.NewTime(t0.Add(time.Hour)),
		LastUsedChangedAt: &metav1.Time{Time: t0},
	}
	cases := map[string]struct {
		reason       string
		now          time.Time
		restartsDone bool
		retires      bool
	}{
		"in use within grace": {reason: "used recently, grace not over", now: t0.Add(time.Minute), restartsDone: true},
		"idle and restarted": {
			reason: "unused for the window after every target restarted", now: t0.Add(20 * time.Minute), restartsDone: true, retires: true,
		},
		"idle but a restart failed": {
			reason: "early retirement waits for the restarts", now: t0.Add(20 * time.Minute), restartsDone: false,
		},
		"grace over with a failed restart": {
			reason: "at gracePeriod the old key goes regardless", now: t0.Add(time.Hour), restartsDone: false, retires: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := retirementRule(prev, tc.now, 10*time.Minute, tc.restartsDone, time.Hour)
			if (got != "") != tc.retires {
				t.Errorf("%s: retirementRule() = %q, want retires=%v", tc.reason, got, tc.retires)
			}
		})
	}
}

// A remote clock far behind must not make a key due at once: the schedule
// counts from when the operator recorded the key, by its own clock.
func TestNextRotationIgnoresARemoteClockThatIsOff(t *testing.T) {
	recorded := time.Unix(1_800_000_000, 0)
	key := &iamv1alpha1.ApiKey{
		Spec: iamv1alpha1.ApiKeySpec{Rotation: &iamv1alpha1.Rotation{Every: &metav1.Duration{Duration: time.Hour}}},
		Status: iamv1alpha1.ApiKeyStatus{
			CreatedAt:     &metav1.Time{Time: recorded.Add(-48 * time.Hour)}, // the API's clock
			KeyRecordedAt: &metav1.Time{Time: recorded},
		},
	}
	got := nextRotation(key)
	if got == nil || !got.Time.Equal(recorded.Add(time.Hour)) {
		t.Fatalf("nextRotation() = %v, want %s (an hour after the operator recorded the key)", got, recorded.Add(time.Hour))
	}
}

// A refusal that quotes the Secret's value loses the value, not its type.
func TestWithoutValueRedactsTheSecret(t *testing.T) {
	value := mobilenext.NewSecret("mob_S3cr3tValueThatMustNotLeak")
	refused := apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "k",
		errors.New("webhook denied data.apiKey="+value.Reveal()))
	err := fmt.Errorf("create Secret k: %w", withoutValue(refused, value))
	if strings.Contains(err.Error(), value.Reveal()) {
		t.Fatalf("the error still holds the value: %v", err)
	}
	if !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("the error does not say what was taken out: %v", err)
	}
	if _, ok := errors.AsType[*apierrors.StatusError](err); !ok {
		t.Fatal("the redacted error lost its type")
	}
	if got := withoutValue(refused, mobilenext.NewSecret("mob_other")); got != refused {
		t.Fatal("an error without the value was changed")
	}
}

// A deadline the reconcile could not act on must not wake the ApiKey again
// at once: found by the simulation as a hot loop of 100ms requeues when a
// previous key's retireWhenUnusedFor window had passed while its rollout
// restart target did not exist.
func TestNextCheckCountsOnlyDeadlinesAhead(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(d)} }
	const period = 10 * time.Minute
	cases := []struct {
		name            string
		status          iamv1alpha1.ApiKeyStatus
		unusedFor       time.Duration
		pendingRestarts []string
		requeue         time.Duration
		// want is the wait expected, or 0 for the sync period with jitter.
		want time.Duration
	}{{
		name: "nothing due: the sync period with up to a tenth of jitter",
	}, {
		name:   "a previous key's grace period ends in 30s",
		status: iamv1alpha1.ApiKeyStatus{PreviousKeys: []iamv1alpha1.PreviousKey{{KeyID: "p", DeleteAfter: *at(30 * time.Second)}}},
		want:   30*time.Second + 100*time.Millisecond,
	}, {
		name: "the unused window passed but the workloads have not restarted: the restart retry decides",
		status: iamv1alpha1.ApiKeyStatus{PreviousKeys: []iamv1alpha1.PreviousKey{{
			KeyID: "p", DeleteAfter: *at(time.Hour), LastUsedChangedAt: at(-20 * time.Minute),
		}}},
		unusedFor: 15 * time.Minute, pendingRestarts: []string{"Deployment/app (not found)"},
		requeue: 40 * time.Second, want: 40 * time.Second,
	}, {
		name: "the unused window ends in 5m, workloads restarted",
		status: iamv1alpha1.ApiKeyStatus{PreviousKeys: []iamv1alpha1.PreviousKey{{
			KeyID: "p", DeleteAfter: *at(time.Hour), LastUsedChangedAt: at(-10 * time.Minute),
		}}},
		unusedFor: 15 * time.Minute, want: 5*time.Minute + 100*time.Millisecond,
	}, {
		name:   "a rotation held past its time waits for the previous key that frees room",
		status: iamv1alpha1.ApiKeyStatus{NextRotationTime: at(-time.Minute), PreviousKeys: []iamv1alpha1.PreviousKey{{KeyID: "p", DeleteAfter: *at(3 * time.Minute)}}},
		want:   3*time.Minute + 100*time.Millisecond,
	}, {
		name:    "a grace period that ended and could not be acted on: the delete's own retry decides",
		status:  iamv1alpha1.ApiKeyStatus{PreviousKeys: []iamv1alpha1.PreviousKey{{KeyID: "p", DeleteAfter: *at(-time.Second)}}},
		requeue: time.Minute, want: time.Minute,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := &iamv1alpha1.ApiKey{Status: tc.status}
			if tc.unusedFor > 0 {
				key.Spec.Rotation = &iamv1alpha1.Rotation{RetireWhenUnusedFor: &metav1.Duration{Duration: tc.unusedFor}}
			}
			rc := &reconcileContext{
				r:   &ApiKeyReconciler{Options: ApiKeyOptions{SyncPeriod: period}},
				key: key, now: now, pendingRestarts: tc.pendingRestarts, requeue: tc.requeue,
			}
			got := rc.nextCheck()
			if tc.want == 0 {
				if got < period || got > period+period/10 {
					t.Errorf("nextCheck() = %s, want within [%s, %s]", got, period, period+period/10)
				}
				return
			}
			if got != tc.want {
				t.Errorf("nextCheck() = %s, want %s", got, tc.want)
			}
		})
	}
}
