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
	"context"
	"sync"
)

// holdGate blocks create responses while holding is on.
type holdGate struct {
	mu sync.Mutex
	// release is non-nil while holding; closing it frees every waiter.
	release chan struct{}
	// held is the number of requests currently waiting.
	held int
}

// hold turns holding on. It is idempotent.
func (g *holdGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release == nil {
		g.release = make(chan struct{})
	}
}

// releaseAll turns holding off and frees every waiting request.
func (g *holdGate) releaseAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release != nil {
		close(g.release)
		g.release = nil
	}
}

// wait blocks while holding is on, until release or until ctx is done. It
// reports whether the caller should go on, which is false when ctx ended
// first.
func (g *holdGate) wait(ctx context.Context) bool {
	g.mu.Lock()
	release := g.release
	if release == nil {
		g.mu.Unlock()
		return true
	}
	g.held++
	g.mu.Unlock()

	defer func() {
		g.mu.Lock()
		g.held--
		g.mu.Unlock()
	}()
	select {
	case <-release:
		return true
	case <-ctx.Done():
		return false
	}
}

// count returns the number of waiting requests.
func (g *holdGate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// HoldCreates makes create requests block after storing their key and before
// writing their response, until [Server.ReleaseCreates] or until the client
// goes away. It lets tests kill a client at the worst moment: the key exists
// but the client never received its secret.
//
// Blocked requests keep their connections busy, which makes
// httptest.Server.Close and http.Server.Shutdown wait for them; release
// them or cancel their requests first.
func (s *Server) HoldCreates() {
	s.holds.hold()
}

// ReleaseCreates lets blocked create requests answer and stops holding new
// ones.
func (s *Server) ReleaseCreates() {
	s.holds.releaseAll()
}

// HeldCreates returns the number of create requests currently blocked after
// storing their key.
func (s *Server) HeldCreates() int {
	return s.holds.count()
}
