package runtime_test

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/internal/testenv"
)

// The supervisor restarts a containerd that dies, and running containers
// survive it.
func TestProcessRestartsContainerd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sb := e.pod("survivor")
	st := e.start(sb, runtime.ContainerSpec{Name: "c", Args: []string{"sleep"}})

	cfg := filepath.Join(e.dir, "ctrd", "config.toml")
	old := pidWithArg(cfg)
	if old == 0 {
		t.Fatalf("no containerd process running with %s", cfg)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var now int
	eventually(t, time.Minute, "a new containerd", func() bool {
		now = pidWithArg(cfg)
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
func pidWithArg(arg string) int {
	if ps := testenv.Processes(arg); len(ps) > 0 {
		return ps[0].PID
	}
	return 0
}
