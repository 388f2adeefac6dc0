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
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

const (
	secretValue = "mob_S3cr3tValueThatMustNeverLeak0123456789"
	tokenValue  = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyXzEifQ.TokenSignatureThatMustNeverLeak"
)

func TestSecretAccessors(t *testing.T) {
	s := mobilenext.NewSecret(secretValue)
	if got := s.Reveal(); got != secretValue {
		t.Errorf("Reveal() = %q, want the wrapped value", got)
	}
	if s.IsZero() {
		t.Error("IsZero() = true for a non-empty secret")
	}
	if !(mobilenext.Secret{}).IsZero() || !mobilenext.NewSecret("").IsZero() {
		t.Error("IsZero() = false for an empty secret")
	}
}

func TestSecretHasSuffix(t *testing.T) {
	tests := []struct {
		name   string
		secret string
		suffix string
		want   bool
	}{
		{name: "short suffix", secret: "mob_abc123", suffix: "123", want: true},
		{name: "longer suffix", secret: "mob_abc123", suffix: "abc123", want: true},
		{name: "whole value", secret: "mob_abc123", suffix: "mob_abc123", want: true},
		{name: "different end", secret: "mob_abc123", suffix: "124", want: false},
		{name: "longer than the secret", secret: "mob_abc123", suffix: "xmob_abc123", want: false},
		{name: "empty suffix matches nothing", secret: "mob_abc123", suffix: "", want: false},
		{name: "empty secret", secret: "", suffix: "123", want: false},
		{name: "both empty", secret: "", suffix: "", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mobilenext.NewSecret(tt.secret).HasSuffix(tt.suffix); got != tt.want {
				t.Errorf("HasSuffix(%q) = %v, want %v", tt.suffix, got, tt.want)
			}
		})
	}
}

// redactionSubjects returns values that hold the secret or the token in every
// way callers are expected to hold them.
func redactionSubjects(t *testing.T) map[string]any {
	t.Helper()
	secret := mobilenext.NewSecret(secretValue)
	token := mobilenext.NewToken(tokenValue)
	created := mobilenext.CreatedKey{
		ID:        "key_1",
		Secret:    secret,
		Name:      "ci",
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	cfg := mobilenext.Config{URL: "https://api.example.com", Token: token, OrganizationID: "org_1"}
	client, err := mobilenext.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return map[string]any{
		"Secret":              secret,
		"*Secret":             &secret,
		"Token":               token,
		"*Token":              &token,
		"CreatedKey":          created,
		"*CreatedKey":         &created,
		"Config":              cfg,
		"*Client":             client,
		"slice of secrets":    []mobilenext.Secret{secret},
		"map of tokens":       map[string]mobilenext.Token{"t": token},
		"anonymous struct":    struct{ S mobilenext.Secret }{secret},
		"struct with pointer": struct{ T *mobilenext.Token }{&token},
	}
}

// assertRedacted fails if out contains the secret or the token.
func assertRedacted(t *testing.T, what, out string) {
	t.Helper()
	for _, v := range []string{secretValue, tokenValue, "S3cr3tValue", "TokenSignature"} {
		if strings.Contains(out, v) {
			t.Errorf("%s leaks a credential: %s", what, out)
			return
		}
	}
}

func TestRedactionFmt(t *testing.T) {
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s", "%T"}
	for name, v := range redactionSubjects(t) {
		t.Run(name, func(t *testing.T) {
			for _, verb := range verbs {
				assertRedacted(t, verb, fmt.Sprintf(verb, v))
			}
			assertRedacted(t, "Sprint", fmt.Sprint(v))
			assertRedacted(t, "Sprintln", fmt.Sprintln(v))
		})
	}
}

func TestRedactionExactOutput(t *testing.T) {
	secret := mobilenext.NewSecret(secretValue)
	token := mobilenext.NewToken(tokenValue)
	tests := []struct {
		verb string
		want string
	}{
		{verb: "%v", want: "[REDACTED]"},
		{verb: "%s", want: "[REDACTED]"},
		{verb: "%+v", want: "[REDACTED]"},
		{verb: "%#v", want: "[REDACTED]"},
		{verb: "%q", want: `"[REDACTED]"`},
		{verb: "%x", want: "[REDACTED]"},
	}
	for _, tt := range tests {
		t.Run(tt.verb, func(t *testing.T) {
			if got := fmt.Sprintf(tt.verb, secret); got != tt.want {
				t.Errorf("Secret formatted with %s = %q, want %q", tt.verb, got, tt.want)
			}
			if got := fmt.Sprintf(tt.verb, token); got != tt.want {
				t.Errorf("Token formatted with %s = %q, want %q", tt.verb, got, tt.want)
			}
		})
	}
	if got := secret.String(); got != "[REDACTED]" {
		t.Errorf("Secret.String() = %q", got)
	}
	if got := token.GoString(); got != "[REDACTED]" {
		t.Errorf("Token.GoString() = %q", got)
	}
}

func TestRedactionSlog(t *testing.T) {
	subjects := redactionSubjects(t)
	handlers := map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	}
	for name, newHandler := range handlers {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(newHandler(&buf))
			for what, v := range subjects {
				logger.Info("subject", "what", what, "value", v)
			}
			logger.Info("group", slog.Group("creds",
				slog.Any("secret", mobilenext.NewSecret(secretValue)),
				slog.Any("token", mobilenext.NewToken(tokenValue)),
			))
			assertRedacted(t, name+" log", buf.String())
			if !strings.Contains(buf.String(), "[REDACTED]") {
				t.Errorf("%s log has no redaction marker: %s", name, buf.String())
			}
		})
	}
}

func TestRedactionJSON(t *testing.T) {
	secret := mobilenext.NewSecret(secretValue)
	token := mobilenext.NewToken(tokenValue)
	// A Config cannot be encoded as a whole (its *http.Client holds funcs),
	// so its fields are copied into a struct that carries the token the way
	// a Config does.
	type configFields struct {
		URL            string           `json:"url"`
		Token          mobilenext.Token `json:"token"`
		OrganizationID string           `json:"organizationId"`
	}
	cfg := mobilenext.Config{URL: "https://api.example.com", Token: token, OrganizationID: "org_1"}
	doc := struct {
		Secret  mobilenext.Secret            `json:"secret"`
		Token   mobilenext.Token             `json:"token"`
		Ptr     *mobilenext.Secret           `json:"ptr"`
		Created mobilenext.CreatedKey        `json:"created"`
		Config  configFields                 `json:"config"`
		ByName  map[string]mobilenext.Secret `json:"byName"`
	}{
		Secret:  secret,
		Token:   token,
		Ptr:     &secret,
		Created: mobilenext.CreatedKey{ID: "key_1", Secret: secret},
		Config:  configFields{URL: cfg.URL, Token: cfg.Token, OrganizationID: cfg.OrganizationID},
		ByName:  map[string]mobilenext.Secret{"a": secret},
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	assertRedacted(t, "JSON", string(out))
	if got := strings.Count(string(out), `"[REDACTED]"`); got != 6 {
		t.Errorf("JSON has %d redaction markers, want 6: %s", got, out)
	}

	for name, m := range map[string]interface{ MarshalText() ([]byte, error) }{"Secret": secret, "Token": token} {
		text, err := m.MarshalText()
		if err != nil {
			t.Fatalf("%s.MarshalText: %v", name, err)
		}
		if string(text) != "[REDACTED]" {
			t.Errorf("%s.MarshalText() = %q, want [REDACTED]", name, text)
		}
	}
}
