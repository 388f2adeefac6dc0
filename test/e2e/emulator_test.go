//go:build e2e

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

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// adminHeader authenticates calls to the emulator's administrative API.
const adminHeader = "X-Emulator-Admin"

// emulatorProcess is a running mobilenext-emulator and what it printed on
// start.
type emulatorProcess struct {
	// url is the base URL of the emulated API.
	url string
	// orgID is the bootstrap organization.
	orgID string
	// token is a session token of the bootstrap organization's admin.
	token string

	adminToken string
	http       *http.Client
	cmd        *exec.Cmd
	// exited is closed once the process has exited.
	exited chan struct{}
}

// remoteKey is a key as the emulator's administrative API lists it.
type remoteKey struct {
	OrganizationID string     `json:"organizationId"`
	ID             string     `json:"id"`
	Name           *string    `json:"name"`
	APIKeySuffix   string     `json:"apiKeySuffix"`
	CreatedAt      time.Time  `json:"createdAt"`
	LastUsedAt     *time.Time `json:"lastUsedAt"`
}

// name is the key's name, "" when it has none.
func (k remoteKey) name() string {
	if k.Name == nil {
		return ""
	}
	return *k.Name
}

// emulatorStats are the emulator's request counters.
type emulatorStats struct {
	List   int `json:"list"`
	Create int `json:"create"`
	Delete int `json:"delete"`
}

// startEmulator starts the emulator on a free loopback port with the
// administrative API enabled, and stops it when the test ends. Its request
// log goes to dir.
func startEmulator(t *testing.T, dir string) *emulatorProcess {
	t.Helper()
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	e := &emulatorProcess{
		adminToken: hex.EncodeToString(buf),
		http:       &http.Client{Timeout: 20 * time.Second},
		exited:     make(chan struct{}),
	}

	logFile, err := os.Create(filepath.Join(dir, "emulator.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logFile.Close() }()
	banner := newBannerWriter()
	e.cmd = exec.Command(emulatorBin, "--addr", "127.0.0.1:0")
	// The admin token goes through the environment rather than a flag,
	// which keeps it out of process listings.
	e.cmd.Env = append(os.Environ(), "EMULATOR_ADMIN_TOKEN="+e.adminToken)
	e.cmd.Stdout = banner
	e.cmd.Stderr = logFile
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("start the emulator: %v", err)
	}
	go func() {
		_ = e.cmd.Wait()
		close(e.exited)
	}()
	t.Cleanup(e.stop)

	select {
	case <-banner.done:
	case <-e.exited:
		t.Fatalf("the emulator exited on start: %v", e.cmd.ProcessState)
	case <-time.After(time.Minute):
		t.Fatal("the emulator did not print its address, organization and token within a minute")
	}
	e.url, e.orgID, e.token = banner.fields()
	return e
}

// stop terminates the emulator, killing it if it does not exit in time.
func (e *emulatorProcess) stop() {
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(30 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.exited
	}
}

// bannerWriter receives the emulator's standard output and picks the
// address, organization and session token from the lines it prints on start.
type bannerWriter struct {
	mu              sync.Mutex
	pending         []byte
	url, org, token string
	done            chan struct{}
	closed          bool
}

func newBannerWriter() *bannerWriter {
	return &bannerWriter{done: make(chan struct{})}
}

// Write implements io.Writer; it parses complete lines.
func (b *bannerWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = append(b.pending, p...)
	for {
		i := bytes.IndexByte(b.pending, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(b.pending[:i]))
		b.pending = b.pending[i+1:]
		if v, ok := strings.CutPrefix(line, "mobilenext-emulator listening on "); ok {
			b.url = v
		} else if v, ok := strings.CutPrefix(line, "organization: "); ok {
			// "org_… (Acme)": the id is the first field.
			b.org, _, _ = strings.Cut(v, " ")
		} else if v, ok := strings.CutPrefix(line, "session token: "); ok {
			b.token = v
		}
	}
	if !b.closed && b.url != "" && b.org != "" && b.token != "" {
		b.closed = true
		close(b.done)
	}
	return len(p), nil
}

// fields returns what the banner held.
func (b *bannerWriter) fields() (url, org, token string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.url, b.org, b.token
}

// admin calls the administrative API and decodes a JSON answer into out,
// when out is not nil.
func (e *emulatorProcess) admin(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, e.url+"/_emulator"+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set(adminHeader, e.adminToken)
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s /_emulator%s: %s: %s", method, path, resp.Status, bytes.TrimSpace(body))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s /_emulator%s: decode the answer: %w", method, path, err)
	}
	return nil
}

// keys lists every key the emulator holds.
func (e *emulatorProcess) keys(ctx context.Context) ([]remoteKey, error) {
	var list struct {
		Data []remoteKey `json:"data"`
	}
	if err := e.admin(ctx, http.MethodGet, "/keys", &list); err != nil {
		return nil, err
	}
	return list.Data, nil
}

// stats returns the request counters.
func (e *emulatorProcess) stats(ctx context.Context) (emulatorStats, error) {
	var s emulatorStats
	err := e.admin(ctx, http.MethodGet, "/stats", &s)
	return s, err
}

// hold makes creates block after storing their key, until release.
func (e *emulatorProcess) hold(ctx context.Context) error {
	return e.admin(ctx, http.MethodPost, "/hold", nil)
}

// release answers the held creates and stops holding new ones.
func (e *emulatorProcess) release(ctx context.Context) error {
	return e.admin(ctx, http.MethodPost, "/release", nil)
}

// held returns the number of creates blocked after storing their key.
func (e *emulatorProcess) held(ctx context.Context) (int, error) {
	var h struct {
		Held int `json:"held"`
	}
	err := e.admin(ctx, http.MethodGet, "/held", &h)
	return h.Held, err
}

// ping calls the API as a workload would, with apiKey as its credential, and
// returns the status of the answer: 200 for a live key.
func (e *emulatorProcess) ping(ctx context.Context, apiKey string) (int, error) {
	if apiKey == "" {
		return 0, errors.New("no API key to ping with")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/api/v1/ping", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
