package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/registry"
)

// upEnv runs the capstan binary's `up` in a network namespace of the
// test's own (a veth pair inside it carries the default route), so the
// bridge, nftables table, DNS server, registry and API never touch the
// host's network.
type upEnv struct {
	t                    testing.TB
	bin, ns, data, imgs  string
	out                  *testenv.SyncBuffer
	cmd                  *exec.Cmd
	done                 chan error
	repo                 string
	hostIP               string
	upArgs               []string // more flags for capstan up
	frontendVIP, nodePrt string
}

// newUpEnv prepares a 'capstan up' of the example repository in a
// network namespace of its own, with its data in data (a new temporary
// directory when ""), removed when t ends; upArgs are more flags for up.
// Start it with e.start().
func newUpEnv(t testing.TB, data string, upArgs ...string) *upEnv {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "containerd", "runc", "nft", "ip", "nsenter", "curl", "git")
	bin, imgs := buildUpInputs(t)
	ns, hostIP := newUpNetns(t)
	if data == "" {
		data = t.TempDir()
	}
	e := &upEnv{t: t, bin: bin, ns: ns, data: data, imgs: imgs, repo: filepath.Join(data, "demo-repo"), hostIP: hostIP, upArgs: upArgs}
	t.Cleanup(e.cleanup)
	return e
}

func (e *upEnv) inNS(args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + e.ns}, args...)...)
}

func (e *upEnv) run(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := e.inNS(args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (e *upEnv) cli(args ...string) (string, error) {
	return e.run(append([]string{e.bin, "--config", filepath.Join(e.data, "admin.yaml")}, args...)...)
}

func (e *upEnv) start() {
	e.t.Helper()
	e.out = &testenv.SyncBuffer{}
	e.cmd = e.inNS(append([]string{e.bin, "up", "--data-dir", e.data, "--images", e.imgs}, e.upArgs...)...)
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.done = make(chan error, 1)
	go func() { e.done <- e.cmd.Wait() }()
	e.wait("capstan up is up", 5*time.Minute, func() (bool, string) {
		select {
		case err := <-e.done:
			e.t.Fatalf("capstan up exited: %v\n%s", err, e.out.String())
		default:
		}
		return strings.Contains(e.out.String(), "Capstan is up."), e.out.String()
	})
}

// stop sends Ctrl-C and waits for a clean exit.
func (e *upEnv) stop() {
	e.t.Helper()
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("capstan up after Ctrl-C: %v\n%s", err, e.out.String())
		}
	case <-time.After(time.Minute):
		e.cmd.Process.Kill()
		e.t.Errorf("capstan up did not stop on Ctrl-C\n%s", e.out.String())
	}
	e.cmd = nil
	if !strings.Contains(e.out.String(), "stopped; everything is kept in") {
		e.t.Errorf("no stop line:\n%s", e.out.String())
	}
}

func (e *upEnv) wait(what string, timeout time.Duration, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not within %s; last state:\n%s", what, timeout, state)
		}
		<-time.After(250 * time.Millisecond)
	}
}

// pods lists the pods, with a one-line-per-pod summary for failures.
func (e *upEnv) pods() ([]api.Pod, string) {
	out, err := e.cli("get", "pods", "-A", "-o", "json")
	if err != nil {
		return nil, out
	}
	var l struct{ Items []api.Pod }
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return nil, out
	}
	var b strings.Builder
	for _, p := range l.Items {
		fmt.Fprintf(&b, "%s %s ip=%s image=%s terminating=%v", p.Metadata.Name, p.Status.Phase, p.Status.PodIP,
			p.Spec.Containers[0].Image, p.Metadata.DeletionRequestedAt != nil)
		for _, c := range p.Status.Containers {
			fmt.Fprintf(&b, " %s(ready=%v restarts=%d)", c.Name, c.Ready, c.RestartCount)
		}
		b.WriteString("\n")
	}
	return l.Items, b.String()
}

// running reports whether exactly want pods of group run, all ready with
// IPs, and (when image is set) on that image, with no others left.
func (e *upEnv) running(group string, want int, image string) (bool, string) {
	pods, out := e.pods()
	n := 0
	for _, p := range pods {
		if p.Metadata.Labels["capstan.io/workload"] != group {
			continue
		}
		if p.Status.Phase != api.PodRunning || p.Status.PodIP == "" || p.Metadata.DeletionRequestedAt != nil {
			return false, out
		}
		for _, c := range p.Status.Containers {
			if !c.Ready {
				return false, out
			}
		}
		if image != "" && !strings.HasSuffix(p.Spec.Containers[0].Image, image) {
			return false, out
		}
		n++
	}
	return n == want, out
}

func (e *upEnv) curl(url string) (string, error) {
	return e.run("curl", "-sS", "-m", "3", url)
}

func (e *upEnv) commit(msg string, edit func(string) string) string {
	e.t.Helper()
	f := filepath.Join(e.repo, "shop.cue")
	b, err := os.ReadFile(f)
	if err != nil {
		e.t.Fatal(err)
	}
	next := edit(string(b))
	if next == string(b) {
		e.t.Fatalf("%s: edit changed nothing", msg)
	}
	if err := os.WriteFile(f, []byte(next), 0o644); err != nil {
		e.t.Fatal(err)
	}
	gitCmd(e.t, e.repo, "-c", "user.name=E2E", "-c", "user.email=e2e@example.com", "commit", "-qam", msg)
	return gitCmd(e.t, e.repo, "rev-parse", "HEAD")
}

func (e *upEnv) revert(sha string) {
	e.t.Helper()
	gitCmd(e.t, e.repo, "-c", "user.name=E2E", "-c", "user.email=e2e@example.com", "revert", "--no-edit", sha)
}

// upInputs are the capstan binary and the example image tarballs, built
// once per test binary (no test changes them) and removed by TestMain.
var upInputs struct {
	once           sync.Once
	dir, bin, imgs string
	err            error
}

// buildUpInputs gives the capstan binary and the example image tarballs
// (hello v1 and v2, api, worker, shipper, kv) as `make up` builds them.
func buildUpInputs(t testing.TB) (bin, imgs string) {
	t.Helper()
	upInputs.once.Do(func() {
		if upInputs.dir, upInputs.err = os.MkdirTemp("", "capstan-up-inputs-"); upInputs.err == nil {
			upInputs.bin, upInputs.imgs, upInputs.err = makeUpInputs(upInputs.dir)
		}
	})
	if upInputs.err != nil {
		t.Fatal(upInputs.err)
	}
	return upInputs.bin, upInputs.imgs
}

func makeUpInputs(dir string) (bin, imgs string, err error) {
	bin = filepath.Join(dir, "capstan")
	build := func(out, pkg string) error {
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		return nil
	}
	if err := build(bin, "."); err != nil {
		return "", "", err
	}
	imgs = filepath.Join(dir, "images")
	if err := os.Mkdir(imgs, 0o755); err != nil {
		return "", "", err
	}
	for _, spec := range []string{"hello:v1", "hello:v2", "api:v1", "worker:v1", "shipper:v1", "kv:v1"} {
		name, tag, _ := strings.Cut(spec, ":")
		root := filepath.Join(dir, "root-"+name+"-"+tag)
		if err := build(filepath.Join(root, name), "../../examples/images/"+name); err != nil {
			return "", "", err
		}
		cfg := registry.ImageConfig{Entrypoint: []string{"/" + name}}
		switch name {
		case "hello":
			cfg.ExposedPorts, cfg.Env = []string{"8080"}, []string{"VERSION=" + tag}
		case "api":
			cfg.ExposedPorts = []string{"9000"}
		case "kv":
			cfg.ExposedPorts, cfg.Env = []string{"8080"}, []string{"VERSION=" + tag}
		}
		img, err := registry.PackDir(root, cfg)
		if err != nil {
			return "", "", err
		}
		if err := registry.WriteTarball(img, registry.DefaultAddr+"/examples/"+spec, filepath.Join(imgs, name+"-"+tag+".tar")); err != nil {
			return "", "", err
		}
	}
	return bin, imgs, nil
}

// newUpNetns makes a network namespace with a veth pair inside it holding
// 10.251.0.1/24 and the default route, and removes it at cleanup.
func newUpNetns(t testing.TB) (name, hostIP string) {
	name = fmt.Sprintf("capstan-up-%d", os.Getpid())
	ip := func(args ...string) {
		if b, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, b)
		}
	}
	exec.Command("ip", "netns", "del", name).Run() // a leftover of a killed run
	ip("netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ip("-n", name, "link", "set", "lo", "up")
	ip("-n", name, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	ip("-n", name, "addr", "add", "10.251.0.1/24", "dev", "up0")
	ip("-n", name, "link", "set", "up0", "up")
	ip("-n", name, "link", "set", "up1", "up")
	ip("-n", name, "route", "add", "default", "via", "10.251.0.2", "dev", "up0")
	return name, "10.251.0.1"
}

// TestUpJourney is the newcomer's journey end to end, as root, on real
// containerd, runc, CNI and nftables: capstan up with the demo repository;
// the seven pods run; the frontend answers through its VIP and its node port
// with data from the backend (reached by DNS name); scale by commit; a
// refused commit changes nothing; a rolling update to hello:v2 with no
// failed request; revert back to v1; stop and restart with every container
// kept.
func TestUpJourney(t *testing.T) {
	e := newUpEnv(t, "")
	hostIP := e.hostIP

	e.start()
	for _, w := range []string{"(created from examples/repo)", "✓ images pushed: examples/api:v1, examples/hello:v1, examples/hello:v2", "✓ agent: node", "✓ cluster DNS on " + hostIP + ":53", "✓ app shop synced at commit"} {
		if !strings.Contains(e.out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, e.out.String())
		}
	}
	for group, n := range map[string]int{"frontend": 3, "backend": 2, "worker": 1} {
		e.wait(group+" running", 5*time.Minute, func() (bool, string) { return e.running(group, n, "") })
	}
	out, err := e.cli("get", "services", "-A", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var svcs struct{ Items []api.Service }
	if err := json.Unmarshal([]byte(out), &svcs); err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs.Items {
		if s.Metadata.Name == "frontend" {
			e.frontendVIP, e.nodePrt = s.Spec.VIP, fmt.Sprint(s.Spec.Ports[0].NodePort)
		}
	}
	if e.frontendVIP == "" || e.nodePrt == "0" {
		t.Fatalf("frontend service without VIP or node port:\n%s", out)
	}
	vipURL, nodeURL := "http://"+e.frontendVIP+"/", "http://"+hostIP+":"+e.nodePrt+"/"
	// The summary and the services table show the node port where it
	// answers: on the host's address, not 127.0.0.1.
	if !strings.Contains(e.out.String(), "curl "+nodeURL) {
		t.Errorf("the summary lacks %q:\n%s", "curl "+nodeURL, e.out.String())
	}
	if out, err := e.cli("get", "services", "-A"); err != nil || !strings.Contains(out, hostIP+":"+e.nodePrt) {
		t.Errorf("capstan get services: %v, want %s:%s shown\n%s", err, hostIP, e.nodePrt, out)
	}
	for _, u := range []string{vipURL, nodeURL} {
		e.wait("frontend answers with backend data at "+u, time.Minute, func() (bool, string) {
			body, err := e.curl(u)
			return err == nil && strings.Contains(body, "version v1") && strings.Contains(body, `said: {"hostname":"backend-`), body
		})
	}
	if out, err := e.cli("rollout", "status", "shop", "-w", "--timeout", "2m"); err != nil {
		t.Fatalf("rollout status: %v\n%s", err, out)
	}
	e.logsAndExec()

	// Scale by commit.
	e.commit("scale the frontend to 5", func(s string) string { return strings.Replace(s, "replicas: 3", "replicas: 5", 1) })
	e.wait("5 frontends", 3*time.Minute, func() (bool, string) { return e.running("frontend", 5, "") })

	// A commit that does not validate is refused with file:line and
	// changes nothing.
	before, _ := e.pods()
	bad := e.commit("typo", func(s string) string { return strings.Replace(s, "replicas: 5", "replicas: \"five\"", 1) })
	e.wait("the bad commit refused", time.Minute, func() (bool, string) {
		out, err := e.cli("get", "app", "shop/shop", "-o", "json")
		if err != nil {
			return false, out
		}
		var a api.App
		json.Unmarshal([]byte(out), &a)
		return a.Status.AttemptedCommit == bad && a.Status.LastSyncResult == api.SyncRejected && strings.Contains(a.Status.LastSyncMessage, "shop.cue:"), out
	})
	after, _ := e.pods()
	if podNames(before) != podNames(after) {
		t.Errorf("a refused commit changed the pods:\n%s\n%s", podNames(before), podNames(after))
	}
	e.revert(bad)

	// A rolling update to v2 while a client polls the VIP.
	var requests, failures atomic.Int64
	var lastFailure atomic.Value
	stopPoll := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stopPoll:
				return
			default:
			}
			body, err := e.curl(vipURL)
			requests.Add(1)
			if err != nil || !strings.Contains(body, "You've hit") {
				failures.Add(1)
				lastFailure.Store(fmt.Sprintf("%v: %s", err, body))
			}
		}
	}()
	v2 := e.commit("hello v2", func(s string) string { return strings.Replace(s, "examples/hello:v1", "examples/hello:v2", 1) })
	e.wait("5 frontends on v2", 5*time.Minute, func() (bool, string) { return e.running("frontend", 5, "hello:v2") })
	if out, err := e.cli("rollout", "status", "shop", "-w", "--timeout", "2m"); err != nil {
		t.Errorf("rollout status after v2: %v\n%s", err, out)
	}
	close(stopPoll)
	wg.Wait()
	t.Logf("rolling update: %d requests through the VIP, %d failed", requests.Load(), failures.Load())
	if failures.Load() > 0 {
		t.Errorf("%d of %d requests failed during the rolling update; last: %v", failures.Load(), requests.Load(), lastFailure.Load())
	}
	if body, err := e.curl(vipURL); err != nil || !strings.Contains(body, "version v2") {
		t.Errorf("after the update: %v %s", err, body)
	}

	// Roll back by revert.
	e.revert(v2)
	e.wait("5 frontends back on v1", 5*time.Minute, func() (bool, string) { return e.running("frontend", 5, "hello:v1") })

	// Stop and start again: the same containers keep running.
	kept, _ := e.pods()
	e.stop()
	e.start()
	if !strings.Contains(e.out.String(), "(kept from the last run)") || !strings.Contains(e.out.String(), "✓ images already in the registry") {
		t.Errorf("restart output:\n%s", e.out.String())
	}
	e.wait("the same pods after restart", 2*time.Minute, func() (bool, string) {
		now, out := e.pods()
		return podNames(now) == podNames(kept) && containerIDs(now) == containerIDs(kept) && allRunning(now), out
	})
	for _, p := range kept {
		for _, c := range p.Status.Containers {
			if c.RestartCount != 0 {
				t.Errorf("pod %s container %s restarted %d times", p.Metadata.Name, c.Name, c.RestartCount)
			}
		}
	}
}

// logsAndExec reads a frontend's log and runs commands in it, through the
// API server and the agent, as a user would.
func (e *upEnv) logsAndExec() {
	e.t.Helper()
	pods, _ := e.pods()
	front := ""
	for _, p := range pods {
		if strings.HasPrefix(p.Metadata.Name, "frontend-") && p.Metadata.DeletionRequestedAt == nil {
			front = p.Metadata.App + "/" + p.Metadata.Name
		}
	}
	if out, err := e.cli("logs", front, "--tail", "5"); err != nil || !strings.Contains(out, "hello listening on ") {
		e.t.Errorf("capstan logs %s: %v\n%s", front, err, out)
	}
	// The short name goes through the pod's resolv.conf search path.
	for _, u := range []string{"http://backend/", "http://backend.shop.svc.cluster.local/"} {
		if out, err := e.cli("exec", front, "--", "/hello", "get", u); err != nil || !strings.Contains(out, `"hostname":"backend-`) {
			e.t.Errorf("capstan exec %s -- /hello get %s: %v\n%s", front, u, err, out)
		}
	}
	// The backend keeps its note in kv, reached by its service name: kv's
	// own answer comes back through the backend (no note yet).
	e.wait("the backend's note from kv", time.Minute, func() (bool, string) {
		out, _ := e.cli("exec", front, "--", "/hello", "get", "http://backend/note")
		return strings.Contains(out, "no such key"), out
	})
	out, err := e.cli("exec", front, "--", "/hello", "get", "http://127.0.0.1:1/")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "connection refused") {
		e.t.Errorf("capstan exec of a failing command: %v (want exit status 1)\n%s", err, out)
	}
}

// cleanup removes the app through git (so the agent stops its pods), stops
// capstan up, and runs capstan down --purge, which leaves nothing of the
// cluster (run directory, runc state, data directory).
func (e *upEnv) cleanup() {
	if e.cmd != nil {
		if err := os.Remove(filepath.Join(e.repo, "shop.cue")); err == nil {
			exec.Command("git", "-C", e.repo, "-c", "user.name=E2E", "-c", "user.email=e2e@example.com", "commit", "-qam", "remove shop").Run()
			// Removing the only app is a mass deletion: sync holds it
			// until confirmed.
			confirmed := false
			deadline := time.Now().Add(2 * time.Minute)
			for time.Now().Before(deadline) {
				if !confirmed {
					_, err := e.cli("sync", "--allow-prune-all")
					confirmed = err == nil
				}
				if pods, _ := e.pods(); len(pods) == 0 {
					break
				}
				<-time.After(500 * time.Millisecond)
			}
		}
		e.stop()
	}
	if out, err := e.run(e.bin, "down", "--data-dir", e.data, "--purge"); err != nil {
		e.t.Errorf("capstan down --purge: %v\n%s", err, out)
	}
	killShims(e.data)
}

// killShims kills, as a last resort after a failed run, the containers
// left by the containerd that lived under dataDir: the agent leaves them
// running on stop by design.
func killShims(dataDir string) {
	for _, shim := range testenv.Processes("containerd-shim", dataDir+"/") {
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", shim.PID, shim.PID))
		for _, c := range strings.Fields(string(children)) {
			var pid int
			if _, err := fmt.Sscan(c, &pid); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		syscall.Kill(shim.PID, syscall.SIGTERM)
	}
	// Container root filesystems stay mounted without their shims.
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	var under []string
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dataDir+"/") {
			under = append(under, f[4])
		}
	}
	slices.Sort(under)
	for i := len(under) - 1; i >= 0; i-- {
		syscall.Unmount(under[i], syscall.MNT_DETACH)
	}
}

func podNames(pods []api.Pod) string {
	var names []string
	for _, p := range pods {
		names = append(names, p.Metadata.Name)
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

func containerIDs(pods []api.Pod) string {
	var ids []string
	for _, p := range pods {
		for _, c := range p.Status.Containers {
			ids = append(ids, p.Metadata.Name+"/"+c.Name+"="+c.ContainerID)
		}
	}
	slices.Sort(ids)
	return strings.Join(ids, " ")
}

func allRunning(pods []api.Pod) bool {
	for _, p := range pods {
		if p.Status.Phase != api.PodRunning {
			return false
		}
	}
	return len(pods) > 0
}

// TestUpOtherRegistryAddr is item 12 of issue 12: with --registry-addr
// elsewhere than 127.0.0.1:5000 every part of capstan up follows it. The
// demo names 127.0.0.1:5001 and its pods run (the agent pulls there over
// plain HTTP); a commit moving the frontend to the registry's node address
// runs over HTTPS from the cluster CA with the pull credentials; nothing
// pushes anonymously, on loopback or on the node address.
func TestUpOtherRegistryAddr(t *testing.T) {
	e := newUpEnv(t, "")
	tlsAddr := e.hostIP + ":5001"
	e.upArgs = []string{"--registry-addr", "127.0.0.1:5001," + tlsAddr}
	e.start()
	for _, w := range []string{"images at 127.0.0.1:5001", "✓ registry on 127.0.0.1:5001, " + tlsAddr, "✓ images pushed: examples/api:v1, examples/hello:v1, examples/hello:v2"} {
		if !strings.Contains(e.out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, e.out.String())
		}
	}
	if b, err := os.ReadFile(filepath.Join(e.repo, "shop.cue")); err != nil || !strings.Contains(string(b), `"127.0.0.1:5001/examples/hello:v1"`) || strings.Contains(string(b), "127.0.0.1:5000") {
		t.Fatalf("demo shop.cue does not name 127.0.0.1:5001 (%v):\n%s", err, b)
	}
	for group, n := range map[string]int{"frontend": 3, "backend": 2, "worker": 1} {
		e.wait(group+" running from 127.0.0.1:5001", 5*time.Minute, func() (bool, string) { return e.running(group, n, "") })
	}

	e.commit("frontend from the registry's node address", func(s string) string {
		return strings.Replace(s, `"127.0.0.1:5001/examples/hello:v1"`, `"`+tlsAddr+`/examples/hello:v2"`, 1)
	})
	e.wait("3 frontends on v2 from "+tlsAddr, 5*time.Minute, func() (bool, string) {
		return e.running("frontend", 3, tlsAddr+"/examples/hello:v2")
	})

	for _, u := range []string{"http://127.0.0.1:5001/v2/evil/app/blobs/uploads/", "https://" + tlsAddr + "/v2/evil/app/blobs/uploads/"} {
		out, err := e.run("curl", "-sS", "-k", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", u)
		if err != nil || strings.TrimSpace(out) != "401" {
			t.Errorf("anonymous push to %s: %q, %v; want 401", u, out, err)
		}
	}
}
