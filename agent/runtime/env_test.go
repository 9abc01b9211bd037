package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/network"
	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/internal/nodetest"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/internal/testimage"
	"github.com/capstanhq/capstan/registry"
)

func TestMain(m *testing.M) { nodetest.Main(m) }

const testboxPkg = nodetest.TestboxPkg

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
	log := nodetest.Logger(t)

	e.startContainerd(log)
	t.Cleanup(func() { e.stop() })

	netOpts := network.Options{
		PodCIDR: fmt.Sprintf("10.99.%d.0/24", 10+(os.Getpid()*7+n)%90), // 10.99.10-99: see docs/testing.md
		RunDir:  filepath.Join(dir, "netns"),
		IPAMDir: filepath.Join(dir, "ipam"),
		Bridge:  "cst" + tag,
	}
	netOpts.Logger = log
	e.net, err = network.New(netOpts)
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
	e.proc, e.stop = nodetest.StartContainerd(e.t, filepath.Join(e.dir, "ctrd"), log)
}

// newRuntime connects a fresh Runtime to the same containerd, as an agent
// restart would.
func (e *env) newRuntime() *runtime.Containerd {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := e.opts
	opts.Logger = nodetest.Logger(e.t)
	rt, err := runtime.New(ctx, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return rt
}

// cleanup removes pods (tasks, containers, snapshots, namespaces, IPs), the
// images of the test namespace, the bridge and the cgroup parents.
func (e *env) cleanup() {
	nodetest.Clean(e.t, e.rt, e.net, e.opts.CgroupParent, e.ns, e.dir)
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
