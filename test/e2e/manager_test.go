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
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// managerProcess is a running manager.
type managerProcess struct {
	cmd *exec.Cmd
	// log is the file the process writes its log to.
	log string
	// exited is closed once the process has exited.
	exited chan struct{}
}

// startManager starts the fixture's manager against the shared cluster,
// logging to a new file of the fixture's directory; extraArgs are added to
// its command line. Only one such manager runs at a time: two would race on
// the same ApiKeys, which is what leader election prevents in a real
// deployment.
func (f *fixture) startManager(extraArgs ...string) {
	t := f.t
	t.Helper()
	if f.manager != nil {
		t.Fatal("a manager is already running")
	}
	f.manager = f.launchManager(extraArgs...)
}

// launchManager starts a manager process as startManager does, without
// making it the fixture's manager: tests of leader election run several and
// choose which one the fixture's checks and cleanup follow.
func (f *fixture) launchManager(extraArgs ...string) *managerProcess {
	t := f.t
	t.Helper()
	logPath := filepath.Join(f.dir, fmt.Sprintf("manager-%d.log", len(f.managerLogs)+1))
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The child keeps its own descriptor; ours is not needed past Start.
	defer func() { _ = logFile.Close() }()

	args := []string{
		"--sync-period=" + syncPeriod.String(),
		"--credentials-poll-interval=" + credentialsPollInterval.String(),
		"--create-attempt-window=" + createAttemptWindow.String(),
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
		// Debug logging widens the search for leaked secrets to every line
		// the manager can write.
		"--zap-log-level=debug",
	}
	cmd := exec.Command(managerBin, append(args, extraArgs...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the manager: %v", err)
	}
	m := &managerProcess{cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(m.exited)
	}()
	f.managerLogs = append(f.managerLogs, logPath)
	t.Logf("started manager %d (pid %d)", len(f.managerLogs), cmd.Process.Pid)
	return m
}

// killManager kills the manager with SIGKILL, as an OOM kill or a node
// failure would: no deferred call, no graceful shutdown, requests in flight
// cut off. It returns once the process is gone.
func (f *fixture) killManager() {
	t := f.t
	t.Helper()
	m := f.manager
	if m == nil {
		t.Fatal("no manager is running")
	}
	select {
	case <-m.exited:
		t.Fatalf("the manager had already exited: %v", m.cmd.ProcessState)
	default:
	}
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill the manager: %v", err)
	}
	<-m.exited
	f.manager = nil
	t.Logf("killed manager %d with SIGKILL", len(f.managerLogs))
}

// stopManager stops the manager gracefully, killing it if it does not exit
// in time.
func (f *fixture) stopManager() {
	if f.manager == nil {
		return
	}
	f.manager.stop()
	f.manager = nil
}

// stop stops the process gracefully, killing it if it does not exit in time.
func (m *managerProcess) stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(time.Minute):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

// checkManagerRunning reports an error if the manager exited on its own,
// which no test expects.
func (f *fixture) checkManagerRunning() error {
	if f.manager == nil {
		return nil
	}
	select {
	case <-f.manager.exited:
		return fmt.Errorf("the manager exited unexpectedly: %v", f.manager.cmd.ProcessState)
	default:
		return nil
	}
}
