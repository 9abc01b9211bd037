package runtime_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
)

// The supervisor restarts a containerd that dies, and running containers
// survive it.
func TestProcessRestartsContainerd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sb := e.pod("survivor")
	st := e.start(sb, runtime.ContainerSpec{Name: "c", Args: []string{"sleep"}})

	cfg := filepath.Join(e.dir, "ctrd", "config.toml")
	old := pidWithArg(t, cfg)
	if old == 0 {
		t.Fatalf("no containerd process running with %s", cfg)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var now int
	eventually(t, time.Minute, "a new containerd", func() bool {
		now = pidWithArg(t, cfg)
		return now != 0 && now != old
	})
	rt := e.runtimeWith(e.opts) // waits until the new containerd serves
	got, err := rt.ContainerStatus(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != runtime.StateRunning || got.PID != st.PID {
		t.Errorf("after containerd restart: %s pid %d, want running pid %d", got.State, got.PID, st.PID)
	}
}

// pidWithArg finds the live process whose command line contains arg.
func pidWithArg(t *testing.T, arg string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(arg)) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && bytes.Contains(stat, []byte(") Z ")) {
			continue // a zombie not reaped yet
		}
		return pid
	}
	return 0
}
