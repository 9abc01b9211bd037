package agent_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/network/nsfile"
	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/nodetest"
)

// agentProc is a `capstan agent` child process.
type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it exited, err set
	err  error
}

// buildCapstan builds the capstan binary for the test.
func buildCapstan(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "capstan")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/capstanhq/capstan/cmd/capstan").CombinedOutput()
	if err != nil {
		t.Fatalf("go build capstan: %v\n%s", err, out)
	}
	return bin
}

// agentBinary builds capstan and returns it with what its agent needs to
// join the env's server: the CA file and a node token.
func (e *env) agentBinary() (bin, caFile, token string) {
	e.t.Helper()
	bin = buildCapstan(e.t)
	token, _, err := e.api.Server.Tokens().Create("node:"+e.node, "test", 0, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	caFile = filepath.Join(e.t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(e.api.Config.CA), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return bin, caFile, token
}

// runAgent starts `capstan agent` for the env's node with its own
// containerd child, and waits until the node reports Ready after start.
func (e *env) runAgent(bin, caFile, token string) *agentProc {
	e.t.Helper()
	since := time.Now()
	o := e.opts
	cmd := exec.Command(bin, "agent",
		"--server", e.api.Config.Server, "--token", token, "--ca-file", caFile,
		"--node-name", o.NodeName, "--address", o.Address, "--labels", "test=agent,kind=binary",
		"--data-dir", o.DataDir, "--run-dir", o.RunDir,
		"--containerd-namespace", o.ContainerdNamespace, "--pod-cidr", o.PodCIDR, "--bridge", o.Bridge,
		"--cgroup-parent", o.CgroupParent, "--insecure-registry", strings.Join(o.InsecureRegistries, ","),
		// The test runs in the host's namespace: leave its ruleset, routes
		// and port 53 alone.
		"--services=false", "--routes=false", "--serve-addr", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = nodetest.Writer{T: e.t}, nodetest.Writer{T: e.t}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() { p.stop(e.t) })
	e.waitFor("the node to be ready", func() bool {
		select {
		case <-p.done:
			e.t.Fatalf("capstan agent exited: %v", p.err)
		default:
		}
		n, err := e.api.Client.Get(context.Background(), api.Key{Kind: api.KindNode, Name: o.NodeName})
		if err != nil {
			return false
		}
		c := api.FindCondition(n.(*api.Node).Status.Conditions, api.NodeReady)
		return c != nil && c.Status == api.ConditionTrue && !c.LastTransitionTime.Before(since.Add(-time.Second))
	})
	return p
}

// stop ends the agent with SIGTERM (the orderly way) if it still runs.
func (p *agentProc) stop(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Errorf("capstan agent did not stop within a minute of SIGTERM; killing it")
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// The capstan agent binary, with its own containerd child, is SIGKILLed
// while five pods run and started again: no container is restarted (same
// task PIDs), and status reporting resumes.
func TestAgentBinarySurvivesSIGKILL(t *testing.T) {
	e := newEnv(t, true)
	bin, caFile, tok := e.agentBinary()
	first := e.runAgent(bin, caFile, tok)
	var pods []*api.Pod
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		pods = append(pods, e.create(e.pod("kill", name, api.Container{Name: "c", Args: []string{"sleep"}})))
	}
	for _, p := range pods {
		e.waitPod(p, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning && ready(p) })
	}
	e.connect(e.managedSocket())
	pids := map[string]uint32{}
	for _, p := range pods {
		ps, ok := e.podState(p.Metadata.UID)
		if !ok || len(ps.Containers) != 1 || ps.Containers[0].State != runtime.StateRunning {
			t.Fatalf("runtime state of %s: %+v", p.Metadata.Name, ps)
		}
		pids[p.Metadata.UID] = ps.Containers[0].PID
	}

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	e.rt.Close()
	e.rt = nil
	for uid, pid := range pids {
		if err := syscall.Kill(int(pid), 0); err != nil {
			t.Errorf("container of pod %s (pid %d) died with the agent: %v", uid, pid, err)
		}
	}

	e.runAgent(bin, caFile, tok)
	e.connect(e.managedSocket())
	for _, p := range pods {
		ps, ok := e.podState(p.Metadata.UID)
		if !ok || len(ps.Containers) != 1 {
			t.Fatalf("pod %s after the restart: %+v", p.Metadata.Name, ps)
		}
		if c := ps.Containers[0]; c.PID != pids[p.Metadata.UID] || c.Attempt != 0 || c.State != runtime.StateRunning {
			t.Errorf("pod %s: container %+v, want the same task (pid %d) still running", p.Metadata.Name, c, pids[p.Metadata.UID])
		}
	}
	// Status reporting resumes: a container killed behind the agent's back
	// is seen exiting and restarted.
	victim := pods[2]
	if err := syscall.Kill(int(pids[victim.Metadata.UID]), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	got := e.waitPod(victim, "restarted", func(p *api.Pod) bool {
		cs := p.Status.Containers[0]
		return cs.RestartCount == 1 && cs.State.Running != nil
	})
	if lt := got.Status.Containers[0].LastTermination; lt == nil || lt.ExitCode != 137 {
		t.Errorf("last termination = %+v, want the SIGKILL (137)", lt)
	}
	n, err := e.api.Client.Get(context.Background(), api.Key{Kind: api.KindNode, Name: e.node})
	if err != nil {
		t.Fatal(err)
	}
	if l := n.Meta().Labels; l["kind"] != "binary" || l["test"] != "agent" {
		t.Errorf("node labels = %v, want those of --labels", l)
	}
	if _, err := os.Stat(e.managedSocket()); errors.Is(err, os.ErrNotExist) {
		t.Errorf("no managed containerd socket at %s", e.managedSocket())
	}
}

// The agent is SIGKILLed while CNI ADD runs for a new pod: the test holds
// host-local's lock, so the agent waits in the middle of the ADD with the
// pod's network namespace mounted and no sandbox.json written yet. The
// orphaned plugin then leases the address. The agent started again makes
// the sandbox at once, as if nothing had happened: before, it failed once
// on the namespace left behind ("already exists (remove it first)",
// event FailedCreatePodSandBox) and waited a back-off. The node keeps one
// lease for the pod, the address it runs with.
func TestAgentKilledDuringCNIAdd(t *testing.T) {
	e := newEnv(t, true)
	bin, caFile, tok := e.agentBinary()
	first := e.runAgent(bin, caFile, tok)

	leases := filepath.Join(e.opts.DataDir, "cni", "networks", "capstan")
	unlock := holdFileLock(t, filepath.Join(leases, "lock"))
	p := e.create(e.pod("kill", "sandbox", api.Container{Name: "c", Args: []string{"sleep"}}))
	uid := p.Metadata.UID
	e.waitFor("host-local to run for the pod (CNI ADD under way, held on the lock)", func() bool {
		return cniPluginRuns("host-local", uid)
	})
	if !nsfile.IsMounted(filepath.Join(e.opts.RunDir, "netns", uid)) {
		t.Fatal("CNI ADD runs, but the pod's network namespace is not mounted")
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The agent runs no more code once the signal is sent; its plugins
	// carry on, holding its output pipes until they end.
	unlock()
	<-first.done
	e.waitFor("the orphaned CNI ADD to lease an address", func() bool { return len(podLeases(t, leases, uid)) == 1 })
	if _, err := os.Stat(filepath.Join(e.opts.DataDir, "pods", uid, "sandbox.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("sandbox.json of the interrupted pod: %v; want none (the kill came too late)", err)
	}

	e.runAgent(bin, caFile, tok)
	got := e.waitPod(p, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning && ready(p) })
	objs, _, err := e.api.Client.List(context.Background(), api.KindEvent, client.ListOptions{App: p.Metadata.App})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if s := o.(*api.Event).Spec; s.Object.UID == uid && s.Type == api.EventWarning {
			t.Errorf("event %s: %s; want none", s.Reason, s.Message)
		}
	}
	if l := podLeases(t, leases, uid); len(l) != 1 || l[0] != got.Status.PodIP {
		t.Errorf("leases of the pod = %v, want only its address %s", l, got.Status.PodIP)
	}
}

// holdFileLock takes an exclusive flock on path (made if missing), as
// host-local takes it around every lease; unlock (also run at cleanup)
// gives it back.
func holdFileLock(t *testing.T, path string) (unlock func()) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	var once sync.Once
	unlock = func() { once.Do(func() { f.Close() }) }
	t.Cleanup(unlock)
	return unlock
}

// cniPluginRuns reports whether CNI plugin name runs for container id
// (the plugin's CNI_CONTAINERID).
func cniPluginRuns(name, id string) bool {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || filepath.Base(string(bytes.SplitN(cmd, []byte{0}, 2)[0])) != name {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err == nil && slices.Contains(strings.Split(string(env), "\x00"), "CNI_CONTAINERID="+id) {
			return true
		}
	}
	return false
}

// podLeases lists the addresses host-local leased to pod uid in dir (one
// file per address, holding the container ID).
func podLeases(t *testing.T, dir, uid string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		if _, err := netip.ParseAddr(en.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, en.Name()))
		if err == nil && strings.HasPrefix(string(b), uid) {
			out = append(out, en.Name())
		}
	}
	return out
}

// The agent is SIGKILLed while it stops a deleted pod whose container
// ignores SIGTERM (grace 30 s): started again, it stops the pod and
// removes everything of it (container, network namespace, address,
// directories) and then the API object.
func TestAgentKilledWhileStoppingPod(t *testing.T) {
	e := newEnv(t, true)
	bin, caFile, tok := e.agentBinary()
	first := e.runAgent(bin, caFile, tok)
	p := e.pod("kill", "stopping", api.Container{Name: "c", Args: []string{"ignore-term"}})
	p.Spec.TerminationGracePeriodSeconds = new(int64(30))
	p = e.create(p)
	got := e.waitPod(p, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
	uid := p.Metadata.UID
	if _, err := e.api.Client.Delete(context.Background(), api.KeyOf(p), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.connect(e.managedSocket())
	ps, ok := e.podState(uid)
	if !ok || len(ps.Containers) != 1 {
		t.Fatalf("pod state: %+v", ps)
	}
	e.waitFor("the agent's SIGTERM (the grace period under way)", func() bool {
		b, _ := os.ReadFile(ps.Containers[0].LogPath)
		return strings.Contains(string(b), "got SIGTERM, ignored")
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done

	e.runAgent(bin, caFile, tok)
	e.connect(e.managedSocket())
	e.waitFor("the pod object gone", func() bool {
		_, err := e.api.Client.Get(context.Background(), api.KeyOf(p))
		return client.IsNotFound(err)
	})
	if ps, ok := e.podState(uid); ok {
		t.Errorf("the runtime still has the pod: %+v", ps)
	}
	if nsfile.IsMounted(filepath.Join(e.opts.RunDir, "netns", uid)) {
		t.Errorf("the pod's network namespace is still mounted")
	}
	if _, err := os.Stat(filepath.Join(e.opts.DataDir, "pods", uid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the pod's directory is left: %v", err)
	}
	if l := podLeases(t, filepath.Join(e.opts.DataDir, "cni", "networks", "capstan"), uid); len(l) != 0 {
		t.Errorf("addresses still leased to the pod: %v (it had %s)", l, got.Status.PodIP)
	}
}
