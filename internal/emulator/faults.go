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
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Faults configures failures injected into the key endpoints (list, create
// and delete); GET /api/v1/ping and the administrative API are never
// affected. The zero value injects nothing. Rates are probabilities in
// [0, 1], drawn independently for every request.
//
// Latency, throttling and server errors apply before the request is
// authenticated, as they would in front of the real service, in that order.
// Lost creates apply after the key was stored.
//
// In JSON, field names are lowerCamelCase and durations are Go duration
// strings such as "250ms".
type Faults struct {
	// Latency is added before every response of the key endpoints. A client
	// that gives up meanwhile gets nothing, and its request goes no further.
	Latency time.Duration
	// ServerErrorRate is the probability of answering 500, 502 or 503 (chosen
	// at random) instead of handling the request.
	ServerErrorRate float64
	// ThrottleRate is the probability of answering 429 with a Retry-After
	// header instead of handling the request.
	ThrottleRate float64
	// RetryAfter is the delay advertised by throttled responses, sent in whole
	// seconds rounded up, at least 1. Zero means one second.
	RetryAfter time.Duration
	// LoseCreateRate is the probability that a create request stores the key
	// and then answers 502 instead of 201, so the client never sees the
	// secret of a key that nevertheless exists.
	LoseCreateRate float64
	// DropConnection makes lost create responses close the connection
	// without any response instead of answering 502.
	DropConnection bool
}

// faultsJSON is the wire form of Faults.
type faultsJSON struct {
	Latency         string  `json:"latency"`
	ServerErrorRate float64 `json:"serverErrorRate"`
	ThrottleRate    float64 `json:"throttleRate"`
	RetryAfter      string  `json:"retryAfter"`
	LoseCreateRate  float64 `json:"loseCreateRate"`
	DropConnection  bool    `json:"dropConnection"`
}

// MarshalJSON encodes f with lowerCamelCase names and duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		Latency:         f.Latency.String(),
		ServerErrorRate: f.ServerErrorRate,
		ThrottleRate:    f.ThrottleRate,
		RetryAfter:      f.RetryAfter.String(),
		LoseCreateRate:  f.LoseCreateRate,
		DropConnection:  f.DropConnection,
	})
}

// UnmarshalJSON decodes the form written by MarshalJSON. Absent fields are
// zero; unknown fields are an error, so that a misspelt fault is not
// silently ignored.
func (f *Faults) UnmarshalJSON(data []byte) error {
	var raw faultsJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("decoding faults: %w", err)
	}
	latency, err := parseOptionalDuration("latency", raw.Latency)
	if err != nil {
		return err
	}
	retryAfter, err := parseOptionalDuration("retryAfter", raw.RetryAfter)
	if err != nil {
		return err
	}
	*f = Faults{
		Latency:         latency,
		ServerErrorRate: raw.ServerErrorRate,
		ThrottleRate:    raw.ThrottleRate,
		RetryAfter:      retryAfter,
		LoseCreateRate:  raw.LoseCreateRate,
		DropConnection:  raw.DropConnection,
	}
	return nil
}

// parseOptionalDuration parses a Go duration string, the empty string being
// zero.
func parseOptionalDuration(field, value string) (time.Duration, error) {
	if value == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(value)
	if err != nil {
		return 0, fmt.Errorf("faults: %s: %w", field, err)
	}
	return d, nil
}

// Validate reports whether every rate is in [0, 1] and no duration is
// negative. [Server.SetFaults] does not require it: there, rates outside the
// range act as 0 or 1 and negative durations as zero.
func (f Faults) Validate() error {
	var errs []error
	for _, r := range []struct {
		name string
		v    float64
	}{
		{"serverErrorRate", f.ServerErrorRate},
		{"throttleRate", f.ThrottleRate},
		{"loseCreateRate", f.LoseCreateRate},
	} {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			errs = append(errs, fmt.Errorf("%s must be between 0 and 1, got %v", r.name, r.v))
		}
	}
	if f.Latency < 0 {
		errs = append(errs, fmt.Errorf("latency must not be negative, got %v", f.Latency))
	}
	if f.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("retryAfter must not be negative, got %v", f.RetryAfter))
	}
	return errors.Join(errs...)
}

// SetFaults replaces the injected faults. Requests already being handled keep
// the latency, throttling and server errors in force when they arrived; lost
// creates are decided when the response is about to be written, after any
// hold, and so follow the latest setting.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// currentFaults returns the faults in force.
func (s *Server) currentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// retryAfterSeconds converts a Retry-After delay to whole seconds, rounding
// up, with a minimum of one second.
func retryAfterSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 1
	}
	return max(int64(math.Ceil(d.Seconds())), 1)
}
