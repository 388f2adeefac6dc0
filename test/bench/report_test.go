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
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/mobile-next/apikey-operator/internal/memlimit"
)

// Targets, from the issue the benchmark answers.
const (
	maxRatio = 1.5
	// maxMemory bounds the manager's peak resident memory with up to
	// restSize ApiKeys.
	maxMemory = 100 << 20
	// deploymentLimit is the memory limit of the manager's Deployment
	// (config/manager), the bound for larger N.
	deploymentLimit = 128 << 20
	// maxGrowth is how much more than the baseline's peak a memory case may
	// take and still count as "near zero" growth.
	maxGrowth = 5 << 20
)

// report gathers every figure for the table.
type report struct {
	curve []curvePoint
	rest  *restResult
	cases []caseResult
	// smallList and largeList are the median times of one list of the
	// organization before and after the foreign keys were added;
	// largeListKept is how many keys the operator's client kept of it.
	smallList, largeList time.Duration
	largeListKept        int
	elapsed              time.Duration
}

// row is one line of the table: a figure beside its target, and whether it
// meets it.
type row struct {
	figure, measured, reference, target string
	ok                                  *bool
}

func (r row) result() string {
	switch {
	case r.ok == nil:
		return ""
	case *r.ok:
		return "meets"
	default:
		return "**misses**"
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// print writes the table and its notes as Markdown.
func (r *report) print(out io.Writer) {
	rows := r.rows()
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(out, format, args...) }
	p("\n## apikey-operator at scale\n\n")
	p("- machine: %d CPUs, %s/%s, %s; a real kube-apiserver and etcd (envtest), "+
		"the emulated API in the benchmark's process\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	p("- manager: bin/manager %s, with GOMEMLIMIT at %.0f%% of the Deployment's %d MiB limit, as the manager "+
		"sets it in its container\n", strings.Join(managerArgs(), " "), memlimit.DefaultRatio*100, deploymentLimit>>20)
	p("- %s; same client rate limits (%d QPS, burst %d)\n", floorDefinition, kubeAPIQPS, kubeAPIBurst)
	p("- times: from the first ApiKey created (or deleted; by %d goroutines of the benchmark for the operator) "+
		"to the last one Ready (or gone), seen through the same watch for the floor and the operator\n", workers)
	p("- ratios: the operator's time over the floor's; (CPU n×) compares the CPU seconds kube-apiserver, etcd, " +
		"the manager and the benchmark used, which the other processes of a shared machine do not skew " +
		"(their share is in the notes below)\n")
	p("- memory: %d fresh managers per case, one after the other, on the cluster state of the case before plus "+
		"its addition; VmHWM (peak resident since start) and VmRSS from /proc/<pid>/status, read %d sync periods "+
		"after its first listing, of the run with the median peak; growth is that peak over the baseline's\n",
		memorySamples, settlePeriods)
	p("- API-server writes: apiserver_request_total of the API server, verbs POST, PUT, PATCH, DELETE, " +
		"without the Leases kube-apiserver renews for itself\n\n")
	p("| figure | measured | reference | target | result |\n|---|---|---|---|---|\n")
	missed := 0
	for _, x := range rows {
		p("| %s | %s | %s | %s | %s |\n", x.figure, x.measured, x.reference, x.target, x.result())
		if x.ok != nil && !*x.ok {
			missed++
		}
	}
	p("\n%d of %d figures with a target meet it; the benchmark took %v.\n",
		countTargets(rows)-missed, countTargets(rows), r.elapsed.Round(time.Second))
	p("\nWhere the time goes: API-server writes and reads per key (the benchmark's own creates and deletes "+
		"of the ApiKeys included), and the CPU seconds each process used, on %d CPUs:\n\n", runtime.NumCPU())
	for _, c := range r.curve {
		spans := []struct {
			what string
			s    sample
		}{
			{"floor, to Ready", c.floorCreate}, {"operator, to Ready", c.ready},
			{"floor, to deleted", c.floorDelete}, {"operator, to deleted", c.delete},
		}
		for _, x := range spans {
			writes := x.s.writes()
			p("- N=%d %s in %s: %.1f writes per key (%v), the API server answering one in %.1f ms on average; "+
				"%.1f reads per key (GET, LIST, WATCH); CPU %v\n",
				c.n, x.what, seconds(x.s.elapsed), perKey(writes, c.n), writes,
				float64(x.s.api.meanWrite().Microseconds())/1000, perKey(x.s.api.count, c.n)-perKey(writes, c.n), x.s.cpu)
		}
		p("- N=%d operator: %d GETs of the organization while creating, %d while deleting\n",
			c.n, c.ready.calls.List, c.delete.calls.List)
	}
	if r.rest != nil {
		p("- at rest: writes %v; every ApiKey showed its suffix %v after the last was Ready; CPU %v\n",
			r.rest.writes(), r.rest.complete.Round(time.Millisecond), r.rest.cpu)
	}
	for _, c := range r.cases {
		p("- restart, %s: writes %v; CPU %v\n", c.name, c.writes(), c.cpu)
	}
}

func perKey(c requestCounts, n int) float64 { return float64(c.total()) / float64(n) }

// cpuRatio compares the CPU time the benchmark's processes (the control
// plane, the manager, the benchmark) used in two spans: the work each did,
// whatever other processes of the machine took meanwhile.
func cpuRatio(a, b sample) float64 {
	own := func(c cpuTimes) float64 {
		return (c[roleAPIServer] + c[roleEtcd] + c[roleManager] + c[roleBench]).Seconds()
	}
	return own(a.cpu) / own(b.cpu)
}

func countTargets(rows []row) int {
	n := 0
	for _, x := range rows {
		if x.ok != nil {
			n++
		}
	}
	return n
}

// rows turns the figures into table rows, each beside its target.
func (r *report) rows() []row {
	var rows []row
	for _, c := range r.curve {
		rows = append(rows, row{
			figure:   fmt.Sprintf("%d ApiKeys Ready", c.n),
			measured: seconds(c.ready.elapsed),
			reference: fmt.Sprintf("floor %s: **%.2f×** (CPU %.2f×)",
				seconds(c.floorCreate.elapsed), c.readyRatio(), cpuRatio(c.ready, c.floorCreate)),
			target: fmt.Sprintf("≤ %.1f× floor", maxRatio),
			ok:     new(c.readyRatio() <= maxRatio),
		})
	}
	for _, c := range r.curve {
		rows = append(rows, row{
			figure:   fmt.Sprintf("%d ApiKeys deleted", c.n),
			measured: seconds(c.delete.elapsed),
			reference: fmt.Sprintf("floor %s: **%.2f×** (CPU %.2f×)",
				seconds(c.floorDelete.elapsed), c.deleteRatio(), cpuRatio(c.delete, c.floorDelete)),
			target: fmt.Sprintf("≤ %.1f× floor", maxRatio),
			ok:     new(c.deleteRatio() <= maxRatio),
		})
	}
	for _, c := range r.curve {
		rows = append(rows, row{
			figure:   fmt.Sprintf("remote POSTs / DELETEs, N=%d", c.n),
			measured: fmt.Sprintf("%d / %d", c.ready.calls.Create, c.delete.calls.Delete),
			target:   fmt.Sprintf("%d / %d", c.n, c.n),
			ok: new(c.ready.calls.Create == c.n && c.delete.calls.Delete == c.n &&
				c.ready.calls.Delete == 0 && c.delete.calls.Create == 0),
		})
	}
	for _, c := range r.curve {
		limit, target := uint64(maxMemory), fmt.Sprintf("≤ %d MiB", maxMemory>>20)
		if c.n > restSize {
			limit, target = deploymentLimit, fmt.Sprintf("≤ %d MiB, the Deployment's limit", deploymentLimit>>20)
		}
		rows = append(rows, row{
			figure:    fmt.Sprintf("manager memory, %d ApiKeys just Ready", c.n),
			measured:  fmt.Sprintf("peak %.1f MiB", mib(c.mem.peak)),
			reference: fmt.Sprintf("RSS %.1f MiB", mib(c.mem.rss)),
			target:    target,
			ok:        new(c.mem.peak <= limit),
		})
	}
	if s := r.rest; s != nil {
		perPeriod := float64(s.calls.List) / s.periods()
		rows = append(rows,
			row{
				figure:   fmt.Sprintf("at rest, %d ApiKeys: API-server writes over %.1f sync periods", restSize, s.periods()),
				measured: fmt.Sprint(s.writes().total()),
				target:   "0",
				ok:       new(s.writes().total() == 0),
			},
			row{
				figure:    "at rest: remote GETs per sync period, one connection",
				measured:  fmt.Sprintf("%.2f", perPeriod),
				reference: fmt.Sprintf("%d in %s", s.calls.List, seconds(s.elapsed)),
				target:    "1",
				ok:        new(s.calls.List >= 1 && perPeriod <= 1),
			},
			row{
				figure:   "at rest: other remote calls",
				measured: fmt.Sprint(s.calls.Create + s.calls.Delete),
				target:   "0",
				ok:       new(s.calls.Create+s.calls.Delete == 0),
			})
	}
	if len(r.cases) > 0 {
		c := r.cases[0]
		rows = append(rows,
			row{
				figure:    fmt.Sprintf("restart with %d Ready: remote calls but the list", restSize),
				measured:  fmt.Sprint(c.calls.Create + c.calls.Delete),
				reference: fmt.Sprintf("%d GETs in %s", c.calls.List, seconds(c.elapsed)),
				target:    "0",
				ok:        new(c.calls.Create+c.calls.Delete == 0),
			},
			row{
				figure:    "restart: API-server writes",
				measured:  fmt.Sprint(c.writes().total()),
				reference: fmt.Sprintf("%d of %d ApiKeys Ready after", c.ready, restSize),
				target:    "0",
				ok:        new(c.writes().total() == 0 && c.ready == restSize),
			})
		base := c.mem.peak
		for i, c := range r.cases {
			x := row{
				figure:   "manager memory, " + c.name,
				measured: fmt.Sprintf("peak %.1f MiB", mib(c.mem.peak)),
				target:   fmt.Sprintf("≤ %d MiB", maxMemory>>20),
				ok:       new(c.mem.peak <= maxMemory),
			}
			runs := make([]string, len(c.peaks))
			for j, p := range c.peaks {
				runs[j] = fmt.Sprintf("%.1f", mib(p))
			}
			peaks := fmt.Sprintf("median of %d runs (%s)", len(c.peaks), strings.Join(runs, ", "))
			if i == 0 {
				x.reference = fmt.Sprintf("RSS %.1f MiB; %s", mib(c.mem.rss), peaks)
			} else {
				growth := int64(c.mem.peak) - int64(base)
				x.reference = fmt.Sprintf("RSS %.1f MiB; growth %+.1f MiB; %s", mib(c.mem.rss), float64(growth)/(1<<20), peaks)
				x.target += fmt.Sprintf(", growth ≤ %d MiB", maxGrowth>>20)
				x.ok = new(c.mem.peak <= maxMemory && growth <= maxGrowth)
			}
			rows = append(rows, x)
		}
		last := r.cases[len(r.cases)-1]
		rows = append(rows, row{
			figure:   fmt.Sprintf("one list of the organization, %d keys", foreignKeys+restSize),
			measured: fmt.Sprintf("%d ms, %d kept", r.largeList.Milliseconds(), r.largeListKept),
			reference: fmt.Sprintf("%d keys: %d ms; after: %d of %d Ready, %d Synced",
				restSize, r.smallList.Milliseconds(), last.ready, restSize, last.synced),
			target: "works: only the operator's keys kept, every ApiKey Ready and Synced",
			ok: new(r.largeListKept == restSize && last.ready == restSize && last.synced == restSize &&
				last.calls.List > 0),
		})
	}
	return rows
}
