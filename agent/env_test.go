package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent"
	"github.com/capstanhq/capstan/agent/network"
	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/nodetest"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/internal/testimage"
	"github.com/capstanhq/capstan/registry"
)

func TestMain(m *testing.M) {
	if os.Getenv(ctrHelperEnv) != "" {
		os.Exit(ctrHelper())
	}
	nodetest.Main(m)
}

// testboxPkg is the runtime tests' test program, shared with the agent's.
const testboxPkg = nodetest.TestboxPkg

// env is one test's world: an API server, a registry with the testbox
// image, a containerd child (standing in for the node's containerd, so it
// outlives agent restarts), and the agent's options with a private
// containerd namespace, bridge, pod CIDR in 10.99.150-159 and directories.
type env struct {
	t       testing.TB
	log     *slog.Logger
	managed bool // the agent runs its own containerd
	dir     string
	api     *apiservertest.Cluster
	node    string
	reg     string
	image   string
	opts    agent.Options
	proc    *runtime.Process
	rt      *runtime.Containerd // the harness's own view, for checks and cleanup
	net     *network.Manager
}

var envSeq atomic.Int32

// newEnv makes the test's world. With managed, the agent starts its own
// containerd child (under DataDir/containerd) and the harness connects to
// it only once an agent runs; otherwise the harness runs containerd, as a
// node's system containerd that outlives agent restarts.
func newEnv(t testing.TB, managed bool) *env {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "containerd", "containerd-shim-runc-v2", "runc", "ip", "go")
	n := int(envSeq.Add(1))
	tag := fmt.Sprintf("%d%d", os.Getpid()%1000, n)
	// Short: the containerd socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "cag")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, node: "node-" + tag, managed: managed}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e.log = nodetest.Logger(t)

	e.api = startServer(t, "10.99.0.0/16", 24)
	e.reg = testimage.StartRegistry(t)
	e.image = e.reg + "/test/testbox:v1"
	testimage.Build(t, testboxPkg, e.image, registry.ImageConfig{})

	e.opts = agent.Options{
		Client:              e.api.Token(t, "node:"+e.node),
		NodeName:            e.node,
		Address:             "127.0.0.1",
		Labels:              map[string]string{"test": "agent"},
		DataDir:             filepath.Join(dir, "data"),
		RunDir:              filepath.Join(dir, "run"),
		ContainerdNamespace: "capstan-agent-test-" + tag,
		PodCIDR:             fmt.Sprintf("10.99.%d.0/24", 150+(os.Getpid()+n)%10),
		Bridge:              "cag" + tag,
		CgroupParent:        "/capstan-agent-test",
		InsecureRegistries:  []string{e.reg},
		Backoff:             agent.Backoff{Initial: 200 * time.Millisecond, Max: time.Second, ResetAfter: 10 * time.Minute},
		HeartbeatInterval:   time.Second,
		StatusSyncInterval:  200 * time.Millisecond,
		Logger:              e.log,
		ServerCA:            e.api.Config.CA,
		ServeAddr:           "127.0.0.1:0",
	}
	if !managed {
		stop := e.startContainerd(filepath.Join(dir, "ctrd"))
		t.Cleanup(stop) // after e.cleanup, which needs containerd
		e.opts.ContainerdAddress = e.proc.Address()
		e.connect(e.proc.Address())
	}
	t.Cleanup(e.cleanup)
	return e
}

// startServer runs an API server whose pod network holds the tests' pod
// CIDRs (docs/testing.md): it refuses a node's pod CIDR that is not one of
// its blocks of bits.
func startServer(t testing.TB, podNetwork string, bits int) *apiservertest.Cluster {
	t.Helper()
	return apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{
		Network: apiserver.NetworkOptions{PodCIDR: podNetwork, NodeCIDRBits: bits}}})
}

// managedSocket is where an agent's own containerd child listens.
func (e *env) managedSocket() string {
	return filepath.Join(e.opts.DataDir, agent.DefaultContainerdSubdir, "containerd.sock")
}

// startContainerd runs a containerd child on dir until stop is called.
func (e *env) startContainerd(dir string) (stop func()) {
	e.t.Helper()
	e.proc, stop = nodetest.StartContainerd(e.t, dir, e.log)
	return stop
}

// connect gives the harness its own runtime on the agent's containerd
// namespace and directories.
func (e *env) connect(address string) {
	e.t.Helper()
	if e.rt != nil {
		e.rt.Close()
	}
	var err error
	e.net, err = network.New(network.Options{
		PodCIDR: e.opts.PodCIDR, RunDir: filepath.Join(e.opts.RunDir, "netns"),
		IPAMDir: filepath.Join(e.opts.DataDir, "cni", "networks"), Bridge: e.opts.Bridge,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.rt, err = runtime.New(ctx, runtime.Options{
		Address: address, Namespace: e.opts.ContainerdNamespace,
		DataDir: e.opts.DataDir, RunDir: e.opts.RunDir, Network: e.net,
		CgroupParent: e.opts.CgroupParent, Insecure: e.opts.InsecureRegistries,
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// startAgent runs an agent until the returned stop is called (or the test
// ends). Stopping cancels its context and leaves every container running.
func (e *env) startAgent() (stop func()) {
	e.t.Helper()
	a, err := agent.New(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Start(ctx) }()
	var stopped atomic.Bool
	stop = func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("agent: %v", err)
		}
	}
	e.t.Cleanup(stop)
	e.waitFor("the node to be ready", func() bool {
		select {
		case err := <-done:
			done <- err
			e.t.Fatalf("agent stopped: %v", err)
		default:
		}
		o, err := e.api.Client.Get(context.Background(), api.Key{Kind: api.KindNode, Name: e.node})
		if err != nil {
			return false
		}
		c := api.FindCondition(o.(*api.Node).Status.Conditions, api.NodeReady)
		return c != nil && c.Status == api.ConditionTrue && c.LastTransitionTime.After(time.Now().Add(-time.Minute))
	})
	return stop
}

// cleanup removes every pod, image, namespace, address and cgroup the test
// made, and fails the test when mounts are left.
func (e *env) cleanup() {
	if e.managed {
		// The agent is stopped, and its containerd with it: run one on
		// the same directory to clean up.
		if e.rt != nil {
			e.rt.Close()
			e.rt = nil
		}
		if _, err := os.Stat(filepath.Join(e.opts.DataDir, agent.DefaultContainerdSubdir)); err != nil {
			return // the agent never started
		}
		stop := e.startContainerd(filepath.Join(e.opts.DataDir, agent.DefaultContainerdSubdir))
		defer stop()
		e.connect(e.proc.Address())
	}
	nodetest.Clean(e.t, e.rt, e.net, e.opts.CgroupParent, e.opts.ContainerdNamespace, e.dir)
}

// pod builds a pod bound to the test's node.
// with returns the env for a subtest: helpers report to t.
func (e *env) with(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

func (e *env) pod(app, name string, containers ...api.Container) *api.Pod {
	p := api.KindPod.New().(*api.Pod)
	p.Metadata.Name, p.Metadata.App = name, app
	p.Spec.NodeName = e.node
	for _, c := range containers {
		if c.Image == "" {
			c.Image = e.image
		}
		p.Spec.Containers = append(p.Spec.Containers, c)
	}
	return p
}

func (e *env) create(p *api.Pod) *api.Pod {
	e.t.Helper()
	o, err := e.api.Client.Create(context.Background(), p)
	if err != nil {
		e.t.Fatalf("create pod %s/%s: %v", p.Metadata.App, p.Metadata.Name, err)
	}
	return o.(*api.Pod)
}

// waitPod polls the pod until cond holds and returns it.
func (e *env) waitPod(p *api.Pod, what string, cond func(*api.Pod) bool) *api.Pod {
	e.t.Helper()
	var last *api.Pod
	defer func() {
		if e.t.Failed() && last != nil {
			e.t.Logf("last status of %s: %s", p.Metadata.Name, describe(last))
		}
	}()
	e.waitFor(p.Metadata.Name+" "+what, func() bool {
		o, err := e.api.Client.Get(context.Background(), api.KeyOf(p))
		if err != nil {
			return false
		}
		last = o.(*api.Pod)
		return cond(last)
	})
	return last
}

// waitFor polls cond every 20 ms for up to a minute.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// waitLeaseRenewals waits until the node's Lease was renewed n times.
func (e *env) waitLeaseRenewals(n int) {
	e.t.Helper()
	renewTime := func() time.Time {
		l, err := e.api.Client.Get(context.Background(), api.Key{Kind: api.KindLease, Name: e.node})
		if err != nil {
			e.t.Fatal(err)
		}
		return l.(*api.Lease).Spec.RenewTime
	}
	last := renewTime()
	for i := range n {
		e.waitFor(fmt.Sprintf("lease renewal %d", i+1), func() bool { return renewTime().After(last) })
		last = renewTime()
	}
}

// podState returns what the runtime has for a pod UID.
func (e *env) podState(uid string) (runtime.PodState, bool) {
	e.t.Helper()
	pods, err := e.rt.ListPods(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range pods {
		if p.Sandbox.PodUID == uid {
			return p, true
		}
	}
	return runtime.PodState{}, false
}

// volume is the host path of a pod volume.
func (e *env) volume(p *api.Pod, name string) string {
	return filepath.Join(e.opts.DataDir, "pods", p.Metadata.UID, "volumes", name)
}

func describe(p *api.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s ip=%s", p.Status.Phase, p.Status.PodIP)
	if c := api.FindCondition(p.Status.Conditions, api.PodReady); c != nil {
		fmt.Fprintf(&b, " ready=%s(%s)", c.Status, c.Reason)
	}
	for _, cs := range p.Status.Containers {
		fmt.Fprintf(&b, " [%s restarts=%d ready=%v", cs.Name, cs.RestartCount, cs.Ready)
		switch {
		case cs.State.Running != nil:
			b.WriteString(" running")
		case cs.State.Waiting != nil:
			fmt.Fprintf(&b, " waiting %s: %s", cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Terminated != nil:
			fmt.Fprintf(&b, " terminated %s (%d)", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
		}
		b.WriteString("]")
	}
	return b.String()
}

func ready(p *api.Pod) bool {
	c := api.FindCondition(p.Status.Conditions, api.PodReady)
	return c != nil && c.Status == api.ConditionTrue
}

// reasons watches the pods of app and records every waiting reason any
// status write showed, including ones that lasted a moment.
func (e *env) reasons(app string) func() map[string]bool {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	_, rev, err := e.api.Client.List(ctx, api.KindPod, client.ListOptions{App: app})
	if err != nil {
		e.t.Fatal(err)
	}
	w, err := e.api.Client.Watch(ctx, api.KindPod, client.ListOptions{App: app}, rev)
	if err != nil {
		e.t.Fatal(err)
	}
	seen := make(chan map[string]bool, 1)
	seen <- map[string]bool{}
	go func() {
		defer w.Close()
		for {
			ev, err := w.Next()
			if err != nil {
				return
			}
			p, ok := ev.Object.(*api.Pod)
			if !ok {
				continue
			}
			m := <-seen
			for _, cs := range p.Status.Containers {
				if cs.State.Waiting != nil {
					m[cs.State.Waiting.Reason] = true
				}
			}
			seen <- m
		}
	}()
	return func() map[string]bool {
		m := <-seen
		out := make(map[string]bool, len(m))
		for k, v := range m {
			out[k] = v
		}
		seen <- m
		return out
	}
}

// eventFor waits for an event about p of reason whose message contains
// msg, and returns that message.
func (e *env) eventFor(p *api.Pod, reason, msg string) string {
	e.t.Helper()
	var got []string
	var found string
	e.waitFor(fmt.Sprintf("a %s event about %s containing %q", reason, p.Metadata.Name, msg), func() bool {
		objs, _, err := e.api.Client.List(context.Background(), api.KindEvent, client.ListOptions{App: p.Metadata.App})
		if err != nil {
			return false
		}
		got = got[:0]
		for _, o := range objs {
			s := o.(*api.Event).Spec
			if s.Object.Kind != api.KindPod || s.Object.Name != p.Metadata.Name {
				continue
			}
			got = append(got, s.Reason+": "+s.Message)
			if s.Reason == reason && strings.Contains(s.Message, msg) && s.Object.UID == p.Metadata.UID {
				found = s.Message
				return true
			}
		}
		return false
	})
	if e.t.Failed() {
		e.t.Logf("events about %s: %q", p.Metadata.Name, got)
	}
	return found
}
