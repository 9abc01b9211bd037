package agent_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent"
	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testimage"
	"github.com/capstanhq/capstan/registry"
)

// One agent on real containerd, runc and CNI runs pods through their
// lifecycle as the API asks.
func TestPods(t *testing.T) {
	e := newEnv(t, false)
	logged := &recordingHandler{Handler: e.log.Handler()}
	e.opts.Logger = slog.New(logged)
	e.startAgent()
	cidr := netip.MustParsePrefix(e.opts.PodCIDR)

	t.Run("two containers share network and a volume", func(t *testing.T) {
		e := e.with(t)
		p := e.pod("shop", "duo",
			api.Container{Name: "server", Args: []string{"serve", "127.0.0.1:7070", "/shared/greeting", "hello"},
				VolumeMounts: []api.VolumeMount{{Name: "shared", MountPath: "/shared"}},
				Resources:    api.Resources{Limits: api.ResourceList{CPU: api.MustParseQuantity("500m"), Memory: api.MustParseQuantity("64Mi")}}},
			api.Container{Name: "client", Args: []string{"report", "127.0.0.1:7070", "/shared/greeting", "/shared/result"},
				VolumeMounts: []api.VolumeMount{{Name: "shared", MountPath: "/shared"}}},
		)
		p.Spec.Volumes = []api.Volume{{Name: "shared"}}
		p = e.create(p)
		got := e.waitPod(p, "running and ready", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning && ready(p) })
		ip, err := netip.ParseAddr(got.Status.PodIP)
		if err != nil || !cidr.Contains(ip) {
			t.Errorf("pod IP %q is not in the pod CIDR %s", got.Status.PodIP, cidr)
		}
		if got.Status.HostIP != "127.0.0.1" {
			t.Errorf("host IP = %q", got.Status.HostIP)
		}
		for _, cs := range got.Status.Containers {
			if !cs.Ready || cs.RestartCount != 0 || cs.ImageDigest == "" || cs.ContainerID == "" {
				t.Errorf("container status = %+v", cs)
			}
		}
		result := filepath.Join(e.volume(p, "shared"), "result")
		var b []byte
		e.waitFor("the client to reach the server", func() bool {
			b, _ = os.ReadFile(result)
			return len(b) > 0
		})
		if string(b) != "peer=pong file=hello" {
			t.Errorf("client learnt %q, want the server's pong over localhost and its file", b)
		}

		// Nothing changes: over two heartbeats (many status syncs) the
		// status is not written again.
		rv := e.waitPod(p, "settled", func(p *api.Pod) bool { return ready(p) }).Metadata.ResourceVersion
		e.waitLeaseRenewals(2)
		if now := e.waitPod(p, "still ready", ready); now.Metadata.ResourceVersion != rv {
			t.Errorf("status rewritten without a change: resourceVersion %d -> %d (%s)", rv, now.Metadata.ResourceVersion, describe(now))
		}
	})

	t.Run("missing image reports ErrImagePull and ImagePullBackOff, then recovers", func(t *testing.T) {
		e := e.with(t)
		seen := e.reasons("pull")
		ref := e.reg + "/test/late:v1"
		p := e.create(e.pod("pull", "late", api.Container{Name: "c", Image: ref, Args: []string{"sleep"}}))
		e.waitFor("ErrImagePull and ImagePullBackOff", func() bool {
			s := seen()
			return s["ErrImagePull"] && s["ImagePullBackOff"]
		})
		got := e.waitPod(p, "pending", func(p *api.Pod) bool { return p.Status.Phase == api.PodPending })
		if w := got.Status.Containers[0].State.Waiting; w == nil || w.Message == "" {
			t.Errorf("waiting state %+v lacks the pull error", w)
		}
		// As the kubelet does: the failed pull and the back-off are events.
		e.eventFor(p, agent.EventFailed, "Failed to pull image: ")
		e.eventFor(p, agent.EventBackOff, `Back-off pulling image "`+ref+`"`)
		// The image appears: the next retry pulls it.
		testimage.Build(t, testboxPkg, ref, registry.ImageConfig{})
		e.waitPod(p, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning && ready(p) })
	})

	t.Run("crashing container backs off with a growing restart count", func(t *testing.T) {
		e := e.with(t)
		seen := e.reasons("crash")
		p := e.create(e.pod("crash", "crash", api.Container{Name: "c", Args: []string{"exit", "3"}}))
		got := e.waitPod(p, "backing off after three restarts", func(p *api.Pod) bool {
			if len(p.Status.Containers) != 1 {
				return false
			}
			cs := p.Status.Containers[0]
			return cs.RestartCount >= 3 && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
		})
		if !seen()["CrashLoopBackOff"] {
			t.Errorf("no CrashLoopBackOff seen; reasons %v", seen())
		}
		e.eventFor(p, agent.EventBackOff, "Back-off restarting failed container c")
		cs := got.Status.Containers[0]
		if lt := cs.LastTermination; lt == nil || lt.ExitCode != 3 || lt.Reason != runtime.ReasonError {
			t.Errorf("last termination = %+v, want exit 3 Error", cs.LastTermination)
		}
		if got.Status.Phase != api.PodRunning || ready(got) {
			t.Errorf("crash-looping pod: %s, want phase Running and not ready", describe(got))
		}
		// Old attempts are cleaned up: at most the current and previous one.
		e.waitFor("old attempts removed", func() bool {
			ps, ok := e.podState(p.Metadata.UID)
			return ok && len(ps.Containers) <= 2
		})
	})

	t.Run("a command that does not exist says which, and leaves nothing behind", func(t *testing.T) {
		e := e.with(t)
		p := e.create(e.pod("nocmd", "nocmd", api.Container{Name: "c", Command: []string{"/no/such/cmd"}, Args: []string{"x"}}))
		var msg string
		e.waitPod(p, "CreateContainerError", func(p *api.Pod) bool {
			if len(p.Status.Containers) != 1 || p.Status.Containers[0].State.Waiting == nil {
				return false
			}
			w := p.Status.Containers[0].State.Waiting
			msg = w.Message
			return w.Reason == agent.ReasonCreateContainerError
		})
		// The pod is named as users know it, never by its UID: in the
		// status, the event and the agent's log.
		for _, want := range []string{"pod nocmd/nocmd: container c: command cannot run: \"/no/such/cmd\" in image ", "no such file", "check the command of the descriptor"} {
			if !strings.Contains(msg, want) {
				t.Errorf("waiting message %q does not say %q", msg, want)
			}
		}
		if strings.Contains(msg, p.Metadata.UID) {
			t.Errorf("waiting message %q names the pod by its UID", msg)
		}
		ev := e.eventFor(p, agent.EventFailed, "pod nocmd/nocmd: container c: command cannot run: \"/no/such/cmd\"")
		if strings.Contains(ev, p.Metadata.UID) {
			t.Errorf("event %q names the pod by its UID", ev)
		}
		line := logged.find("container start failed pod=nocmd/nocmd")
		if !strings.Contains(line, "container=c") || !strings.Contains(line, "pod nocmd/nocmd: container c: command cannot run") || strings.Contains(line, p.Metadata.UID) {
			t.Errorf("the agent's log of the failed start: %q; want the pod as nocmd/nocmd, the container, and no UID", line)
		}
		ps, ok := e.podState(p.Metadata.UID)
		if !ok || len(ps.Containers) != 0 {
			t.Errorf("a container that could not start was left: %+v", ps.Containers)
		}
	})

	t.Run("restart never, exit 0: succeeded", func(t *testing.T) {
		e := e.with(t)
		p := e.pod("jobs", "once", api.Container{Name: "c", Args: []string{"exit", "0"}})
		p.Spec.RestartPolicy = api.RestartNever
		p = e.create(p)
		got := e.waitPod(p, "succeeded", func(p *api.Pod) bool { return p.Status.Phase == api.PodSucceeded })
		cs := got.Status.Containers[0]
		if cs.State.Terminated == nil || cs.State.Terminated.Reason != runtime.ReasonCompleted || cs.RestartCount != 0 {
			t.Errorf("container = %+v, want terminated Completed without restarts", cs)
		}
		fail := e.pod("jobs", "fails", api.Container{Name: "c", Args: []string{"exit", "7"}})
		fail.Spec.RestartPolicy = api.RestartNever
		fail = e.create(fail)
		got = e.waitPod(fail, "failed", func(p *api.Pod) bool { return p.Status.Phase == api.PodFailed })
		if term := got.Status.Containers[0].State.Terminated; term == nil || term.ExitCode != 7 || term.Reason != runtime.ReasonError {
			t.Errorf("terminated = %+v, want exit 7 Error", term)
		}
	})

	t.Run("memory limit: OOMKilled", func(t *testing.T) {
		e := e.with(t)
		p := e.pod("oom", "hog", api.Container{Name: "c", Args: []string{"oom"},
			Resources: api.Resources{Limits: api.ResourceList{Memory: api.MustParseQuantity("32Mi")}}})
		p.Spec.RestartPolicy = api.RestartNever
		p = e.create(p)
		got := e.waitPod(p, "failed", func(p *api.Pod) bool { return p.Status.Phase == api.PodFailed })
		if term := got.Status.Containers[0].State.Terminated; term == nil || term.Reason != runtime.ReasonOOMKilled || term.ExitCode != 137 {
			t.Errorf("terminated = %+v, want OOMKilled (137)", term)
		}
		e.eventFor(p, agent.EventOOMKilled, "Container c (attempt 0) was killed")

		// Restarted (the default policy): OOMKilled is the last
		// termination while the container backs off.
		loop := e.create(e.pod("oom", "loop", api.Container{Name: "c", Args: []string{"oom"},
			Resources: api.Resources{Limits: api.ResourceList{Memory: api.MustParseQuantity("32Mi")}}}))
		got = e.waitPod(loop, "backing off after an OOM kill", func(p *api.Pod) bool {
			if len(p.Status.Containers) != 1 {
				return false
			}
			cs := p.Status.Containers[0]
			return cs.RestartCount >= 2 && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
		})
		if lt := got.Status.Containers[0].LastTermination; lt == nil || lt.Reason != runtime.ReasonOOMKilled || lt.ExitCode != 137 {
			t.Errorf("last termination = %+v, want OOMKilled (137)", lt)
		}
		// One Event object counts the kills; it shows the latest.
		e.waitFor("an OOMKilled event counting two kills", func() bool {
			objs, _, err := e.api.Client.List(context.Background(), api.KindEvent, client.ListOptions{App: "oom"})
			if err != nil {
				return false
			}
			for _, o := range objs {
				s := o.(*api.Event).Spec
				if s.Object.UID == loop.Metadata.UID && s.Reason == agent.EventOOMKilled && s.Count >= 2 &&
					!strings.Contains(s.Message, "(attempt 0)") {
					return true
				}
			}
			return false
		})
	})

	t.Run("readiness probe flips Ready", func(t *testing.T) {
		e := e.with(t)
		p := e.pod("web", "web", api.Container{Name: "web", Args: []string{"http", ":8080", "/data/ready"},
			Ports:        []api.ContainerPort{{Name: "http", Port: 8080}},
			Readiness:    &api.Probe{HTTP: &api.HTTPProbe{Path: "/ready", Port: api.FromString("http")}, PeriodSeconds: 1, FailureThreshold: 1},
			Liveness:     &api.Probe{TCP: &api.TCPProbe{Port: api.FromInt(8080)}, PeriodSeconds: 1},
			VolumeMounts: []api.VolumeMount{{Name: "data", MountPath: "/data"}}})
		p.Spec.Volumes = []api.Volume{{Name: "data"}}
		p = e.create(p)
		got := e.waitPod(p, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
		if ready(got) {
			t.Fatalf("ready before the probe passed: %s", describe(got))
		}
		flag := filepath.Join(e.volume(p, "data"), "ready")
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		got = e.waitPod(p, "ready", ready)
		if !got.Status.Containers[0].Ready {
			t.Errorf("pod ready but container not: %s", describe(got))
		}
		if err := os.Remove(flag); err != nil {
			t.Fatal(err)
		}
		got = e.waitPod(p, "not ready again", func(p *api.Pod) bool { return !ready(p) })
		e.eventFor(p, agent.EventUnhealthy, "Readiness probe of container web failed: GET http://")
		if cs := got.Status.Containers[0]; cs.State.Running == nil || cs.RestartCount != 0 {
			t.Errorf("readiness failure restarted the container: %+v", cs)
		}
	})

	t.Run("liveness failure restarts the container", func(t *testing.T) {
		e := e.with(t)
		p := e.create(e.pod("live", "live", api.Container{Name: "c", Args: []string{"sleep"},
			Liveness: &api.Probe{Exec: &api.ExecProbe{Command: []string{"/testbox", "exit", "1"}}, PeriodSeconds: 1, FailureThreshold: 1,
				InitialDelaySeconds: 1}})) // testbox handles SIGTERM (exit 0) once started
		got := e.waitPod(p, "restarted", func(p *api.Pod) bool {
			return len(p.Status.Containers) == 1 && p.Status.Containers[0].RestartCount >= 1
		})
		if lt := got.Status.Containers[0].LastTermination; lt == nil || lt.ExitCode != 0 {
			// testbox exits 0 on SIGTERM: the agent stopped it gracefully.
			t.Errorf("last termination = %+v, want the graceful stop (exit 0)", lt)
		}
		e.eventFor(p, agent.EventUnhealthy, "Liveness probe of container c failed: ")
		e.eventFor(p, agent.EventKilling, "Container c failed its liveness probe")
	})

	t.Run("an exec probe that leaves a process behind passes, and the pod deletes", func(t *testing.T) {
		// testbox background exits 0 but leaves a child holding its
		// output, as sh -c "daemon &" does: the check waited for that
		// child for ever, so the pod never became ready and its worker
		// could not stop the probe to delete it.
		e := e.with(t)
		p := e.pod("bgprobe", "bg", api.Container{Name: "c", Args: []string{"sleep"},
			Readiness: &api.Probe{Exec: &api.ExecProbe{Command: []string{"/testbox", "background"}}, PeriodSeconds: 1}})
		p.Spec.TerminationGracePeriodSeconds = new(int64(5))
		p = e.create(p)
		e.waitPod(p, "ready", func(p *api.Pod) bool {
			return len(p.Status.Containers) == 1 && p.Status.Containers[0].Ready
		})
		if _, err := e.api.Client.Delete(context.Background(), api.KeyOf(p), client.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		e.waitFor("the pod object to be gone", func() bool {
			_, err := e.api.Client.Get(context.Background(), api.KeyOf(p))
			return client.IsNotFound(err)
		})
	})

	t.Run("host port without --host-ports is refused", func(t *testing.T) {
		e := e.with(t)
		p := e.create(e.pod("ports", "hp", api.Container{Name: "c", Args: []string{"sleep"},
			Ports: []api.ContainerPort{{Port: 8080, HostPort: 18080}}}))
		got := e.waitPod(p, "refused", func(p *api.Pod) bool {
			return len(p.Status.Containers) == 1 && p.Status.Containers[0].State.Waiting != nil &&
				p.Status.Containers[0].State.Waiting.Reason == "CreatePodSandboxError"
		})
		if msg := got.Status.Containers[0].State.Waiting.Message; !strings.Contains(msg, "--host-ports") {
			t.Errorf("message %q does not say how to allow host ports", msg)
		}
		e.eventFor(p, agent.EventFailedCreatePod, "--host-ports")
	})

	t.Run("graceful delete stops the containers, then removes the object", func(t *testing.T) {
		e := e.with(t)
		p := e.pod("del", "bye", api.Container{Name: "c", Args: []string{"sleep"}})
		p.Spec.TerminationGracePeriodSeconds = new(int64(10))
		p = e.create(p)
		e.waitPod(p, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
		if _, ok := e.podState(p.Metadata.UID); !ok {
			t.Fatal("running pod not in the runtime")
		}
		if _, err := e.api.Client.Delete(context.Background(), api.KeyOf(p), client.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		e.waitFor("the pod object to be gone", func() bool {
			_, err := e.api.Client.Get(context.Background(), api.KeyOf(p))
			return client.IsNotFound(err)
		})
		if ps, ok := e.podState(p.Metadata.UID); ok {
			t.Errorf("pod still on the node after its object was deleted: %+v", ps)
		}
		if _, err := os.Stat(filepath.Join(e.opts.DataDir, "pods", p.Metadata.UID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pod directory left: %v", err)
		}
	})
}

// The agent stops without cleaning up while pods run and starts again: it
// adopts every running container without restarting any, keeps reporting
// their status, and removes the pods that were deleted while it was down.
func TestAgentRestartAdoptsPods(t *testing.T) {
	e := newEnv(t, false)
	stop := e.startAgent()
	var pods []*api.Pod
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		pods = append(pods, e.create(e.pod("adopt", name, api.Container{Name: "c", Args: []string{"sleep"}})))
	}
	pids := map[string]uint32{}
	for _, p := range pods {
		e.waitPod(p, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning && ready(p) })
		ps, ok := e.podState(p.Metadata.UID)
		if !ok || len(ps.Containers) != 1 || ps.Containers[0].PID == 0 {
			t.Fatalf("runtime state of %s: %+v", p.Metadata.Name, ps)
		}
		pids[p.Metadata.UID] = ps.Containers[0].PID
	}

	stop()
	// While the agent is down, pod "e" is force-deleted from the API.
	gone := pods[4]
	if _, err := e.api.Client.Delete(context.Background(), api.KeyOf(gone), client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	e.startAgent()

	e.waitFor("the deleted pod's containers to be removed", func() bool {
		_, ok := e.podState(gone.Metadata.UID)
		return !ok
	})
	for _, p := range pods[:4] {
		ps, ok := e.podState(p.Metadata.UID)
		if !ok || len(ps.Containers) != 1 {
			t.Fatalf("adopted pod %s: %+v", p.Metadata.Name, ps)
		}
		c := ps.Containers[0]
		if c.PID != pids[p.Metadata.UID] || c.Attempt != 0 || c.State != runtime.StateRunning {
			t.Errorf("pod %s: container %+v, want the same task (pid %d, attempt 0) still running", p.Metadata.Name, c, pids[p.Metadata.UID])
		}
	}
	// Status reporting resumes: an adopted container that dies is noticed
	// and restarted, and a new pod starts.
	victim := pods[0]
	ps, _ := e.podState(victim.Metadata.UID)
	if err := e.rt.StopContainer(context.Background(), ps.Containers[0].ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	got := e.waitPod(victim, "restarted after its exit", func(p *api.Pod) bool {
		return p.Status.Containers[0].RestartCount == 1 && p.Status.Containers[0].State.Running != nil
	})
	if lt := got.Status.Containers[0].LastTermination; lt == nil || lt.Reason != runtime.ReasonCompleted {
		t.Errorf("last termination = %+v, want the exit the test caused", lt)
	}
	fresh := e.create(e.pod("adopt", "fresh", api.Container{Name: "c", Args: []string{"sleep"}}))
	e.waitPod(fresh, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
	for _, p := range pods[1:4] {
		got := e.waitPod(p, "still running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
		if cs := got.Status.Containers[0]; cs.RestartCount != 0 || !cs.Ready {
			t.Errorf("pod %s after the restart: %s", p.Metadata.Name, describe(got))
		}
	}
}

// A CNI failure (the pod CIDR is full) shows the plugin's message as
// CreatePodSandboxError, leaves no namespace behind, and the pod starts
// once an address is free again.
func TestSandboxFailureRecovers(t *testing.T) {
	e := newEnv(t, false)
	// host-local keeps the gateway and the broadcast address of a /30:
	// room for exactly one pod.
	p24 := netip.MustParsePrefix(e.opts.PodCIDR)
	e.opts.PodCIDR = netip.PrefixFrom(p24.Addr(), 30).String()
	// A server that cuts /30 blocks, since it refuses any other size.
	e.api = startServer(t, p24.String(), 30)
	e.opts.Client, e.opts.ServerCA = e.api.Token(t, "node:"+e.node), e.api.Config.CA
	e.connect(e.proc.Address())
	e.startAgent()

	first := e.create(e.pod("cni", "first", api.Container{Name: "c", Args: []string{"sleep"}}))
	e.waitPod(first, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
	second := e.create(e.pod("cni", "second", api.Container{Name: "c", Args: []string{"sleep"}}))
	got := e.waitPod(second, "failing its sandbox", func(p *api.Pod) bool {
		if len(p.Status.Containers) != 1 || p.Status.Containers[0].State.Waiting == nil {
			return false
		}
		return p.Status.Containers[0].State.Waiting.Reason == "CreatePodSandboxError"
	})
	if msg := got.Status.Containers[0].State.Waiting.Message; !strings.Contains(msg, "no IP addresses available") {
		t.Errorf("waiting message %q lacks the plugin's message", msg)
	}
	if got.Status.Phase != api.PodPending || got.Status.PodIP != "" {
		t.Errorf("pod without a sandbox: %s", describe(got))
	}
	if _, err := os.Stat(filepath.Join(e.opts.RunDir, "netns", second.Metadata.UID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("network namespace of the failed pod left behind: %v", err)
	}
	if _, err := e.api.Client.Delete(context.Background(), api.KeyOf(first), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitPod(second, "running once the address is free", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
}

// TestExitSeenFromEvents: with status syncs an hour apart, a container
// killed from outside still reaches the pod's status, woken by
// containerd's exit event.
func TestExitSeenFromEvents(t *testing.T) {
	e := newEnv(t, false)
	e.opts.StatusSyncInterval = time.Hour
	e.startAgent()
	p := e.pod("jobs", "events", api.Container{Name: "c", Args: []string{"sleep"}})
	p.Spec.RestartPolicy = api.RestartNever
	p = e.create(p)
	e.waitPod(p, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
	ps, ok := e.podState(p.Metadata.UID)
	if !ok || len(ps.Containers) != 1 || ps.Containers[0].PID == 0 {
		t.Fatalf("pod state: %+v", ps)
	}
	// Running is not yet listening: testbox handles SIGTERM only once it
	// has logged "waiting" (before that, as PID 1 it exits 2).
	e.waitFor("testbox to log waiting", func() bool {
		b, _ := os.ReadFile(ps.Containers[0].LogPath)
		return strings.Contains(string(b), "waiting")
	})
	if err := syscall.Kill(int(ps.Containers[0].PID), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	got := e.waitPod(p, "succeeded", func(p *api.Pod) bool { return p.Status.Phase == api.PodSucceeded })
	if term := got.Status.Containers[0].State.Terminated; term == nil || term.ExitCode != 0 {
		t.Errorf("terminated = %+v, want exit 0", term)
	}
}
