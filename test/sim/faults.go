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

import "fmt"

// FaultKind names one kind of injected fault.
type FaultKind string

// The faults the seed can inject.
const (
	// faultCrash kills the operator process at a write or API call of a
	// reconcile (before it, or right after it took effect), or between
	// reconciles.
	faultCrash FaultKind = "crash"
	// Remote faults.
	faultCreateLost502     FaultKind = "create-lost-502"
	faultCreateLostReset   FaultKind = "create-lost-reset"
	faultCreateLate        FaultKind = "create-committed-late"
	faultHTTP5xx           FaultKind = "http-5xx"
	faultHTTP429RetryAfter FaultKind = "http-429-retry-after"
	faultHTTP429           FaultKind = "http-429"
	faultTimeout           FaultKind = "timeout"
	faultListPartial       FaultKind = "list-partial"
	faultDeleteLost        FaultKind = "delete-lost-502"
	// Kubernetes faults.
	faultKubeConflict FaultKind = "kube-conflict"
	faultKubeError    FaultKind = "kube-write-error"
	faultKubeUnclear  FaultKind = "kube-write-unclear"
	faultStaleCache   FaultKind = "stale-cache"
	faultEventDropped FaultKind = "event-dropped"
)

// AllFaults lists every fault kind, in a fixed order.
var AllFaults = []FaultKind{
	faultCrash,
	faultCreateLost502, faultCreateLostReset, faultCreateLate,
	faultHTTP5xx, faultHTTP429RetryAfter, faultHTTP429, faultTimeout,
	faultListPartial, faultDeleteLost,
	faultKubeConflict, faultKubeError, faultKubeUnclear, faultStaleCache, faultEventDropped,
}

// chooseFaults draws the fault profile of a run: each kind is off, rare or
// frequent. Runs differ in which faults they combine, so that a bug needing
// one fault without the noise of the others is found too.
func (w *World) chooseFaults() {
	w.rates = map[FaultKind]float64{}
	levels := []float64{0, 0.02, 0.06, 0.15}
	for _, k := range AllFaults {
		rate := levels[w.rng.IntN(len(levels))]
		switch k {
		case faultCrash:
			rate /= 2
		case faultStaleCache, faultEventDropped:
			rate *= 3
		}
		if w.cfg.Only != nil && !w.cfg.Only[k] {
			rate = 0
		}
		w.rates[k] = rate
	}
}

// roll reports whether a fault of this kind strikes now, without counting
// it. A kind that is off draws no number; a fault drawn but spared
// (Config.Spare) does not strike, and the run goes on from there.
func (w *World) roll(k FaultKind) bool {
	if !w.faultsOn {
		return false
	}
	rate := w.rates[k]
	if rate <= 0 {
		return false
	}
	if w.rng.Float64() >= rate {
		return false
	}
	w.drawn++
	return !w.cfg.Spare[w.drawn]
}

// fault is roll, counted and recorded in the schedule.
func (w *World) fault(k FaultKind) bool {
	if !w.roll(k) {
		return false
	}
	w.stats.Faults[k]++
	w.note(k, "")
	return true
}

func (w *World) note(k FaultKind, detail string) {
	w.schedule = append(w.schedule, fmt.Sprintf("step %d %s %s %s", w.step, w.since(w.clock.Now()), k, detail))
}
