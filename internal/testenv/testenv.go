// Package testenv gates tests on what the machine offers. End-to-end tests
// need root and real system tools; outside CI a missing prerequisite skips
// the test, under CI=true it fails it, so CI never passes by skipping.
package testenv

import (
	"os"
	"os/exec"
	"testing"
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
