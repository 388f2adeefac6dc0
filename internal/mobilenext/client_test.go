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

package mobilenext_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mobile-next/apikey-operator/internal/emulator"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
	clocktesting "k8s.io/utils/clock/testing"
)

// t0 is when every emulator-backed test starts.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// env is an emulator served over HTTP, bootstrapped with an organization and
// its admin.
type env struct {
	emu    *emulator.Server
	url    string
	clock  *clocktesting.FakeClock
	orgID  string
	userID string
	token  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := clocktesting.NewFakeClock(t0)
	emu := emulator.New(emulator.Options{Clock: clock})
	orgID, userID, token, err := emu.Bootstrap()
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &env{emu: emu, url: srv.URL, clock: clock, orgID: orgID, userID: userID, token: token}
}

// client returns a client of the emulator authenticated with token.
func (e *env) client(t *testing.T, token string, opts ...func(*mobilenext.Config)) *mobilenext.Client {
	t.Helper()
	cfg := mobilenext.Config{URL: e.url, Token: mobilenext.NewToken(token), Timeout: 5 * time.Second}
	for _, opt := range opts {
		opt(&cfg)
	}
	c, err := mobilenext.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// assertNoLeak fails if err, however it is formatted, contains any of values.
func assertNoLeak(t *testing.T, err error, values ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, verb := range []string{"%v", "%+v", "%s", "%q"} {
		out := fmt.Sprintf(verb, err)
		for _, v := range values {
			if v != "" && strings.Contains(out, v) {
				t.Errorf("error formatted with %s leaks a credential: %s", verb, out)
			}
		}
	}
}

// assertClass checks Classify and every Is function against want.
func assertClass(t *testing.T, err error, want mobilenext.Class) {
	t.Helper()
	if got := mobilenext.Classify(err); got != want {
		t.Errorf("Classify(%v) = %v, want %v", err, got, want)
	}
	predicates := map[mobilenext.Class]func(error) bool{
		mobilenext.ClassBadRequest:   mobilenext.IsBadRequest,
		mobilenext.ClassUnauthorized: mobilenext.IsUnauthorized,
		mobilenext.ClassForbidden:    mobilenext.IsForbidden,
		mobilenext.ClassNotFound:     mobilenext.IsNotFound,
		mobilenext.ClassThrottled:    mobilenext.IsThrottled,
		mobilenext.ClassTransient:    mobilenext.IsTransient,
	}
	for class, is := range predicates {
		if got := is(err); got != (class == want) {
			t.Errorf("Is%v(%v) = %v", class, err, got)
		}
	}
}

// apiError returns the *APIError in err's chain, or nil.
func apiError(err error) *mobilenext.APIError {
	if apiErr, ok := errors.AsType[*mobilenext.APIError](err); ok {
		return apiErr
	}
	return nil
}

func TestKeyLifecycleAgainstEmulator(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, e.token)
	ctx := t.Context()

	empty, err := c.ListKeys(ctx)
	if err != nil {
		t.Fatalf("ListKeys on a new organization: %v", err)
	}
	if empty == nil || len(empty) != 0 {
		t.Errorf("ListKeys on a new organization = %#v, want an empty, non-nil slice", empty)
	}

	ci, err := c.CreateKey(ctx, "ci")
	if err != nil {
		t.Fatalf("CreateKey(ci): %v", err)
	}
	e.clock.Step(time.Minute)
	staging, err := c.CreateKey(ctx, "staging")
	if err != nil {
		t.Fatalf("CreateKey(staging): %v", err)
	}
	e.clock.Step(time.Minute)
	if !e.emu.UseKey(staging.Secret.Reveal()) {
		t.Fatal("UseKey: the emulator does not know the created secret")
	}

	for _, k := range []*mobilenext.CreatedKey{ci, staging} {
		if !strings.HasPrefix(k.Secret.Reveal(), "mob_") {
			t.Errorf("created key %s has a secret without the mob_ prefix", k.ID)
		}
	}
	wantCreated := &mobilenext.CreatedKey{ID: ci.ID, Secret: ci.Secret, Name: "ci", CreatedAt: t0}
	if diff := cmp.Diff(wantCreated, ci, cmp.Comparer(func(a, b mobilenext.Secret) bool {
		return a.Reveal() == b.Reveal()
	})); diff != "" {
		t.Errorf("CreateKey(ci) mismatch (-want +got):\n%s", diff)
	}

	keys, err := c.ListKeys(ctx)
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	stored := e.emu.Keys(e.orgID)
	if len(stored) != 2 {
		t.Fatalf("emulator holds %d keys, want 2", len(stored))
	}
	usedAt := t0.Add(2 * time.Minute)
	want := []mobilenext.Key{
		{ID: ci.ID, Suffix: stored[0].Suffix, Name: "ci", CreatedAt: t0},
		{ID: staging.ID, Suffix: stored[1].Suffix, Name: "staging", CreatedAt: t0.Add(time.Minute), LastUsedAt: &usedAt},
	}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("ListKeys mismatch (-want +got):\n%s", diff)
	}
	for i, k := range keys {
		created := []*mobilenext.CreatedKey{ci, staging}[i]
		if !created.Secret.HasSuffix(k.Suffix) {
			t.Errorf("listed suffix of key %s is not the end of its secret", k.ID)
		}
	}

	if err := c.DeleteKey(ctx, ci.ID); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	keys, err = c.ListKeys(ctx)
	if err != nil {
		t.Fatalf("ListKeys after delete: %v", err)
	}
	if diff := cmp.Diff(want[1:], keys); diff != "" {
		t.Errorf("ListKeys after delete mismatch (-want +got):\n%s", diff)
	}
	if got := len(e.emu.Keys(e.orgID)); got != 1 {
		t.Errorf("emulator holds %d keys after delete, want 1", got)
	}
}

func TestErrorsFromEmulator(t *testing.T) {
	tests := []struct {
		name string
		// run performs the failing call and returns the credentials that
		// must not appear in its error, and the error.
		run        func(t *testing.T, e *env) (credentials []string, err error)
		wantClass  mobilenext.Class
		wantStatus int // 0: no HTTP answer; -1: any 5xx
		wantCode   string
		wantRetry  time.Duration
		wantText   string
	}{
		{
			name: "400 empty name",
			run: func(t *testing.T, e *env) ([]string, error) {
				_, err := e.client(t, e.token).CreateKey(t.Context(), "")
				return []string{e.token}, err
			},
			wantClass:  mobilenext.ClassBadRequest,
			wantStatus: http.StatusBadRequest,
			wantCode:   "bad_request",
			wantText:   "create key: POST /api/v1/keys: 400 Bad Request",
		},
		{
			name: "401 malformed token",
			run: func(t *testing.T, e *env) ([]string, error) {
				_, err := e.client(t, "NotASessionToken").ListKeys(t.Context())
				return []string{"NotASessionToken"}, err
			},
			wantClass:  mobilenext.ClassUnauthorized,
			wantStatus: http.StatusUnauthorized,
			wantCode:   "unauthorized",
			wantText:   "list keys: GET /api/v1/keys: 401 Unauthorized",
		},
		{
			name: "401 token signed by someone else",
			run: func(t *testing.T, e *env) ([]string, error) {
				other := emulator.New(emulator.Options{Clock: e.clock})
				_, _, token, err := other.Bootstrap()
				if err != nil {
					t.Fatalf("Bootstrap: %v", err)
				}
				_, err = e.client(t, token).ListKeys(t.Context())
				return []string{token}, err
			},
			wantClass:  mobilenext.ClassUnauthorized,
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "401 expired token",
			run: func(t *testing.T, e *env) ([]string, error) {
				token, err := e.emu.IssueToken(e.userID, time.Hour)
				if err != nil {
					t.Fatalf("IssueToken: %v", err)
				}
				e.clock.Step(2 * time.Hour)
				_, err = e.client(t, token).ListKeys(t.Context())
				return []string{token, e.token}, err
			},
			wantClass:  mobilenext.ClassUnauthorized,
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "401 API key as token",
			run: func(t *testing.T, e *env) ([]string, error) {
				key, err := e.client(t, e.token).CreateKey(t.Context(), "ci")
				if err != nil {
					t.Fatalf("CreateKey: %v", err)
				}
				apiKey := key.Secret.Reveal()
				c := e.client(t, apiKey)
				_, err = c.ListKeys(t.Context())
				return []string{apiKey, e.token}, err
			},
			wantClass:  mobilenext.ClassUnauthorized,
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "403 read-only member deletes",
			run: func(t *testing.T, e *env) ([]string, error) {
				key, err := e.client(t, e.token).CreateKey(t.Context(), "ci")
				if err != nil {
					t.Fatalf("CreateKey: %v", err)
				}
				reader := e.emu.AddUser("reader@example.com", e.orgID)
				if err := e.emu.AddMember(e.orgID, reader, emulator.RoleReadOnly); err != nil {
					t.Fatalf("AddMember: %v", err)
				}
				token, err := e.emu.IssueToken(reader, time.Hour)
				if err != nil {
					t.Fatalf("IssueToken: %v", err)
				}
				c := e.client(t, token, func(cfg *mobilenext.Config) { cfg.OrganizationID = e.orgID })
				err = c.DeleteKey(t.Context(), key.ID)
				if got := len(e.emu.Keys(e.orgID)); got != 1 {
					t.Errorf("emulator holds %d keys after a refused delete, want 1", got)
				}
				return []string{token, key.Secret.Reveal()}, err
			},
			wantClass:  mobilenext.ClassForbidden,
			wantStatus: http.StatusForbidden,
			wantCode:   "forbidden",
			wantText:   "delete key: DELETE /api/v1/keys/",
		},
		{
			name: "403 organization the user is not a member of",
			run: func(t *testing.T, e *env) ([]string, error) {
				other := e.emu.AddOrganization("Other")
				c := e.client(t, e.token, func(cfg *mobilenext.Config) { cfg.OrganizationID = other })
				_, err := c.ListKeys(t.Context())
				return []string{e.token}, err
			},
			wantClass:  mobilenext.ClassForbidden,
			wantStatus: http.StatusForbidden,
			wantCode:   "forbidden",
		},
		{
			name: "404 unknown key",
			run: func(t *testing.T, e *env) ([]string, error) {
				return []string{e.token}, e.client(t, e.token).DeleteKey(t.Context(), "key_0000000000")
			},
			wantClass:  mobilenext.ClassNotFound,
			wantStatus: http.StatusNotFound,
			wantCode:   "not_found",
			wantText:   "delete key: DELETE /api/v1/keys/key_0000000000: 404 Not Found",
		},
		{
			name: "429 with Retry-After",
			run: func(t *testing.T, e *env) ([]string, error) {
				e.emu.SetFaults(emulator.Faults{ThrottleRate: 1, RetryAfter: 7 * time.Second})
				_, err := e.client(t, e.token).ListKeys(t.Context())
				return []string{e.token}, err
			},
			wantClass:  mobilenext.ClassThrottled,
			wantStatus: http.StatusTooManyRequests,
			wantCode:   "rate_limited",
			wantRetry:  7 * time.Second,
			wantText:   "(retry after 7s)",
		},
		{
			name: "5xx",
			run: func(t *testing.T, e *env) ([]string, error) {
				e.emu.SetFaults(emulator.Faults{ServerErrorRate: 1})
				_, err := e.client(t, e.token).CreateKey(t.Context(), "ci")
				return []string{e.token}, err
			},
			wantClass:  mobilenext.ClassTransient,
			wantStatus: -1,
		},
		{
			name: "create answer lost as 502",
			run: func(t *testing.T, e *env) ([]string, error) {
				e.emu.SetFaults(emulator.Faults{LoseCreateRate: 1})
				_, err := e.client(t, e.token).CreateKey(t.Context(), "ci")
				if got := len(e.emu.Keys(e.orgID)); got != 1 {
					t.Errorf("emulator holds %d keys after a lost create, want 1", got)
				}
				return []string{e.token}, err
			},
			wantClass:  mobilenext.ClassTransient,
			wantStatus: http.StatusBadGateway,
		},
		{
			name: "create connection dropped",
			run: func(t *testing.T, e *env) ([]string, error) {
				e.emu.SetFaults(emulator.Faults{LoseCreateRate: 1, DropConnection: true})
				_, err := e.client(t, e.token).CreateKey(t.Context(), "ci")
				if got := len(e.emu.Keys(e.orgID)); got != 1 {
					t.Errorf("emulator holds %d keys after a dropped create, want 1", got)
				}
				return []string{e.token}, err
			},
			wantClass: mobilenext.ClassTransient,
			wantText:  "create key: POST /api/v1/keys: ",
		},
		{
			name: "timeout",
			run: func(t *testing.T, e *env) ([]string, error) {
				e.emu.SetFaults(emulator.Faults{Latency: 3 * time.Second})
				// The answer would come, after the latency; only the
				// timeout can turn it into this error.
				c := e.client(t, e.token, func(cfg *mobilenext.Config) { cfg.Timeout = 100 * time.Millisecond })
				_, err := c.ListKeys(t.Context())
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
				}
				return []string{e.token}, err
			},
			wantClass: mobilenext.ClassTransient,
			wantText:  "list keys: GET /api/v1/keys: request timed out after 100ms",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			credentials, err := tt.run(t, e)
			if err == nil {
				t.Fatal("the call succeeded, want an error")
			}
			assertClass(t, err, tt.wantClass)
			assertNoLeak(t, err, credentials...)
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
			if got := mobilenext.RetryAfter(err); got != tt.wantRetry {
				t.Errorf("RetryAfter() = %v, want %v", got, tt.wantRetry)
			}

			apiErr := apiError(err)
			switch {
			case tt.wantStatus == 0:
				if apiErr != nil {
					t.Errorf("error wraps an HTTP answer %v, want none", apiErr)
				}
				return
			case apiErr == nil:
				t.Fatalf("error %v does not wrap an *APIError", err)
			case tt.wantStatus == -1:
				if apiErr.StatusCode < 500 || apiErr.StatusCode > 599 {
					t.Errorf("status = %d, want a 5xx", apiErr.StatusCode)
				}
			case apiErr.StatusCode != tt.wantStatus:
				t.Errorf("status = %d, want %d", apiErr.StatusCode, tt.wantStatus)
			}
			if tt.wantCode != "" && apiErr.Code != tt.wantCode {
				t.Errorf("code = %q, want %q", apiErr.Code, tt.wantCode)
			}
			if apiErr.Message == "" {
				t.Error("the emulator's error message was not kept")
			}
		})
	}
}

// recordedRequest is what a stub server saw of a request.
type recordedRequest struct {
	Method        string
	Path          string
	Authorization string
	Accept        string
	ContentType   string
	UserAgent     string
	OrgID         []string
	Body          string
}

// recorder is a stub API that records requests and answers each one with the
// next canned answer.
type recorder struct {
	mu       sync.Mutex
	requests []recordedRequest
	answer   http.HandlerFunc
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.requests = append(r.requests, recordedRequest{
		Method:        req.Method,
		Path:          req.URL.EscapedPath(),
		Authorization: req.Header.Get("Authorization"),
		Accept:        req.Header.Get("Accept"),
		ContentType:   req.Header.Get("Content-Type"),
		UserAgent:     req.Header.Get("User-Agent"),
		OrgID:         req.Header.Values("X-Organization-Id"),
		Body:          string(body),
	})
	r.mu.Unlock()
	r.answer(w, req)
}

func (r *recorder) recorded() []recordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedRequest(nil), r.requests...)
}

// answerWith returns a handler writing a fixed answer.
func answerWith(status int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// answerByMethod answers like the API would succeed for each method.
func answerByMethod(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		answerWith(http.StatusOK, `{"object":"list","data":[]}`)(w, r)
	case http.MethodPost:
		answerWith(http.StatusCreated, `{"id":"key_1","apiKey":"`+secretValue+`","name":"ci","createdAt":"2026-01-02T03:04:05Z"}`)(w, r)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// stub serves handler and returns a client of it, configured by opts, and the
// recorder.
func stub(t *testing.T, handler http.HandlerFunc, opts ...func(*mobilenext.Config)) (*mobilenext.Client, *recorder) {
	t.Helper()
	rec := &recorder{answer: handler}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	cfg := mobilenext.Config{URL: srv.URL, Token: mobilenext.NewToken(tokenValue), Timeout: 5 * time.Second}
	for _, opt := range opts {
		opt(&cfg)
	}
	c, err := mobilenext.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c, rec
}

func TestRequests(t *testing.T) {
	tests := []struct {
		name      string
		opts      func(*mobilenext.Config)
		urlSuffix string
		wantPath  string
		wantOrg   []string
		wantUA    string
	}{
		{
			name:     "defaults",
			opts:     func(*mobilenext.Config) {},
			wantPath: "/api/v1/keys",
			wantUA:   "apikey-operator/" + mobilenext.Version,
		},
		{
			name: "organization and user agent",
			opts: func(cfg *mobilenext.Config) {
				cfg.OrganizationID = "org_42"
				cfg.UserAgent = "custom/1.0"
			},
			wantPath: "/api/v1/keys",
			wantOrg:  []string{"org_42"},
			wantUA:   "custom/1.0",
		},
		{
			name:      "base URL with a path",
			opts:      func(*mobilenext.Config) {},
			urlSuffix: "/proxy/mobilenext/",
			wantPath:  "/proxy/mobilenext/api/v1/keys",
			wantUA:    "apikey-operator/" + mobilenext.Version,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{answer: answerByMethod}
			srv := httptest.NewServer(rec)
			t.Cleanup(srv.Close)
			cfg := mobilenext.Config{URL: srv.URL + tt.urlSuffix, Token: mobilenext.NewToken(tokenValue)}
			tt.opts(&cfg)
			c, err := mobilenext.NewClient(cfg)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			ctx := t.Context()
			if _, err := c.ListKeys(ctx); err != nil {
				t.Fatalf("ListKeys: %v", err)
			}
			if _, err := c.CreateKey(ctx, `ci "nightly"`); err != nil {
				t.Fatalf("CreateKey: %v", err)
			}
			if err := c.DeleteKey(ctx, "key 1/../x?y#z"); err != nil {
				t.Fatalf("DeleteKey: %v", err)
			}

			base := recordedRequest{
				Authorization: "Bearer " + tokenValue,
				Accept:        "application/json",
				UserAgent:     tt.wantUA,
				OrgID:         tt.wantOrg,
			}
			list, create, del := base, base, base
			list.Method, list.Path = http.MethodGet, tt.wantPath
			create.Method, create.Path = http.MethodPost, tt.wantPath
			create.ContentType, create.Body = "application/json", `{"name":"ci \"nightly\""}`
			del.Method, del.Path = http.MethodDelete, tt.wantPath+"/key%201%2F..%2Fx%3Fy%23z"
			if diff := cmp.Diff([]recordedRequest{list, create, del}, rec.recorded()); diff != "" {
				t.Errorf("requests mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeleteKeyRefusesInvalidIDs(t *testing.T) {
	for _, id := range []string{"", ".", ".."} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			c, rec := stub(t, answerByMethod)
			err := c.DeleteKey(t.Context(), id)
			assertClass(t, err, mobilenext.ClassBadRequest)
			if apiError(err) != nil {
				t.Errorf("error %v wraps an HTTP answer, want none", err)
			}
			if n := len(rec.recorded()); n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
		})
	}
}

func TestDecodeSuccessAnswers(t *testing.T) {
	used := time.Date(2026, 1, 3, 0, 0, 0, 500_000_000, time.UTC)
	c, _ := stub(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			// 200 instead of 201, a null name and an unknown field.
			answerWith(http.StatusOK, `{"id":"key_9","apiKey":"mob_x1","name":null,"createdAt":"2026-01-02T03:04:05+01:00","scopes":["all"]}`)(w, r)
			return
		}
		// "data" before "object", and unknown fields of every kind.
		answerWith(http.StatusOK, `{
			"hasMore": false,
			"meta": {"page": [1, {"next": null, "cursor": "abc"}], "tags": []},
			"data": [
				{"id":"key_1","apiKeySuffix":"a1","name":null,"createdAt":"2026-01-02T03:04:05Z","lastUsedAt":null},
				{"id":"key_2","apiKeySuffix":"LongerSuffixOfUnknownLength","name":"ci","createdAt":"2026-01-02T03:04:06.123Z","lastUsedAt":"2026-01-03T00:00:00.5Z","owner":{"id":"user_1"}},
				{"id":"key_3","apiKeySuffix":"z","createdAt":"2026-01-02T03:04:07Z","lastUsedAt":""}
			],
			"object": "list",
			"total": 3
		}
		`)(w, r)
	})

	keys, err := c.ListKeys(t.Context())
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	want := []mobilenext.Key{
		{ID: "key_1", Suffix: "a1", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{ID: "key_2", Suffix: "LongerSuffixOfUnknownLength", Name: "ci", CreatedAt: time.Date(2026, 1, 2, 3, 4, 6, 123_000_000, time.UTC), LastUsedAt: &used},
		{ID: "key_3", Suffix: "z", CreatedAt: time.Date(2026, 1, 2, 3, 4, 7, 0, time.UTC)},
	}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("ListKeys mismatch (-want +got):\n%s", diff)
	}

	created, err := c.CreateKey(t.Context(), "")
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	if created.ID != "key_9" || created.Name != "" || created.Secret.Reveal() != "mob_x1" ||
		!created.CreatedAt.Equal(time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC)) {
		t.Errorf("CreateKey = %+v, want key_9 with secret mob_x1 and no name", created)
	}
}

// bigList is a list answer of many keys, generated while it is written so
// that the test server never holds it whole.
type bigList struct {
	n int
	// name returns the name of key i.
	name func(i int) string
	// padding is the length of an unknown string field written before
	// "data".
	padding int
	// every, if set, is called after each 5,000 keys written.
	every func()
	// written counts the bytes of the answer.
	written atomic.Int64
}

// bigKey returns key i of a bigList named name.
func bigKey(i int, name string) mobilenext.Key {
	used := time.Date(2026, 2, 1, 0, 0, i%60, 0, time.UTC)
	return mobilenext.Key{
		ID:         fmt.Sprintf("key_%08d", i),
		Suffix:     fmt.Sprintf("Sfx%07d", i),
		Name:       name,
		CreatedAt:  time.Date(2026, 1, 2, 3, 4, i%60, 0, time.UTC),
		LastUsedAt: &used,
	}
}

func (l *bigList) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 32<<10)
	count := func(n int, _ error) { l.written.Add(int64(n)) }
	count(io.WriteString(bw, `{"object":"list",`))
	if l.padding > 0 {
		count(fmt.Fprintf(bw, `"padding":"%s",`, strings.Repeat("x", l.padding)))
	}
	count(io.WriteString(bw, `"data":[`))
	for i := range l.n {
		if i > 0 {
			count(io.WriteString(bw, ","))
		}
		k := bigKey(i, l.name(i))
		count(fmt.Fprintf(bw, `{"id":%q,"apiKeySuffix":%q,"name":%q,"createdAt":%q,"lastUsedAt":%q,"createdBy":{"id":"user_%d","email":"someone%d@example.com"}}`,
			k.ID, k.Suffix, k.Name, k.CreatedAt.Format(time.RFC3339), k.LastUsedAt.Format(time.RFC3339), i%97, i%97))
		if l.every != nil && (i+1)%5000 == 0 {
			l.every()
		}
	}
	count(io.WriteString(bw, `]}`))
	_ = bw.Flush()
}

func TestListKeysLargeAnswer(t *testing.T) {
	// Far beyond the 4 MiB that once cut off every list, with an unknown
	// field larger than that alone.
	const n = 100_000
	name := func(i int) string { return fmt.Sprintf("key number %d of a large organization", i) }
	list := &bigList{n: n, name: name, padding: 5 << 20}
	// Generous, for the race detector: the size of an answer costs time.
	c, _ := stub(t, list.ServeHTTP, func(cfg *mobilenext.Config) { cfg.Timeout = time.Minute })

	keys, err := c.ListKeys(t.Context())
	if err != nil {
		t.Fatalf("ListKeys of %d keys: %v", n, err)
	}
	if len(keys) != n {
		t.Fatalf("ListKeys returned %d keys, want %d", len(keys), n)
	}
	for _, i := range []int{0, 1, n / 2, n - 1} {
		if diff := cmp.Diff(bigKey(i, name(i)), keys[i]); diff != "" {
			t.Errorf("key %d mismatch (-want +got):\n%s", i, diff)
		}
	}
	if size := list.written.Load(); size < 20<<20 {
		t.Errorf("the answer has %d bytes, want at least 20 MiB for the test to mean something", size)
	}
}

func TestListKeysKeep(t *testing.T) {
	const (
		created = `"createdAt":"2026-01-02T03:04:05Z"`
		body    = `{"object":"list","data":[` +
			`{"id":"key_1","apiKeySuffix":"a1","name":"ci [k8s-att1]",` + created + `},` +
			`{"id":"key_2","apiKeySuffix":"a2","name":"made by hand",` + created + `},` +
			`{"id":"key_3","apiKeySuffix":"a3","name":null,` + created + `},` +
			`{"id":"key_4","apiKeySuffix":"a4","name":"staging [k8s-att2]",` + created + `}]}`
	)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ours := func(k mobilenext.Key) bool { return strings.Contains(k.Name, " [k8s-") }
	tests := []struct {
		name     string
		keep     func(mobilenext.Key) bool
		body     string
		want     []mobilenext.Key
		wantSeen []string // IDs Keep was called with, in order
		wantErr  string
	}{
		{
			name: "nil keeps every key",
			body: body,
			want: []mobilenext.Key{
				{ID: "key_1", Suffix: "a1", Name: "ci [k8s-att1]", CreatedAt: at},
				{ID: "key_2", Suffix: "a2", Name: "made by hand", CreatedAt: at},
				{ID: "key_3", Suffix: "a3", CreatedAt: at},
				{ID: "key_4", Suffix: "a4", Name: "staging [k8s-att2]", CreatedAt: at},
			},
		},
		{
			name: "keeps only the operator's keys, in order",
			keep: ours,
			body: body,
			want: []mobilenext.Key{
				{ID: "key_1", Suffix: "a1", Name: "ci [k8s-att1]", CreatedAt: at},
				{ID: "key_4", Suffix: "a4", Name: "staging [k8s-att2]", CreatedAt: at},
			},
			wantSeen: []string{"key_1", "key_2", "key_3", "key_4"},
		},
		{
			name:     "keeping nothing yields an empty list",
			keep:     func(mobilenext.Key) bool { return false },
			body:     body,
			want:     []mobilenext.Key{},
			wantSeen: []string{"key_1", "key_2", "key_3", "key_4"},
		},
		{
			name:     "a malformed key fails the list even if Keep would drop it",
			keep:     ours,
			body:     `{"object":"list","data":[{"id":"key_1","apiKeySuffix":"a1","name":"ci [k8s-att1]",` + created + `},{"id":"key_2","name":"made by hand",` + created + `}]}`,
			wantSeen: []string{"key_1"},
			wantErr:  `key 1: field "apiKeySuffix" is missing`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []string
			var keep func(mobilenext.Key) bool
			if tt.keep != nil {
				keep = func(k mobilenext.Key) bool {
					seen = append(seen, k.ID)
					return tt.keep(k)
				}
			}
			c, _ := stub(t, answerWith(http.StatusOK, tt.body), func(cfg *mobilenext.Config) { cfg.Keep = keep })
			keys, err := c.ListKeys(t.Context())
			switch {
			case tt.wantErr != "" && err == nil:
				t.Fatalf("ListKeys succeeded, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ListKeys: %v", err)
			}
			// cmp.Diff tells an empty slice from nil, and ListKeys never
			// returns nil on success.
			if diff := cmp.Diff(tt.want, keys); diff != "" {
				t.Errorf("ListKeys mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSeen, seen); diff != "" {
				t.Errorf("keys shown to Keep mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// heapPeak records the largest live heap seen by sample.
type heapPeak struct {
	mu  sync.Mutex
	max uint64
}

// sample collects garbage and records the live heap. Collecting first makes
// the figure what is held, not what happens to be awaiting collection.
func (p *heapPeak) sample() {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	p.mu.Lock()
	p.max = max(p.max, m.HeapAlloc)
	p.mu.Unlock()
}

func TestListKeysMemoryBoundedByKeptKeys(t *testing.T) {
	// The peak of the live heap while the answer is in flight is what a
	// large organization costs, so it is sampled during the call: by the
	// server as it writes, which sees a client buffering the body, and by
	// Keep as keys are decoded, which sees a client holding all of them.
	// Allocation totals would not tell the two apart, since a streaming
	// decoder too allocates a few small strings per key, and the heap after
	// the call has already let go of either.
	const n = 100_000
	const bound = 4 << 20
	name := func(i int) string {
		if i%20_000 == 0 {
			return fmt.Sprintf("ci %d [k8s-att%d]", i, i)
		}
		return fmt.Sprintf("key number %d of a large organization", i)
	}
	var peak heapPeak
	list := &bigList{n: n, name: name, every: peak.sample}
	decoded := 0
	keep := func(k mobilenext.Key) bool {
		if decoded++; decoded%5000 == 0 {
			peak.sample()
		}
		return strings.Contains(k.Name, " [k8s-")
	}
	c, _ := stub(t, list.ServeHTTP, func(cfg *mobilenext.Config) {
		cfg.Keep = keep
		// Generous, for the race detector and the samples' collections.
		cfg.Timeout = time.Minute
	})

	peak.sample()
	base := peak.max
	peak.max = 0
	keys, err := c.ListKeys(t.Context())
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}

	var want []mobilenext.Key
	for i := 0; i < n; i += 20_000 {
		want = append(want, bigKey(i, name(i)))
	}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("ListKeys mismatch (-want +got):\n%s", diff)
	}
	if decoded != n {
		t.Errorf("Keep saw %d keys, want %d", decoded, n)
	}
	size := list.written.Load()
	if size < 20<<20 {
		t.Errorf("the answer has %d bytes, want at least 20 MiB for the test to mean something", size)
	}
	growth := int64(peak.max) - int64(base)
	t.Logf("answer: %d bytes; live heap: %d bytes before, peak growth %d bytes", size, base, growth)
	if growth > bound {
		t.Errorf("the live heap grew by %d bytes while listing a %d-byte answer, want at most %d", growth, size, bound)
	}
}

func TestUnusableSuccessAnswers(t *testing.T) {
	const created = `"createdAt":"2026-01-02T03:04:05Z"`
	tests := []struct {
		name     string
		create   bool // CreateKey rather than ListKeys
		status   int
		body     string
		wantText string
	}{
		{name: "list malformed JSON", body: `{"object":"list","data":[{"id":"key_1",`, wantText: "malformed JSON"},
		{name: "list empty body", body: ``, wantText: "empty body"},
		{name: "list 204", status: http.StatusNoContent, wantText: "empty body"},
		{name: "list array", body: `[]`, wantText: "not a JSON object"},
		{name: "list HTML", body: `<html>maintenance</html>`, wantText: "not a JSON object"},
		{name: "list wrong object", body: `{"object":"key","data":[]}`, wantText: `"object" is not "list"`},
		{name: "list without object", body: `{"data":[]}`, wantText: `"object" is not "list"`},
		{name: "list without data", body: `{"object":"list"}`, wantText: `"data" is missing`},
		{name: "list null data", body: `{"object":"list","data":null}`, wantText: `"data" is missing`},
		{name: "list data not an array", body: `{"object":"list","data":{}}`, wantText: `field "data" has the wrong type`},
		{name: "list key without id", body: `{"object":"list","data":[{"apiKeySuffix":"a1",` + created + `}]}`, wantText: `key 0: field "id" is missing`},
		{name: "list key without suffix", body: `{"object":"list","data":[{"id":"key_1",` + created + `}]}`, wantText: `field "apiKeySuffix" is missing`},
		{name: "list key with empty suffix", body: `{"object":"list","data":[{"id":"key_1","apiKeySuffix":"",` + created + `}]}`, wantText: `field "apiKeySuffix" is missing`},
		{name: "list key without createdAt", body: `{"object":"list","data":[{"id":"key_1","apiKeySuffix":"a1"}]}`, wantText: `field "createdAt" is missing`},
		{name: "list key with bad createdAt", body: `{"object":"list","data":[{"id":"key_1","apiKeySuffix":"a1","createdAt":"yesterday"}]}`, wantText: `"createdAt" is not an RFC 3339 timestamp`},
		{name: "list key with bad lastUsedAt", body: `{"object":"list","data":[{"id":"key_1","apiKeySuffix":"a1",` + created + `,"lastUsedAt":1767225600}]}`, wantText: `key 0: field "lastUsedAt" has the wrong type`},
		{name: "list second key broken", body: `{"object":"list","data":[{"id":"key_1","apiKeySuffix":"a1",` + created + `},null]}`, wantText: `key 1: field "id" is missing`},
		{name: "list key not an object", body: `{"object":"list","data":["S3cr3tValue"]}`, wantText: `key 0 is not a JSON object`},
		{name: "list key malformed", body: `{"object":"list","data":[{"id":"key_1",,"S3cr3tValue"}]}`, wantText: `key 0: malformed JSON`},
		{name: "list truncated between keys", body: `{"object":"list","data":[{"id":"key_1","apiKeySuffix":"a1",` + created + `},`, wantText: "malformed JSON"},
		{name: "list truncated after data", body: `{"object":"list","data":[]`, wantText: "malformed JSON: the body ends before the object does"},
		{name: "list white space only", body: " \n\t ", wantText: "empty body"},
		{name: "list object not a string", body: `{"object":["list"],"data":[]}`, wantText: `field "object" has the wrong type`},
		{name: "list null object", body: `{"object":null,"data":[]}`, wantText: `"object" is not "list"`},
		{name: "list wrong object after data", body: `{"data":[],"object":"key"}`, wantText: `"object" is not "list"`},
		{name: "list data a string", body: `{"object":"list","data":"S3cr3tValue"}`, wantText: `field "data" has the wrong type`},
		{name: "list malformed unknown field", body: `{"object":"list","extra":[1,,2],"data":[]}`, wantText: "malformed JSON at offset 28"},
		{name: "list name not a string", body: `{"object":"list",5:"S3cr3tValue","data":[]}`, wantText: "malformed JSON at offset 17"},
		{name: "list trailing garbage", body: `{"object":"list","data":[]} {"x":"S3cr3tValue"}`, wantText: "malformed JSON at offset 28: data after the object"},
		{name: "list second object", body: `{"object":"list","data":[]}{"object":"list","data":[]}`, wantText: "data after the object"},
		{name: "create truncated", create: true, body: `{"id":"key_1","apiKey":"` + secretValue + `","createdAt":"2026-`, wantText: "malformed JSON"},
		{name: "create without apiKey", create: true, body: `{"id":"key_1",` + created + `}`, wantText: `"apiKey" is missing`},
		{name: "create apiKey of the wrong kind", create: true, body: `{"id":"key_1","apiKey":"sk_S3cr3tValue",` + created + `}`, wantText: `"apiKey" is not an API key`},
		{name: "create bare prefix", create: true, body: `{"id":"key_1","apiKey":"mob_",` + created + `}`, wantText: `"apiKey" is not an API key`},
		{name: "create apiKey not a string", create: true, body: `{"id":"key_1","apiKey":{"v":"` + secretValue + `"},` + created + `}`, wantText: `"apiKey" has the wrong type`},
		{name: "create without id", create: true, body: `{"apiKey":"` + secretValue + `",` + created + `}`, wantText: `"id" is missing`},
		{name: "create without createdAt", create: true, body: `{"id":"key_1","apiKey":"` + secretValue + `"}`, wantText: `"createdAt" is missing`},
		{name: "create bad createdAt", create: true, body: `{"id":"key_1","apiKey":"` + secretValue + `","createdAt":"` + secretValue + `"}`, wantText: `"createdAt" is not an RFC 3339 timestamp`},
		{name: "create trailing garbage", create: true, body: `{"id":"key_1","apiKey":"` + secretValue + `",` + created + `}{"x":"S3cr3tValue"}`, wantText: "malformed JSON"},
		{
			name:     "create over 64 KiB",
			create:   true,
			body:     `{"id":"key_1","apiKey":"` + secretValue + `",` + created + `,"padding":"` + strings.Repeat("x", 64<<10) + `"}`,
			wantText: "decode response: body exceeds the limit of 65536 bytes",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status := tt.status
			if status == 0 {
				status = http.StatusOK
				if tt.create {
					status = http.StatusCreated
				}
			}
			c, _ := stub(t, answerWith(status, tt.body, "Content-Type", "application/json"))
			var err error
			if tt.create {
				var key *mobilenext.CreatedKey
				key, err = c.CreateKey(t.Context(), "ci")
				if key != nil {
					t.Errorf("CreateKey returned a key along with error %v", err)
				}
			} else {
				var keys []mobilenext.Key
				keys, err = c.ListKeys(t.Context())
				if keys != nil {
					t.Errorf("ListKeys returned keys along with error %v", err)
				}
			}
			if err == nil {
				t.Fatal("the call succeeded, want an error")
			}
			assertClass(t, err, mobilenext.ClassTransient)
			assertNoLeak(t, err, tokenValue, secretValue, "S3cr3tValue", "xxxxxxxx")
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
			if apiError(err) != nil {
				t.Errorf("error %v wraps an *APIError, want none for a 2xx answer", err)
			}
		})
	}
}

// hijack returns a handler that writes raw to the connection and closes it,
// simulating a server or proxy that fails mid-answer.
func hijack(raw string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		_, _ = buf.WriteString(raw)
		_ = buf.Flush()
		_ = conn.Close()
	}
}

func TestBrokenConnections(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		wantText string
	}{
		{
			name:     "closed before any answer",
			handler:  hijack(""),
			wantText: "connection closed before the whole response arrived",
		},
		{
			name:     "closed mid-body",
			handler:  hijack("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"object\":\"list\",\"data\":["),
			wantText: "connection closed before the whole response arrived",
		},
		{
			name:     "garbage instead of HTTP",
			handler:  hijack("SSH-2.0-OpenSSH_9.6\r\n"),
			wantText: "send request: ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := stub(t, tt.handler)
			_, err := c.ListKeys(t.Context())
			if err == nil {
				t.Fatal("ListKeys succeeded, want an error")
			}
			assertClass(t, err, mobilenext.ClassTransient)
			assertNoLeak(t, err, tokenValue)
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
		})
	}
}

func TestListKeysTimeoutMidBody(t *testing.T) {
	// The answer starts and then stalls. What arrived is unfinished JSON,
	// but the error must name the deadline, which is what a retry can cure.
	c, _ := stub(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"key_1","apiKeySuffix":"a1",`)
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}, func(cfg *mobilenext.Config) { cfg.Timeout = 100 * time.Millisecond })
	_, err := c.ListKeys(t.Context())
	if err == nil {
		t.Fatal("ListKeys succeeded, want an error")
	}
	assertClass(t, err, mobilenext.ClassTransient)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if want := "list keys: GET /api/v1/keys: request timed out after 100ms"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
}

func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := mobilenext.NewClient(mobilenext.Config{URL: url, Token: mobilenext.NewToken(tokenValue)})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	_, err = c.ListKeys(t.Context())
	assertClass(t, err, mobilenext.ClassTransient)
	assertNoLeak(t, err, tokenValue)
	if !strings.HasPrefix(err.Error(), "list keys: GET /api/v1/keys: send request: ") {
		t.Errorf("error = %q, want it to say the request could not be sent", err)
	}
}

func TestCanceledContext(t *testing.T) {
	c, rec := stub(t, answerByMethod)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.ListKeys(ctx)
	assertClass(t, err, mobilenext.ClassTransient)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "request canceled") {
		t.Errorf("error %q does not say the request was canceled", err)
	}
	if n := len(rec.recorded()); n != 0 {
		t.Errorf("%d requests sent with a canceled context, want none", n)
	}
}

func TestErrorAnswers(t *testing.T) {
	longText := strings.Repeat("ab", 300)
	tests := []struct {
		name      string
		status    int
		header    []string
		body      string
		wantClass mobilenext.Class
		want      mobilenext.APIError // Method and Path are filled in
		wantText  string
	}{
		{
			name:      "documented shape",
			status:    http.StatusForbidden,
			body:      `{"error":{"code":"forbidden","message":"role read-only cannot delete keys"}}`,
			wantClass: mobilenext.ClassForbidden,
			want:      mobilenext.APIError{StatusCode: 403, Code: "forbidden", Message: "role read-only cannot delete keys"},
			wantText:  "DELETE /api/v1/keys/key_1: 403 Forbidden: role read-only cannot delete keys",
		},
		{
			name:      "error as a string",
			status:    http.StatusBadRequest,
			body:      `{"error":"name must not be empty"}`,
			wantClass: mobilenext.ClassBadRequest,
			want:      mobilenext.APIError{StatusCode: 400, Message: "name must not be empty"},
			wantText:  "DELETE /api/v1/keys/key_1: 400 Bad Request: name must not be empty",
		},
		{
			name:      "top-level message and code",
			status:    http.StatusNotFound,
			body:      `{"code":"not_found","message":"no such key"}`,
			wantClass: mobilenext.ClassNotFound,
			want:      mobilenext.APIError{StatusCode: 404, Code: "not_found", Message: "no such key"},
		},
		{
			name:      "problem details",
			status:    http.StatusUnprocessableEntity,
			header:    []string{"Content-Type", "application/problem+json"},
			body:      `{"type":"about:blank","title":"Unprocessable","detail":"name is too long"}`,
			wantClass: mobilenext.ClassBadRequest,
			want:      mobilenext.APIError{StatusCode: 422, Message: "name is too long"},
		},
		{
			name:      "code without message",
			status:    http.StatusUnauthorized,
			body:      `{"error":{"code":"token_expired"}}`,
			wantClass: mobilenext.ClassUnauthorized,
			want:      mobilenext.APIError{StatusCode: 401, Code: "token_expired"},
			wantText:  "DELETE /api/v1/keys/key_1: 401 Unauthorized: token_expired",
		},
		{
			name:      "JSON of another shape",
			status:    http.StatusInternalServerError,
			body:      `{"status":500,"trace":["a","b"]}`,
			wantClass: mobilenext.ClassTransient,
			want:      mobilenext.APIError{StatusCode: 500},
			wantText:  "DELETE /api/v1/keys/key_1: 500 Internal Server Error",
		},
		{
			name:      "plain text with control characters",
			status:    http.StatusServiceUnavailable,
			header:    []string{"Content-Type", "text/plain"},
			body:      "upstream\x00 \x1b[31mexploded\r\n\tbadly\xff\xfe \u2028again\n",
			wantClass: mobilenext.ClassTransient,
			want:      mobilenext.APIError{StatusCode: 503, Message: "upstream [31mexploded badly again"},
		},
		{
			name:      "long plain text",
			status:    http.StatusBadGateway,
			body:      longText,
			wantClass: mobilenext.ClassTransient,
			want:      mobilenext.APIError{StatusCode: 502, Message: longText[:200] + "..."},
		},
		{
			name:      "long JSON message",
			status:    http.StatusBadRequest,
			body:      `{"error":{"code":"bad_request","message":"` + longText + `"}}`,
			wantClass: mobilenext.ClassBadRequest,
			want:      mobilenext.APIError{StatusCode: 400, Code: "bad_request", Message: longText[:200] + "..."},
		},
		{
			name:      "HTML page",
			status:    http.StatusBadGateway,
			header:    []string{"Content-Type", "text/html"},
			body:      "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
			wantClass: mobilenext.ClassTransient,
			want:      mobilenext.APIError{StatusCode: 502},
			wantText:  "DELETE /api/v1/keys/key_1: 502 Bad Gateway",
		},
		{
			name:      "empty body",
			status:    http.StatusTooManyRequests,
			wantClass: mobilenext.ClassThrottled,
			want:      mobilenext.APIError{StatusCode: 429},
			wantText:  "DELETE /api/v1/keys/key_1: 429 Too Many Requests",
		},
		{
			name:      "message echoing the token",
			status:    http.StatusUnauthorized,
			body:      `{"error":{"code":"unauthorized","message":"token ` + tokenValue + ` is not valid"}}`,
			wantClass: mobilenext.ClassUnauthorized,
			want:      mobilenext.APIError{StatusCode: 401, Code: "unauthorized", Message: "token [REDACTED] is not valid"},
		},
		{
			name:      "huge error body",
			status:    http.StatusInternalServerError,
			body:      "overloaded " + strings.Repeat("z", 1<<20),
			wantClass: mobilenext.ClassTransient,
			want:      mobilenext.APIError{StatusCode: 500, Message: "overloaded " + strings.Repeat("z", 189) + "..."},
		},
		{
			name:      "conflict",
			status:    http.StatusConflict,
			wantClass: mobilenext.ClassTransient,
			want:      mobilenext.APIError{StatusCode: 409},
		},
		{
			name:      "other client error",
			status:    http.StatusRequestEntityTooLarge,
			wantClass: mobilenext.ClassBadRequest,
			want:      mobilenext.APIError{StatusCode: 413},
		},
		{
			name:      "redirect is not followed",
			status:    http.StatusMovedPermanently,
			header:    []string{"Location", "/elsewhere"},
			wantClass: mobilenext.ClassTransient,
			want:      mobilenext.APIError{StatusCode: 301},
			wantText:  "DELETE /api/v1/keys/key_1: 301 Moved Permanently",
		},
		{
			name:      "unknown status",
			status:    599,
			wantClass: mobilenext.ClassTransient,
			want:      mobilenext.APIError{StatusCode: 599},
			wantText:  "DELETE /api/v1/keys/key_1: 599",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := stub(t, answerWith(tt.status, tt.body, tt.header...))
			err := c.DeleteKey(t.Context(), "key_1")
			if err == nil {
				t.Fatal("DeleteKey succeeded, want an error")
			}
			assertClass(t, err, tt.wantClass)
			assertNoLeak(t, err, tokenValue)
			want := tt.want
			want.Method, want.Path = http.MethodDelete, "/api/v1/keys/key_1"
			if diff := cmp.Diff(&want, apiError(err)); diff != "" {
				t.Errorf("APIError mismatch (-want +got):\n%s", diff)
			}
			if tt.wantText != "" {
				if got := apiError(err).Error(); got != tt.wantText {
					t.Errorf("Error() = %q, want %q", got, tt.wantText)
				}
			}
			if got := err.Error(); !strings.HasPrefix(got, "delete key: ") {
				t.Errorf("error %q does not say which operation failed", got)
			}
			if n := len(rec.recorded()); n != 1 {
				t.Errorf("%d requests sent, want 1", n)
			}
		})
	}
}

func TestRetryAfterHeader(t *testing.T) {
	date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	httpDate := func(t time.Time) string { return t.Format(http.TimeFormat) }
	tests := []struct {
		name      string
		status    int
		header    []string
		wantClass mobilenext.Class
		want      time.Duration
	}{
		{name: "seconds", header: []string{"Retry-After", "7"}, want: 7 * time.Second},
		{name: "zero", header: []string{"Retry-After", "0"}, want: 0},
		{name: "negative", header: []string{"Retry-After", "-5"}, want: 0},
		{name: "fraction", header: []string{"Retry-After", "1.5"}, want: 0},
		{name: "garbage", header: []string{"Retry-After", "soon"}, want: 0},
		{name: "above the cap", header: []string{"Retry-After", "7200"}, want: time.Hour},
		{name: "overflow", header: []string{"Retry-After", "99999999999999999999999"}, want: time.Hour},
		{
			name:   "HTTP date against the Date header",
			header: []string{"Date", httpDate(date), "Retry-After", httpDate(date.Add(2 * time.Minute))},
			want:   2 * time.Minute,
		},
		{
			name:   "HTTP date in the past",
			header: []string{"Date", httpDate(date), "Retry-After", httpDate(date.Add(-time.Minute))},
			want:   0,
		},
		{
			name:   "HTTP date beyond the cap",
			header: []string{"Date", httpDate(date), "Retry-After", httpDate(date.Add(3 * time.Hour))},
			want:   time.Hour,
		},
		{
			name:   "RFC 850 date",
			header: []string{"Date", httpDate(date), "Retry-After", "Friday, 02-Jan-26 03:05:05 GMT"},
			want:   time.Minute,
		},
		{
			name:      "on a 503",
			status:    http.StatusServiceUnavailable,
			header:    []string{"Retry-After", "30"},
			wantClass: mobilenext.ClassTransient,
			want:      30 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, wantClass := tt.status, tt.wantClass
			if status == 0 {
				status, wantClass = http.StatusTooManyRequests, mobilenext.ClassThrottled
			}
			c, _ := stub(t, answerWith(status, `{"error":{"code":"rate_limited","message":"slow down"}}`, tt.header...))
			_, err := c.ListKeys(t.Context())
			assertClass(t, err, wantClass)
			if got := mobilenext.RetryAfter(err); got != tt.want {
				t.Errorf("RetryAfter() = %v, want %v", got, tt.want)
			}
			wantSuffix := "slow down"
			if tt.want > 0 {
				wantSuffix = "slow down (retry after " + tt.want.String() + ")"
			}
			if !strings.HasSuffix(err.Error(), wantSuffix) {
				t.Errorf("error %q does not end in %q", err, wantSuffix)
			}
		})
	}

	t.Run("HTTP date without a Date header", func(t *testing.T) {
		c, _ := stub(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header()["Date"] = nil // keeps net/http from adding one
			w.Header().Set("Retry-After", httpDate(time.Now().Add(2*time.Hour)))
			w.WriteHeader(http.StatusTooManyRequests)
		})
		_, err := c.ListKeys(t.Context())
		if got := mobilenext.RetryAfter(err); got != time.Hour {
			t.Errorf("RetryAfter() = %v, want the cap of 1h", got)
		}
	})
}

func TestNewClient(t *testing.T) {
	token := mobilenext.NewToken(tokenValue)
	tests := []struct {
		name    string
		cfg     mobilenext.Config
		wantErr string
	}{
		{name: "defaults", cfg: mobilenext.Config{Token: token}},
		{name: "http", cfg: mobilenext.Config{URL: "http://localhost:8080", Token: token}},
		{name: "path and trailing slash", cfg: mobilenext.Config{URL: "https://example.com/mobilenext/", Token: token}},
		{name: "upper-case scheme", cfg: mobilenext.Config{URL: "HTTPS://example.com", Token: token}},
		{name: "organization", cfg: mobilenext.Config{Token: token, OrganizationID: "org_1"}},
		{name: "no token", cfg: mobilenext.Config{}, wantErr: "token is required"},
		{name: "white-space token", cfg: mobilenext.Config{Token: mobilenext.NewToken(" \n")}, wantErr: "token is required"},
		{name: "token with a newline inside", cfg: mobilenext.Config{Token: mobilenext.NewToken("abc\ndef")}, wantErr: "other than visible ASCII"},
		{name: "relative URL", cfg: mobilenext.Config{URL: "/api", Token: token}, wantErr: "scheme must be http or https"},
		{name: "no scheme", cfg: mobilenext.Config{URL: "api.mobilenexthq.com", Token: token}, wantErr: "scheme must be http or https"},
		{name: "ftp", cfg: mobilenext.Config{URL: "ftp://example.com", Token: token}, wantErr: "scheme must be http or https"},
		{name: "no host", cfg: mobilenext.Config{URL: "https:///api", Token: token}, wantErr: "name a host"},
		{name: "opaque", cfg: mobilenext.Config{URL: "https:example.com", Token: token}, wantErr: "name a host"},
		{name: "user info", cfg: mobilenext.Config{URL: "https://admin:Passw0rdSecret@example.com", Token: token}, wantErr: "user information"},
		{name: "query", cfg: mobilenext.Config{URL: "https://example.com?token=Passw0rdSecret", Token: token}, wantErr: "query or fragment"},
		{name: "empty query", cfg: mobilenext.Config{URL: "https://example.com/?", Token: token}, wantErr: "query or fragment"},
		{name: "fragment", cfg: mobilenext.Config{URL: "https://example.com/#x", Token: token}, wantErr: "query or fragment"},
		{name: "unparsable", cfg: mobilenext.Config{URL: "https://Passw0rdSecret@exa mple.com:port", Token: token}, wantErr: "invalid URL"},
		{name: "organization with a newline", cfg: mobilenext.Config{Token: token, OrganizationID: "org_1\nX-Evil: 1"}, wantErr: "organization ID"},
		{name: "negative timeout", cfg: mobilenext.Config{Token: token, Timeout: -time.Second}, wantErr: "timeout -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := mobilenext.NewClient(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewClient: %v", err)
				}
				if c == nil {
					t.Fatal("NewClient returned a nil client")
				}
				return
			}
			if err == nil {
				t.Fatalf("NewClient succeeded, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewClient error = %q, want it to contain %q", err, tt.wantErr)
			}
			assertNoLeak(t, err, tokenValue, "Passw0rdSecret")
		})
	}
}

func TestClientFormatting(t *testing.T) {
	c, err := mobilenext.NewClient(mobilenext.Config{Token: mobilenext.NewToken(tokenValue), OrganizationID: "org_1"})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	want := "mobilenext.Client(" + mobilenext.DefaultURL + ", organization org_1)"
	if got := fmt.Sprintf("%v", c); got != want {
		t.Errorf("%%v of a client = %q, want %q", got, want)
	}
}

func TestClassify(t *testing.T) {
	notFound := &mobilenext.APIError{Method: "DELETE", Path: "/api/v1/keys/k", StatusCode: 404}
	throttled := &mobilenext.APIError{Method: "GET", Path: "/api/v1/keys", StatusCode: 429, RetryAfter: 9 * time.Second}
	tests := []struct {
		name      string
		err       error
		want      mobilenext.Class
		wantRetry time.Duration
	}{
		{name: "nil", err: nil, want: mobilenext.ClassNone},
		{name: "APIError", err: notFound, want: mobilenext.ClassNotFound},
		{name: "wrapped APIError", err: fmt.Errorf("reconcile: %w", fmt.Errorf("delete key: %w", notFound)), want: mobilenext.ClassNotFound},
		{name: "joined APIError", err: errors.Join(errors.New("other"), throttled), want: mobilenext.ClassThrottled, wantRetry: 9 * time.Second},
		{name: "deadline", err: context.DeadlineExceeded, want: mobilenext.ClassTransient},
		{name: "unknown error", err: errors.New("boom"), want: mobilenext.ClassTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err != nil {
				assertClass(t, tt.err, tt.want)
			} else if got := mobilenext.Classify(nil); got != mobilenext.ClassNone {
				t.Errorf("Classify(nil) = %v, want None", got)
			}
			if got := mobilenext.RetryAfter(tt.err); got != tt.wantRetry {
				t.Errorf("RetryAfter() = %v, want %v", got, tt.wantRetry)
			}
		})
	}
}

func TestClassifyStatus(t *testing.T) {
	tests := []struct {
		status int
		want   mobilenext.Class
	}{
		{400, mobilenext.ClassBadRequest},
		{401, mobilenext.ClassUnauthorized},
		{403, mobilenext.ClassForbidden},
		{404, mobilenext.ClassNotFound},
		{405, mobilenext.ClassBadRequest},
		{408, mobilenext.ClassTransient},
		{409, mobilenext.ClassTransient},
		{410, mobilenext.ClassBadRequest},
		{422, mobilenext.ClassBadRequest},
		{425, mobilenext.ClassTransient},
		{429, mobilenext.ClassThrottled},
		{500, mobilenext.ClassTransient},
		{502, mobilenext.ClassTransient},
		{503, mobilenext.ClassTransient},
		{504, mobilenext.ClassTransient},
		{302, mobilenext.ClassTransient},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			assertClass(t, &mobilenext.APIError{StatusCode: tt.status}, tt.want)
		})
	}
}

func TestClassString(t *testing.T) {
	want := map[mobilenext.Class]string{
		mobilenext.ClassNone:         "None",
		mobilenext.ClassBadRequest:   "BadRequest",
		mobilenext.ClassUnauthorized: "Unauthorized",
		mobilenext.ClassForbidden:    "Forbidden",
		mobilenext.ClassNotFound:     "NotFound",
		mobilenext.ClassThrottled:    "Throttled",
		mobilenext.ClassTransient:    "Transient",
		mobilenext.Class(42):         "Class(42)",
	}
	for class, s := range want {
		if got := class.String(); got != s {
			t.Errorf("Class(%d).String() = %q, want %q", int(class), got, s)
		}
	}
}
