package agent_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
)

// The agent's own containerd is SIGKILLed under the running agent and its
// supervisor starts it again: the pod keeps running (same task), exec
// works again, an exit after the restart is seen without a status sync
// (the agent subscribed to containerd's events again), the container is
// restarted, and its new attempt's output reaches `capstan logs`.
func TestContainerdKilledUnderRunningAgent(t *testing.T) {
	e := newEnv(t, true)
	e.opts.StatusSyncInterval = time.Hour // only events wake the worker
	e.startAgent()
	ctx := context.Background()
	p := e.create(e.pod("ctrd", "survivor", api.Container{Name: "c", Args: []string{"sleep"}}))
	e.waitPod(p, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning && ready(p) })
	e.connect(e.managedSocket())
	before, ok := e.podState(p.Metadata.UID)
	if !ok || len(before.Containers) != 1 || before.Containers[0].PID == 0 {
		t.Fatalf("pod state: %+v", before)
	}

	cfg := filepath.Join(e.opts.DataDir, agent.DefaultContainerdSubdir, "config.toml")
	ps := testenv.Processes("containerd", cfg)
	if len(ps) != 1 {
		t.Fatalf("containerd processes with %s: %+v, want one", cfg, ps)
	}
	if err := syscall.Kill(ps[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitFor("containerd started again", func() bool {
		now := testenv.Processes("containerd", cfg)
		return len(now) == 1 && now[0].PID != ps[0].PID
	})
	e.connect(e.managedSocket())
	after, ok := e.podState(p.Metadata.UID)
	if !ok || len(after.Containers) != 1 || after.Containers[0].PID != before.Containers[0].PID {
		t.Fatalf("pod state after containerd's restart: %+v, want the same task (pid %d)", after, before.Containers[0].PID)
	}

	key := api.KeyOf(p)
	var out bytes.Buffer
	e.waitFor("exec to work again", func() bool {
		out.Reset()
		code, err := e.api.Client.Exec(ctx, key, client.ExecOptions{Command: []string{"/testbox", "echo", "back"}, Stdout: &out, Stderr: io.Discard})
		return err == nil && code == 0 && out.String() == "back\n"
	})

	if err := syscall.Kill(int(before.Containers[0].PID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitPod(p, "restarted", func(p *api.Pod) bool {
		cs := p.Status.Containers
		return len(cs) == 1 && cs[0].RestartCount == 1 && cs[0].State.Running != nil
	})
	e.waitFor("the new attempt's output in the logs", func() bool {
		rc, err := e.api.Client.Logs(ctx, key, client.LogOptions{Tail: -1})
		if err != nil {
			return false
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return err == nil && bytes.Contains(b, []byte("waiting"))
	})
}
