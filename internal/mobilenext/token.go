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
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// Token is the session token (a JWT) the client authenticates with. Like
// Secret, it redacts itself when it is formatted, logged or marshalled; only
// Reveal returns the value.
//
// The zero Token is empty.
type Token struct{ v string }

// NewToken wraps v. Surrounding white space is removed, because tokens are
// usually read from files or Kubernetes Secrets and often carry a trailing
// newline, which is never part of a token and is not allowed in a header.
func NewToken(v string) Token { return Token{v: strings.TrimSpace(v)} }

// Reveal returns the token value. Call it only to put the token on the wire.
func (t Token) Reveal() string { return t.v }

// IsZero reports whether the token is empty.
func (t Token) IsZero() bool { return t.v == "" }

// IsAPIKey reports whether the value looks like an API key (it has the mob_
// prefix) rather than a session token. The API refuses API keys for key
// management, so callers can use this to explain a 401 better than the API
// does.
func (t Token) IsAPIKey() bool { return strings.HasPrefix(t.v, apiKeyPrefix) }

// ExpiresAt returns the time in the JWT's exp claim.
//
// The signature is not verified: the result is only reported (so that people
// can renew the token before it lapses), never used to decide whether the
// token is trusted; the API does that. An error is returned when the token is
// not a JWT (three base64url segments with a JSON header and payload) or has
// no numeric exp claim. Errors never contain any part of the token.
func (t Token) ExpiresAt() (time.Time, error) {
	payload, err := t.payload()
	if err != nil {
		return time.Time{}, err
	}
	var claims struct {
		Exp json.RawMessage `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		// The decoder's message may quote bytes of the payload, so it is not
		// wrapped.
		return time.Time{}, errors.New("token is not a JWT: payload is not a JSON object")
	}
	if len(claims.Exp) == 0 || string(claims.Exp) == "null" {
		return time.Time{}, errors.New("token has no exp claim")
	}
	exp, err := parseNumericDate(claims.Exp)
	if err != nil {
		return time.Time{}, fmt.Errorf("token exp claim: %w", err)
	}
	return exp, nil
}

// Subject returns the JWT's sub claim, "" when it has none. Like ExpiresAt
// it does not verify the signature: the subject only tells which user's
// default organization a connection without organizationId reaches, so that
// keys created there are deleted there.
func (t Token) Subject() string {
	payload, err := t.payload()
	if err != nil {
		return ""
	}
	var claims struct {
		Sub any `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	if s, ok := claims.Sub.(string); ok {
		return s
	}
	return ""
}

// payload decodes the JWT's payload segment.
func (t Token) payload() ([]byte, error) {
	segments := strings.Split(t.v, ".")
	if len(segments) != 3 {
		return nil, fmt.Errorf("token is not a JWT: it has %d segments, want 3", len(segments))
	}
	var payload []byte
	for i, name := range []string{"header", "payload", "signature"} {
		raw, err := decodeSegment(segments[i])
		if err != nil {
			return nil, fmt.Errorf("token is not a JWT: %s is not base64url", name)
		}
		if i == 2 {
			break
		}
		if !isJSONObject(raw) {
			return nil, fmt.Errorf("token is not a JWT: %s is not a JSON object", name)
		}
		payload = raw
	}
	return payload, nil
}

// String returns a redaction marker instead of the value.
func (t Token) String() string { return redacted }

// GoString returns a redaction marker instead of the value.
func (t Token) GoString() string { return redacted }

// Format implements fmt.Formatter for every verb.
func (t Token) Format(f fmt.State, verb rune) { formatRedacted(f, verb) }

// LogValue implements slog.LogValuer.
func (t Token) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON implements json.Marshaler.
func (t Token) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(redacted)), nil }

// MarshalText implements encoding.TextMarshaler.
func (t Token) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// decodeSegment decodes one JWT segment. JWTs use unpadded base64url, but
// some issuers pad anyway, and accepting that costs nothing.
func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// isJSONObject reports whether b holds exactly one JSON object.
func isJSONObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}

// maxNumericDate bounds exp to a range time.Time and float64 both represent
// exactly, well beyond any real expiry (the year 33658).
const maxNumericDate = 1e12

// parseNumericDate parses a JWT NumericDate: seconds since the Unix epoch as
// a JSON number, possibly with a fraction (RFC 7519, section 2).
func parseNumericDate(raw json.RawMessage) (time.Time, error) {
	s := string(raw)
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return time.Time{}, errors.New("not a number")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > maxNumericDate || n < -maxNumericDate {
			return time.Time{}, errors.New("out of range")
		}
		return time.Unix(n, 0).UTC(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, errors.New("not a number")
	}
	if f > maxNumericDate || f < -maxNumericDate {
		return time.Time{}, errors.New("out of range")
	}
	sec := math.Floor(f)
	nsec := math.Round((f - sec) * 1e9)
	return time.Unix(int64(sec), int64(nsec)).UTC(), nil
}
