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

// Package bench measures the operator at scale against the floor, the
// least the API server must do for the same keys, and prints one table of
// figures, each beside its target. The manager runs as a real process
// (bin/manager) on a real control plane, so that its resident memory can be
// read from /proc; the emulated API runs in the benchmark's process, which
// counts every call the manager makes to it. Linux only.
//
// Run it with make bench, which builds the manager and sets
// KUBEBUILDER_ASSETS and MANAGER_BIN.
package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// theWorld is set up by TestMain and shared by the benchmark.
var theWorld *world

// Parts of the benchmark can be run alone while working on one figure, e.g.
// make bench BENCHFLAGS='-bench.sizes=5000 -bench.memory=false'. The table
// the README quotes is a run of the whole.
var (
	sizesFlag = flag.String("bench.sizes", defaultSizes,
		"the Ns of the curve, comma-separated (empty: none); the at-rest and restart figures need "+
			strconv.Itoa(restSize))
	memoryFlag = flag.Bool("bench.memory", true, "measure the four memory cases")
	keepFlag   = flag.Bool("bench.keep", false,
		"keep the benchmark's directory (the managers' logs, the control plane's data) and print where it is")
	envFlag = flag.String("bench.manager-env", "",
		"space-separated NAME=VALUE pairs added to the managers' environment, e.g. GODEBUG=gctrace=1")
	managerFlags = flag.String("bench.manager-flags", "",
		"space-separated flags added to the managers' command line, e.g. --pprof-bind-address=127.0.0.1:6060")
)

// curveSizes parses -bench.sizes.
func curveSizes() ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(*sizesFlag, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-bench.sizes: %q is not a number of keys", f)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// runMain starts the control plane and the emulator, runs the benchmark and
// stops everything it started, also when interrupted.
func runMain(m *testing.M) int {
	var missing []string
	for _, name := range []string{"KUBEBUILDER_ASSETS", "MANAGER_BIN"} {
		if os.Getenv(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %s not set: run the benchmark with make bench, which builds the manager "+
			"and points the benchmark at it and at the control plane binaries\n", strings.Join(missing, ", "))
		return 1
	}
	managerBin, err := filepath.Abs(os.Getenv("MANAGER_BIN"))
	if err == nil {
		_, err = os.Stat(managerBin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: MANAGER_BIN: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "apikey-bench-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	defer func() {
		if *keepFlag {
			fmt.Fprintf(os.Stderr, "bench: kept %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()

	// The benchmark's own watches log nothing worth reading.
	logf.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := newWorld(ctx, dir, managerBin)
	defer func() {
		killAll()
		if w != nil {
			w.stop()
		}
	}()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	theWorld = w

	// An interrupted benchmark still stops the manager, the control plane
	// and the emulator.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		fmt.Fprintf(os.Stderr, "bench: %v: stopping\n", sig)
		killAll()
		w.stop()
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}()
	return m.Run()
}

// BenchmarkScale runs every phase once (make bench passes -benchtime 1x)
// and prints the table. The phases share one control plane and run in this
// order:
//
//  1. for N = 100, 1000, 5000: the floor for N keys (no manager running),
//     then a fresh manager makes N ApiKeys Ready, [N=1000: stays at rest
//     for a few sync periods,] and deletes them;
//  2. 1000 ApiKeys made Ready again, then a fresh manager per memory case,
//     each on the cluster state of the one before plus its addition: at
//     rest (the baseline, which is also the restart), 10,000 foreign
//     Secrets, 500 tenant Secrets labelled managed-by, and 100,000 keys in
//     the organization that are not the operator's.
func BenchmarkScale(b *testing.B) {
	w := theWorld
	ctx := b.Context()
	var r report
	sizes, err := curveSizes()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for _, n := range sizes {
		p, err := w.curve(ctx, n, n == restSize, &r)
		if err != nil {
			b.Fatalf("N=%d: %v", n, err)
		}
		r.curve = append(r.curve, p)
	}
	if *memoryFlag {
		if err := w.memoryCases(ctx, &r); err != nil {
			b.Fatal(err)
		}
	}
	r.elapsed = time.Since(start)
	r.print(os.Stdout)
	for _, p := range r.curve {
		if p.n == restSize {
			b.ReportMetric(p.readyRatio(), "ready/floor")
			b.ReportMetric(p.deleteRatio(), "delete/floor")
		}
	}
	if len(r.cases) > 0 {
		b.ReportMetric(mib(r.cases[len(r.cases)-1].mem.peak), "peak-MiB")
	}
}

// progress tells the person running the benchmark where it is.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
