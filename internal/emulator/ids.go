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
	"encoding/hex"
)

const (
	// apiKeyPrefix starts every API key secret. It is also how a bearer token
	// is told apart from a session token.
	apiKeyPrefix = "mob_"
	// secretRandLen is the number of random base62 characters after the
	// prefix: about 238 bits of entropy.
	secretRandLen = 40
	// suffixLen is the number of trailing secret characters reported as
	// apiKeySuffix.
	suffixLen = 8
	// idRandBytes is the number of random bytes, hex-encoded, in identifiers.
	idRandBytes = 10
)

const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newID returns prefix followed by 20 random hex digits.
func (s *Server) newID(prefix string) string {
	b := make([]byte, idRandBytes)
	s.randomBytes(b)
	return prefix + hex.EncodeToString(b)
}

// newUUID returns a random (version 4) UUID: the API documents key ids as
// UUIDs, and an emulator that differed would hide id-format assumptions.
func (s *Server) newUUID() string {
	b := make([]byte, 16)
	s.randomBytes(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newSecret returns a fresh API key secret: the prefix and 40 uniformly random
// base62 characters.
func (s *Server) newSecret() string {
	out := make([]byte, 0, len(apiKeyPrefix)+secretRandLen)
	out = append(out, apiKeyPrefix...)
	// Bytes at or above the largest multiple of 62 are rejected, since
	// reducing them modulo 62 would favour the first characters.
	const limit = 256 - 256%len(base62Alphabet)
	buf := make([]byte, secretRandLen)
	for len(out) < cap(out) {
		s.randomBytes(buf)
		for _, b := range buf {
			if int(b) >= limit || len(out) == cap(out) {
				continue
			}
			out = append(out, base62Alphabet[int(b)%len(base62Alphabet)])
		}
	}
	return string(out)
}
