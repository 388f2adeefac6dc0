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
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Role is the role of a user in an organization.
type Role string

// The roles of organization members.
const (
	// RoleAdmin may do everything.
	RoleAdmin Role = "admin"
	// RoleReadWrite may list, create and delete keys.
	RoleReadWrite Role = "read-write"
	// RoleReadOnly may list and create keys, but not delete them.
	RoleReadOnly Role = "read-only"
)

// valid reports whether r is one of the defined roles.
func (r Role) valid() bool {
	switch r {
	case RoleAdmin, RoleReadWrite, RoleReadOnly:
		return true
	}
	return false
}

// canDeleteKeys reports whether members with role r may delete keys.
func (r Role) canDeleteKeys() bool {
	return r == RoleAdmin || r == RoleReadWrite
}

// ErrNotFound is wrapped by the errors of methods given an organization, user
// or key that does not exist.
var ErrNotFound = errors.New("not found")

// Key is a snapshot of an API key as the emulator stores it. The secret is not
// part of it: like the real service, the emulator keeps only its hash.
type Key struct {
	// ID is the key's identifier, "key_" followed by hex digits.
	ID string
	// Name is the name given at creation.
	Name string
	// Suffix is the last characters of the secret, shown to humans to tell
	// keys apart.
	Suffix string
	// CreatedAt is when the key was created, in UTC.
	CreatedAt time.Time
	// LastUsedAt is when a request last presented the key, in UTC, or nil if
	// it never was.
	LastUsedAt *time.Time
}

// organization is a tenant owning keys.
type organization struct {
	id      string
	name    string
	members map[string]Role // by user id
	keys    []*apiKey       // in creation order
}

// user is a human account able to obtain session tokens.
type user struct {
	id         string
	email      string
	defaultOrg string
}

// apiKey is a stored key. Only the hash of its secret is kept.
type apiKey struct {
	id         string
	orgID      string
	name       string
	hash       [32]byte
	suffix     string
	createdAt  time.Time
	lastUsedAt *time.Time
	seq        uint64
}

// snapshot returns a copy of k that shares no memory with it.
func (k *apiKey) snapshot() Key {
	out := Key{ID: k.id, Name: k.name, Suffix: k.suffix, CreatedAt: k.createdAt}
	if k.lastUsedAt != nil {
		t := *k.lastUsedAt
		out.LastUsedAt = &t
	}
	return out
}

// compareKeys orders keys by creation time, then by insertion order, which
// keeps the order stable when a controlled clock gives equal timestamps or
// goes backwards.
func compareKeys(a, b *apiKey) int {
	if c := a.createdAt.Compare(b.createdAt); c != 0 {
		return c
	}
	switch {
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

// AddOrganization creates an organization with the given display name and
// returns its id.
func (s *Server) AddOrganization(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addOrganizationLocked(name)
}

func (s *Server) addOrganizationLocked(name string) string {
	org := &organization{id: s.newID("org_"), name: name, members: make(map[string]Role)}
	s.orgs[org.id] = org
	return org.id
}

// AddUser creates a user and returns its id. defaultOrgID is the organization
// used when a request carries no X-Organization-Id header; it does not make
// the user a member of it, see [Server.AddMember]. Emails are not required to
// be unique.
func (s *Server) AddUser(email, defaultOrgID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addUserLocked(email, defaultOrgID)
}

func (s *Server) addUserLocked(email, defaultOrgID string) string {
	u := &user{id: s.newID("user_"), email: email, defaultOrg: defaultOrgID}
	s.users[u.id] = u
	return u.id
}

// AddMember makes a user a member of an organization with the given role, or
// changes the role of an existing member.
func (s *Server) AddMember(orgID, userID string, role Role) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addMemberLocked(orgID, userID, role)
}

func (s *Server) addMemberLocked(orgID, userID string, role Role) error {
	if !role.valid() {
		return fmt.Errorf("emulator: invalid role %q", role)
	}
	org, ok := s.orgs[orgID]
	if !ok {
		return fmt.Errorf("emulator: organization %q: %w", orgID, ErrNotFound)
	}
	if _, ok := s.users[userID]; !ok {
		return fmt.Errorf("emulator: user %q: %w", userID, ErrNotFound)
	}
	org.members[userID] = role
	return nil
}

// Names given by [Server.Bootstrap].
const (
	// BootstrapOrganizationName is the name of the bootstrap organization.
	BootstrapOrganizationName = "Acme"
	// BootstrapUserEmail is the email of the bootstrap organization's admin.
	BootstrapUserEmail = "admin@example.com"
)

// bootstrapTokenTTL is the lifetime of the token returned by Bootstrap.
const bootstrapTokenTTL = 24 * time.Hour

// Bootstrap creates the organization "Acme" and its admin user
// "admin@example.com", whose default organization it is, and returns their
// ids with a session token valid for 24 hours. Later calls return the same
// organization and user with a fresh token. The administrative API creates
// its users in this organization.
func (s *Server) Bootstrap() (orgID, userID, token string, err error) {
	s.mu.Lock()
	if s.bootstrapOrg == "" {
		org := s.addOrganizationLocked(BootstrapOrganizationName)
		usr := s.addUserLocked(BootstrapUserEmail, org)
		if err = s.addMemberLocked(org, usr, RoleAdmin); err != nil {
			s.mu.Unlock()
			return "", "", "", err
		}
		s.bootstrapOrg, s.bootstrapUser = org, usr
	}
	orgID, userID = s.bootstrapOrg, s.bootstrapUser
	s.mu.Unlock()

	token, err = s.IssueToken(userID, bootstrapTokenTTL)
	if err != nil {
		return "", "", "", err
	}
	return orgID, userID, token, nil
}

// Keys returns the keys of an organization ordered by creation time, or nil if
// the organization does not exist.
func (s *Server) Keys(orgID string) []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	org, ok := s.orgs[orgID]
	if !ok {
		return nil
	}
	sorted := sortedKeys(org.keys)
	out := make([]Key, len(sorted))
	for i, k := range sorted {
		out[i] = k.snapshot()
	}
	return out
}

// sortedKeys returns keys in listing order, leaving the argument untouched.
func sortedKeys(keys []*apiKey) []*apiKey {
	out := slices.Clone(keys)
	slices.SortFunc(out, compareKeys)
	return out
}

// allKeysLocked returns the keys of every organization in listing order.
func (s *Server) allKeysLocked() []*apiKey {
	out := make([]*apiKey, 0, len(s.keyIndex))
	for _, k := range s.keyIndex {
		out = append(out, k)
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// RevokeKey deletes a key of an organization, as a user deleting it in the web
// console would. The error wraps [ErrNotFound] if there is no such key.
func (s *Server) RevokeKey(orgID, keyID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.deleteKeyLocked(orgID, keyID) {
		return fmt.Errorf("emulator: key %q in organization %q: %w", keyID, orgID, ErrNotFound)
	}
	return nil
}

// deleteKeyLocked removes a key of an organization and reports whether it
// existed.
func (s *Server) deleteKeyLocked(orgID, keyID string) bool {
	org, ok := s.orgs[orgID]
	if !ok {
		return false
	}
	i := slices.IndexFunc(org.keys, func(k *apiKey) bool { return k.id == keyID })
	if i < 0 {
		return false
	}
	delete(s.keyIndex, org.keys[i].hash)
	org.keys = slices.Delete(org.keys, i, i+1)
	return true
}

// UseKey records a use of the key with the given secret, exactly as any request
// presenting it would, and reports whether such a key exists.
func (s *Server) UseKey(secret string) bool {
	hash := sha256.Sum256([]byte(secret))
	now := s.timestamp()
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keyIndex[hash]
	if !ok {
		return false
	}
	k.lastUsedAt = &now
	return true
}

// storeKeyLocked adds a new key with the given secret to an organization.
func (s *Server) storeKeyLocked(orgID, name, secret string, createdAt time.Time) (*apiKey, error) {
	org, ok := s.orgs[orgID]
	if !ok {
		return nil, fmt.Errorf("emulator: organization %q: %w", orgID, ErrNotFound)
	}
	s.keySeq++
	k := &apiKey{
		id:        s.newUUID(),
		orgID:     orgID,
		name:      name,
		hash:      sha256.Sum256([]byte(secret)),
		suffix:    secret[len(secret)-suffixLen:],
		createdAt: createdAt,
		seq:       s.keySeq,
	}
	org.keys = append(org.keys, k)
	s.keyIndex[k.hash] = k
	return k, nil
}

// AddKeys stores keys with the given names in an organization, as if members
// had created them through the API, without making their secrets known to
// anyone. It is how a benchmark fills an organization with many keys that
// are not the operator's, far faster than creating them one request at a
// time. The error wraps [ErrNotFound] if there is no such organization.
func (s *Server) AddKeys(orgID string, names []string) error {
	createdAt := s.timestamp()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		if _, err := s.storeKeyLocked(orgID, name, s.newSecret(), createdAt); err != nil {
			return err
		}
	}
	return nil
}
