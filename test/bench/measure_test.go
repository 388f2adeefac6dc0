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
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mobile-next/apikey-operator/internal/emulator"
)

// clockTicks is the unit of utime and stime in /proc/<pid>/stat (USER_HZ),
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTimes are the CPU seconds the processes of the benchmark used, by role.
type cpuTimes map[string]time.Duration

// Roles of the processes whose CPU time is accounted.
const (
	roleAPIServer = "kube-apiserver"
	roleEtcd      = "etcd"
	roleManager   = "manager"
	roleBench     = "benchmark"
	// roleOthers is every other process of the machine, which the
	// benchmark shares.
	roleOthers = "other processes"
)

// readCPU reads the CPU time of the benchmark, of its children etcd and
// kube-apiserver, and of the manager m (when not nil).
func readCPU(m *managerProcess) (cpuTimes, error) {
	out := cpuTimes{}
	self := os.Getpid()
	st, err := procStat(strconv.Itoa(self))
	if err != nil {
		return nil, err
	}
	out[roleBench] = st.cpu
	if m != nil {
		st, err := procStat(strconv.Itoa(m.cmd.Process.Pid))
		if err != nil {
			return nil, err
		}
		out[roleManager] = st.cpu
	}
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		st, err := procStat(filepath.Base(d))
		if err != nil || st.ppid != self {
			continue
		}
		switch st.comm {
		case roleAPIServer, roleEtcd:
			out[st.comm] += st.cpu
		}
	}
	busy, err := machineBusy()
	if err != nil {
		return nil, err
	}
	out[roleOthers] = busy
	for role, v := range out {
		if role != roleOthers {
			out[roleOthers] -= v
		}
	}
	return out, nil
}

// machineBusy is the CPU time every CPU of the machine spent not idle since
// boot, from /proc/stat.
func machineBusy() (time.Duration, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, fmt.Errorf("malformed /proc/stat")
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed /proc/stat: %w", err)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice:
		// idle and iowait are not busy; guest time is already in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

type procStatus struct {
	comm string
	ppid int
	cpu  time.Duration
}

// procStat reads the command name, parent and user+system CPU time of a
// process from /proc/<pid>/stat.
func procStat(pid string) (procStatus, error) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procStatus{}, err
	}
	s := string(data)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return procStatus{}, fmt.Errorf("malformed /proc/%s/stat", pid)
	}
	// After the command: state ppid pgrp session tty_nr tpgid flags minflt
	// cminflt majflt cmajflt utime stime ...
	f := strings.Fields(s[closing+1:])
	if len(f) < 13 {
		return procStatus{}, fmt.Errorf("malformed /proc/%s/stat", pid)
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseInt(f[11], 10, 64)
	stime, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procStatus{}, fmt.Errorf("malformed /proc/%s/stat", pid)
	}
	return procStatus{
		comm: s[open+1 : closing],
		ppid: ppid,
		cpu:  time.Duration(utime+stime) * time.Second / clockTicks,
	}, nil
}

// since is the CPU time used after before.
func (c cpuTimes) since(before cpuTimes) cpuTimes {
	out := cpuTimes{}
	for k, v := range c {
		out[k] = v - before[k]
	}
	return out
}

// String lists the CPU seconds in a fixed order.
func (c cpuTimes) String() string {
	var parts []string
	for _, role := range []string{roleAPIServer, roleEtcd, roleManager, roleBench, roleOthers} {
		if v, ok := c[role]; ok {
			parts = append(parts, fmt.Sprintf("%s %.1f s", role, v.Seconds()))
		}
	}
	return strings.Join(parts, ", ")
}

// sample is what happened during one measured span: its length, the API
// server's requests, the CPU time used and the calls to the emulated API.
type sample struct {
	// end is when the span ended.
	end     time.Time
	elapsed time.Duration
	api     apiserverStats
	cpu     cpuTimes
	calls   emulator.Stats
}

// writes are the API-server requests of the span that changed state.
func (s sample) writes() requestCounts { return s.api.count.writes() }

// span measures from begin to end.
type span struct {
	w     *world
	m     *managerProcess
	start time.Time
	api   apiserverStats
	cpu   cpuTimes
}

// begin starts a span, resetting the emulator's counters; m is the manager
// whose CPU time counts, if any.
func (w *world) begin(ctx context.Context, m *managerProcess) (*span, error) {
	req, err := w.apiserverRequests(ctx)
	if err != nil {
		return nil, err
	}
	cpu, err := readCPU(m)
	if err != nil {
		return nil, err
	}
	w.emu.ResetStats()
	return &span{w: w, m: m, start: time.Now(), api: req, cpu: cpu}, nil
}

// end ends the span at `at`, or now when at is zero.
func (s *span) end(ctx context.Context, at time.Time) (sample, error) {
	if at.IsZero() {
		at = time.Now()
	}
	out := sample{end: at, elapsed: at.Sub(s.start), calls: s.w.emu.Stats()}
	cpu, err := readCPU(s.m)
	if err != nil {
		return out, err
	}
	out.cpu = cpu.since(s.cpu)
	req, err := s.w.apiserverRequests(ctx)
	if err != nil {
		return out, err
	}
	out.api = req.since(s.api)
	return out, nil
}
