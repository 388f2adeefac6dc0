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

// Stats counts requests to the key endpoints, so that tests can bound how much
// a client uses the API. Requests to GET /api/v1/ping and to the
// administrative API are not counted.
type Stats struct {
	// List counts GET /api/v1/keys requests, whatever their outcome.
	List int `json:"list"`
	// Create counts POST /api/v1/keys requests, whatever their outcome.
	Create int `json:"create"`
	// Delete counts DELETE /api/v1/keys/{id} requests, whatever their outcome.
	Delete int `json:"delete"`
	// Unauthorized counts requests answered 401.
	Unauthorized int `json:"unauthorized"`
	// Throttled counts injected 429 responses.
	Throttled int `json:"throttled"`
	// ServerErrors counts injected 500, 502 and 503 responses.
	ServerErrors int `json:"serverErrors"`
	// LostCreates counts create responses replaced by a 502 or a dropped
	// connection after the key was stored.
	LostCreates int `json:"lostCreates"`
}

// Stats returns the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// ResetStats sets every request counter to zero.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{}
}

// count applies an increment to the counters under the lock.
func (s *Server) count(inc func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inc(&s.stats)
}
