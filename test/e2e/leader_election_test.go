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
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// leaseName is the manager's leader election Lease (LeaderElectionID).
const leaseName = "apikey-operator.mobilenexthq.com"

// acquiredLease is what the leader elector logs, in some capitalisation,
// once it holds the Lease.
const acquiredLease = "successfully acquired lease"

// TestLeaderKilledDuringCreateBurst runs two replicas with leader election,
// kills the leader with SIGKILL while a burst of creates is in flight, and
// checks that the other replica takes over and finishes the work: every
// ApiKey Ready with exactly one live remote key, and no remote key that no
// ApiKey references.
func TestLeaderKilledDuringCreateBurst(t *testing.T) {
	const count = 20
	f := newFixture(t)
	// The fixture's manager runs without leader election; the replicas
	// replace it.
	f.stopManager()

	// Short lease timings keep the takeover within seconds; the renew
	// deadline stays above 1.2 retry periods, as the leader elector needs.
	args := []string{
		"--leader-elect",
		"--leader-election-namespace=" + f.ns,
		"--leader-elect-lease-duration=4s",
		"--leader-elect-renew-deadline=3s",
		"--leader-elect-retry-period=1s",
	}
	replicas := []*managerProcess{f.launchManager(args...), f.launchManager(args...)}
	// Until the leader is known, the fixture follows one replica, so that
	// a failure still has a manager to delete the ApiKeys in cleanup.
	f.manager = replicas[1]
	t.Cleanup(func() {
		// Runs before the fixture's cleanup: a replica other than the
		// fixture's manager stops gracefully and so hands the Lease over.
		for _, m := range replicas {
			if m != f.manager {
				m.stop()
			}
		}
	})

	leader, holder := f.waitLeader(replicas, nil)
	follower := replicas[0]
	if leader == follower {
		follower = replicas[1]
	}
	f.manager = follower
	t.Logf("the leader is pid %d, Lease holder %q", leader.cmd.Process.Pid, holder)
	if acquired(readLog(t, follower)) {
		t.Fatal("both replicas acquired the Lease")
	}

	// Slow creates keep the burst in flight long enough to kill the
	// leader in its middle.
	do(t, func(ctx context.Context) error { return f.emu.setLatency(ctx, 500*time.Millisecond) })
	creates := f.mustStats().Create

	names := make([]string, count)
	for i := range names {
		names[i] = fmt.Sprintf("burst-%02d", i)
	}
	var wg sync.WaitGroup
	errs := make([]error, count)
	for i, name := range names {
		wg.Go(func() {
			ctx, cancel := newContext()
			defer cancel()
			errs[i] = k8sClient.Create(ctx, &iamv1alpha1.ApiKey{
				ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
				Spec: iamv1alpha1.ApiKeySpec{
					ConnectionRef: iamv1alpha1.ConnectionReference{Kind: iamv1alpha1.ConnectionKind, Name: connectionName},
				},
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("create the ApiKeys: %v", err)
	}

	var inFlight []string
	f.eventually("the leader has sent some of the creates and waits for one", func() error {
		if err := leader.checkRunning(); err != nil {
			t.Fatal(err)
		}
		stats, err := withContext(f.emu.stats)
		if err != nil {
			return err
		}
		if sent := stats.Create - creates; sent < 3 {
			return fmt.Errorf("%d create(s) sent", sent)
		}
		if inFlight = f.pendingCreates(); len(inFlight) == 0 {
			return errors.New("no ApiKey records a create in flight")
		}
		return nil
	})
	// Killing the leader after the burst would prove nothing about a
	// takeover in its middle.
	if ready := f.countSettled(names); ready == count {
		t.Fatalf("all %d ApiKeys were Ready before the leader was killed: the burst was not in flight", count)
	} else {
		t.Logf("killing the leader with %d of %d ApiKeys Ready, a create of %v in flight", ready, count, inFlight)
	}
	leader.kill(t)
	if holder != f.leaseHolder() {
		t.Errorf("the Lease was not held by the killed replica (%q) but by %q", holder, f.leaseHolder())
	}

	_, newHolder := f.waitLeader([]*managerProcess{follower}, func(identity string) error {
		if identity == holder {
			return fmt.Errorf("the Lease is still held by the killed replica %q", holder)
		}
		return nil
	})
	t.Logf("the other replica took over as %q", newHolder)

	for _, name := range names {
		f.waitSettled(name, func(key *iamv1alpha1.ApiKey) error {
			if err := f.onlyRemoteKey(name, key.Status.KeyID); err != nil {
				return err
			}
			return f.checkCurrentKey(key)
		})
	}
	f.eventually("every remote key is some ApiKey's current key", f.noUnreferencedKeys)
	if err := f.checkManagerRunning(); err != nil {
		t.Fatal(err)
	}
}

// waitLeader waits until the Lease names a holder that check, when given,
// accepts, and one of replicas logged that it acquired the Lease as that
// holder. It returns that replica and the holder. A replica names its
// identity, which is random, in the event it logs on becoming the leader:
// that is how the Lease maps to a process.
func (f *fixture) waitLeader(replicas []*managerProcess, check func(identity string) error) (*managerProcess, string) {
	t := f.t
	t.Helper()
	var leader *managerProcess
	var holder string
	f.eventually("a replica leads", func() error {
		holder = f.leaseHolder()
		if holder == "" {
			return errors.New("the Lease names no holder")
		}
		if check != nil {
			if err := check(holder); err != nil {
				return err
			}
		}
		var leaders []*managerProcess
		for _, m := range replicas {
			if err := m.checkRunning(); err != nil {
				t.Fatal(err)
			}
			if log := readLog(t, m); acquired(log) && strings.Contains(log, holder) {
				leaders = append(leaders, m)
			}
		}
		switch len(leaders) {
		case 0:
			return fmt.Errorf("no replica logged acquiring the Lease as %q yet", holder)
		case 1:
			leader = leaders[0]
			return nil
		default:
			t.Fatalf("%d replicas acquired the Lease as %q", len(leaders), holder)
			return nil
		}
	})
	return leader, holder
}

// acquired reports whether a manager log says the manager acquired the Lease.
func acquired(log string) bool {
	return strings.Contains(strings.ToLower(log), acquiredLease)
}

// leaseHolder returns the holder the leader election Lease names, "" when
// there is no Lease or no holder.
func (f *fixture) leaseHolder() string {
	ctx, cancel := newContext()
	defer cancel()
	var lease coordinationv1.Lease
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: leaseName}, &lease); err != nil {
		return ""
	}
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// countSettled returns how many of the named ApiKeys are settled.
func (f *fixture) countSettled(names []string) int {
	ctx, cancel := newContext()
	defer cancel()
	var keys iamv1alpha1.ApiKeyList
	if err := k8sClient.List(ctx, &keys, client.InNamespace(f.ns)); err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for i := range keys.Items {
		if slices.Contains(names, keys.Items[i].Name) && settled(&keys.Items[i]) == nil {
			n++
		}
	}
	return n
}

// pendingCreates returns the names of the ApiKeys of the fixture's namespace
// that record a create attempt in flight.
func (f *fixture) pendingCreates() []string {
	ctx, cancel := newContext()
	defer cancel()
	var keys iamv1alpha1.ApiKeyList
	if err := k8sClient.List(ctx, &keys, client.InNamespace(f.ns)); err != nil {
		f.t.Fatal(err)
	}
	var names []string
	for _, k := range keys.Items {
		if k.Status.PendingCreate != nil {
			names = append(names, k.Name)
		}
	}
	return names
}

// noUnreferencedKeys reports the remote keys that no ApiKey of the fixture's
// namespace holds as its current or a previous key: keys leaked by an
// interrupted create.
func (f *fixture) noUnreferencedKeys() error {
	ctx, cancel := newContext()
	defer cancel()
	var keys iamv1alpha1.ApiKeyList
	if err := k8sClient.List(ctx, &keys, client.InNamespace(f.ns)); err != nil {
		return err
	}
	referenced := map[string]bool{}
	for _, k := range keys.Items {
		referenced[k.Status.KeyID] = true
		for _, p := range k.Status.PreviousKeys {
			referenced[p.KeyID] = true
		}
	}
	remote, err := f.emu.keys(ctx)
	if err != nil {
		return err
	}
	unreferenced := slices.DeleteFunc(remote, func(k remoteKey) bool { return referenced[k.ID] })
	if len(unreferenced) > 0 {
		return fmt.Errorf("the organization holds %d key(s) no ApiKey references: %s", len(unreferenced), describeKeys(unreferenced))
	}
	return nil
}

// readLog returns what a manager process logged so far.
func readLog(t *testing.T, m *managerProcess) string {
	t.Helper()
	data, err := os.ReadFile(m.log)
	if err != nil {
		t.Fatalf("read the manager log: %v", err)
	}
	return string(data)
}

// checkRunning reports an error if the process exited.
func (m *managerProcess) checkRunning() error {
	select {
	case <-m.exited:
		return fmt.Errorf("manager pid %d exited unexpectedly: %v", m.cmd.Process.Pid, m.cmd.ProcessState)
	default:
		return nil
	}
}

// kill kills the process with SIGKILL and returns once it is gone.
func (m *managerProcess) kill(t *testing.T) {
	t.Helper()
	if err := m.checkRunning(); err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill manager pid %d: %v", m.cmd.Process.Pid, err)
	}
	<-m.exited
	t.Logf("killed manager pid %d with SIGKILL", m.cmd.Process.Pid)
}
