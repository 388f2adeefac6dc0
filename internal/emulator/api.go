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
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	// orgHeader selects the organization a request acts in.
	orgHeader = "X-Organization-Id"
	// maxNameLen is the longest key name accepted, in characters.
	maxNameLen = 255
	// maxBodyBytes bounds request bodies; a key name needs far less.
	maxBodyBytes = 64 << 10
)

// operation is one of the key endpoints.
type operation int

const (
	opList operation = iota
	opCreate
	opDelete
)

// caller is an authenticated user acting in one of its organizations.
type caller struct {
	orgID string
	role  Role
}

// keyListItem is a key as listed. Name and LastUsedAt are pointers because
// the API reports them as null when absent.
type keyListItem struct {
	ID           string     `json:"id"`
	APIKeySuffix string     `json:"apiKeySuffix"`
	Name         *string    `json:"name"`
	CreatedAt    time.Time  `json:"createdAt"`
	LastUsedAt   *time.Time `json:"lastUsedAt"`
}

// keyList is the body of a list response.
type keyList struct {
	Object string        `json:"object"`
	Data   []keyListItem `json:"data"`
}

// createRequest is the body of a create request. Name is a pointer to tell a
// missing or null name from an empty one.
type createRequest struct {
	Name *string `json:"name"`
}

// createdKey is the body of a create response, the only one carrying the
// secret.
type createdKey struct {
	ID        string    `json:"id"`
	APIKey    string    `json:"apiKey"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// serveKeyEndpoint runs a request to a key endpoint through counting, fault
// injection and authentication, then handles it.
func (s *Server) serveKeyEndpoint(w http.ResponseWriter, r *http.Request, op operation) {
	s.count(func(st *Stats) {
		switch op {
		case opList:
			st.List++
		case opCreate:
			st.Create++
		case opDelete:
			st.Delete++
		}
	})

	if !s.injectFaults(w, r) {
		return
	}
	c, ok := s.authenticate(w, r)
	if !ok {
		return
	}

	switch op {
	case opList:
		s.handleList(w, c)
	case opCreate:
		s.handleCreate(w, r, c)
	case opDelete:
		s.handleDelete(w, r, c)
	}
}

// injectFaults applies latency, throttling and server errors. It reports
// whether the request should go on; when not, the response was written or
// the client is gone.
func (s *Server) injectFaults(w http.ResponseWriter, r *http.Request) bool {
	f := s.currentFaults()
	if f.Latency > 0 && !sleepContext(r.Context(), f.Latency) {
		return false
	}
	if s.roll(f.ThrottleRate) {
		s.count(func(st *Stats) { st.Throttled++ })
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(f.RetryAfter), 10))
		writeError(w, http.StatusTooManyRequests, codeRateLimited, "Too many requests; retry later.")
		return false
	}
	if s.roll(f.ServerErrorRate) {
		s.count(func(st *Stats) { st.ServerErrors++ })
		switch s.randIntN(3) {
		case 0:
			writeError(w, http.StatusInternalServerError, codeInternalError, "An unexpected error occurred.")
		case 1:
			writeError(w, http.StatusBadGateway, codeBadGateway, "The upstream service returned an invalid response.")
		default:
			writeError(w, http.StatusServiceUnavailable, codeServiceUnavailable,
				"The service is temporarily unavailable.")
		}
		return false
	}
	return true
}

// sleepContext waits for d or until ctx is done, and reports whether the full
// delay elapsed.
func sleepContext(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// authenticate checks the session token and the organization of a request to
// a key endpoint. When it fails it has written the response.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (caller, bool) {
	token, ok := bearerToken(r)
	if !ok {
		s.refuse(w, "A bearer token is required in the Authorization header.")
		return caller{}, false
	}
	if strings.HasPrefix(token, apiKeyPrefix) {
		// The real service records every request presenting a key as a use
		// of it, including the ones it refuses, so a client that mistakenly
		// manages keys with a key still shows up in lastUsedAt.
		s.UseKey(token)
		s.refuse(w, "API keys cannot be used to manage API keys; use a session token.")
		return caller{}, false
	}
	claims, err := s.verifyToken(token)
	if err != nil {
		s.refuse(w, sentence(err))
		return caller{}, false
	}

	c, status, message := s.resolveCaller(claims.Subject, r.Header.Get(orgHeader))
	switch status {
	case http.StatusOK:
		return c, true
	case http.StatusUnauthorized:
		s.refuse(w, message)
	default:
		writeError(w, status, codeForbidden, message)
	}
	return caller{}, false
}

// resolveCaller finds the organization a user acts in and its role there. An
// empty orgID means the user's default organization. Unknown organizations
// and organizations the user is not a member of are refused alike, so that
// the answer does not reveal which organizations exist.
func (s *Server) resolveCaller(userID, orgID string) (c caller, status int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[userID]
	if !ok {
		return caller{}, http.StatusUnauthorized, "The user of this session token no longer exists."
	}
	explicit := orgID != ""
	if !explicit {
		orgID = u.defaultOrg
	}
	if org, ok := s.orgs[orgID]; ok {
		if role, ok := org.members[u.id]; ok {
			return caller{orgID: org.id, role: role}, http.StatusOK, ""
		}
	}
	if !explicit && orgID == "" {
		return caller{}, http.StatusForbidden, "You have no default organization; select one with " + orgHeader + "."
	}
	return caller{}, http.StatusForbidden, "You are not a member of this organization."
}

// refuse answers 401 to a request to a key endpoint and counts it.
func (s *Server) refuse(w http.ResponseWriter, message string) {
	s.count(func(st *Stats) { st.Unauthorized++ })
	writeUnauthorized(w, message)
}

// writeUnauthorized answers 401 with a bearer challenge.
func writeUnauthorized(w http.ResponseWriter, message string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="mobilenext"`)
	writeError(w, http.StatusUnauthorized, codeUnauthorized, message)
}

// bearerToken extracts the token of a "Bearer" Authorization header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// sentence turns an error into a message for humans: capitalized, ending with
// a period.
func sentence(err error) string {
	msg := err.Error()
	first, size := utf8.DecodeRuneInString(msg)
	return string(unicode.ToUpper(first)) + msg[size:] + "."
}

// handleList answers GET /api/v1/keys.
func (s *Server) handleList(w http.ResponseWriter, c caller) {
	s.mu.Lock()
	var keys []*apiKey
	if org, ok := s.orgs[c.orgID]; ok {
		keys = sortedKeys(org.keys)
	}
	// An empty list is encoded as [], never null.
	items := make([]keyListItem, 0, len(keys))
	for _, k := range keys {
		snap := k.snapshot()
		items = append(items, keyListItem{
			ID:           snap.ID,
			APIKeySuffix: snap.Suffix,
			Name:         nullableString(snap.Name),
			CreatedAt:    snap.CreatedAt,
			LastUsedAt:   snap.LastUsedAt,
		})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, keyList{Object: "list", Data: items})
}

// nullableString returns nil for the empty string, which the API reports as
// null, and a pointer to a copy of v otherwise.
func nullableString(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

// handleCreate answers POST /api/v1/keys.
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, c caller) {
	var req createRequest
	if err := decodeStrict(w, r, &req); err != nil {
		writeBodyError(w, err)
		return
	}
	name, err := validateKeyName(req.Name)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, sentence(err))
		return
	}

	secret := s.newSecret()
	createdAt := s.timestamp()
	s.mu.Lock()
	k, err := s.storeKeyLocked(c.orgID, name, secret, createdAt)
	var resp createdKey
	if err == nil {
		resp = createdKey{ID: k.id, APIKey: secret, Name: k.name, CreatedAt: k.createdAt}
	}
	s.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeInternalError, "The key could not be stored.")
		return
	}

	// From here on the key exists whatever the client sees.
	if !s.holds.wait(r.Context()) {
		return
	}
	if f := s.currentFaults(); s.roll(f.LoseCreateRate) {
		s.count(func(st *Stats) { st.LostCreates++ })
		if f.DropConnection {
			dropConnection(w)
			return
		}
		writeError(w, http.StatusBadGateway, codeBadGateway, "The upstream service returned an invalid response.")
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

// validateKeyName checks the name of a key to create.
func validateKeyName(name *string) (string, error) {
	switch {
	case name == nil:
		return "", errors.New("the name field is required")
	case strings.TrimSpace(*name) == "":
		return "", errors.New("the name must not be empty")
	case utf8.RuneCountInString(*name) > maxNameLen:
		return "", fmt.Errorf("the name must be at most %d characters long", maxNameLen)
	}
	return *name, nil
}

// handleDelete answers DELETE /api/v1/keys/{id}.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, c caller) {
	// Permission is checked before existence so that members who may not
	// delete cannot probe for key ids either.
	if !c.role.canDeleteKeys() {
		writeError(w, http.StatusForbidden, codeForbidden,
			"Your role in this organization does not allow deleting API keys.")
		return
	}
	id := strings.TrimPrefix(r.URL.Path, keysPath+"/")
	s.mu.Lock()
	deleted := s.deleteKeyLocked(c.orgID, id)
	s.mu.Unlock()
	if !deleted {
		writeError(w, http.StatusNotFound, codeNotFound, "No API key with this id exists in the organization.")
		return
	}
	writeNoContent(w)
}

// pingResponse is the body of a successful ping.
type pingResponse struct {
	OK bool `json:"ok"`
}

// handlePing answers GET /api/v1/ping, which only accepts an API key and
// exists so that tests can act as a workload using its key.
func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	token, ok := bearerToken(r)
	if !ok || !strings.HasPrefix(token, apiKeyPrefix) {
		writeUnauthorized(w, "This endpoint requires an API key.")
		return
	}
	if !s.UseKey(token) {
		writeUnauthorized(w, "The API key is invalid or has been revoked.")
		return
	}
	writeJSON(w, http.StatusOK, pingResponse{OK: true})
}
