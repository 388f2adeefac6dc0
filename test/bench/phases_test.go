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
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/controller"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// defaultSizes are the Ns of the curve; -bench.sizes changes them.
const defaultSizes = "100,1000,5000"

const (
	// restSize is the N at which the at-rest, restart and memory figures
	// are taken.
	restSize = 1000
	// restPeriods is how many sync periods the at-rest window lasts.
	restPeriods = 4
	// foreignSecrets of foreignSecretSize bytes are Secrets the operator
	// has nothing to do with.
	foreignSecrets    = 10000
	foreignSecretSize = 10 << 10
	// tenantSecrets of tenantSecretSize bytes carry the managed-by label
	// but no ApiKey controls them.
	tenantSecrets    = 500
	tenantSecretSize = 100 << 10
	// foreignKeys are keys of the organization that are not the operator's.
	foreignKeys = 100000
	// listSamples is how many times the large organization is listed to
	// time one list.
	listSamples = 3
	// memorySamples is how many fresh managers each memory case starts. A
	// peak is one reading of VmHWM, which moves by a few MiB from one run to
	// the next with the garbage collector's timing; the case reports the run
	// with the median peak.
	memorySamples = 3
)

// curvePoint is what one N measured: the floor and the operator, to Ready
// and to deleted. The operator's spans run from the first ApiKey created
// (or deleted) to the last one Ready (or gone).
type curvePoint struct {
	n                                       int
	floorCreate, floorDelete, ready, delete sample
	// mem is the manager's memory once all N were Ready.
	mem memory
}

func (p curvePoint) readyRatio() float64 {
	return p.ready.elapsed.Seconds() / p.floorCreate.elapsed.Seconds()
}

func (p curvePoint) deleteRatio() float64 {
	return p.delete.elapsed.Seconds() / p.floorDelete.elapsed.Seconds()
}

// restResult is what the at-rest window measured.
type restResult struct {
	sample
	// complete is how long after the last ApiKey was Ready all showed their
	// suffix, the operator's last write for a new key.
	complete time.Duration
}

// periods is the window in sync periods.
func (r restResult) periods() float64 { return r.elapsed.Seconds() / syncPeriod.Seconds() }

// caseResult is what one memory case measured, from the start of a fresh
// manager to settlePeriods sync periods after its first listing.
type caseResult struct {
	sample
	name string
	mem  memory
	// ready and synced count the ApiKeys Ready and Synced at the end.
	ready, synced int
	// peaks are the peaks of every run of the case, in the order run.
	peaks []uint64
}

// curve measures N keys: the floor, then the operator.
func (w *world) curve(ctx context.Context, n int, rest bool, r *report) (curvePoint, error) {
	// The watches of this N end with it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := curvePoint{n: n}
	floorNS := fmt.Sprintf("floor-%d", n)
	if err := w.createNamespace(ctx, floorNS); err != nil {
		return p, err
	}
	// The floor is timed like the operator: through the same watch, which
	// costs the API server the same in both.
	ft, err := w.trackApiKeys(ctx, floorNS)
	if err != nil {
		return p, err
	}
	timeout := time.Minute + time.Duration(n)*100*time.Millisecond
	p.floorCreate, err = w.timed(ctx, nil, ft, timeout, "the floor: all ApiKeys Ready",
		func() error { return w.floorCreate(ctx, floorNS, n) }, allReady(n))
	if err != nil {
		return p, fmt.Errorf("floor create: %w", err)
	}
	p.floorDelete, err = w.timed(ctx, nil, ft, timeout, "the floor: all ApiKeys gone",
		func() error { return w.floorDelete(ctx, floorNS, n) }, allGone)
	if err != nil {
		return p, fmt.Errorf("floor delete: %w", err)
	}
	progress("N=%d floor: Ready in %v, deleted in %v", n,
		p.floorCreate.elapsed.Round(time.Millisecond), p.floorDelete.elapsed.Round(time.Millisecond))

	ns := fmt.Sprintf("keys-%d", n)
	if err := w.createNamespace(ctx, ns); err != nil {
		return p, err
	}
	m, err := w.startListedManager(ctx, ns)
	if err != nil {
		return p, err
	}
	defer m.stop()
	t, err := w.trackApiKeys(ctx, ns)
	if err != nil {
		return p, err
	}
	p.ready, err = w.timed(ctx, m, t, timeout, "all ApiKeys Ready",
		func() error { return w.createApiKeys(ctx, ns, n) }, allReady(n))
	if err != nil {
		return p, err
	}
	if p.mem, err = m.memory(); err != nil {
		return p, err
	}
	progress("N=%d operator: Ready in %v (%d POSTs, %d GETs)", n,
		p.ready.elapsed.Round(time.Millisecond), p.ready.calls.Create, p.ready.calls.List)

	if rest {
		res, err := w.atRest(ctx, m, t, n, p.ready.end)
		if err != nil {
			return p, err
		}
		r.rest = &res
	} else if _, err := t.wait(ctx, m, 2*time.Minute, "all ApiKeys show their suffix", allComplete(n)); err != nil {
		// The deletions start on a finished state, as the floor's do: the
		// suffixes the listings after the creates tell are written first.
		return p, err
	}

	p.delete, err = w.timed(ctx, m, t, timeout, "all ApiKeys gone",
		func() error { return w.deleteApiKeys(ctx, ns, n) }, allGone)
	if err != nil {
		return p, err
	}
	if left := w.operatorKeys(ns); left != 0 {
		return p, fmt.Errorf("%d remote keys left after deleting the ApiKeys", left)
	}
	progress("N=%d operator: deleted in %v (%d DELETEs)", n,
		p.delete.elapsed.Round(time.Millisecond), p.delete.calls.Delete)
	return p, nil
}

// timed measures from the start of fn to the moment the tracker t sees done
// hold, with the CPU time of the manager m if not nil.
func (w *world) timed(ctx context.Context, m *managerProcess, t *tracker, timeout time.Duration, what string,
	fn func() error, done func(counts) bool) (sample, error) {
	s, err := w.begin(ctx, m)
	if err != nil {
		return sample{}, err
	}
	if err := fn(); err != nil {
		return sample{}, err
	}
	at, err := t.wait(ctx, m, timeout, what, done)
	if err != nil {
		return sample{}, err
	}
	return s.end(ctx, at)
}

// measure measures fn, with the CPU time of the manager m if not nil.
func (w *world) measure(ctx context.Context, m *managerProcess, fn func() error) (sample, error) {
	s, err := w.begin(ctx, m)
	if err != nil {
		return sample{}, err
	}
	if err := fn(); err != nil {
		return sample{}, err
	}
	return s.end(ctx, time.Time{})
}

// startListedManager starts a manager and waits until it has listed the
// organization once: its caches are synced and the ClusterConnection is
// checked, so that a time measured next does not include its start.
func (w *world) startListedManager(ctx context.Context, phase string) (*managerProcess, error) {
	w.emu.ResetStats()
	m, err := w.startManager(phase)
	if err != nil {
		return nil, err
	}
	if err := w.waitListed(ctx, m); err != nil {
		m.stop()
		return nil, err
	}
	if err := w.waitConnectionReady(ctx, managerTimeout); err != nil {
		m.stop()
		return nil, err
	}
	return m, nil
}

// waitListed waits until the emulator has counted a list call since its
// counters were reset.
func (w *world) waitListed(ctx context.Context, m *managerProcess) error {
	deadline := time.Now().Add(managerTimeout)
	for w.emu.Stats().List == 0 {
		if err := m.alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager did not list the organization within %v; the end of its log:\n%s",
				managerTimeout, tail(m.log, 30))
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// atRest waits until the operator finished its work on the new keys (each
// shows the suffix the first listing after its create told), then counts
// the remote calls and API-server writes over restPeriods sync periods.
func (w *world) atRest(ctx context.Context, m *managerProcess, t *tracker, n int, readyAt time.Time) (
	restResult, error) {
	var res restResult
	at, err := t.wait(ctx, m, 2*time.Minute, "all ApiKeys show their suffix", allComplete(n))
	if err != nil {
		return res, err
	}
	res.complete = at.Sub(readyAt)
	res.sample, err = w.measure(ctx, m, func() error { return sleepWhile(ctx, m, restPeriods*syncPeriod) })
	if err != nil {
		return res, err
	}
	progress("N=%d at rest for %v: %d GETs, %d other calls, writes: %v", n, res.elapsed.Round(time.Millisecond),
		res.calls.List, res.calls.Create+res.calls.Delete, res.writes())
	return res, nil
}

// memoryCases makes restSize ApiKeys Ready, then starts a fresh manager on
// each cluster state in turn, adding to the state between cases.
func (w *world) memoryCases(ctx context.Context, r *report) error {
	const ns = "at-rest"
	if err := w.createNamespace(ctx, ns); err != nil {
		return err
	}
	m, err := w.startListedManager(ctx, "at-rest-create")
	if err != nil {
		return err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	t, err := w.trackApiKeys(watchCtx, ns)
	if err != nil {
		m.stop()
		return err
	}
	err = w.createApiKeys(ctx, ns, restSize)
	if err == nil {
		_, err = t.wait(ctx, m, 5*time.Minute, "all ApiKeys Ready and showing their suffix", allComplete(restSize))
	}
	m.stop()
	stopWatch()
	if err != nil {
		return err
	}

	cases := []struct {
		name string
		add  func(context.Context) error
	}{
		{fmt.Sprintf("%d ApiKeys at rest (baseline)", restSize), nil},
		{fmt.Sprintf("+ %d foreign Secrets of %d KiB", foreignSecrets, foreignSecretSize>>10),
			func(ctx context.Context) error {
				return w.createSecrets(ctx, "foreign", foreignSecrets, foreignSecretSize, nil)
			}},
		{fmt.Sprintf("+ %d tenant Secrets of %d KiB labelled managed-by", tenantSecrets, tenantSecretSize>>10),
			func(ctx context.Context) error {
				return w.createSecrets(ctx, "tenant", tenantSecrets, tenantSecretSize,
					map[string]string{iamv1alpha1.ManagedByLabel: iamv1alpha1.ManagedByValue})
			}},
		{fmt.Sprintf("+ %d keys in the organization, not the operator's", foreignKeys), func(ctx context.Context) error {
			var err error
			if r.smallList, _, err = w.timeList(ctx); err != nil {
				return err
			}
			names := make([]string, foreignKeys)
			for i := range names {
				names[i] = fmt.Sprintf("ci-runner-%06d", i)
			}
			if err := w.emu.AddKeys(w.orgID, names); err != nil {
				return err
			}
			r.largeList, r.largeListKept, err = w.timeList(ctx)
			return err
		}},
	}
	for _, c := range cases {
		if c.add != nil {
			start := time.Now()
			if err := c.add(ctx); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			progress("added %s in %v", c.name[2:], time.Since(start).Round(time.Millisecond))
		}
		res, err := w.restarts(ctx, ns, c.name)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		r.cases = append(r.cases, res)
	}
	return nil
}

// restarts runs a memory case memorySamples times. Its memory is the run
// with the median peak; its calls and writes are those of the run that made
// the most, and its Ready and Synced counts the lowest, so that no run's
// write or lapse is hidden by another.
func (w *world) restarts(ctx context.Context, ns, name string) (caseResult, error) {
	runs := make([]caseResult, 0, memorySamples)
	var peaks []uint64
	for range memorySamples {
		res, err := w.restart(ctx, ns, name)
		if err != nil {
			return res, err
		}
		runs = append(runs, res)
		peaks = append(peaks, res.mem.peak)
	}
	activity := func(c caseResult) int { return c.calls.Create + c.calls.Delete + c.writes().total() }
	worst := slices.MaxFunc(runs, func(a, b caseResult) int { return cmp.Compare(activity(a), activity(b)) })
	slices.SortFunc(runs, func(a, b caseResult) int { return cmp.Compare(a.mem.peak, b.mem.peak) })
	out := runs[len(runs)/2]
	out.sample, out.peaks = worst.sample, peaks
	for _, r := range runs {
		out.ready, out.synced = min(out.ready, r.ready), min(out.synced, r.synced)
	}
	return out, nil
}

// restart starts a fresh manager on the cluster as it is, lets it run until
// settlePeriods sync periods after its first listing, and measures what it
// cost and its memory.
func (w *world) restart(ctx context.Context, ns, name string) (caseResult, error) {
	res := caseResult{name: name}
	s, err := w.begin(ctx, nil)
	if err != nil {
		return res, err
	}
	m, err := w.startManager("restart")
	if err != nil {
		return res, err
	}
	defer m.stop()
	s.m = m
	if err := w.waitListed(ctx, m); err != nil {
		return res, err
	}
	if err := sleepWhile(ctx, m, settlePeriods*syncPeriod); err != nil {
		return res, err
	}
	if res.mem, err = m.memory(); err != nil {
		return res, err
	}
	if res.sample, err = s.end(ctx, time.Time{}); err != nil {
		return res, err
	}
	var keys iamv1alpha1.ApiKeyList
	if err := w.k8s.List(ctx, &keys, client.InNamespace(ns)); err != nil {
		return res, err
	}
	for i := range keys.Items {
		k := &keys.Items[i]
		if settled(k) {
			res.ready++
		}
		if c := findCondition(k, iamv1alpha1.ConditionSynced); c != nil && c.Status == metav1.ConditionTrue {
			res.synced++
		}
	}
	progress("%s: peak %.1f MiB, RSS %.1f MiB; %d GETs, %d other calls; writes: %v; %d Ready, %d Synced",
		name, mib(res.mem.peak), mib(res.mem.rss), res.calls.List, res.calls.Create+res.calls.Delete, res.writes(),
		res.ready, res.synced)
	return res, nil
}

func findCondition(k *iamv1alpha1.ApiKey, t string) *metav1.Condition {
	for i := range k.Status.Conditions {
		if k.Status.Conditions[i].Type == t {
			return &k.Status.Conditions[i]
		}
	}
	return nil
}

// createSecrets creates n Secrets of size bytes with the given labels in a
// namespace of their own.
func (w *world) createSecrets(ctx context.Context, ns string, n, size int, labels map[string]string) error {
	if err := w.createNamespace(ctx, ns); err != nil {
		return err
	}
	value := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	return parallel(ctx, n, func(ctx context.Context, i int) error {
		return w.k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%05d", ns, i), Labels: labels},
			Data:       map[string][]byte{"data": value},
		})
	})
}

// timeList lists the organization as the operator does (its client, which
// keeps only the keys carrying the operator's marker) listSamples times and
// returns the median time and how many keys were kept.
func (w *world) timeList(ctx context.Context) (time.Duration, int, error) {
	svc, err := controller.NewMobileNextClient(mobilenext.Config{
		URL: w.srv.URL, Token: mobilenext.NewToken(w.token), OrganizationID: w.orgID,
	})
	if err != nil {
		return 0, 0, err
	}
	times := make([]time.Duration, 0, listSamples)
	kept := 0
	for range listSamples {
		start := time.Now()
		keys, err := svc.ListKeys(ctx)
		if err != nil {
			return 0, 0, err
		}
		times = append(times, time.Since(start))
		kept = len(keys)
	}
	slices.Sort(times)
	return times[len(times)/2], kept, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sleepWhile waits d, failing at once if the manager exits meanwhile.
func sleepWhile(ctx context.Context, m *managerProcess, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-m.exited:
		return m.alive()
	case <-ctx.Done():
		return ctx.Err()
	}
}
