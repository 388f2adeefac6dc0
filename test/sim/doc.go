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

// Package sim is a deterministic simulation of the whole key protocol: the
// real ApiKey, Connection and ClusterConnection reconcilers, constructed as
// the manager constructs them, run one reconcile at a time by a scheduler
// that a seed drives, against the in-process emulator of the API and an
// in-memory API server, on one fake clock.
//
// The seed decides everything: which request is reconciled next, when the
// operator's cache catches up with the store (so it reads stale objects and
// misses intermediate states), which change events are lost, when time
// passes, what the user does, and which faults strike where: a crash of the
// operator at any write or API call (its memory, queues and cache are rebuilt
// from the store), lost, late and failed API answers, partial listings,
// conflicts and unclear writes. After every step the invariants of the design
// are checked; at the end the faults stop, the clock runs past every window,
// and convergence is checked.
//
// Nothing in a world runs concurrently and nothing reads the wall clock or
// an unseeded source (the operator's attempt ids and jitter come from a
// stream of the seed, passed as Options.Entropy), so one seed is one history,
// byte for byte, and worlds share nothing: seeds run side by side. A failing
// seed prints its fault schedule and trace, and replays exactly with
// `make sim SEED=<n>`.
package sim
