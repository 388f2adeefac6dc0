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

// Package emulator is an in-memory emulator of the API-key endpoints of the
// Mobile Next API.
//
// It reproduces the observable behaviour of the real service that the
// operator depends on:
//
//   - GET /api/v1/keys lists the keys of an organization, never their secrets;
//   - POST /api/v1/keys creates a key and returns its secret exactly once;
//   - DELETE /api/v1/keys/{id} revokes a key (roles admin and read-write only);
//   - all three require an interactive session token (an HS256 JWT) and refuse
//     API keys with 401, while still recording the refused request as a use
//     of that key;
//   - the X-Organization-Id header selects one of the caller's organizations.
//
// On top of that it offers what tests need and the real service does not:
// GET /api/v1/ping to simulate a workload using its key, injectable faults
// (latency, 5xx, throttling, lost create responses), a way to hold create
// responses after the key was created, request counters, and an optional
// administrative HTTP API under /_emulator/ for tests that run the emulator
// as a separate process.
//
// A [Server] is an [net/http.Handler]; tests usually serve it with
// net/http/httptest and drive its state through its methods.
package emulator
