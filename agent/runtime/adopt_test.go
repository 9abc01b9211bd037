package runtime_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/network"
	"github.com/capstanhq/capstan/agent/network/nsfile"
	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/internal/nodetest"
)

// A fresh Runtime, as after an agent restart, finds the running pods from
// containerd labels and sandbox files, with the same task PIDs, and can
// manage them; nothing is restarted.
func TestAdoptAfterRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sb := e.pod("adopt", "data")
	web := e.start(sb, runtime.ContainerSpec{Name: "web", Args: []string{"sleep"}})
	done := e.start(sb, runtime.ContainerSpec{Name: "job", Attempt: 2, Args: []string{"exit", "0"}})
	e.waitExited(done.ID, time.Minute)
	// Only once web says "waiting" does it handle SIGTERM; a SIGTERM sent
	// earlier would kill it before it logs "got SIGTERM".
	waitLog(t, web.LogPath, "stdout waiting")

	// The agent restarts, and its containerd child with it.
	e.rt.Close()
	e.stop()
	e.startContainerd(nodetest.Logger(t))
	e.rt = e.newRuntime()

	pods, err := e.rt.ListPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 1 {
		t.Fatalf("ListPods = %d pods, want 1: %+v", len(pods), pods)
	}
	p := pods[0]
	if p.Stale {
		t.Errorf("a running pod is reported stale")
	}
	if p.Sandbox.PodUID != sb.PodUID || p.Sandbox.IP != sb.IP || p.Sandbox.NetNSPath != sb.NetNSPath ||
		p.Sandbox.PodName != "adopt" || p.Sandbox.App != "shop" {
		t.Errorf("adopted sandbox = %+v, want %+v", p.Sandbox, sb)
	}
	if len(p.Containers) != 2 {
		t.Fatalf("adopted containers = %+v, want job and web", p.Containers)
	}
	job, got := p.Containers[0], p.Containers[1]
	if got.ID != web.ID || got.PID != web.PID || got.State != runtime.StateRunning || got.Name != "web" || got.Attempt != 0 ||
		!got.StartedAt.Equal(web.StartedAt) {
		t.Errorf("adopted web = %+v, want running %s with pid %d", got, web.ID, web.PID)
	}
	if job.Name != "job" || job.Attempt != 2 || job.State != runtime.StateExited || job.Reason != runtime.ReasonCompleted {
		t.Errorf("adopted job = %+v, want exited Completed attempt 2", job)
	}
	// The adopted container is still managed: its log still flows and it stops.
	if err := e.rt.StopContainer(ctx, web.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if st, err := e.rt.ContainerStatus(ctx, web.ID); err != nil || st.ExitCode != 0 {
		t.Errorf("adopted web after SIGTERM: %+v, %v; want exit 0 from its handler", st, err)
	}
	// The log driver is its own process reading the container's pipe: the
	// exit is reported (and StopContainer returns) before it has
	// necessarily written the last line. Reading the file at once failed
	// 1 run in 20 under load, with only "waiting" in it.
	waitLog(t, got.LogPath, "stdout got SIGTERM")
	// Creating the sandbox again is idempotent: same namespace and IP.
	again, err := e.rt.CreatePodSandbox(ctx, runtime.PodSpec{UID: sb.PodUID, Name: "adopt", App: "shop"})
	if err != nil || again.IP != sb.IP || again.NetNSPath != sb.NetNSPath {
		t.Errorf("CreatePodSandbox again = %+v, %v; want the existing sandbox", again, err)
	}

	// RemovePod leaves nothing behind.
	if err := e.rt.RemovePod(ctx, sb.PodUID); err != nil {
		t.Fatal(err)
	}
	if pods, err := e.rt.ListPods(ctx); err != nil || len(pods) != 0 {
		t.Errorf("after RemovePod: ListPods = %+v, %v", pods, err)
	}
	for _, p := range []string{sb.NetNSPath, sb.UTSPath, sb.IPCPath, sb.Dir} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after RemovePod (%v)", p, err)
		}
	}
	if _, err := e.rt.ContainerStatus(ctx, web.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("status of removed container: %v, want ErrNotFound", err)
	}
	if err := e.rt.RemovePod(ctx, sb.PodUID); err != nil {
		t.Errorf("second RemovePod: %v", err)
	}
}

// A CNI failure while creating a sandbox returns the plugin's message and
// leaves no namespace, directory or address behind.
func TestSandboxCNIFailureCleansUp(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// A /30 has two addresses for host-local: the gateway and one pod.
	netOpts := e.net.Options()
	netOpts.PodCIDR = "10.99.254.0/30"
	netOpts.Bridge = netOpts.Bridge + "t"
	netOpts.NetworkName = "tiny"
	tiny, err := network.New(netOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tiny.RemoveBridge(context.Background()) })
	opts := e.opts
	opts.Network = tiny
	rt := e.runtimeWith(opts)

	first, err := rt.CreatePodSandbox(ctx, runtime.PodSpec{UID: "tiny-1", Name: "one"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.RemovePod(context.Background(), first.PodUID) })
	_, err = rt.CreatePodSandbox(ctx, runtime.PodSpec{UID: "tiny-2", Name: "two"})
	if !errors.Is(err, network.ErrCNI) || !strings.Contains(err.Error(), "no IP addresses available") {
		t.Fatalf("second sandbox on a full CIDR: err = %v, want ErrCNI with the plugin's message", err)
	}
	for _, p := range []string{tiny.NetNSPath("tiny-2"), filepath.Join(opts.RunDir, "pods", "tiny-2"), filepath.Join(opts.DataDir, "pods", "tiny-2")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after the failure (%v)", p, err)
		}
	}
	// Freeing the first pod's address makes room again.
	if err := rt.RemovePod(ctx, first.PodUID); err != nil {
		t.Fatal(err)
	}
	second, err := rt.CreatePodSandbox(ctx, runtime.PodSpec{UID: "tiny-2", Name: "two"})
	if err != nil {
		t.Fatalf("sandbox after the address was freed: %v", err)
	}
	if err := rt.RemovePod(ctx, second.PodUID); err != nil {
		t.Fatal(err)
	}
}

// After a reboot the namespace files are gone but the pod directory and
// the IPAM lease remain: ListPods reports the pod as stale, and creating
// the sandbox again attaches it afresh, keeping its volumes.
func TestStaleSandboxAfterReboot(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sb := e.pod("reboot", "data")
	if err := os.WriteFile(filepath.Join(sb.Dir, "volumes", "data", "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// What a reboot leaves: no namespaces (the kernel drops the veth with
	// the network namespace), the files on disk.
	for _, p := range []string{sb.NetNSPath, sb.UTSPath, sb.IPCPath} {
		if err := nsfile.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	pods, err := e.rt.ListPods(ctx)
	if err != nil || len(pods) != 1 || !pods[0].Stale {
		t.Fatalf("ListPods = %+v, %v; want one stale pod", pods, err)
	}
	again, err := e.rt.CreatePodSandbox(ctx, runtime.PodSpec{UID: sb.PodUID, Name: "reboot", App: "shop", Volumes: []string{"data"}})
	if err != nil {
		t.Fatal(err)
	}
	if !nsfile.IsMounted(again.NetNSPath) || !again.IP.IsValid() {
		t.Errorf("recreated sandbox = %+v, want a mounted namespace and an IP", again)
	}
	if _, err := os.Stat(filepath.Join(again.Dir, "volumes", "data", "keep")); err != nil {
		t.Errorf("volume content lost: %v", err)
	}
	st := e.start(again, runtime.ContainerSpec{Name: "c", Args: []string{"exit", "0"}})
	if st := e.waitExited(st.ID, time.Minute); st.Reason != runtime.ReasonCompleted {
		t.Errorf("container in recreated sandbox: %+v", st)
	}
	if pods, err := e.rt.ListPods(ctx); err != nil || len(pods) != 1 || pods[0].Stale {
		t.Errorf("after recreate: ListPods = %+v, %v; want one healthy pod", pods, err)
	}
}

// What an agent killed in the middle of CreatePodSandbox leaves (its
// namespaces mounted, its address leased, no sandbox.json yet) is a stale
// pod, and making its sandbox again succeeds: it does not fail on the
// namespace left behind, and the pod keeps one address.
func TestUnfinishedSandbox(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sb := e.pod("unfinished")
	if err := os.Remove(filepath.Join(sb.Dir, "sandbox.json")); err != nil {
		t.Fatal(err)
	}
	pods, err := e.rt.ListPods(ctx)
	if err != nil || len(pods) != 1 || !pods[0].Stale {
		t.Fatalf("ListPods = %+v, %v; want one stale pod", pods, err)
	}
	again, err := e.rt.CreatePodSandbox(ctx, runtime.PodSpec{UID: sb.PodUID, Name: "unfinished", App: "shop"})
	if err != nil {
		t.Fatalf("CreatePodSandbox of the unfinished sandbox: %v", err)
	}
	if !nsfile.IsMounted(again.NetNSPath) || !again.IP.IsValid() {
		t.Errorf("sandbox = %+v, want a mounted namespace and an IP", again)
	}
	dir := filepath.Join(e.net.Options().IPAMDir, e.net.Options().NetworkName)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var leases []string
	for _, en := range entries {
		if b, err := os.ReadFile(filepath.Join(dir, en.Name())); err == nil && strings.HasPrefix(string(b), sb.PodUID) {
			leases = append(leases, en.Name())
		}
	}
	if len(leases) != 1 || leases[0] != again.IP.String() {
		t.Errorf("leases of the pod = %v, want only %s", leases, again.IP)
	}
}

// waitLog waits until the container log at path holds want.
func waitLog(t *testing.T, path, want string) {
	t.Helper()
	var b []byte
	defer func() {
		if t.Failed() {
			t.Logf("log %s:\n%s", path, b)
		}
	}()
	eventually(t, 30*time.Second, "log line "+want, func() bool {
		b, _ = os.ReadFile(path)
		return strings.Contains(string(b), want)
	})
}

// A pod made before the run directory moved (an upgrade that derives it
// from the data directory) is adopted where its namespace files are, and
// removing it unmounts them there: nothing is left under the old run
// directory.
func TestRemovePodAfterRunDirMoved(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sb := e.pod("moved")
	st := e.start(sb, runtime.ContainerSpec{Name: "web", Args: []string{"sleep"}})

	netOpts := e.net.Options()
	netOpts.RunDir = filepath.Join(e.dir, "run2", "netns")
	moved, err := network.New(netOpts)
	if err != nil {
		t.Fatal(err)
	}
	opts := e.opts
	opts.RunDir, opts.Network = filepath.Join(e.dir, "run2"), moved
	rt := e.runtimeWith(opts)
	pods, err := rt.ListPods(ctx)
	if err != nil || len(pods) != 1 || pods[0].Stale || len(pods[0].Containers) != 1 || pods[0].Containers[0].ID != st.ID {
		t.Fatalf("ListPods after the move = %+v, %v; want the running pod, not stale", pods, err)
	}
	if err := rt.RemovePod(ctx, sb.PodUID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{sb.NetNSPath, sb.UTSPath, sb.IPCPath, filepath.Dir(sb.UTSPath), sb.Dir} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after RemovePod (%v)", p, err)
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), filepath.Join(e.dir, "run")+"/") {
		t.Errorf("mounts left under the old run directory %s", filepath.Join(e.dir, "run"))
	}
}
