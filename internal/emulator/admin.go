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
	"crypto/subtle"
	"net/http"
	"strings"
	"time"
)

// adminHeader carries the administrative token.
const adminHeader = "X-Emulator-Admin"

// defaultAdminTokenTTL is the lifetime of tokens from POST /_emulator/tokens
// that do not specify one.
const defaultAdminTokenTTL = 24 * time.Hour

// adminKey is a key as the administrative API lists it.
type adminKey struct {
	OrganizationID string     `json:"organizationId"`
	ID             string     `json:"id"`
	Name           *string    `json:"name"`
	APIKeySuffix   string     `json:"apiKeySuffix"`
	CreatedAt      time.Time  `json:"createdAt"`
	LastUsedAt     *time.Time `json:"lastUsedAt"`
}

// adminKeyList is the body of GET /_emulator/keys.
type adminKeyList struct {
	Data []adminKey `json:"data"`
}

// heldResponse is the body of GET /_emulator/held.
type heldResponse struct {
	Held int `json:"held"`
}

// adminTokenRequest is the body of POST /_emulator/tokens.
type adminTokenRequest struct {
	// Email of the user to create. Required.
	Email string `json:"email"`
	// Role of the user in the organization; read-only when empty.
	Role Role `json:"role"`
	// TTL is the token lifetime as a Go duration string; 24h when empty.
	TTL string `json:"ttl"`
	// OrganizationID is the organization to join; the bootstrap
	// organization when empty.
	OrganizationID string `json:"organizationId"`
}

// adminTokenResponse is the body of a successful POST /_emulator/tokens.
type adminTokenResponse struct {
	Token  string `json:"token"`
	UserID string `json:"userId"`
}

// serveAdmin answers requests under /_emulator/, the administrative API used
// by tests that run the emulator as a separate process:
//
//	GET    /_emulator/keys          every key of every organization
//	DELETE /_emulator/keys/{id}     revoke a key, whatever its organization
//	GET    /_emulator/stats         the request counters
//	POST   /_emulator/stats/reset   zero the request counters
//	POST   /_emulator/hold          start holding create responses
//	POST   /_emulator/release       release held create responses
//	GET    /_emulator/held          {"held": N}
//	GET    /_emulator/faults        the injected faults
//	PUT    /_emulator/faults        replace the injected faults
//	POST   /_emulator/tokens        create a member and a session token
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(adminHeader)), []byte(s.adminToken)) != 1 {
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "The "+adminHeader+" header is missing or wrong.")
		return
	}

	path := strings.TrimPrefix(r.URL.Path, adminPrefix)
	if id, ok := strings.CutPrefix(path, "/keys/"); ok && id != "" && !strings.Contains(id, "/") {
		if r.Method != http.MethodDelete {
			writeMethodNotAllowed(w, http.MethodDelete)
			return
		}
		s.adminRevokeKey(w, id)
		return
	}

	var routes map[string]http.HandlerFunc
	switch path {
	case "/keys":
		routes = map[string]http.HandlerFunc{http.MethodGet: s.adminListKeys}
	case "/stats":
		routes = map[string]http.HandlerFunc{http.MethodGet: s.adminStats}
	case "/stats/reset":
		routes = map[string]http.HandlerFunc{http.MethodPost: s.adminResetStats}
	case "/hold":
		routes = map[string]http.HandlerFunc{http.MethodPost: s.adminHold}
	case "/release":
		routes = map[string]http.HandlerFunc{http.MethodPost: s.adminRelease}
	case "/held":
		routes = map[string]http.HandlerFunc{http.MethodGet: s.adminHeld}
	case "/faults":
		routes = map[string]http.HandlerFunc{http.MethodGet: s.adminGetFaults, http.MethodPut: s.adminPutFaults}
	case "/tokens":
		routes = map[string]http.HandlerFunc{http.MethodPost: s.adminIssueToken}
	default:
		writeNotFound(w)
		return
	}
	handle, ok := routes[r.Method]
	if !ok {
		allowed := make([]string, 0, len(routes))
		// Listed in a fixed order, as map iteration order is random.
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			if _, ok := routes[m]; ok {
				allowed = append(allowed, m)
			}
		}
		writeMethodNotAllowed(w, allowed...)
		return
	}
	handle(w, r)
}

func (s *Server) adminListKeys(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	keys := s.allKeysLocked()
	items := make([]adminKey, 0, len(keys))
	for _, k := range keys {
		snap := k.snapshot()
		items = append(items, adminKey{
			OrganizationID: k.orgID,
			ID:             snap.ID,
			Name:           nullableString(snap.Name),
			APIKeySuffix:   snap.Suffix,
			CreatedAt:      snap.CreatedAt,
			LastUsedAt:     snap.LastUsedAt,
		})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, adminKeyList{Data: items})
}

func (s *Server) adminRevokeKey(w http.ResponseWriter, id string) {
	s.mu.Lock()
	deleted := false
	for _, k := range s.keyIndex {
		if k.id == id {
			deleted = s.deleteKeyLocked(k.orgID, id)
			break
		}
	}
	s.mu.Unlock()
	if !deleted {
		writeError(w, http.StatusNotFound, codeNotFound, "No API key with this id exists.")
		return
	}
	writeNoContent(w)
}

func (s *Server) adminStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) adminResetStats(w http.ResponseWriter, _ *http.Request) {
	s.ResetStats()
	writeNoContent(w)
}

func (s *Server) adminHold(w http.ResponseWriter, _ *http.Request) {
	s.HoldCreates()
	writeNoContent(w)
}

func (s *Server) adminRelease(w http.ResponseWriter, _ *http.Request) {
	s.ReleaseCreates()
	writeNoContent(w)
}

func (s *Server) adminHeld(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, heldResponse{Held: s.HeldCreates()})
}

func (s *Server) adminGetFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.currentFaults())
}

func (s *Server) adminPutFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := decodeStrict(w, r, &f); err != nil {
		writeBodyError(w, err)
		return
	}
	if err := f.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, sentence(err))
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, f)
}

func (s *Server) adminIssueToken(w http.ResponseWriter, r *http.Request) {
	var req adminTokenRequest
	if err := decodeStrict(w, r, &req); err != nil {
		writeBodyError(w, err)
		return
	}
	if strings.TrimSpace(req.Email) == "" {
		writeError(w, http.StatusBadRequest, codeBadRequest, "The email field is required.")
		return
	}
	if req.Role == "" {
		req.Role = RoleReadOnly
	}
	if !req.Role.valid() {
		writeError(w, http.StatusBadRequest, codeBadRequest,
			"The role must be one of admin, read-write and read-only.")
		return
	}
	ttl := defaultAdminTokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, codeBadRequest,
				`The ttl must be a positive Go duration such as "1h".`)
			return
		}
		ttl = d
	}

	userID, status, message := s.addMemberUser(req.Email, req.OrganizationID, req.Role)
	if status != http.StatusOK {
		code := codeNotFound
		if status == http.StatusConflict {
			code = codeConflict
		}
		writeError(w, status, code, message)
		return
	}

	token, err := s.IssueToken(userID, ttl)
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeInternalError, sentence(err))
		return
	}
	writeJSON(w, http.StatusCreated, adminTokenResponse{Token: token, UserID: userID})
}

// addMemberUser creates a user that is a member of orgID, or of the bootstrap
// organization when orgID is empty, with that organization as its default.
// It returns the user id and http.StatusOK, or the status and message of the
// error response. A new user is created every time, so that an existing
// user's role and default organization never change behind its back.
func (s *Server) addMemberUser(email, orgID string, role Role) (userID string, status int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if orgID == "" {
		if s.bootstrapOrg == "" {
			return "", http.StatusConflict, "There is no bootstrap organization; give an organizationId."
		}
		orgID = s.bootstrapOrg
	}
	if _, ok := s.orgs[orgID]; !ok {
		return "", http.StatusNotFound, "No organization with this id exists."
	}
	userID = s.addUserLocked(email, orgID)
	if err := s.addMemberLocked(orgID, userID, role); err != nil {
		// Unreachable: the organization, the user and the role were checked.
		return "", http.StatusInternalServerError, sentence(err)
	}
	return userID, http.StatusOK, ""
}
