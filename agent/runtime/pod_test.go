package runtime_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
)

// Two containers of one pod share the network namespace (one reaches the
// other on localhost) and a volume (a file written by one is read by the
// other).
func TestPodContainersShareNetworkAndVolume(t *testing.T) {
	e := newEnv(t)
	sb := e.pod("web", "data")
	if !sb.IP.IsValid() || sb.NetNSPath == "" {
		t.Fatalf("sandbox has no network: %+v", sb)
	}
	mount := []runtime.VolumeMount{{Volume: "data", Path: "/data"}}
	server := e.start(sb, runtime.ContainerSpec{
		Name: "server", Args: []string{"serve", "127.0.0.1:8080", "/data/msg", "hello from server"}, Mounts: mount,
	})
	if server.State != runtime.StateRunning || server.PID == 0 {
		t.Fatalf("server status = %+v, want running with a pid", server)
	}
	client := e.start(sb, runtime.ContainerSpec{
		Name: "client", Args: []string{"check", "127.0.0.1:8080", "/data/msg", "hello from server"}, Mounts: mount,
	})
	st := e.waitExited(client.ID, time.Minute)
	logs := logText(t, st)
	if st.ExitCode != 0 || st.Reason != runtime.ReasonCompleted {
		t.Fatalf("client exited %d (%s), want 0 (Completed); log:\n%s", st.ExitCode, st.Reason, logs)
	}
	for _, want := range []string{"stdout peer says pong", `stdout volume says "hello from server"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("client log lacks %q:\n%s", want, logs)
		}
	}
	// The pod's name files are in place.
	var out strings.Builder
	code, err := e.rt.Exec(context.Background(), server.ID, []string{"/testbox", "cat", "/etc/hosts"}, runtime.ExecIO{Stdout: &out})
	if err != nil || code != 0 {
		t.Fatalf("exec cat /etc/hosts: code %d, %v", code, err)
	}
	if want := sb.IP.String() + "\tweb"; !strings.Contains(out.String(), want) {
		t.Errorf("/etc/hosts = %q, want a line %q", out.String(), want)
	}
}
