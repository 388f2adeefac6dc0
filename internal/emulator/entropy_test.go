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
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mobile-next/apikey-operator/internal/emulator"
)

// history creates an organization, a user, a token and a key, and returns
// everything an observer sees of them.
func history(t *testing.T, seed byte) string {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := emulator.New(emulator.Options{Clock: clk, Entropy: rand.NewChaCha8([32]byte{seed})})
	org := s.AddOrganization("A")
	user := s.AddUser("dev@example.com", org)
	if err := s.AddMember(org, user, emulator.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	token, err := s.IssueToken(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/keys", strings.NewReader(`{"name":"ci"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	return strings.Join([]string{org, user, token, rec.Body.String()}, "\n")
}

// An entropy source makes ids, secrets and tokens (through the signing key)
// a function of its seed, which the deterministic simulation relies on.
func TestEntropyMakesHistoriesReproducible(t *testing.T) {
	if a, b := history(t, 1), history(t, 1); a != b {
		t.Errorf("the same entropy gave two histories:\n%s\n---\n%s", a, b)
	}
	if a, b := history(t, 1), history(t, 2); a == b {
		t.Errorf("different entropy gave the same history:\n%s", a)
	}
}
