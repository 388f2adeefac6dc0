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

// Package memlimit sets the Go runtime's soft memory limit from the memory
// limit of the container the manager runs in, so that the garbage collector
// works harder as the heap nears the limit instead of letting the kernel kill
// the process. Without it, the collector lets the heap grow to twice what is
// live, whatever the container allows.
package memlimit

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultRatio is the share of the container's limit the Go runtime may
// use: the rest is left to what it does not count (the binary's mapped
// pages, memory the kernel charges to the container).
const DefaultRatio = 0.9

// cgroup files holding the container's memory limit, cgroup v2 first.
var limitFiles = []string{
	"sys/fs/cgroup/memory.max",
	"sys/fs/cgroup/memory/memory.limit_in_bytes",
}

// unlimitedV1 is the smallest value cgroup v1 reports for no limit (the
// largest page-aligned int64).
const unlimitedV1 = math.MaxInt64 &^ (1<<12 - 1)

// FromCgroup returns the memory limit of the cgroup the process runs in, read
// under root ("/" outside tests), and false if there is none.
func FromCgroup(root string) (int64, bool, error) {
	for _, name := range limitFiles {
		raw, err := os.ReadFile(filepath.Join(root, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, false, fmt.Errorf("read the memory limit: %w", err)
		}
		v := strings.TrimSpace(string(raw))
		if v == "max" {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, false, fmt.Errorf("%s holds %q, not a memory limit", name, v)
		}
		if n >= unlimitedV1 {
			return 0, false, nil
		}
		return n, true, nil
	}
	return 0, false, nil
}

// Set sets the runtime's soft memory limit to ratio of the container's
// limit and returns it, unless GOMEMLIMIT is set (the runtime has applied it
// already) or there is no limit; then it returns 0 and changes nothing.
func Set(root string, ratio float64) (int64, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	if ratio <= 0 || ratio > 1 {
		return 0, fmt.Errorf("memory limit ratio %v is not in (0, 1]", ratio)
	}
	limit, ok, err := FromCgroup(root)
	if err != nil || !ok {
		return 0, err
	}
	soft := int64(float64(limit) * ratio)
	debug.SetMemoryLimit(soft)
	return soft, nil
}
