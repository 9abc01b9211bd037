package runtime_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/network"
	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/internal/testimage"
	"github.com/capstanhq/capstan/registry"
)

// TestMain lets the test binary double as the log driver, the way the
// capstan binary does in production.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == runtime.LogDriverCommand {
		os.Exit(runtime.RunLogDriver(os.Args[2]))
	}
	os.Exit(m.Run())
}

const testboxPkg = "github.com/capstanhq/capstan/agent/runtime/testdata/testbox"

// env is one test's private world: a containerd child with its own root,
// a containerd namespace, a bridge and a pod CIDR, a registry with the
// testbox image.
type env struct {
	t     testing.TB
	dir   string
	rt    *runtime.Containerd
	net   *network.Manager
	opts  runtime.Options
	image string // testbox image reference
	reg   string // registry address
	ns    string
	cgDir string
	proc  *runtime.Process
	stop  func() // stops the containerd child and waits for it
}

var envSeq atomic.Int32

// newEnv needs root and the system tools; it registers cleanup of
// everything it creates, also when the test fails.
func newEnv(t testing.TB) *env {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "containerd", "containerd-shim-runc-v2", "runc", "ip", "go")
	n := int(envSeq.Add(1))
	tag := fmt.Sprintf("%d%d", os.Getpid()%1000, n)
	// Short paths: the containerd socket must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "cst")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, dir: dir, ns: "capstan-test-" + tag}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))

	e.startContainerd(log)
	t.Cleanup(func() { e.stop() })

	netOpts := network.Options{
		PodCIDR: fmt.Sprintf("10.99.%d.0/24", 10+(os.Getpid()*7+n)%90), // 10.99.10-99: see docs/testing.md
		RunDir:  filepath.Join(dir, "netns"),
		IPAMDir: filepath.Join(dir, "ipam"),
		Bridge:  "cst" + tag,
	}
	e.net, err = network.New(netOpts, log)
	if err != nil {
		t.Fatal(err)
	}
	e.opts = runtime.Options{
		Address:      e.proc.Address(),
		Namespace:    e.ns,
		DataDir:      filepath.Join(dir, "data"),
		RunDir:       filepath.Join(dir, "run"),
		Network:      e.net,
		CgroupParent: "/capstan-test",
		LogMaxSize:   64 << 10,
		LogMaxFiles:  3,
	}
	e.cgDir = "/capstan-test/" + e.ns
	e.reg = testimage.StartRegistry(t)
	e.opts.Insecure = []string{e.reg}
	e.rt = e.newRuntime()
	t.Cleanup(e.cleanup)
	e.image = e.reg + "/test/testbox:v1"
	testimage.Build(t, testboxPkg, e.image, registry.ImageConfig{Env: []string{"FROM_IMAGE=yes"}})
	return e
}

// startContainerd runs the containerd child for this test, on the same
// directory each time.
func (e *env) startContainerd(log *slog.Logger) {
	e.t.Helper()
	proc, err := runtime.NewProcess(runtime.ProcessOptions{Dir: filepath.Join(e.dir, "ctrd")}, log)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Start(ctx) }()
	e.proc = proc
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("containerd process: %v", err)
		}
	}
}

// newRuntime connects a fresh Runtime to the same containerd, as an agent
// restart would.
func (e *env) newRuntime() *runtime.Containerd {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := runtime.New(ctx, e.opts, slog.New(slog.NewTextHandler(testWriter{e.t}, nil)))
	if err != nil {
		e.t.Fatal(err)
	}
	return rt
}

// cleanup removes pods (tasks, containers, snapshots, namespaces, IPs), the
// images of the test namespace, the bridge and the cgroup parents.
func (e *env) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pods, err := e.rt.ListPods(ctx)
	if err != nil {
		e.t.Errorf("cleanup: list pods: %v", err)
	}
	for _, p := range pods {
		if err := e.rt.RemovePod(ctx, p.Sandbox.PodUID); err != nil {
			e.t.Errorf("cleanup: remove pod %s: %v", p.Sandbox.PodUID, err)
		}
	}
	if err := e.rt.RemoveImages(ctx); err != nil {
		e.t.Errorf("cleanup: %v", err)
	}
	e.rt.Close()
	if err := e.net.RemoveBridge(ctx); err != nil {
		e.t.Errorf("cleanup: %v", err)
	}
	// runc leaves the parent cgroups it created; remove ours, deepest first.
	for _, root := range cgroupRoots() {
		os.Remove(filepath.Join(root, e.cgDir))
		os.Remove(filepath.Join(root, filepath.Dir(e.cgDir)))
	}
	if out, _ := exec.Command("mount").Output(); bytes.Contains(out, []byte(e.dir)) {
		e.t.Errorf("cleanup: mounts left under %s:\n%s", e.dir, grepLines(out, e.dir))
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

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// waitExited polls the container's status until it has exited.
func (e *env) waitExited(id string, timeout time.Duration) runtime.ContainerStatus {
	e.t.Helper()
	var st runtime.ContainerStatus
	defer func() {
		if e.t.Failed() {
			e.t.Logf("last status of %s: %+v", id, st)
		}
	}()
	eventually(e.t, timeout, "container "+id+" to exit", func() bool {
		var err error
		st, err = e.rt.ContainerStatus(context.Background(), id)
		if err != nil {
			e.t.Fatalf("status %s: %v", id, err)
		}
		return st.State == runtime.StateExited
	})
	return st
}

// pod creates a sandbox for a fresh pod with the given volumes.
func (e *env) pod(name string, volumes ...string) runtime.Sandbox {
	e.t.Helper()
	ctx := context.Background()
	sb, err := e.rt.CreatePodSandbox(ctx, runtime.PodSpec{
		UID: fmt.Sprintf("uid-%s-%d", name, time.Now().UnixNano()), Name: name, App: "shop", Volumes: volumes,
	})
	if err != nil {
		e.t.Fatalf("create sandbox %s: %v", name, err)
	}
	return sb
}

// start pulls the testbox image when needed and starts a container running
// it with args.
func (e *env) start(sb runtime.Sandbox, spec runtime.ContainerSpec) runtime.ContainerStatus {
	e.t.Helper()
	ctx := context.Background()
	if spec.Image == "" {
		spec.Image = e.image
	}
	if _, err := e.rt.EnsureImage(ctx, spec.Image, runtime.PullIfNotPresent); err != nil {
		e.t.Fatalf("ensure image: %v", err)
	}
	st, err := e.rt.StartContainer(ctx, sb, spec)
	if err != nil {
		e.t.Fatalf("start container %s: %v", spec.Name, err)
	}
	return st
}

// logText returns the container's log (current file only).
func logText(t *testing.T, st runtime.ContainerStatus) string {
	t.Helper()
	b, err := os.ReadFile(st.LogPath)
	if err != nil {
		t.Fatalf("read log of %s: %v", st.ID, err)
	}
	return string(b)
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
