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
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mobile-next/apikey-operator/internal/emulator"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

func TestTokenExpiresAtEmulatorToken(t *testing.T) {
	issuedAt := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	emu := emulator.New(emulator.Options{Clock: clocktesting.NewFakeClock(issuedAt)})
	_, userID, bootstrapToken, err := emu.Bootstrap()
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	shortToken, err := emu.IssueToken(userID, 90*time.Minute)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}

	tests := []struct {
		name  string
		token string
		want  time.Time
	}{
		{name: "bootstrap token", token: bootstrapToken, want: issuedAt.Add(24 * time.Hour)},
		{name: "issued token", token: shortToken, want: issuedAt.Add(90 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mobilenext.NewToken(tt.token).ExpiresAt()
			if err != nil {
				t.Fatalf("ExpiresAt: %v", err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("ExpiresAt() = %v, want %v", got, tt.want)
			}
		})
	}
}

// jwt assembles a token from a raw header and payload, unsigned.
func jwt(header, payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(payload)) + "." + enc([]byte("signature-bytes"))
}

func TestTokenExpiresAt(t *testing.T) {
	const header = `{"alg":"HS256","typ":"JWT"}`
	padded := func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }

	tests := []struct {
		name    string
		token   string
		want    time.Time
		wantErr string
	}{
		{
			name:  "integer exp",
			token: jwt(header, `{"sub":"user_1","exp":1767225600}`),
			want:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		{
			name:  "fractional exp",
			token: jwt(header, `{"exp":1767225600.25}`),
			want:  time.Date(2026, 1, 1, 0, 0, 0, 250_000_000, time.UTC),
		},
		{
			name:  "exponent notation",
			token: jwt(header, `{"exp":1.7672256e9}`),
			want:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		{
			name:  "padded segments",
			token: padded(header) + "." + padded(`{"exp":1767225600}`) + "." + padded("sig"),
			want:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		{
			name:  "empty signature",
			token: base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":1767225600}`)) + ".",
			want:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		{name: "no exp", token: jwt(header, `{"sub":"user_1"}`), wantErr: "no exp claim"},
		{name: "null exp", token: jwt(header, `{"exp":null}`), wantErr: "no exp claim"},
		{name: "string exp", token: jwt(header, `{"exp":"1767225600"}`), wantErr: "not a number"},
		{name: "boolean exp", token: jwt(header, `{"exp":true}`), wantErr: "not a number"},
		{name: "huge exp", token: jwt(header, `{"exp":1e300}`), wantErr: "out of range"},
		{name: "payload is an array", token: jwt(header, `[1767225600]`), wantErr: "payload is not a JSON object"},
		{name: "payload is not JSON", token: jwt(header, `exp=1767225600`), wantErr: "payload is not a JSON object"},
		{name: "header is not JSON", token: jwt(`HS256`, `{"exp":1767225600}`), wantErr: "header is not a JSON object"},
		{name: "payload is not base64url", token: "eyJhbGciOiJIUzI1NiJ9.not*base64.c2ln", wantErr: "payload is not base64url"},
		{name: "two segments", token: "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9", wantErr: "has 2 segments"},
		{name: "four segments", token: jwt(header, `{"exp":1}`) + ".extra", wantErr: "has 4 segments"},
		{name: "opaque token", token: "SessionTokenThatIsNotAJWT", wantErr: "has 1 segments"},
		{name: "API key", token: secretValue, wantErr: "not a JWT"},
		{name: "empty", token: "", wantErr: "not a JWT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mobilenext.NewToken(tt.token).ExpiresAt()
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ExpiresAt() = %v, want an error containing %q", got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ExpiresAt() error = %q, want it to contain %q", err, tt.wantErr)
				}
				assertNoLeak(t, err, append(strings.Split(tt.token, "."), tt.token)...)
				return
			}
			if err != nil {
				t.Fatalf("ExpiresAt: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ExpiresAt() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTokenIsAPIKey(t *testing.T) {
	tests := []struct {
		token string
		want  bool
	}{
		{token: secretValue, want: true},
		{token: "  " + secretValue + "\n", want: true},
		{token: tokenValue, want: false},
		{token: "MOB_uppercase", want: false},
		{token: "xmob_inside", want: false},
		{token: "", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			if got := mobilenext.NewToken(tt.token).IsAPIKey(); got != tt.want {
				t.Errorf("IsAPIKey() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewTokenTrimsWhiteSpace(t *testing.T) {
	tok := mobilenext.NewToken(" \t" + tokenValue + "\r\n")
	if got := tok.Reveal(); got != tokenValue {
		t.Errorf("Reveal() = %q, want the token without surrounding white space", got)
	}
	if !mobilenext.NewToken(" \n").IsZero() {
		t.Error("IsZero() = false for a token of white space only")
	}
}
