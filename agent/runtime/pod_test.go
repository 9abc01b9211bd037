package runtime_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
	// Another pod on the node reaches the server on the pod's IP, over the
	// bridge; a server bound to 127.0.0.1 would not be reachable, so start
	// one on all addresses.
	e.start(sb, runtime.ContainerSpec{
		Name: "public", Args: []string{"serve", ":8081", "/data/other", "x"}, Mounts: mount,
	})
	// The server writes the file once it listens.
	eventually(t, time.Minute, "the public server to listen", func() bool {
		_, err := os.Stat(filepath.Join(sb.Dir, "volumes", "data", "other"))
		return err == nil
	})
	other := e.pod("other")
	peer := e.start(other, runtime.ContainerSpec{Name: "peer", Args: []string{"dial", sb.IP.String() + ":8081"}})
	if st := e.waitExited(peer.ID, time.Minute); st.ExitCode != 0 {
		t.Errorf("pod-to-pod dial %s: exit %d; log:\n%s", sb.IP, st.ExitCode, logText(t, st))
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

// Pods created concurrently, as the agent's per-pod workers do, get
// distinct addresses; a pod with a cluster DNS address gets its
// resolv.conf.
func TestConcurrentSandboxes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 6
	type result struct {
		sb  runtime.Sandbox
		err error
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			sb, err := e.rt.CreatePodSandbox(ctx, runtime.PodSpec{
				UID: fmt.Sprintf("conc-%d", i), Name: fmt.Sprintf("p%d", i), App: "shop",
				DNS: runtime.DNSConfig{Server: netip.MustParseAddr("10.96.0.10"), Zone: "capstan.local"},
			})
			results <- result{sb, err}
		}()
	}
	seen := map[netip.Addr]string{}
	var last runtime.Sandbox
	for range n {
		r := <-results
		if r.err != nil {
			t.Errorf("concurrent sandbox: %v", r.err)
			continue
		}
		if prev, dup := seen[r.sb.IP]; dup {
			t.Errorf("pods %s and %s both got %s", prev, r.sb.PodUID, r.sb.IP)
		}
		seen[r.sb.IP] = r.sb.PodUID
		last = r.sb
	}
	if t.Failed() {
		return
	}
	st := e.start(last, runtime.ContainerSpec{Name: "c", Args: []string{"cat", "/etc/resolv.conf"}})
	st = e.waitExited(st.ID, time.Minute)
	want := "stdout search shop.svc.capstan.local svc.capstan.local capstan.local"
	if logs := logText(t, st); !strings.Contains(logs, "stdout nameserver 10.96.0.10") || !strings.Contains(logs, want) {
		t.Errorf("resolv.conf in the pod:\n%s", logs)
	}
}

// RemovePod's errors leave the pod for its caller to name as users know
// it (the agent's "pod APP/NAME: remove from node: ...", capstan down's
// "down: pod APP/NAME: remove: ..."): they named it by its UID, "pod
// uid-...: remove DIR: ...", inside the caller's name for it. The
// directory that could not be removed is the detail that helps.
func TestRemovePodErrorLeavesThePodToTheCaller(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sb := e.pod("busy", "data")
	// A mount inside the pod's directory: its removal fails (EBUSY).
	busy := filepath.Join(sb.Dir, "volumes", "data")
	if err := unix.Mount("tmpfs", busy, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(busy, unix.MNT_DETACH) })
	err := e.rt.RemovePod(ctx, sb.PodUID)
	if err == nil || !strings.Contains(err.Error(), "remove "+sb.Dir) || strings.Contains(err.Error(), "pod "+sb.PodUID) {
		t.Errorf("RemovePod of a pod whose directory cannot be removed: %v; want it to name the directory, not the pod by its UID", err)
	}
	if err := unix.Unmount(busy, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RemovePod(ctx, sb.PodUID); err != nil {
		t.Fatalf("RemovePod once the mount is gone: %v", err)
	}
}
