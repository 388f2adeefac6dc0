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

package mobilenext

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// APIError is the one error type for a non-success HTTP answer from the API.
// Its fields are safe to log and to show in a resource's status: they never
// hold a credential.
type APIError struct {
	// Method is the HTTP method of the request.
	Method string
	// Path is the API path of the request, such as /api/v1/keys/key_123,
	// without the base URL.
	Path string
	// StatusCode is the HTTP status code of the answer.
	StatusCode int
	// Code is the machine-readable error code from the body, if any.
	Code string
	// Message is the API's explanation, sanitized and shortened; when the
	// body had no usable message it is empty.
	Message string
	// RetryAfter is the delay the Retry-After header asked for, capped at
	// one hour; 0 if there was none.
	RetryAfter time.Duration
}

// Error returns a one-line description such as
// "DELETE /api/v1/keys/key_1: 403 Forbidden: role read-only cannot delete keys".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Path)
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if text := http.StatusText(e.StatusCode); text != "" {
		b.WriteByte(' ')
		b.WriteString(text)
	}
	switch {
	case e.Message != "":
		b.WriteString(": ")
		b.WriteString(e.Message)
	case e.Code != "":
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after ")
		b.WriteString(e.RetryAfter.String())
		b.WriteByte(')')
	}
	return b.String()
}

// requestError reports a request that did not produce a usable answer: it
// could not be sent, the connection failed or timed out, or a success answer
// could not be read or decoded. All of these are worth retrying later.
//
// Its message is built only from the method, the path, a fixed reason and the
// cause; callers make sure the cause never quotes a response body.
type requestError struct {
	method string
	path   string
	reason string
	err    error
}

func (e *requestError) Error() string {
	msg := e.method + " " + e.path + ": " + e.reason
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *requestError) Unwrap() error { return e.err }

// argumentError reports a call the client refused to send because an argument
// is invalid. Retrying the same call cannot succeed.
type argumentError struct{ msg string }

func (e *argumentError) Error() string { return e.msg }

// Class is the kind of failure an error represents, from the point of view of
// what the caller should do next. Classify computes it once, here, so that
// callers never look at status codes.
type Class int

const (
	// ClassNone is the class of a nil error.
	ClassNone Class = iota
	// ClassBadRequest means the API refused the request as invalid (400,
	// 422 and other client errors without a class of their own): retrying
	// the same request cannot succeed, so the caller should wait until its
	// input changes.
	ClassBadRequest
	// ClassUnauthorized means the API did not accept the credentials (401).
	ClassUnauthorized
	// ClassForbidden means the credentials are valid but not allowed to do
	// this (403).
	ClassForbidden
	// ClassNotFound means the resource does not exist (404).
	ClassNotFound
	// ClassThrottled means the API asked the caller to slow down (429); see
	// RetryAfter.
	ClassThrottled
	// ClassTransient means the failure is likely temporary: a 5xx answer, a
	// timeout, a connection error, or a success answer that was truncated or
	// malformed. The caller should back off and retry.
	ClassTransient
)

// String returns the class's name, such as "NotFound".
func (c Class) String() string {
	switch c {
	case ClassNone:
		return "None"
	case ClassBadRequest:
		return "BadRequest"
	case ClassUnauthorized:
		return "Unauthorized"
	case ClassForbidden:
		return "Forbidden"
	case ClassNotFound:
		return "NotFound"
	case ClassThrottled:
		return "Throttled"
	case ClassTransient:
		return "Transient"
	default:
		return "Class(" + strconv.Itoa(int(c)) + ")"
	}
}

// Classify returns the class of err, looking through wrapped errors.
//
// Errors that did not come from this package, such as a context error, are
// classified as transient unless they wrap one that did: an unknown failure is
// more safely retried with backoff than given up on for good.
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	if apiErr, ok := errors.AsType[*APIError](err); ok {
		return classifyStatus(apiErr.StatusCode)
	}
	if _, ok := errors.AsType[*argumentError](err); ok {
		return ClassBadRequest
	}
	// Everything else, this package's requestError included (connection
	// failures, timeouts, unusable success answers), is worth retrying.
	return ClassTransient
}

// classifyStatus maps a non-success HTTP status code to a class.
func classifyStatus(code int) Class {
	switch {
	case code == http.StatusUnauthorized:
		return ClassUnauthorized
	case code == http.StatusForbidden:
		return ClassForbidden
	case code == http.StatusNotFound:
		return ClassNotFound
	case code == http.StatusTooManyRequests:
		return ClassThrottled
	case code == http.StatusRequestTimeout,
		code == http.StatusConflict,
		code == http.StatusTooEarly:
		// These describe the state of the server or of the exchange, not
		// the request itself, so the same request may succeed later.
		return ClassTransient
	case code >= 400 && code < 500:
		return ClassBadRequest
	default:
		// 5xx, and anything else a well-behaved API does not send here
		// (a redirect, say), is treated as a passing problem.
		return ClassTransient
	}
}

// RetryAfter returns the delay the API asked for with Retry-After on the
// answer err reports, or 0 if there is none.
func RetryAfter(err error) time.Duration {
	if apiErr, ok := errors.AsType[*APIError](err); ok {
		return apiErr.RetryAfter
	}
	return 0
}

// IsNotFound reports whether err is classified as ClassNotFound.
func IsNotFound(err error) bool { return Classify(err) == ClassNotFound }

// IsUnauthorized reports whether err is classified as ClassUnauthorized.
func IsUnauthorized(err error) bool { return Classify(err) == ClassUnauthorized }

// IsForbidden reports whether err is classified as ClassForbidden.
func IsForbidden(err error) bool { return Classify(err) == ClassForbidden }

// IsBadRequest reports whether err is classified as ClassBadRequest.
func IsBadRequest(err error) bool { return Classify(err) == ClassBadRequest }

// IsThrottled reports whether err is classified as ClassThrottled.
func IsThrottled(err error) bool { return Classify(err) == ClassThrottled }

// IsTransient reports whether err is classified as ClassTransient.
func IsTransient(err error) bool { return Classify(err) == ClassTransient }
