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
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// jwtHeader is the encoded header of every session token the emulator mints.
var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// sessionClaims are the claims of a session token.
type sessionClaims struct {
	Subject   string `json:"sub"`
	Email     string `json:"email"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
}

// Reasons a session token is refused. Their texts reach clients.
var (
	errTokenMalformed = errors.New("the session token is malformed")
	errTokenSignature = errors.New("the session token signature is invalid")
	errTokenExpired   = errors.New("the session token has expired")
)

// IssueToken returns a session token (an HS256 JWT) for a user, valid for ttl
// from the current time of the Server's clock. The expiry is rounded up to
// the whole second, as JWT times are in seconds. The error wraps
// [ErrNotFound] if there is no such user.
func (s *Server) IssueToken(userID string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("emulator: token lifetime must be positive, got %v", ttl)
	}
	s.mu.Lock()
	u, ok := s.users[userID]
	s.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("emulator: user %q: %w", userID, ErrNotFound)
	}

	now := s.now()
	expiry := now.Add(ttl)
	exp := expiry.Unix()
	if expiry.Nanosecond() != 0 {
		exp++
	}
	payload, err := json.Marshal(sessionClaims{
		Subject:   u.id,
		Email:     u.email,
		IssuedAt:  now.Unix(),
		ExpiresAt: exp,
	})
	if err != nil {
		return "", fmt.Errorf("emulator: encoding token claims: %w", err)
	}
	signingInput := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(s.sign(signingInput)), nil
}

// sign returns the HMAC-SHA256 of a JWT signing input.
func (s *Server) sign(signingInput string) []byte {
	mac := hmac.New(sha256.New, s.signingKey)
	mac.Write([]byte(signingInput))
	return mac.Sum(nil)
}

// verifyToken checks a session token's algorithm, signature and expiry and
// returns its claims.
func (s *Server) verifyToken(token string) (sessionClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return sessionClaims{}, errTokenMalformed
	}
	header, payload, signature := parts[0], parts[1], parts[2]

	// The algorithm is checked before anything else so that tokens claiming
	// "none" or another algorithm are refused outright.
	var hdr struct {
		Alg string `json:"alg"`
	}
	if raw, err := base64.RawURLEncoding.DecodeString(header); err != nil || json.Unmarshal(raw, &hdr) != nil {
		return sessionClaims{}, errTokenMalformed
	}
	if hdr.Alg != "HS256" {
		return sessionClaims{}, errTokenMalformed
	}

	sig, err := base64.RawURLEncoding.DecodeString(signature)
	if err != nil {
		return sessionClaims{}, errTokenMalformed
	}
	if !hmac.Equal(sig, s.sign(header+"."+payload)) {
		return sessionClaims{}, errTokenSignature
	}

	var claims sessionClaims
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(raw, &claims) != nil || claims.Subject == "" || claims.ExpiresAt == 0 {
		return sessionClaims{}, errTokenMalformed
	}
	if !s.now().Before(time.Unix(claims.ExpiresAt, 0)) {
		return sessionClaims{}, errTokenExpired
	}
	return claims, nil
}
