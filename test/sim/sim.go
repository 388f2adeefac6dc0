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

package sim

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/emulator"
)

// Settings of the simulated operator. The sync period is shorter than the
// manager's default so that a run covers many periods, grace periods and
// create windows in a few hundred steps.
const (
	syncPeriod              = 2 * time.Minute
	credentialsPollInterval = time.Minute
	// resyncPeriod is the informers' periodic resync.
	resyncPeriod = time.Hour
	// quiesceFor is how long the clock runs without faults before the
	// final checks: past every create window (10m), grace period (10m at
	// most here), backoff (5m) and deletion backoff (10m), twice over.
	quiesceFor = 2 * time.Hour
	// maxQuiesceSteps bounds the fault-free phase: more reconciles than
	// this in quiesceFor is a hot loop.
	maxQuiesceSteps = 20000
)

// Config is one simulation run.
type Config struct {
	Seed uint64
	// Steps is the number of steps with faults and user actions.
	Steps int
	// Only, when non-nil, restricts the faults to these kinds (shrinking).
	Only map[FaultKind]bool
	// Spare names faults that do not strike after all, by their number in
	// the order they were drawn (from 1): shrinking drops them one by one.
	Spare map[int]bool
	// FullTrace keeps the operator's log lines in the trace too.
	FullTrace bool
	// extra is one more invariant, checked after every step; the tests of
	// the simulator itself use it.
	extra func(*World) string
}

// Result is what one run found.
type Result struct {
	Seed       uint64
	Violations []string
	Stats      Stats
	// Trace is the readable history of the run.
	Trace string
	// Schedule lists the faults that struck, by step.
	Schedule []string
	// Drawn counts the faults drawn, spared ones included: the numbers
	// Config.Spare may name.
	Drawn int
}

// Stats counts what happened in a run.
type Stats struct {
	Steps, Reconciles, Restarts, UserActions int
	Faults                                   map[FaultKind]int
	Simulated                                time.Duration
	APICalls                                 int
	// NoopWrites are writes of the operator that changed nothing but the
	// resourceVersion (a real API server drops them, at the cost of a
	// request).
	NoopWrites int
	// MaxCallsPerHour is the most API calls in one simulated hour of the
	// fault-free phase.
	MaxCallsPerHour int
}

// World is the whole simulated system: the API server's store, the remote
// API, one operator process at a time, the user, and one clock.
type World struct {
	cfg Config
	rng *rand.Rand
	// drawn counts the faults drawn so far (Config.Spare).
	drawn int
	// entropy is the operator's source of chance, kept across restarts.
	entropy io.Reader
	ctx     context.Context
	scheme  *runtime.Scheme
	clock   *clocktesting.FakeClock
	begin   time.Time
	emu     *emulator.Server
	store   client.WithWatch
	proc    *process

	faultsOn   bool
	rates      map[FaultKind]float64
	nextResync time.Time
	late       []lateCreate
	uidSeq     int
	step       int
	// writes counts the writes to the store; with the API calls it tells
	// whether anything changed since the cache was synced or the state
	// was checked.
	writes     int
	syncedAt   int
	controlled int
	checkedAt  int
	phase      string

	// The remote world.
	user     string
	orgIDs   []string
	orgNames map[string]string
	// secretOf maps every secret the API ever returned to its key id.
	secretOf map[string]string
	revoked  map[string]bool
	// readOnly are the organizations where the user may not delete keys.
	readOnly map[string]bool
	// orphaned are keys left on purpose by deletionPolicy: Orphan.
	orphaned map[string]bool
	// leftOut are the keys the last list answer for an organization left
	// out (by X-Organization-Id); leftOutNow is set while the answer being
	// sent is one that left keys out.
	leftOut    map[string]map[string]bool
	leftOutNow bool

	// The user's world.
	model userModel

	// tokens are every session token issued, for the leak checks.
	tokens []string
	// lastSeen is the last version of each ApiKey the store held, for
	// telling which keys an ApiKey left behind with deletionPolicy Orphan.
	lastSeen map[types.UID]*iamv1alpha1.ApiKey

	calls      map[int]int
	stats      Stats
	trace      strings.Builder
	schedule   []string
	violations []string
	seen       map[string]bool
}

// Run simulates one seed.
func Run(cfg Config) Result {
	w := newWorld(cfg)
	return w.run()
}

func newWorld(cfg Config) *World {
	if cfg.Steps == 0 {
		cfg.Steps = 300
	}
	w := &World{
		cfg:      cfg,
		rng:      rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		scheme:   newScheme(),
		begin:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		orgNames: map[string]string{},
		secretOf: map[string]string{},
		revoked:  map[string]bool{},
		readOnly: map[string]bool{},
		orphaned: map[string]bool{},
		leftOut:  map[string]map[string]bool{},
		calls:    map[int]int{},
		seen:     map[string]bool{},
		lastSeen: map[types.UID]*iamv1alpha1.ApiKey{},
		stats:    Stats{Faults: map[FaultKind]int{}},
	}
	w.clock = clocktesting.NewFakeClock(w.begin)
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], cfg.Seed)
	w.emu = emulator.New(emulator.Options{Clock: w.clock, Entropy: rand.NewChaCha8(seed)})
	// The operator draws its attempt ids and jitter from a stream of its
	// own, so one seed gives one history and seeds can run side by side.
	seed[31] = 1
	w.entropy = rand.NewChaCha8(seed)
	w.store = w.newStore()
	w.ctx = logr.NewContext(context.Background(), funcr.New(func(prefix, args string) {
		line := prefix + " " + args
		w.scan("log", line)
		if w.cfg.FullTrace {
			w.tracef("  log %s", line)
		}
	}, funcr.Options{Verbosity: 10}))
	w.chooseFaults()

	w.phase = "setup"
	w.setup()
	w.start()
	w.nextResync = w.clock.Now().Add(resyncPeriod)
	return w
}

func (w *World) run() Result {
	cfg := w.cfg
	w.check()
	w.phase = "chaos"
	w.faultsOn = true
	for w.step = 1; w.step <= cfg.Steps && len(w.violations) == 0; w.step++ {
		w.chaosStep()
		w.check()
	}
	if len(w.violations) == 0 {
		w.quiesce()
	}
	w.stats.Steps = w.step
	w.stats.Simulated = w.clock.Since(w.begin)
	return Result{
		Seed: cfg.Seed, Violations: w.violations, Stats: w.stats,
		Trace: w.trace.String(), Schedule: w.schedule, Drawn: w.drawn,
	}
}

func (w *World) tracef(format string, args ...any) {
	fmt.Fprintf(&w.trace, "%5d %-9s %s\n", w.step, w.since(w.clock.Now()), fmt.Sprintf(format, args...))
}

// since is a time as an offset from the start of the run: traces of one
// seed are identical byte for byte.
func (w *World) since(t time.Time) string {
	return "+" + t.Sub(w.begin).Truncate(time.Second).String()
}

func (w *World) violatef(format string, args ...any) {
	v := fmt.Sprintf("step %d (%s, %s): ", w.step, w.phase, w.since(w.clock.Now())) + fmt.Sprintf(format, args...)
	w.violations = append(w.violations, v)
	w.tracef("VIOLATION %s", v)
}

func (w *World) countCall() {
	w.stats.APICalls++
	if w.phase == "quiesce" {
		w.calls[int(w.clock.Since(w.begin)/time.Hour)]++
	}
}

func (w *World) orgName(id string) string {
	if n, ok := w.orgNames[id]; ok {
		return n
	}
	return "default"
}

// advance moves the clock, letting the server commit the late creates that
// fall due on the way.
func (w *World) advance(to time.Time) {
	for {
		slices.SortStableFunc(w.late, func(a, b lateCreate) int { return a.due.Compare(b.due) })
		if len(w.late) == 0 || w.late[0].due.After(to) {
			break
		}
		l := w.late[0]
		w.late = w.late[1:]
		if l.due.After(w.clock.Now()) {
			w.clock.SetTime(l.due)
		}
		w.commitLate(l)
	}
	if to.After(w.clock.Now()) {
		w.clock.SetTime(to)
	}
	if !w.clock.Now().Before(w.nextResync) {
		w.tracef("resync")
		w.resync()
	}
}

// chaosStep is one step of the seeded schedule: a reconcile, the cache
// catching up, the garbage collector or namespace controller, a user
// action, a late create committed, a crash, or time passing.
func (w *World) chaosStep() {
	due := w.dueWork()
	r := w.rng.IntN(1000)
	switch {
	case r < 60:
		w.userAction()
	case r < 70 && w.roll(faultCrash):
		w.stats.Faults[faultCrash]++
		w.note(faultCrash, "idle")
		w.tracef("crash between reconciles")
		w.proc.dead = true
		w.restart()
	case r < 110:
		w.syncCache(false, true)
	case r < 130:
		w.apiServerControllers()
	case r < 145 && len(w.late) > 0:
		i := w.rng.IntN(len(w.late))
		l := w.late[i]
		w.late = slices.Delete(w.late, i, i+1)
		w.commitLate(l)
	case r < 260 || len(due) == 0:
		if len(due) == 0 {
			w.advance(w.nextDue())
		} else {
			w.advance(w.clock.Now().Add(time.Duration(1+w.rng.IntN(120)) * time.Second))
		}
	default:
		// The cache usually caught up with the last writes before the
		// next reconcile; with stale-cache faults it often did not.
		if !w.fault(faultStaleCache) {
			w.syncCache(true, true)
		}
		w.runReconcile(due[w.rng.IntN(len(due))])
	}
}

// apiServerControllers runs the garbage collector and the namespace
// controller once.
func (w *World) apiServerControllers() {
	if w.controlled == w.writes {
		return
	}
	w.controlled = w.writes
	if err := w.finalizeNamespaces(context.Background()); err != nil {
		w.violatef("simulator: namespace controller: %v", err)
	}
	if err := w.collectGarbage(context.Background()); err != nil {
		w.violatef("simulator: garbage collector: %v", err)
	}
}

// quiesce turns the faults off, lets the user fix what only a human can
// (expired tokens), delivers what is still in flight, and runs the clock
// past every window before the final checks.
func (w *World) quiesce() {
	w.phase = "quiesce"
	w.faultsOn = false
	w.tracef("quiescence: faults off")
	for _, l := range w.late {
		w.commitLate(l)
	}
	w.late = nil
	w.renewTokens()
	w.admitEveryNamespace()
	end := w.clock.Now().Add(quiesceFor)
	for i := 0; ; i++ {
		if i >= maxQuiesceSteps {
			w.violatef("no quiescence: more than %d reconciles in %s without faults (a hot loop?)", maxQuiesceSteps, quiesceFor)
			return
		}
		w.step++
		w.syncCache(true, false)
		w.apiServerControllers()
		w.syncCache(true, false)
		due := w.dueWork()
		if len(due) == 0 {
			next := w.nextDue()
			if next.After(end) {
				break
			}
			w.advance(next)
			continue
		}
		w.runReconcile(due[0])
		w.check()
		if len(w.violations) > 0 {
			return
		}
	}
	w.advance(end)
	w.syncCache(true, false)
	w.checkQuiescent()
}
