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

package emulator_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mobile-next/apikey-operator/internal/emulator"
	clocktesting "k8s.io/utils/clock/testing"
)

// startTime is the initial time of the fake clock: a whole second, so that
// timestamps render without fractions.
var startTime = time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC)

var (
	keyIDPattern  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	secretPattern = regexp.MustCompile(`^mob_[0-9A-Za-z]{40}$`)
)

// env is an emulator served over real HTTP, bootstrapped with one
// organization and its admin.
type env struct {
	s     *emulator.Server
	ts    *httptest.Server
	clock *clocktesting.FakeClock
	org   string
	user  string
	token string
}

// newEnv starts an emulator with the given options, using a fake clock unless
// opts sets one.
func newEnv(t *testing.T, opts emulator.Options) *env {
	t.Helper()
	clock := clocktesting.NewFakeClock(startTime)
	if opts.Clock == nil {
		opts.Clock = clock
	}
	s := emulator.New(opts)
	org, user, token, err := s.Bootstrap()
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	ts := httptest.NewServer(s)
	// Cleanups run last-registered first: held creates are released before
	// the server waits for its outstanding requests.
	t.Cleanup(ts.Close)
	t.Cleanup(s.ReleaseCreates)
	return &env{s: s, ts: ts, clock: clock, org: org, user: user, token: token}
}

// reqOption adjusts a request before it is sent.
type reqOption func(*http.Request)

func withToken(token string) reqOption {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

func withHeader(name, value string) reqOption {
	return func(r *http.Request) { r.Header.Set(name, value) }
}

// response is a fully read HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// object decodes the body as a JSON object.
func (r response) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decoding body %q: %v", r.body, err)
	}
	return m
}

// errorCode returns the code of an error response, checking its shape.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("decoding error body %q: %v", r.body, err)
	}
	if body.Error.Message == "" {
		t.Errorf("error body %q has no message", r.body)
	}
	return body.Error.Code
}

// send performs a request and reads its response.
func (e *env) send(ctx context.Context, method, path, body string, opts ...reqOption) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.ts.URL+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		return response{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// do performs a request that must get a response.
func (e *env) do(t *testing.T, method, path, body string, opts ...reqOption) response {
	t.Helper()
	resp, err := e.send(t.Context(), method, path, body, opts...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// create creates a key as the bootstrap admin and returns its id and secret.
func (e *env) create(t *testing.T, name string) (id, secret string) {
	t.Helper()
	resp := e.do(t, http.MethodPost, "/api/v1/keys", `{"name":`+quote(name)+`}`, withToken(e.token))
	if resp.status != http.StatusCreated {
		t.Fatalf("create %q: status %d, body %s", name, resp.status, resp.body)
	}
	var created struct {
		ID     string `json:"id"`
		APIKey string `json:"apiKey"`
	}
	if err := json.Unmarshal(resp.body, &created); err != nil {
		t.Fatalf("decoding create response: %v", err)
	}
	return created.ID, created.APIKey
}

// member adds a user with the given role to the bootstrap organization and
// returns a session token for it.
func (e *env) member(t *testing.T, email string, role emulator.Role) string {
	t.Helper()
	user := e.s.AddUser(email, e.org)
	if err := e.s.AddMember(e.org, user, role); err != nil {
		t.Fatalf("AddMember: %v", err)
	}
	token, err := e.s.IssueToken(user, time.Hour)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	return token
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// waitFor polls cond every millisecond until it holds or five seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// forgeToken builds a compact JWT from arbitrary header and claims, signed
// with HMAC-SHA256 under key.
func forgeToken(t *testing.T, key []byte, header, claims any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encoding token part: %v", err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func TestKeyLifecycle(t *testing.T) {
	e := newEnv(t, emulator.Options{})

	list := e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(e.token))
	if list.status != http.StatusOK {
		t.Fatalf("empty list: status %d, body %s", list.status, list.body)
	}
	if ct := list.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if diff := cmp.Diff(map[string]any{"object": "list", "data": []any{}}, list.object(t)); diff != "" {
		t.Errorf("empty list (-want +got):\n%s", diff)
	}

	created := e.do(t, http.MethodPost, "/api/v1/keys", `{"name":"ci runner"}`, withToken(e.token))
	if created.status != http.StatusCreated {
		t.Fatalf("create: status %d, body %s", created.status, created.body)
	}
	first := created.object(t)
	if diff := cmp.Diff([]string{"apiKey", "createdAt", "id", "name"}, sortedKeys(first)); diff != "" {
		t.Errorf("create response fields (-want +got):\n%s", diff)
	}
	firstID, _ := first["id"].(string)
	firstSecret, _ := first["apiKey"].(string)
	if !keyIDPattern.MatchString(firstID) {
		t.Errorf("id = %q, want a version 4 UUID", firstID)
	}
	if !secretPattern.MatchString(firstSecret) {
		t.Errorf("apiKey = %q, want mob_ and 40 base62 characters", firstSecret)
	}
	if first["name"] != "ci runner" || first["createdAt"] != "2026-11-27T13:00:00Z" {
		t.Errorf("create response = %v, want name %q and createdAt %q", first, "ci runner", "2026-11-27T13:00:00Z")
	}

	e.clock.Step(time.Minute)
	secondID, secondSecret := e.create(t, "deploy bot")
	if firstSecret == secondSecret || firstID == secondID {
		t.Fatalf("two keys share an id or a secret")
	}

	list = e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(e.token))
	for _, secret := range []string{firstSecret, secondSecret} {
		if bytes.Contains(list.body, []byte(secret)) {
			t.Errorf("list response contains a secret: %s", list.body)
		}
	}
	want := map[string]any{"object": "list", "data": []any{
		map[string]any{
			"id": firstID, "apiKeySuffix": firstSecret[len(firstSecret)-8:], "name": "ci runner",
			"createdAt": "2026-11-27T13:00:00Z", "lastUsedAt": nil,
		},
		map[string]any{
			"id": secondID, "apiKeySuffix": secondSecret[len(secondSecret)-8:], "name": "deploy bot",
			"createdAt": "2026-11-27T13:01:00Z", "lastUsedAt": nil,
		},
	}}
	if diff := cmp.Diff(want, list.object(t)); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}

	wantKeys := []emulator.Key{
		{ID: firstID, Name: "ci runner", Suffix: firstSecret[len(firstSecret)-8:], CreatedAt: startTime},
		{ID: secondID, Name: "deploy bot", Suffix: secondSecret[len(secondSecret)-8:], CreatedAt: startTime.Add(time.Minute)},
	}
	if diff := cmp.Diff(wantKeys, e.s.Keys(e.org)); diff != "" {
		t.Errorf("Keys (-want +got):\n%s", diff)
	}

	del := e.do(t, http.MethodDelete, "/api/v1/keys/"+firstID, "", withToken(e.token))
	if del.status != http.StatusNoContent || len(del.body) != 0 {
		t.Fatalf("delete: status %d, body %q; want 204 and no body", del.status, del.body)
	}
	if got := e.s.Keys(e.org); len(got) != 1 || got[0].ID != secondID {
		t.Errorf("Keys after delete = %+v, want only %s", got, secondID)
	}
	again := e.do(t, http.MethodDelete, "/api/v1/keys/"+firstID, "", withToken(e.token))
	if again.status != http.StatusNotFound || again.errorCode(t) != "not_found" {
		t.Errorf("second delete: status %d, body %s; want 404 not_found", again.status, again.body)
	}
}

func TestTimestampsAreUTC(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*60*60)
	now := time.Date(2026, 11, 27, 15, 0, 0, 123456789, zone)
	e := newEnv(t, emulator.Options{Clock: clocktesting.NewFakeClock(now)})

	resp := e.do(t, http.MethodPost, "/api/v1/keys", `{"name":"k"}`, withToken(e.token))
	if got, want := resp.object(t)["createdAt"], "2026-11-27T13:00:00.123456789Z"; got != want {
		t.Errorf("createdAt = %v, want %v", got, want)
	}
}

func TestKeysListedByCreationTime(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	// The clock going backwards must not be mistaken for creation order.
	e.clock.Step(time.Hour)
	late, _ := e.create(t, "late")
	e.clock.Step(-2 * time.Hour)
	early, _ := e.create(t, "early")

	keys := e.s.Keys(e.org)
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	if diff := cmp.Diff([]string{early, late}, ids); diff != "" {
		t.Errorf("Keys order (-want +got):\n%s", diff)
	}
	list := e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(e.token))
	var body struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(list.body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Data) != 2 || body.Data[0].ID != early || body.Data[1].ID != late {
		t.Errorf("list order = %s, want %s then %s", list.body, early, late)
	}
}

func TestAPIKeyRefusedOnKeyEndpoints(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	id, secret := e.create(t, "workload")

	tests := []struct {
		name, method, path, body string
	}{
		{"list", http.MethodGet, "/api/v1/keys", ""},
		{"create", http.MethodPost, "/api/v1/keys", `{"name":"sneaky"}`},
		{"delete", http.MethodDelete, "/api/v1/keys/" + id, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Step(time.Minute)
			resp := e.do(t, tt.method, tt.path, tt.body, withToken(secret))
			if resp.status != http.StatusUnauthorized || resp.errorCode(t) != "unauthorized" {
				t.Fatalf("status %d, body %s; want 401 unauthorized", resp.status, resp.body)
			}
			if resp.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate header")
			}
			keys := e.s.Keys(e.org)
			if len(keys) != 1 {
				t.Fatalf("Keys = %+v, want the one key, untouched", keys)
			}
			if keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(e.clock.Now()) {
				t.Errorf("LastUsedAt = %v, want %v", keys[0].LastUsedAt, e.clock.Now())
			}
		})
	}

	t.Run("listed lastUsedAt", func(t *testing.T) {
		list := e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(e.token))
		want := e.clock.Now().Format(time.RFC3339Nano)
		if got := list.object(t)["data"].([]any)[0].(map[string]any)["lastUsedAt"]; got != want {
			t.Errorf("lastUsedAt = %v, want %v", got, want)
		}
	})

	t.Run("unknown key", func(t *testing.T) {
		before := e.s.Keys(e.org)
		e.clock.Step(time.Minute)
		resp := e.do(t, http.MethodGet, "/api/v1/keys", "", withToken("mob_unknown"))
		if resp.status != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", resp.status)
		}
		if diff := cmp.Diff(before, e.s.Keys(e.org)); diff != "" {
			t.Errorf("an unknown key changed stored keys (-before +after):\n%s", diff)
		}
	})
}

func TestPing(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	_, secret := e.create(t, "workload")
	revokedID, revoked := e.create(t, "revoked")
	if err := e.s.RevokeKey(e.org, revokedID); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	e.s.ResetStats()

	tests := []struct {
		name       string
		opts       []reqOption
		wantStatus int
	}{
		{"valid key", []reqOption{withToken(secret)}, http.StatusOK},
		{"session token", []reqOption{withToken(e.token)}, http.StatusUnauthorized},
		{"unknown key", []reqOption{withToken("mob_0000000000000000000000000000000000000000")}, http.StatusUnauthorized},
		{"revoked key", []reqOption{withToken(revoked)}, http.StatusUnauthorized},
		{"no authorization", nil, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(t, http.MethodGet, "/api/v1/ping", "", tt.opts...)
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, body %s; want %d", resp.status, resp.body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusOK {
				if diff := cmp.Diff(map[string]any{"ok": true}, resp.object(t)); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
			} else if code := resp.errorCode(t); code != "unauthorized" {
				t.Errorf("code = %q, want unauthorized", code)
			}
		})
	}

	if k := e.s.Keys(e.org)[0]; k.LastUsedAt == nil || !k.LastUsedAt.Equal(startTime) {
		t.Errorf("LastUsedAt = %v, want %v", k.LastUsedAt, startTime)
	}
	if got := e.s.Stats(); got != (emulator.Stats{}) {
		t.Errorf("pings were counted: %+v", got)
	}
}

func TestUseKey(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	_, secret := e.create(t, "workload")
	e.clock.Step(time.Hour)

	if e.s.UseKey("mob_nope") {
		t.Errorf("UseKey of an unknown secret = true")
	}
	if !e.s.UseKey(secret) {
		t.Fatalf("UseKey of a stored secret = false")
	}
	got := e.s.Keys(e.org)[0].LastUsedAt
	if got == nil || !got.Equal(startTime.Add(time.Hour)) {
		t.Errorf("LastUsedAt = %v, want %v", got, startTime.Add(time.Hour))
	}
	// Snapshots are copies: changing one must not change the store.
	*got = time.Time{}
	if e.s.Keys(e.org)[0].LastUsedAt.IsZero() {
		t.Errorf("a Key snapshot shares memory with the store")
	}
}

func TestSessionTokenRefused(t *testing.T) {
	signingKey := []byte("0123456789abcdef0123456789abcdef")
	e := newEnv(t, emulator.Options{SigningKey: signingKey})
	hs256 := map[string]string{"alg": "HS256", "typ": "JWT"}
	claims := func(sub string) map[string]any {
		return map[string]any{
			"sub": sub, "email": "admin@example.com",
			"iat": startTime.Unix(), "exp": startTime.Add(time.Hour).Unix(),
		}
	}

	// A token forged with the right key must pass, or the cases below would
	// prove nothing about the forging helper.
	if resp := e.do(t, http.MethodGet, "/api/v1/keys", "",
		withToken(forgeToken(t, signingKey, hs256, claims(e.user)))); resp.status != http.StatusOK {
		t.Fatalf("correctly signed token: status %d, body %s", resp.status, resp.body)
	}

	parts := strings.Split(e.token, ".")
	otherUser := e.s.AddUser("other@example.com", e.org)
	otherPayload := strings.Split(forgeToken(t, signingKey, hs256, claims(otherUser)), ".")[1]

	tests := []struct {
		name          string
		authorization string
	}{
		{"missing header", ""},
		{"basic scheme", "Basic YWRtaW46YWRtaW4="},
		{"empty bearer", "Bearer "},
		{"not a jwt", "Bearer not-a-token"},
		{"two segments", "Bearer " + parts[0] + "." + parts[1]},
		{"wrong signing key", "Bearer " + forgeToken(t, []byte("another key"), hs256, claims(e.user))},
		{"tampered payload", "Bearer " + parts[0] + "." + otherPayload + "." + parts[2]},
		{"alg none", "Bearer " + strings.Join(strings.Split(
			forgeToken(t, nil, map[string]string{"alg": "none"}, claims(e.user)), ".")[:2], ".") + "."},
		{"unknown user", "Bearer " + forgeToken(t, signingKey, hs256, claims("user_00000000000000000000"))},
		{"no expiry", "Bearer " + forgeToken(t, signingKey, hs256, map[string]any{"sub": e.user})},
		{"expired", "Bearer " + forgeToken(t, signingKey, hs256, map[string]any{
			"sub": e.user, "iat": startTime.Add(-2 * time.Hour).Unix(), "exp": startTime.Unix(),
		})},
	}
	e.s.ResetStats()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []reqOption
			if tt.authorization != "" {
				opts = append(opts, withHeader("Authorization", tt.authorization))
			}
			resp := e.do(t, http.MethodGet, "/api/v1/keys", "", opts...)
			if resp.status != http.StatusUnauthorized || resp.errorCode(t) != "unauthorized" {
				t.Errorf("status %d, body %s; want 401 unauthorized", resp.status, resp.body)
			}
		})
	}
	if got := e.s.Stats(); got.Unauthorized != len(tests) || got.List != len(tests) {
		t.Errorf("Stats = %+v, want %d lists, all unauthorized", got, len(tests))
	}
}

func TestSessionTokenExpiry(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	token, err := e.s.IssueToken(e.user, time.Hour)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}

	steps := []struct {
		advance    time.Duration
		wantStatus int
	}{
		{0, http.StatusOK},
		{time.Hour - time.Second, http.StatusOK},
		{time.Second, http.StatusUnauthorized},
	}
	for _, step := range steps {
		e.clock.Step(step.advance)
		resp := e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(token))
		if resp.status != step.wantStatus {
			t.Errorf("at %v: status %d, want %d", e.clock.Now().Sub(startTime), resp.status, step.wantStatus)
		}
	}
}

func TestOrganizationSelection(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	beta := e.s.AddOrganization("Beta")
	if err := e.s.AddMember(beta, e.user, emulator.RoleReadOnly); err != nil {
		t.Fatalf("AddMember: %v", err)
	}
	gamma := e.s.AddOrganization("Gamma")

	acmeKey, _ := e.create(t, "acme key")
	betaResp := e.do(t, http.MethodPost, "/api/v1/keys", `{"name":"beta key"}`,
		withToken(e.token), withHeader("X-Organization-Id", beta))
	if betaResp.status != http.StatusCreated {
		t.Fatalf("create in Beta: status %d, body %s", betaResp.status, betaResp.body)
	}
	betaKey, _ := betaResp.object(t)["id"].(string)

	tests := []struct {
		name       string
		orgHeader  string
		wantStatus int
		wantIDs    []string
	}{
		{"default organization", "", http.StatusOK, []string{acmeKey}},
		{"explicit default", e.org, http.StatusOK, []string{acmeKey}},
		{"other member organization", beta, http.StatusOK, []string{betaKey}},
		{"not a member", gamma, http.StatusForbidden, nil},
		{"unknown organization", "org_00000000000000000000", http.StatusForbidden, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []reqOption{withToken(e.token)}
			if tt.orgHeader != "" {
				opts = append(opts, withHeader("X-Organization-Id", tt.orgHeader))
			}
			resp := e.do(t, http.MethodGet, "/api/v1/keys", "", opts...)
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, body %s; want %d", resp.status, resp.body, tt.wantStatus)
			}
			if tt.wantStatus != http.StatusOK {
				if code := resp.errorCode(t); code != "forbidden" {
					t.Errorf("code = %q, want forbidden", code)
				}
				return
			}
			var body struct {
				Data []struct {
					ID string `json:"id"`
				} `json:"data"`
			}
			if err := json.Unmarshal(resp.body, &body); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, d := range body.Data {
				ids = append(ids, d.ID)
			}
			if diff := cmp.Diff(tt.wantIDs, ids); diff != "" {
				t.Errorf("listed ids (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("default organization without membership", func(t *testing.T) {
		for _, defaultOrg := range []string{gamma, ""} {
			user := e.s.AddUser("outsider@example.com", defaultOrg)
			token, err := e.s.IssueToken(user, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			resp := e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(token))
			if resp.status != http.StatusForbidden {
				t.Errorf("default org %q: status %d, want 403", defaultOrg, resp.status)
			}
		}
	})
}

func TestRoles(t *testing.T) {
	tests := []struct {
		role       emulator.Role
		wantDelete int
	}{
		{emulator.RoleAdmin, http.StatusNoContent},
		{emulator.RoleReadWrite, http.StatusNoContent},
		{emulator.RoleReadOnly, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			token := e.member(t, "member@example.com", tt.role)
			victim, _ := e.create(t, "victim")

			if resp := e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(token)); resp.status != http.StatusOK {
				t.Errorf("list: status %d, want 200", resp.status)
			}
			if resp := e.do(t, http.MethodPost, "/api/v1/keys", `{"name":"mine"}`,
				withToken(token)); resp.status != http.StatusCreated {
				t.Errorf("create: status %d, want 201", resp.status)
			}
			resp := e.do(t, http.MethodDelete, "/api/v1/keys/"+victim, "", withToken(token))
			if resp.status != tt.wantDelete {
				t.Fatalf("delete: status %d, body %s; want %d", resp.status, resp.body, tt.wantDelete)
			}
			stillThere := slices.ContainsFunc(e.s.Keys(e.org), func(k emulator.Key) bool { return k.ID == victim })
			if stillThere != (tt.wantDelete == http.StatusForbidden) {
				t.Errorf("key still stored = %v after delete status %d", stillThere, resp.status)
			}
			if tt.wantDelete == http.StatusForbidden {
				if code := resp.errorCode(t); code != "forbidden" {
					t.Errorf("code = %q, want forbidden", code)
				}
				// A member who may not delete cannot probe for ids either.
				unknown := e.do(t, http.MethodDelete, "/api/v1/keys/key_00000000000000000000", "", withToken(token))
				if unknown.status != http.StatusForbidden {
					t.Errorf("delete of an unknown id: status %d, want 403", unknown.status)
				}
			}
		})
	}
}

func TestCreateValidation(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
	}{
		{"empty body", "", http.StatusBadRequest},
		{"invalid json", `{"name":`, http.StatusBadRequest},
		{"not an object", `["name"]`, http.StatusBadRequest},
		{"null body", `null`, http.StatusBadRequest},
		{"missing name", `{}`, http.StatusBadRequest},
		{"null name", `{"name":null}`, http.StatusBadRequest},
		{"number name", `{"name":42}`, http.StatusBadRequest},
		{"empty name", `{"name":""}`, http.StatusBadRequest},
		{"blank name", `{"name":"   "}`, http.StatusBadRequest},
		{"unknown field", `{"name":"k","scope":"all"}`, http.StatusBadRequest},
		{"trailing data", `{"name":"k"} {}`, http.StatusBadRequest},
		{"name too long", `{"name":"` + strings.Repeat("a", 256) + `"}`, http.StatusBadRequest},
		{"name of 255 characters", `{"name":"` + strings.Repeat("a", 255) + `"}`, http.StatusCreated},
		{"name of 255 multibyte characters", `{"name":"` + strings.Repeat("é", 255) + `"}`, http.StatusCreated},
		{"body too large", `{"name":"` + strings.Repeat("a", 70<<10) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			resp := e.do(t, http.MethodPost, "/api/v1/keys", tt.body, withToken(e.token))
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, body %s; want %d", resp.status, resp.body, tt.wantStatus)
			}
			wantKeys := 0
			if tt.wantStatus == http.StatusCreated {
				wantKeys = 1
			} else if code := resp.errorCode(t); tt.wantStatus == http.StatusBadRequest && code != "bad_request" {
				t.Errorf("code = %q, want bad_request", code)
			}
			if got := len(e.s.Keys(e.org)); got != wantKeys {
				t.Errorf("%d keys stored, want %d", got, wantKeys)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	tests := []struct {
		method, path string
		wantStatus   int
		wantAllow    string
	}{
		{http.MethodGet, "/", http.StatusNotFound, ""},
		{http.MethodGet, "/api/v1/unknown", http.StatusNotFound, ""},
		{http.MethodGet, "/api/v1/keys/", http.StatusNotFound, ""},
		{http.MethodDelete, "/api/v1/keys/a/b", http.StatusNotFound, ""},
		{http.MethodGet, "/_emulator/keys", http.StatusNotFound, ""},
		{http.MethodPut, "/api/v1/keys", http.StatusMethodNotAllowed, "GET, POST"},
		{http.MethodGet, "/api/v1/keys/key_00000000000000000000", http.StatusMethodNotAllowed, "DELETE"},
		{http.MethodPost, "/api/v1/ping", http.StatusMethodNotAllowed, "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp := e.do(t, tt.method, tt.path, "", withToken(e.token))
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.status, tt.wantStatus)
			}
			wantCode := "not_found"
			if tt.wantStatus == http.StatusMethodNotAllowed {
				wantCode = "method_not_allowed"
			}
			if code := resp.errorCode(t); code != wantCode {
				t.Errorf("code = %q, want %q", code, wantCode)
			}
			if got := resp.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}
	if got := e.s.Stats(); got != (emulator.Stats{}) {
		t.Errorf("misrouted requests were counted: %+v", got)
	}
}

func TestFaultLatency(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	_, secret := e.create(t, "workload")
	e.s.SetFaults(emulator.Faults{Latency: time.Minute})

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := e.send(ctx, http.MethodGet, "/api/v1/keys", "", withToken(e.token))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("list with a 20ms deadline under 1m latency: err = %v, want a deadline error", err)
	}
	// The request was counted on arrival, even though it never got an answer.
	waitFor(t, "the list to be counted", func() bool { return e.s.Stats().List == 1 })

	// Ping is not a key endpoint and answers at once.
	ctx, cancel = context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := e.send(ctx, http.MethodGet, "/api/v1/ping", "", withToken(secret))
	if err != nil || resp.status != http.StatusOK {
		t.Errorf("ping under latency: status %d, err %v; want 200", resp.status, err)
	}

	e.s.SetFaults(emulator.Faults{})
	if resp := e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(e.token)); resp.status != http.StatusOK {
		t.Errorf("list without faults: status %d, want 200", resp.status)
	}
}

func TestFaultServerErrors(t *testing.T) {
	e := newEnv(t, emulator.Options{
		Faults: emulator.Faults{ServerErrorRate: 1},
		Rand:   rand.New(rand.NewPCG(1, 2)),
	})
	wantCodes := map[int]string{
		http.StatusInternalServerError: "internal_error",
		http.StatusBadGateway:          "bad_gateway",
		http.StatusServiceUnavailable:  "service_unavailable",
	}
	requests := []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/keys", ""},
		{http.MethodPost, "/api/v1/keys", `{"name":"k"}`},
		{http.MethodDelete, "/api/v1/keys/key_00000000000000000000", ""},
	}
	const rounds = 10
	seen := map[int]bool{}
	for range rounds {
		for _, r := range requests {
			resp := e.do(t, r.method, r.path, r.body, withToken(e.token))
			want, ok := wantCodes[resp.status]
			if !ok {
				t.Fatalf("%s %s: status %d, want 500, 502 or 503", r.method, r.path, resp.status)
			}
			if code := resp.errorCode(t); code != want {
				t.Errorf("status %d with code %q, want %q", resp.status, code, want)
			}
			seen[resp.status] = true
		}
	}
	if len(seen) < 2 {
		t.Errorf("only statuses %v in %d server errors", seen, rounds*len(requests))
	}
	if got := len(e.s.Keys(e.org)); got != 0 {
		t.Errorf("%d keys stored by failed creates, want 0", got)
	}
	want := emulator.Stats{List: rounds, Create: rounds, Delete: rounds, ServerErrors: rounds * len(requests)}
	if diff := cmp.Diff(want, e.s.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestFaultThrottle(t *testing.T) {
	tests := []struct {
		retryAfter time.Duration
		wantHeader string
	}{
		{0, "1"},
		{10 * time.Millisecond, "1"},
		{time.Second, "1"},
		{1500 * time.Millisecond, "2"},
		{30 * time.Second, "30"},
	}
	for _, tt := range tests {
		t.Run(tt.retryAfter.String(), func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			e.s.SetFaults(emulator.Faults{ThrottleRate: 1, RetryAfter: tt.retryAfter})
			resp := e.do(t, http.MethodPost, "/api/v1/keys", `{"name":"k"}`, withToken(e.token))
			if resp.status != http.StatusTooManyRequests || resp.errorCode(t) != "rate_limited" {
				t.Fatalf("status %d, body %s; want 429 rate_limited", resp.status, resp.body)
			}
			if got := resp.header.Get("Retry-After"); got != tt.wantHeader {
				t.Errorf("Retry-After = %q, want %q", got, tt.wantHeader)
			}
			if got := len(e.s.Keys(e.org)); got != 0 {
				t.Errorf("%d keys stored by a throttled create, want 0", got)
			}
			if diff := cmp.Diff(emulator.Stats{Create: 1, Throttled: 1}, e.s.Stats()); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFaultLoseCreate(t *testing.T) {
	t.Run("502", func(t *testing.T) {
		e := newEnv(t, emulator.Options{Faults: emulator.Faults{LoseCreateRate: 1}})
		resp := e.do(t, http.MethodPost, "/api/v1/keys", `{"name":"lost"}`, withToken(e.token))
		if resp.status != http.StatusBadGateway || resp.errorCode(t) != "bad_gateway" {
			t.Fatalf("status %d, body %s; want 502 bad_gateway", resp.status, resp.body)
		}
		if bytes.Contains(resp.body, []byte("mob_")) {
			t.Errorf("a lost create response leaks the secret: %s", resp.body)
		}
		if keys := e.s.Keys(e.org); len(keys) != 1 || keys[0].Name != "lost" {
			t.Errorf("Keys = %+v, want the created key", keys)
		}
		if diff := cmp.Diff(emulator.Stats{Create: 1, LostCreates: 1}, e.s.Stats()); diff != "" {
			t.Errorf("Stats (-want +got):\n%s", diff)
		}
	})

	t.Run("dropped connection", func(t *testing.T) {
		e := newEnv(t, emulator.Options{Faults: emulator.Faults{LoseCreateRate: 1, DropConnection: true}})
		resp, err := e.send(t.Context(), http.MethodPost, "/api/v1/keys", `{"name":"lost"}`, withToken(e.token))
		if err == nil {
			t.Fatalf("got a response (status %d, body %s), want a transport error", resp.status, resp.body)
		}
		if keys := e.s.Keys(e.org); len(keys) != 1 || keys[0].Name != "lost" {
			t.Errorf("Keys = %+v, want the created key", keys)
		}
		if got := e.s.Stats().LostCreates; got != 1 {
			t.Errorf("Stats.LostCreates = %d, want 1", got)
		}
	})
}

func TestDeterministicFaults(t *testing.T) {
	statuses := func() []int {
		e := newEnv(t, emulator.Options{
			Faults: emulator.Faults{ServerErrorRate: 0.5},
			Rand:   rand.New(rand.NewPCG(7, 7)),
		})
		out := make([]int, 0, 20)
		for range 20 {
			out = append(out, e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(e.token)).status)
		}
		return out
	}
	first, second := statuses(), statuses()
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("same seed, different outcomes (-first +second):\n%s", diff)
	}
	if !slices.Contains(first, http.StatusOK) || !slices.ContainsFunc(first, func(s int) bool { return s >= 500 }) {
		t.Errorf("statuses %v, want a mix of successes and server errors at rate 0.5", first)
	}
}

// createAsync starts a create request and returns a channel with its outcome.
func (e *env) createAsync(ctx context.Context, name string) <-chan createOutcome {
	out := make(chan createOutcome, 1)
	go func() {
		resp, err := e.send(ctx, http.MethodPost, "/api/v1/keys", `{"name":`+quote(name)+`}`, withToken(e.token))
		out <- createOutcome{resp: resp, err: err}
	}()
	return out
}

// createOutcome is the result of a create request made in the background.
type createOutcome struct {
	resp response
	err  error
}

func TestHoldCreates(t *testing.T) {
	t.Run("release", func(t *testing.T) {
		e := newEnv(t, emulator.Options{})
		e.s.HoldCreates()
		outcome := e.createAsync(t.Context(), "held")
		waitFor(t, "a held create", func() bool { return e.s.HeldCreates() == 1 })

		keys := e.s.Keys(e.org)
		if len(keys) != 1 {
			t.Fatalf("Keys while held = %+v, want the created key", keys)
		}
		select {
		case o := <-outcome:
			t.Fatalf("create answered while held: %+v", o)
		default:
		}

		e.s.ReleaseCreates()
		o := <-outcome
		if o.err != nil || o.resp.status != http.StatusCreated {
			t.Fatalf("create after release: status %d, err %v; want 201", o.resp.status, o.err)
		}
		if id := o.resp.object(t)["id"]; id != keys[0].ID {
			t.Errorf("created id %v, want the stored %s", id, keys[0].ID)
		}
		waitFor(t, "no held create", func() bool { return e.s.HeldCreates() == 0 })

		// Released means no longer holding: new creates answer at once.
		e.create(t, "after release")
	})

	t.Run("client gives up", func(t *testing.T) {
		e := newEnv(t, emulator.Options{})
		e.s.HoldCreates()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		outcome := e.createAsync(ctx, "orphan")
		waitFor(t, "a held create", func() bool { return e.s.HeldCreates() == 1 })

		cancel()
		if o := <-outcome; !errors.Is(o.err, context.Canceled) {
			t.Errorf("cancelled create: err %v, want context.Canceled", o.err)
		}
		waitFor(t, "the held create to end", func() bool { return e.s.HeldCreates() == 0 })
		if keys := e.s.Keys(e.org); len(keys) != 1 || keys[0].Name != "orphan" {
			t.Errorf("Keys = %+v, want the orphaned key", keys)
		}
	})
}

func TestStats(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	_, secret := e.create(t, "k")
	e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(e.token))
	e.do(t, http.MethodGet, "/api/v1/keys", "")
	e.do(t, http.MethodPost, "/api/v1/keys", `{"name":"x"}`, withToken(secret))
	e.do(t, http.MethodPost, "/api/v1/keys", `{}`, withToken(e.token))
	e.do(t, http.MethodDelete, "/api/v1/keys/key_00000000000000000000", "", withToken(e.token))
	e.s.SetFaults(emulator.Faults{ThrottleRate: 1})
	e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(e.token))

	want := emulator.Stats{List: 3, Create: 3, Delete: 1, Unauthorized: 2, Throttled: 1}
	if diff := cmp.Diff(want, e.s.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	e.s.ResetStats()
	if got := e.s.Stats(); got != (emulator.Stats{}) {
		t.Errorf("Stats after ResetStats = %+v, want zero", got)
	}
}

func TestInProcessAPIErrors(t *testing.T) {
	s := emulator.New(emulator.Options{})
	org := s.AddOrganization("Org")
	user := s.AddUser("u@example.com", org)

	tests := []struct {
		name         string
		err          error
		wantNotFound bool
	}{
		{"AddMember unknown organization", s.AddMember("org_nope", user, emulator.RoleAdmin), true},
		{"AddMember unknown user", s.AddMember(org, "user_nope", emulator.RoleAdmin), true},
		{"AddMember invalid role", s.AddMember(org, user, emulator.Role("owner")), false},
		{"IssueToken unknown user", second(s.IssueToken("user_nope", time.Hour)), true},
		{"IssueToken non-positive ttl", second(s.IssueToken(user, 0)), false},
		{"RevokeKey unknown key", s.RevokeKey(org, "key_nope"), true},
		{"RevokeKey unknown organization", s.RevokeKey("org_nope", "key_nope"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(tt.err, emulator.ErrNotFound); got != tt.wantNotFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", tt.err, got, tt.wantNotFound)
			}
		})
	}

	if keys := s.Keys("org_nope"); keys != nil {
		t.Errorf("Keys of an unknown organization = %v, want nil", keys)
	}
	o1, u1, _, err := s.Bootstrap()
	if err != nil {
		t.Fatal(err)
	}
	o2, u2, _, err := s.Bootstrap()
	if err != nil {
		t.Fatal(err)
	}
	if o1 != o2 || u1 != u2 {
		t.Errorf("Bootstrap twice gave (%s, %s) then (%s, %s), want the same", o1, u1, o2, u2)
	}
}

func second[T any](_ T, err error) error { return err }

func TestFaultsJSON(t *testing.T) {
	f := emulator.Faults{
		Latency:         250 * time.Millisecond,
		ServerErrorRate: 0.5,
		ThrottleRate:    0.25,
		RetryAfter:      2 * time.Second,
		LoseCreateRate:  1,
		DropConnection:  true,
	}
	data, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"latency": "250ms", "serverErrorRate": 0.5, "throttleRate": 0.25,
		"retryAfter": "2s", "loseCreateRate": 1.0, "dropConnection": true,
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
	var back emulator.Faults
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back != f {
		t.Errorf("round trip = %+v, want %+v", back, f)
	}

	for _, bad := range []string{`{"latency":"soon"}`, `{"throttleRate":"high"}`, `{"throtleRate":1}`, `{"latency":5}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("decoding %s: no error", bad)
		}
	}

	for _, tt := range []struct {
		f     emulator.Faults
		valid bool
	}{
		{emulator.Faults{}, true},
		{f, true},
		{emulator.Faults{ThrottleRate: 1.5}, false},
		{emulator.Faults{ServerErrorRate: -0.1}, false},
		{emulator.Faults{Latency: -time.Second}, false},
		{emulator.Faults{RetryAfter: -time.Second}, false},
	} {
		if err := tt.f.Validate(); (err == nil) != tt.valid {
			t.Errorf("Validate(%+v) = %v, want valid %v", tt.f, err, tt.valid)
		}
	}
}

func TestAdminAPI(t *testing.T) {
	const adminToken = "let-me-in"
	e := newEnv(t, emulator.Options{AdminToken: adminToken})
	admin := withHeader("X-Emulator-Admin", adminToken)

	t.Run("authentication", func(t *testing.T) { adminAuthentication(t, e) })

	t.Run("routing", func(t *testing.T) { adminRouting(t, e, admin) })

	id, secret := e.create(t, "ci runner")

	t.Run("keys", func(t *testing.T) { adminKeys(t, e, admin, id, secret) })

	t.Run("stats", func(t *testing.T) { adminStats(t, e, admin) })

	t.Run("faults", func(t *testing.T) { adminFaults(t, e, admin) })

	t.Run("hold and release", func(t *testing.T) { adminHoldAndRelease(t, e, admin) })

	t.Run("revoke", func(t *testing.T) { adminRevoke(t, e, admin, id) })

	t.Run("tokens", func(t *testing.T) { adminTokens(t, e, admin) })
}

func adminAuthentication(t *testing.T, e *env) {
	for _, opts := range [][]reqOption{nil, {withHeader("X-Emulator-Admin", "wrong")}, {withToken(e.token)}} {
		resp := e.do(t, http.MethodGet, "/_emulator/stats", "", opts...)
		if resp.status != http.StatusUnauthorized || resp.errorCode(t) != "unauthorized" {
			t.Errorf("status %d, body %s; want 401 unauthorized", resp.status, resp.body)
		}
	}
}

func adminRouting(t *testing.T, e *env, admin reqOption) {
	if resp := e.do(t, http.MethodGet, "/_emulator/nope", "", admin); resp.status != http.StatusNotFound {
		t.Errorf("unknown admin path: status %d, want 404", resp.status)
	}
	resp := e.do(t, http.MethodGet, "/_emulator/hold", "", admin)
	if resp.status != http.StatusMethodNotAllowed || resp.header.Get("Allow") != "POST" {
		t.Errorf("GET /_emulator/hold: status %d, Allow %q; want 405 and POST", resp.status, resp.header.Get("Allow"))
	}
	resp = e.do(t, http.MethodPost, "/_emulator/faults", "{}", admin)
	if resp.status != http.StatusMethodNotAllowed || resp.header.Get("Allow") != "GET, PUT" {
		t.Errorf("POST /_emulator/faults: status %d, Allow %q; want 405 and GET, PUT",
			resp.status, resp.header.Get("Allow"))
	}
}

func adminKeys(t *testing.T, e *env, admin reqOption, id, secret string) {
	resp := e.do(t, http.MethodGet, "/_emulator/keys", "", admin)
	if resp.status != http.StatusOK {
		t.Fatalf("status %d, body %s", resp.status, resp.body)
	}
	want := map[string]any{"data": []any{map[string]any{
		"organizationId": e.org, "id": id, "name": "ci runner",
		"apiKeySuffix": secret[len(secret)-8:], "createdAt": "2026-11-27T13:00:00Z", "lastUsedAt": nil,
	}}}
	if diff := cmp.Diff(want, resp.object(t)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}

func adminStats(t *testing.T, e *env, admin reqOption) {
	resp := e.do(t, http.MethodGet, "/_emulator/stats", "", admin)
	want := map[string]any{
		"list": 0.0, "create": 1.0, "delete": 0.0, "unauthorized": 0.0,
		"throttled": 0.0, "serverErrors": 0.0, "lostCreates": 0.0,
	}
	if diff := cmp.Diff(want, resp.object(t)); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if resp := e.do(t, http.MethodPost, "/_emulator/stats/reset", "", admin); resp.status != http.StatusNoContent {
		t.Errorf("reset: status %d, want 204", resp.status)
	}
	if got := e.s.Stats(); got != (emulator.Stats{}) {
		t.Errorf("Stats after reset = %+v, want zero", got)
	}
}

func adminFaults(t *testing.T, e *env, admin reqOption) {
	resp := e.do(t, http.MethodPut, "/_emulator/faults", `{"throttleRate":1,"retryAfter":"3s"}`, admin)
	if resp.status != http.StatusOK {
		t.Fatalf("PUT faults: status %d, body %s", resp.status, resp.body)
	}
	throttled := e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(e.token))
	if throttled.status != http.StatusTooManyRequests || throttled.header.Get("Retry-After") != "3" {
		t.Errorf("list: status %d, Retry-After %q; want 429 and 3", throttled.status, throttled.header.Get("Retry-After"))
	}
	got := e.do(t, http.MethodGet, "/_emulator/faults", "", admin).object(t)
	if got["throttleRate"] != 1.0 || got["retryAfter"] != "3s" || got["latency"] != "0s" {
		t.Errorf("GET faults = %v", got)
	}

	for _, bad := range []string{`{"throttleRate":2}`, `{"latency":"-1s"}`, `{"latency":"soon"}`, `{"bogus":1}`, ``} {
		if resp := e.do(t, http.MethodPut, "/_emulator/faults", bad, admin); resp.status != http.StatusBadRequest {
			t.Errorf("PUT faults %q: status %d, want 400", bad, resp.status)
		}
	}
	if e.s.Stats().Throttled != 1 {
		t.Errorf("invalid PUTs changed the faults")
	}

	e.do(t, http.MethodPut, "/_emulator/faults", `{}`, admin)
	if resp := e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(e.token)); resp.status != http.StatusOK {
		t.Errorf("list after clearing faults: status %d, want 200", resp.status)
	}
}

func adminHoldAndRelease(t *testing.T, e *env, admin reqOption) {
	held := func() float64 {
		v, _ := e.do(t, http.MethodGet, "/_emulator/held", "", admin).object(t)["held"].(float64)
		return v
	}
	if resp := e.do(t, http.MethodPost, "/_emulator/hold", "", admin); resp.status != http.StatusNoContent {
		t.Fatalf("hold: status %d, want 204", resp.status)
	}
	outcome := e.createAsync(t.Context(), "held")
	waitFor(t, "a held create", func() bool { return held() == 1 })
	if resp := e.do(t, http.MethodPost, "/_emulator/release", "", admin); resp.status != http.StatusNoContent {
		t.Fatalf("release: status %d, want 204", resp.status)
	}
	if o := <-outcome; o.err != nil || o.resp.status != http.StatusCreated {
		t.Errorf("held create: status %d, err %v; want 201", o.resp.status, o.err)
	}
	waitFor(t, "no held create", func() bool { return held() == 0 })
}

func adminRevoke(t *testing.T, e *env, admin reqOption, id string) {
	other := e.s.AddOrganization("Other")
	if err := e.s.AddMember(other, e.user, emulator.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	resp := e.do(t, http.MethodPost, "/api/v1/keys", `{"name":"elsewhere"}`,
		withToken(e.token), withHeader("X-Organization-Id", other))
	otherID, _ := resp.object(t)["id"].(string)

	for _, keyID := range []string{id, otherID} {
		if resp := e.do(t, http.MethodDelete, "/_emulator/keys/"+keyID, "", admin); resp.status != http.StatusNoContent {
			t.Errorf("revoke %s: status %d, want 204", keyID, resp.status)
		}
	}
	if keys := e.s.Keys(other); len(keys) != 0 {
		t.Errorf("Keys(other) = %+v, want none", keys)
	}
	if resp := e.do(t, http.MethodDelete, "/_emulator/keys/"+id, "", admin); resp.status != http.StatusNotFound {
		t.Errorf("second revoke: status %d, want 404", resp.status)
	}
}

func adminTokens(t *testing.T, e *env, admin reqOption) {
	resp := e.do(t, http.MethodPost, "/_emulator/tokens",
		`{"email":"viewer@example.com","role":"read-only","ttl":"1h"}`, admin)
	if resp.status != http.StatusCreated {
		t.Fatalf("status %d, body %s", resp.status, resp.body)
	}
	var issued struct {
		Token  string `json:"token"`
		UserID string `json:"userId"`
	}
	if err := json.Unmarshal(resp.body, &issued); err != nil || issued.Token == "" || issued.UserID == "" {
		t.Fatalf("body %s: %v", resp.body, err)
	}
	victim, _ := e.create(t, "victim")
	if resp := e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(issued.Token)); resp.status != http.StatusOK {
		t.Errorf("read-only list: status %d, want 200", resp.status)
	}
	if resp := e.do(t, http.MethodDelete, "/api/v1/keys/"+victim, "",
		withToken(issued.Token)); resp.status != http.StatusForbidden {
		t.Errorf("read-only delete: status %d, want 403", resp.status)
	}
	e.clock.Step(time.Hour)
	resp = e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(issued.Token))
	if resp.status != http.StatusUnauthorized {
		t.Errorf("list after the ttl: status %d, want 401", resp.status)
	}

	for _, bad := range []struct {
		body       string
		wantStatus int
	}{
		{`{"role":"read-only"}`, http.StatusBadRequest},
		{`{"email":"x@example.com","role":"owner"}`, http.StatusBadRequest},
		{`{"email":"x@example.com","ttl":"forever"}`, http.StatusBadRequest},
		{`{"email":"x@example.com","ttl":"-1h"}`, http.StatusBadRequest},
		{`{"email":"x@example.com","organizationId":"org_nope"}`, http.StatusNotFound},
	} {
		if resp := e.do(t, http.MethodPost, "/_emulator/tokens", bad.body, admin); resp.status != bad.wantStatus {
			t.Errorf("POST tokens %s: status %d, want %d", bad.body, resp.status, bad.wantStatus)
		}
	}
}

func TestAdminTokensWithoutBootstrap(t *testing.T) {
	s := emulator.New(emulator.Options{AdminToken: "t"})
	ts := httptest.NewServer(s)
	defer ts.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/_emulator/tokens",
		strings.NewReader(`{"email":"x@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Emulator-Admin", "t")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("status %d, want 409", resp.StatusCode)
	}
}
