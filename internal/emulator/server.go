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
	"crypto/rand"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Paths of the emulated API and of the administrative API.
const (
	keysPath    = "/api/v1/keys"
	pingPath    = "/api/v1/ping"
	adminPrefix = "/_emulator"
)

// Options configures a [Server]. The zero value is usable: real time, a random
// signing key, no faults and no administrative API.
type Options struct {
	// Clock drives createdAt, lastUsedAt and the issue and expiry times of
	// session tokens, so tests can control them. Defaults to the real clock.
	Clock clock.PassiveClock

	// SigningKey is the HMAC-SHA256 key of session tokens. Defaults to 32
	// random bytes, which makes tokens valid for one Server only.
	SigningKey []byte

	// Faults are the failures injected from the start; see [Server.SetFaults].
	Faults Faults

	// Rand, when set, decides which requests suffer an injected fault, making
	// fault sequences reproducible. The Server serializes its use, so it must
	// not be used elsewhere meanwhile. Secrets and identifiers come from
	// Entropy.
	Rand *mathrand.Rand

	// Entropy, when set, is read instead of crypto/rand for identifiers,
	// secrets and the default signing key, so that a seeded source makes a
	// whole history of keys reproducible (the deterministic simulation
	// replays a seed byte for byte). The Server serializes its reads. Leave
	// it nil outside tests: secrets are then unpredictable.
	Entropy io.Reader

	// AdminToken enables the administrative HTTP API under /_emulator/ when
	// non-empty; requests to it must carry this value in the X-Emulator-Admin
	// header. When empty, those paths answer 404 like any unknown path.
	AdminToken string
}

// Server is an emulated Mobile Next API. It implements [net/http.Handler] and
// is safe for concurrent use. Create it with [New].
type Server struct {
	now        func() time.Time
	signingKey []byte
	adminToken string

	// randMu serializes the optional caller-supplied generator, which is not
	// safe for concurrent use on its own.
	randMu sync.Mutex
	rng    *mathrand.Rand

	// entropyMu serializes reads of entropy, which a seeded source need
	// not support concurrently.
	entropyMu sync.Mutex
	entropy   io.Reader

	holds holdGate

	// mu guards everything below.
	mu       sync.Mutex
	faults   Faults
	stats    Stats
	orgs     map[string]*organization
	users    map[string]*user
	keyIndex map[[32]byte]*apiKey // by SHA-256 of the secret
	keySeq   uint64               // insertion counter, the tie-breaker of equal createdAt
	// bootstrapOrg and bootstrapUser are set by the first Bootstrap call.
	bootstrapOrg  string
	bootstrapUser string
}

// New returns a Server with no organizations, users or keys.
func New(opts Options) *Server {
	s := &Server{
		adminToken: opts.AdminToken,
		rng:        opts.Rand,
		entropy:    opts.Entropy,
		faults:     opts.Faults,
		orgs:       make(map[string]*organization),
		users:      make(map[string]*user),
		keyIndex:   make(map[[32]byte]*apiKey),
	}
	s.now = time.Now
	if opts.Clock != nil {
		s.now = opts.Clock.Now
	}
	if len(opts.SigningKey) > 0 {
		// Copied so that a caller reusing its slice cannot change the key
		// under running requests.
		s.signingKey = append([]byte(nil), opts.SigningKey...)
	} else {
		s.signingKey = make([]byte, 32)
		s.randomBytes(s.signingKey)
	}
	return s
}

// ServeHTTP routes a request to the emulated API or, when enabled, to the
// administrative API. Routing is done by hand rather than with
// http.ServeMux so that unknown paths and wrong methods get the JSON error
// bodies of the real service instead of plain-text ones.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == keysPath:
		switch r.Method {
		case http.MethodGet:
			s.serveKeyEndpoint(w, r, opList)
		case http.MethodPost:
			s.serveKeyEndpoint(w, r, opCreate)
		default:
			writeMethodNotAllowed(w, http.MethodGet, http.MethodPost)
		}
	case strings.HasPrefix(path, keysPath+"/"):
		id := strings.TrimPrefix(path, keysPath+"/")
		if id == "" || strings.Contains(id, "/") {
			writeNotFound(w)
			return
		}
		if r.Method != http.MethodDelete {
			writeMethodNotAllowed(w, http.MethodDelete)
			return
		}
		s.serveKeyEndpoint(w, r, opDelete)
	case path == pingPath:
		if r.Method != http.MethodGet {
			writeMethodNotAllowed(w, http.MethodGet)
			return
		}
		s.handlePing(w, r)
	case s.adminToken != "" && (path == adminPrefix || strings.HasPrefix(path, adminPrefix+"/")):
		s.serveAdmin(w, r)
	default:
		writeNotFound(w)
	}
}

// roll reports whether an event of the given probability happens. Certain
// outcomes (rate <= 0, rate >= 1, NaN) draw no random number, so that faults
// that are off do not shift a deterministic generator's sequence.
func (s *Server) roll(rate float64) bool {
	switch {
	case !(rate > 0):
		return false
	case rate >= 1:
		return true
	}
	return s.randFloat() < rate
}

// randFloat returns a pseudo-random number in [0, 1).
func (s *Server) randFloat() float64 {
	if s.rng == nil {
		return mathrand.Float64()
	}
	s.randMu.Lock()
	defer s.randMu.Unlock()
	return s.rng.Float64()
}

// randIntN returns a pseudo-random number in [0, n).
func (s *Server) randIntN(n int) int {
	if s.rng == nil {
		return mathrand.IntN(n)
	}
	s.randMu.Lock()
	defer s.randMu.Unlock()
	return s.rng.IntN(n)
}

// randomBytes fills b from the Entropy option, or from crypto/rand.
func (s *Server) randomBytes(b []byte) {
	if s.entropy == nil {
		_, _ = rand.Read(b) // never fails, see crypto/rand.Read
		return
	}
	s.entropyMu.Lock()
	defer s.entropyMu.Unlock()
	if _, err := io.ReadFull(s.entropy, b); err != nil {
		// A test's source ran dry: a repeated id would corrupt the model.
		panic("emulator: reading Entropy: " + err.Error())
	}
}

// timestamp returns the current time as stored and reported: in UTC and
// without a monotonic clock reading.
func (s *Server) timestamp() time.Time {
	return s.now().UTC()
}
