// Package testenv gates tests on what the machine offers. End-to-end tests
// need root and real system tools; outside CI a missing prerequisite skips
// the test, under CI=true it fails it, so CI never passes by skipping.
package testenv

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test outside CI and fails it under CI, for a
// prerequisite the machine lacks.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("prerequisite missing under CI=true: "+format, args...)
	}
	t.Skipf("prerequisite missing: "+format, args...)
}

// RequireRoot needs the test to run as root. Short mode (-short) also skips
// end-to-end tests, except under CI.
func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() && !InCI() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		Missing(t, "end-to-end test needs root (run 'make test' as root)")
	}
}

// RequireBinaries needs every named program on PATH and returns their paths
// in order.
func RequireBinaries(t testing.TB, names ...string) []string {
	t.Helper()
	paths := make([]string, 0, len(names))
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			Missing(t, "%s not found on PATH (run 'make deps' as root)", n)
		}
		paths = append(paths, p)
	}
	return paths
}

// ShimSocketDir is where containerd's runc shims put their sockets,
// whatever containerd's own state directory.
const ShimSocketDir = "/run/containerd/s"

// RemoveStaleShimSockets removes the sockets of shims that are gone from
// ShimSocketDir: a shim killed (not shut down) leaves its socket there.
// A socket some process still listens on is kept.
func RemoveStaleShimSockets() error {
	live, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return err
	}
	bound := map[string]bool{}
	for _, line := range strings.Split(string(live), "\n") {
		if f := strings.Fields(line); len(f) >= 8 {
			bound[f[7]] = true
		}
	}
	ents, err := os.ReadDir(ShimSocketDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(ShimSocketDir, e.Name())
		if e.Type()&fs.ModeSocket != 0 && !bound[p] {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Poll checks cond every interval until it holds, and reports whether it
// did within timeout.
func Poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// Eventually fails t unless cond holds within timeout (checked every
// 20 ms).
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, 20*time.Millisecond, cond) {
		t.Fatalf("%s: not within %s", what, timeout)
	}
}
