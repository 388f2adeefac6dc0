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

package emulator

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Error codes of the error responses.
const (
	codeBadRequest         = "bad_request"
	codeUnauthorized       = "unauthorized"
	codeForbidden          = "forbidden"
	codeNotFound           = "not_found"
	codeMethodNotAllowed   = "method_not_allowed"
	codeConflict           = "conflict"
	codeRequestTooLarge    = "request_too_large"
	codeRateLimited        = "rate_limited"
	codeInternalError      = "internal_error"
	codeBadGateway         = "bad_gateway"
	codeServiceUnavailable = "service_unavailable"
)

// errorBody is the body of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

// errorDetail describes an error in a machine-readable code and a sentence
// meant for humans.
type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeJSON writes v as the JSON body of a response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only values built by this package are encoded, so this is a
		// programming error; still answer in the documented format.
		status = http.StatusInternalServerError
		body, _ = json.Marshal(errorBody{Error: errorDetail{
			Code: codeInternalError, Message: "The response could not be encoded.",
		}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Responses may carry secrets (a created key, a session token) or
	// short-lived state; no cache should keep them.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// writeError writes an error response.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: message}})
}

// writeNotFound answers a request for a path that does not exist.
func writeNotFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, codeNotFound, "The requested resource does not exist.")
}

// writeMethodNotAllowed answers a request whose method the path does not
// support, listing the supported ones.
func writeMethodNotAllowed(w http.ResponseWriter, allowed ...string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed,
		"This method is not allowed on this resource.")
}

// writeNoContent answers 204 without a body.
func writeNoContent(w http.ResponseWriter) {
	w.WriteHeader(http.StatusNoContent)
}

// dropConnection closes the client connection without writing a response.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 connections, and writers that cannot be hijacked, are cut
		// short by aborting the handler instead: net/http then resets the
		// stream or closes the connection without sending what was
		// buffered.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// decodeStrict decodes a JSON request body into v, refusing unknown fields and
// anything after the value.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the request body is empty")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("the request body must hold a single JSON value")
	}
	return nil
}

// writeBodyError answers a request whose body decodeStrict refused.
func writeBodyError(w http.ResponseWriter, err error) {
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		writeError(w, http.StatusRequestEntityTooLarge, codeRequestTooLarge, "The request body is too large.")
		return
	}
	writeError(w, http.StatusBadRequest, codeBadRequest, "The request body is invalid: "+err.Error()+".")
}
