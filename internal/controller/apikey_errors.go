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
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// remoteOp is what a failed remote call was doing.
type remoteOp int

const (
	opList remoteOp = iota
	opCreate
	opDelete
)

// retryKind says how a failed reconcile is retried.
type retryKind int

const (
	// retryAfter requeues after outcome.after.
	retryAfter retryKind = iota
	// retryBackoff hands the retry to the controller's per-ApiKey
	// exponential backoff.
	retryBackoff
	// retryOnSpecChange waits until the spec changes.
	retryOnSpecChange
)

// outcome is what the reconciler does about a failed remote call.
type outcome struct {
	// readyReason, when set, is the Ready=False reason the failure shows.
	// It is empty when the failure says nothing about the key, which then
	// keeps its Ready condition (Synced says what failed).
	readyReason string
	// syncedReason is the Synced=False reason.
	syncedReason string
	message      string
	retry        retryKind
	after        time.Duration
	// unauthorized asks the connection to be checked again now.
	unauthorized bool
}

// decideFailure is the one place a failed remote call becomes an outcome:
// from the operation and the class of the error it decides the reasons, the
// message and the retry. Only a 400 to a create says something about the
// spec; every other failure is retried, so no ApiKey stops for good on a
// passing refusal. heldFor is how long the connection now holds calls back
// (its shared backoff after 429s and failures).
func decideFailure(op remoteOp, what string, err error, conn string, heldFor, refusedRetry time.Duration) outcome {
	msg := fmt.Sprintf("%s: %v", what, err)
	if wait, ok := heldBack(err); ok {
		return outcome{syncedReason: iamv1alpha1.ReasonBackingOff, message: msg, retry: retryAfter, after: wait}
	}
	deleting := op == opDelete
	if u, ok := errors.AsType[*unreachableError](err); ok {
		// Nothing was sent: no connection reaches the place the key lives.
		reason := ""
		if deleting {
			reason = iamv1alpha1.ReasonConnectionChanged
		}
		return outcome{
			readyReason: reason, syncedReason: iamv1alpha1.ReasonConnectionChanged, retry: retryAfter, after: time.Minute,
			message: fmt.Sprintf("%s: %v (the ApiKey's connection no longer points there); create a Connection in the ApiKey's namespace with credentials for it, or point a connection back at it", what, u),
		}
	}
	failed := iamv1alpha1.ReasonRemoteError
	if deleting {
		failed = iamv1alpha1.ReasonDeleteFailed
	}
	if _, ok := errors.AsType[*apierrors.StatusError](err); ok {
		// The Kubernetes API server refused a write (a terminating
		// namespace, a quota, a webhook): this ApiKey's own backoff, which
		// grows, so that a refusal that lasts never loops.
		return outcome{readyReason: failed, syncedReason: iamv1alpha1.ReasonReconcileError, message: msg, retry: retryBackoff}
	}
	switch mobilenext.Classify(err) {
	case mobilenext.ClassThrottled, mobilenext.ClassTransient:
		// The connection's backoff has grown: every ApiKey on it waits
		// the same, with no call in between. A key that works stays Ready.
		return outcome{readyReason: failed, syncedReason: iamv1alpha1.ReasonRemoteError, message: msg, retry: retryAfter, after: max(heldFor, time.Second)}
	case mobilenext.ClassUnauthorized:
		reason := iamv1alpha1.ReasonConnectionNotReady
		if deleting {
			reason = iamv1alpha1.ReasonDeleteFailed
		}
		return outcome{
			readyReason: reason, syncedReason: iamv1alpha1.ReasonConnectionNotReady,
			message: fmt.Sprintf("%s: the API refused the session token of %s; store a new token from 'mobilecli auth token'", what, conn),
			retry:   retryAfter, after: time.Minute, unauthorized: true,
		}
	case mobilenext.ClassForbidden:
		reason, hint := iamv1alpha1.ReasonForbidden, "check the role of the user behind "+conn
		if deleting {
			reason, hint = iamv1alpha1.ReasonDeleteFailed, "the user behind "+conn+" needs the read-write or admin role, or set spec.deletionPolicy: Orphan to leave the keys and release the ApiKey"
		}
		return outcome{readyReason: reason, syncedReason: iamv1alpha1.ReasonForbidden, message: msg + "; " + hint, retry: retryAfter, after: refusedRetry}
	case mobilenext.ClassBadRequest:
		if op == opCreate && statusCode(err) == http.StatusBadRequest {
			return outcome{
				readyReason: iamv1alpha1.ReasonInvalidSpec, syncedReason: iamv1alpha1.ReasonInvalidSpec,
				message: fmt.Sprintf("%s: the API refused the request (%v); fix the ApiKey spec", what, err),
				retry:   retryOnSpecChange,
			}
		}
	}
	// Any other answer (a 404 to a list, a 422 to a delete, an error of
	// our own) is retried with the ApiKey's own backoff.
	return outcome{readyReason: failed, syncedReason: iamv1alpha1.ReasonRemoteError, message: msg, retry: retryBackoff}
}

// statusCode is the HTTP status of an API error, 0 for any other error.
func statusCode(err error) int {
	if apiErr, ok := errors.AsType[*mobilenext.APIError](err); ok {
		return apiErr.StatusCode
	}
	return 0
}
