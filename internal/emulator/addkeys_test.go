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
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/mobile-next/apikey-operator/internal/emulator"
)

func TestAddKeys(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	firstID, _ := e.create(t, "made through the API")
	names := make([]string, 50)
	for i := range names {
		names[i] = fmt.Sprintf("seeded-%02d", i)
	}
	if err := e.s.AddKeys(e.org, names); err != nil {
		t.Fatalf("AddKeys: %v", err)
	}

	resp := e.do(t, http.MethodGet, "/api/v1/keys", "", withToken(e.token))
	var list struct {
		Data []struct {
			ID           string `json:"id"`
			Name         string `json:"name"`
			APIKeySuffix string `json:"apiKeySuffix"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &list); err != nil {
		t.Fatalf("decoding the list: %v", err)
	}
	if got, want := len(list.Data), 1+len(names); got != want {
		t.Fatalf("listed %d keys, want %d", got, want)
	}
	if list.Data[0].ID != firstID {
		t.Errorf("first listed key is %s, want the key created before the seeded ones, %s", list.Data[0].ID, firstID)
	}
	ids := map[string]bool{firstID: true}
	for i, k := range list.Data[1:] {
		if k.Name != names[i] {
			t.Errorf("key %d is named %q, want %q (the order of AddKeys)", i, k.Name, names[i])
		}
		if !keyIDPattern.MatchString(k.ID) || ids[k.ID] {
			t.Errorf("key %d has id %q: want a UUID used by no other key", i, k.ID)
		}
		ids[k.ID] = true
		if k.APIKeySuffix == "" {
			t.Errorf("key %d has no apiKeySuffix", i)
		}
	}

	// A seeded key is a key like any other: it can be deleted.
	resp = e.do(t, http.MethodDelete, "/api/v1/keys/"+list.Data[1].ID, "", withToken(e.token))
	if resp.status != http.StatusNoContent {
		t.Errorf("DELETE a seeded key: status %d, want 204", resp.status)
	}
	if got := len(e.s.Keys(e.org)); got != len(names) {
		t.Errorf("%d keys after deleting one, want %d", got, len(names))
	}
}

func TestAddKeysUnknownOrganization(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	err := e.s.AddKeys("org_00000000000000000000", []string{"k"})
	if !errors.Is(err, emulator.ErrNotFound) {
		t.Errorf("AddKeys to an unknown organization: error %v, want one wrapping ErrNotFound", err)
	}
}
