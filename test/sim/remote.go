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

package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"time"

	"github.com/mobile-next/apikey-operator/internal/controller"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// The remote side: the operator's real API client talks to the in-process
// emulator through transport, which calls the emulator's ServeHTTP directly
// (no sockets, no goroutines) and injects the network's faults: answers that
// never come back, 5xx and 429s, timeouts, creates committed after the
// client gave up, and listings that leave keys out.

// apiURL is the URL the simulated connections name; nothing listens there.
const apiURL = "http://127.0.0.1:8080"

type transport struct {
	w *World
	p *process
}

// lateCreate is a create the client gave up on (a timeout) that the server
// still commits, at due at the latest.
type lateCreate struct {
	req *http.Request
	due time.Time
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	w, p := t.w, t.p
	what := "remote " + req.Method + " " + req.URL.Path + " org=" + w.orgName(req.Header.Get("X-Organization-Id"))
	if p.dead {
		return nil, errDead
	}
	after, err := w.crashPoint(p, what)
	if err != nil {
		return nil, err
	}
	var body []byte
	if req.Body != nil {
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
	}
	clone := func() *http.Request {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		return r
	}
	create := req.Method == http.MethodPost
	switch {
	case w.fault(faultHTTP5xx):
		w.tracef("  fault %s: %s", faultHTTP5xx, what)
		return reply(req, http.StatusServiceUnavailable, nil, injectedUnavailableBody), nil
	case w.fault(faultHTTP429RetryAfter):
		secs := 1 + w.rng.IntN(30)
		w.tracef("  fault %s (%ds): %s", faultHTTP429RetryAfter, secs, what)
		retryAfter := http.Header{"Retry-After": {strconv.Itoa(secs)}}
		return reply(req, http.StatusTooManyRequests, retryAfter, injectedRateLimitedBody), nil
	case w.fault(faultHTTP429):
		w.tracef("  fault %s: %s", faultHTTP429, what)
		return reply(req, http.StatusTooManyRequests, nil, injectedRateLimitedBody), nil
	case w.fault(faultTimeout):
		w.tracef("  fault %s: %s (not sent)", faultTimeout, what)
		return nil, timeoutError{}
	case create && w.fault(faultCreateLate):
		// Held by the server past the client's timeout; committed later,
		// within the create-attempt window.
		due := w.clock.Now().Add(time.Duration(1+w.rng.IntN(300)) * time.Second)
		w.late = append(w.late, lateCreate{req: clone(), due: due})
		w.tracef("  fault %s: %s (commits by %s)", faultCreateLate, what, w.since(due))
		return nil, timeoutError{}
	}

	if req.Method == http.MethodDelete {
		w.checkRetirement(path.Base(req.URL.Path))
	}
	rec := httptest.NewRecorder()
	w.emu.ServeHTTP(rec, clone())
	w.countCall()
	resp := rec.Result()
	respBody := rec.Body.Bytes()
	if create && resp.StatusCode == http.StatusCreated {
		w.learnCreated(respBody)
	}
	w.tracef("  %s → %d", what, resp.StatusCode)
	if after {
		return nil, w.crashNow(p)
	}
	switch {
	case create && resp.StatusCode == http.StatusCreated && w.fault(faultCreateLost502):
		w.tracef("  fault %s: the key was stored, the answer is a 502", faultCreateLost502)
		return reply(req, http.StatusBadGateway, nil, `{"error":{"code":"bad_gateway","message":"injected"}}`), nil
	case create && resp.StatusCode == http.StatusCreated && w.fault(faultCreateLostReset):
		w.tracef("  fault %s: the key was stored, the connection dropped", faultCreateLostReset)
		return nil, io.ErrUnexpectedEOF
	case req.Method == http.MethodDelete && resp.StatusCode == http.StatusNoContent && w.fault(faultDeleteLost):
		w.tracef("  fault %s: the key was deleted, the answer is a 502", faultDeleteLost)
		return reply(req, http.StatusBadGateway, nil, `{"error":{"code":"bad_gateway","message":"injected"}}`), nil
	case req.Method == http.MethodGet && resp.StatusCode == http.StatusOK && w.fault(faultListPartial):
		respBody = w.leaveKeysOut(req.Header.Get("X-Organization-Id"), respBody)
	}
	if req.Method == http.MethodGet && resp.StatusCode == http.StatusOK && !w.leftOutNow {
		delete(w.leftOut, req.Header.Get("X-Organization-Id"))
	}
	w.leftOutNow = false
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	resp.ContentLength = int64(len(respBody))
	return resp, nil
}

// timeoutError is a request that timed out on the network.
type timeoutError struct{}

func (timeoutError) Error() string   { return "dial tcp 127.0.0.1:8080: i/o timeout (injected)" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// The bodies of the injected API errors.
const (
	injectedUnavailableBody = `{"error":{"code":"service_unavailable","message":"injected"}}`
	injectedRateLimitedBody = `{"error":{"code":"rate_limited","message":"injected"}}`
)

func reply(req *http.Request, code int, h http.Header, body string) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	return &http.Response{
		StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewBufferString(body)), ContentLength: int64(len(body)), Request: req,
	}
}

// leaveKeysOut drops some entries of a list answer, as a lagging replica
// or a partial answer would. A key left out of one answer is in the next
// answer for the same organization: the operator takes a key for gone only
// when two listings a while apart miss it, so an API that left the same
// live key out again and again could make it forget any key, and no
// protocol that lists could tell.
func (w *World) leaveKeysOut(org string, body []byte) []byte {
	var l struct {
		Object string            `json:"object"`
		Data   []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &l); err != nil || len(l.Data) == 0 {
		return body
	}
	before := w.leftOut[org]
	now := map[string]bool{}
	kept := l.Data[:0:0]
	for _, d := range l.Data {
		var k struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(d, &k)
		if before[k.ID] || w.rng.IntN(2) == 0 {
			kept = append(kept, d)
			continue
		}
		now[k.ID] = true
	}
	w.leftOut[org] = now
	w.leftOutNow = true
	w.tracef("  fault %s: %d of %d keys listed", faultListPartial, len(kept), len(l.Data))
	l.Data = kept
	out, err := json.Marshal(l)
	if err != nil {
		return body
	}
	return out
}

// learnCreated remembers which key a secret belongs to, so that the checks
// can tell which key a Secret serves and spot a secret wherever it leaks.
func (w *World) learnCreated(body []byte) {
	var k struct {
		ID     string `json:"id"`
		APIKey string `json:"apiKey"`
	}
	if err := json.Unmarshal(body, &k); err != nil || k.APIKey == "" {
		return
	}
	w.secretOf[k.APIKey] = k.ID
}

// commitLate lets the server finish a create the client gave up on.
func (w *World) commitLate(l lateCreate) {
	rec := httptest.NewRecorder()
	w.emu.ServeHTTP(rec, l.req)
	w.countCall()
	if rec.Code == http.StatusCreated {
		w.learnCreated(rec.Body.Bytes())
	}
	w.tracef("late create committed by the server → %d", rec.Code)
}

// newClientFactory builds the real API client over the transport of one
// operator process.
func (w *World) newClientFactory(p *process) controller.ClientFactory {
	hc := &http.Client{Transport: &transport{w: w, p: p}}
	return func(cfg mobilenext.Config) (controller.KeyService, error) {
		cfg.HTTPClient = hc
		return mobilenext.NewClient(cfg)
	}
}
