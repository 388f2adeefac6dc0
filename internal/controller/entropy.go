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
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"io"
	"time"
)

// The operator's only chance: the ids of create attempts and the jitter of
// its waits. Both come from one source that the options may name (Entropy),
// crypto/rand by default, so a simulation that passes a seeded stream gets
// the same history from the same seed, and seeds can run side by side.

// draw fills b from src, or from crypto/rand when src is nil.
func draw(src io.Reader, b []byte) {
	if src == nil {
		src = rand.Reader
	}
	if _, err := io.ReadFull(src, b); err != nil {
		// A source that runs dry leaves zeros: ids may then repeat, which
		// the attempt records tolerate (they are per ApiKey), and waits
		// lose their jitter. Neither is worth failing a reconcile for.
		clear(b)
	}
}

// newAttemptID is the tag of one create attempt, unique among an ApiKey's
// attempts in all likelihood.
func newAttemptID(src io.Reader) string {
	b := make([]byte, 4)
	draw(src, b)
	return hex.EncodeToString(b)
}

// jitter returns d lengthened by a random part of up to maxFactor·d, as
// wait.Jitter does, with the chance drawn from src.
func jitter(src io.Reader, d time.Duration, maxFactor float64) time.Duration {
	var b [8]byte
	draw(src, b[:])
	frac := float64(binary.LittleEndian.Uint64(b[:])>>11) / (1 << 53)
	return d + time.Duration(frac*maxFactor*float64(d))
}
