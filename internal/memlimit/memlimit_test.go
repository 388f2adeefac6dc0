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

package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// root writes the file name under a new directory with content and returns
// the directory.
func root(t *testing.T, name, content string) string {
	t.Helper()
	dir := t.TempDir()
	if name == "" {
		return dir
	}
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestFromCgroup(t *testing.T) {
	const v2, v1 = "sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes"
	for _, tc := range []struct {
		name, file, content string
		limit               int64
		ok, err             bool
	}{
		{name: "no cgroup files", file: ""},
		{name: "cgroup v2 without a limit", file: v2, content: "max\n"},
		{name: "cgroup v2 limit", file: v2, content: "134217728\n", limit: 128 << 20, ok: true},
		{name: "cgroup v1 limit", file: v1, content: "268435456\n", limit: 256 << 20, ok: true},
		{name: "cgroup v1 without a limit", file: v1, content: "9223372036854771712\n"},
		{name: "not a number", file: v2, content: "lots\n", err: true},
		{name: "zero", file: v2, content: "0\n", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit, ok, err := FromCgroup(root(t, tc.file, tc.content))
			if (err != nil) != tc.err || ok != tc.ok || limit != tc.limit {
				t.Fatalf("FromCgroup = %d, %v, %v; want %d, %v, error %v", limit, ok, err, tc.limit, tc.ok, tc.err)
			}
		})
	}
}

func TestSet(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	limited := root(t, "sys/fs/cgroup/memory.max", "134217728\n")

	t.Run("sets ratio of the container's limit", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "")
		debug.SetMemoryLimit(math.MaxInt64)
		soft, err := Set(limited, DefaultRatio)
		limit, ratio := float64(128<<20), DefaultRatio
		want := int64(limit * ratio)
		if err != nil || soft != want {
			t.Fatalf("Set = %d, %v; want %d", soft, err, want)
		}
		if got := debug.SetMemoryLimit(-1); got != want {
			t.Fatalf("the runtime's limit is %d, want %d", got, want)
		}
	})
	t.Run("leaves GOMEMLIMIT alone", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "1GiB")
		debug.SetMemoryLimit(1 << 30)
		if soft, err := Set(limited, DefaultRatio); err != nil || soft != 0 {
			t.Fatalf("Set = %d, %v; want 0 and no change", soft, err)
		}
		if got := debug.SetMemoryLimit(-1); got != 1<<30 {
			t.Fatalf("the runtime's limit is %d, want GOMEMLIMIT's", got)
		}
	})
	t.Run("changes nothing without a limit", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "")
		debug.SetMemoryLimit(math.MaxInt64)
		if soft, err := Set(root(t, "", ""), DefaultRatio); err != nil || soft != 0 {
			t.Fatalf("Set = %d, %v; want 0", soft, err)
		}
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Fatalf("the runtime's limit is %d, want none", got)
		}
	})
	t.Run("refuses a ratio out of range", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "")
		if _, err := Set(limited, 1.5); err == nil {
			t.Fatal("Set accepted a ratio of 1.5")
		}
	})
}
