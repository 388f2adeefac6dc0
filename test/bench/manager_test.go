//go:build bench

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

package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mobile-next/apikey-operator/internal/memlimit"
)

// The manager's settings in every phase. The sync period is short so that
// several periods fit in the benchmark, and the credentials are read again
// twice per at-rest window, so that what each poll writes shows. The client
// rate limits are raised from their defaults (50 and 100) so that they are
// not what is measured: the floor's client gets the same.
const (
	syncPeriod              = 5 * time.Second
	credentialsPollInterval = 10 * time.Second
	workers                 = 8
	kubeAPIQPS              = 1000
	kubeAPIBurst            = 2000
	// settlePeriods is how long after its first listing a fresh manager
	// runs before its memory is read, in sync periods.
	settlePeriods  = 2
	managerTimeout = time.Minute
)

// managerArgs are the manager's command-line flags.
func managerArgs() []string {
	return []string{
		"--sync-period=" + syncPeriod.String(),
		"--credentials-poll-interval=" + credentialsPollInterval.String(),
		"--max-concurrent-reconciles=" + strconv.Itoa(workers),
		"--kube-api-qps=" + strconv.Itoa(kubeAPIQPS),
		"--kube-api-burst=" + strconv.Itoa(kubeAPIBurst),
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
	}
}

// managerProcess is a running bin/manager.
type managerProcess struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

// managers counts the managers started, to name their logs.
var managers atomic.Int32

// running are the managers started and not yet stopped, so that an
// interrupted benchmark leaves none behind.
var running sync.Map

// startManager starts bin/manager against the control plane, logging to a
// file named after the phase.
func (w *world) startManager(phase string) (*managerProcess, error) {
	logPath := filepath.Join(w.dir, fmt.Sprintf("manager-%02d-%s.log", managers.Add(1), phase))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(w.managerBin, append(managerArgs(), strings.Fields(*managerFlags)...)...)
	// The Go memory limit the manager gives itself in its Deployment
	// (memlimit.Set from the container's limit); GOMEMLIMIT stands in for
	// the cgroup this process does not run in.
	limit, ratio := float64(deploymentLimit), memlimit.DefaultRatio
	goMemLimit := int64(limit * ratio)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+w.cluster.Kubeconfig, "GOMEMLIMIT="+strconv.FormatInt(goMemLimit, 10))
	cmd.Env = append(cmd.Env, strings.Fields(*envFlag)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The manager dies with the benchmark, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the manager: %w", err)
	}
	m := &managerProcess{cmd: cmd, log: logPath, exited: make(chan struct{})}
	running.Store(m, struct{}{})
	go func() {
		_ = cmd.Wait()
		close(m.exited)
	}()
	return m, nil
}

// stop stops the manager gracefully, killing it if it does not exit in time.
func (m *managerProcess) stop() {
	defer running.Delete(m)
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(managerTimeout):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

// kill kills the manager at once.
func (m *managerProcess) kill() {
	defer running.Delete(m)
	_ = m.cmd.Process.Kill()
	<-m.exited
}

// killAll kills every manager still running.
func killAll() {
	running.Range(func(k, _ any) bool {
		k.(*managerProcess).kill()
		return true
	})
}

// alive reports an error if the manager exited on its own.
func (m *managerProcess) alive() error {
	select {
	case <-m.exited:
		return fmt.Errorf("the manager exited: %v; the end of its log:\n%s", m.cmd.ProcessState, tail(m.log, 30))
	default:
		return nil
	}
}

// memory is what /proc/<pid>/status says of a process's resident memory.
type memory struct {
	// peak is VmHWM, the most resident memory since the process started.
	peak uint64
	// rss is VmRSS, the resident memory now.
	rss uint64
}

// memory reads the manager's resident memory.
func (m *managerProcess) memory() (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
	if err != nil {
		return memory{}, err
	}
	defer func() { _ = f.Close() }()
	var out memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *uint64
		switch name {
		case "VmHWM":
			dst = &out.peak
		case "VmRSS":
			dst = &out.rss
		default:
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("parse %s %q: %w", name, value, err)
		}
		*dst = kb * 1024
	}
	if out.peak == 0 {
		return memory{}, fmt.Errorf("no VmHWM in /proc/%d/status", m.cmd.Process.Pid)
	}
	return out, sc.Err()
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
