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

package controller

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

func TestJitterStaysWithinItsFactor(t *testing.T) {
	src := rand.NewChaCha8([32]byte{1})
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := jitter(src, time.Minute, 0.1)
		if d < time.Minute || d > time.Minute+6*time.Second {
			t.Fatalf("jitter(1m, 0.1) = %s, want within [1m, 1m6s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 900 {
		t.Errorf("1000 draws gave only %d different waits", len(seen))
	}
}

func TestOneEntropyStreamGivesOneHistory(t *testing.T) {
	history := func(src *rand.ChaCha8) string {
		var b bytes.Buffer
		for range 5 {
			b.WriteString(newAttemptID(src))
			b.WriteString(jitter(src, time.Second, 0.2).String())
		}
		return b.String()
	}
	a, b := history(rand.NewChaCha8([32]byte{7})), history(rand.NewChaCha8([32]byte{7}))
	if a != b {
		t.Errorf("the same seed gave two histories:\n%s\n%s", a, b)
	}
	if c := history(rand.NewChaCha8([32]byte{8})); c == a {
		t.Errorf("two seeds gave one history: %s", a)
	}
}

func TestEntropyDefaultsToCryptoRand(t *testing.T) {
	if a, b := newAttemptID(nil), newAttemptID(nil); a == b || len(a) != 8 {
		t.Errorf("attempt ids from crypto/rand: %q and %q", a, b)
	}
}

// A source that runs dry gives no jitter rather than failing.
func TestDryEntropyGivesNoJitter(t *testing.T) {
	if d := jitter(bytes.NewReader(nil), time.Second, 0.5); d != time.Second {
		t.Errorf("jitter from an empty source = %s, want 1s", d)
	}
}
