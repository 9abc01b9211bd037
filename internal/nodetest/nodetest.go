// Package nodetest is the node-level harness shared by the end-to-end
// tests of agent/runtime and agent: a containerd child, and a cleanup that
// leaves no pod, image, bridge, cgroup or mount behind.
package nodetest

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/network"
	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/internal/testenv"
)

// TestboxPkg is the tests' container program (see its doc for the modes).
const TestboxPkg = "github.com/capstanhq/capstan/agent/runtime/testdata/testbox"

// Main runs the tests. Call it from TestMain.
func Main(m *testing.M) {
	os.Exit(m.Run())
}

// Writer sends each write to t.Log.
type Writer struct{ T testing.TB }

func (w Writer) Write(p []byte) (int, error) {
	w.T.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Logger logs to t at info level.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// StartContainerd runs a containerd child on dir until stop is called.
func StartContainerd(t testing.TB, dir string, log *slog.Logger) (proc *runtime.Process, stop func()) {
	t.Helper()
	proc, err := runtime.NewProcess(runtime.ProcessOptions{Dir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the caller registers stop, so it runs after it, at
	// the end of the test; once per test and directory, since a test may
	// stop containerd and start it again on the same directory to see that
	// containers outlive it.
	if _, seen := reaping.LoadOrStore(reapKey{t, proc.Address()}, true); !seen {
		t.Cleanup(func() { reapShims(t, proc.Address()) })
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Start(ctx) }()
	return proc, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("containerd: %v", err)
		}
	}
}

// reaping holds the tests and addresses that have a reapShims cleanup.
var reaping sync.Map

type reapKey struct {
	t       testing.TB
	address string
}

// reapShims kills the shims of containerd at address still running at the
// end of a test and removes their sockets. A task being created while the
// agent stops (a crash-looping container started again) can get its shim
// after Clean listed the pods; containerd would find it again on its next
// start, but a test's containerd has no next start. Seen once in CI: a
// shim and its socket in /run/containerd/s outlived the agent test that
// made them.
func reapShims(t testing.TB, address string) {
	// Arguments end in NUL in /proc/PID/cmdline: the address exactly.
	killed, err := testenv.KillProcesses("containerd-shim", "\x00-address\x00"+address+"\x00")
	for _, p := range killed {
		t.Logf("cleanup: containerd at %s left a shim running, killed: %s", address, strings.Join(p.Args, " "))
	}
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if len(killed) > 0 {
		if err := testenv.RemoveStaleShimSockets(); err != nil {
			t.Errorf("cleanup: shim sockets: %v", err)
		}
	}
}

// Clean removes every pod (containers, namespaces, addresses) and image of
// rt, closes it, removes net's bridge and the cgroups runc leaves under
// cgroupParent/namespace, and fails t when a mount is left under dir.
func Clean(t testing.TB, rt *runtime.Containerd, net *network.Manager, cgroupParent, namespace, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A crash-looping container may be started again while its pod is
	// removed: list again until nothing is left (a few rounds).
	for round := 0; round < 5; round++ {
		pods, err := rt.ListPods(ctx)
		if err != nil {
			t.Errorf("cleanup: list pods: %v", err)
			break
		}
		if len(pods) == 0 {
			break
		}
		for _, p := range pods {
			if err := rt.RemovePod(ctx, p.Sandbox.PodUID); err != nil {
				t.Errorf("cleanup: remove pod %s: %v", p.Sandbox.PodUID, err)
			}
		}
	}
	if err := rt.RemoveImages(ctx); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	rt.Close()
	if err := net.RemoveBridge(ctx); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	// runc leaves the parent cgroups it created; remove ours, deepest first.
	for _, root := range cgroupRoots() {
		os.Remove(filepath.Join(root, cgroupParent, namespace))
		os.Remove(filepath.Join(root, cgroupParent))
	}
	if out, _ := exec.Command("mount").Output(); bytes.Contains(out, []byte(dir)) {
		t.Errorf("cleanup: mounts left under %s:\n%s", dir, grepLines(out, dir))
	}
}

func cgroupRoots() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"}
	}
	m, _ := filepath.Glob("/sys/fs/cgroup/*")
	return m
}

func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
