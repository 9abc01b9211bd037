package runtime_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
)

func TestExitsReportsContainerExitsOnly(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exits := e.rt.Exits(ctx)
	sb := e.pod("exits")
	long := e.start(sb, runtime.ContainerSpec{Name: "long", Args: []string{"sleep"}})
	// An exec'd process exiting is not the container exiting.
	if code, err := e.rt.Exec(ctx, long.ID, []string{"/testbox", "exit", "0"}, runtime.ExecIO{Stdout: io.Discard}); err != nil || code != 0 {
		t.Fatalf("exec: %d %v", code, err)
	}
	short := e.start(sb, runtime.ContainerSpec{Name: "short", Args: []string{"exit", "3"}})
	select {
	case id := <-exits:
		if id != short.ID {
			t.Fatalf("exit of %q reported, want %s", id, short.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit reported within 30 s")
	}
	cancel()
	for range exits { // closed once ctx ends
	}
}
