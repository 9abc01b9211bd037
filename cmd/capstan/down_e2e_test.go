package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent"
	"github.com/capstanhq/capstan/internal/testenv"
)

// TestUpDown: capstan up runs the demo's pods; after Ctrl-C (which leaves
// them running) capstan down --purge stops them and leaves nothing of the
// cluster: no container process, no network namespace file, no nftables
// table, no bridge, no runc state, no run or data directory. A second
// down finds nothing to do.
func TestUpDown(t *testing.T) {
	e := newUpEnv(t, filepath.Join(t.TempDir(), "cluster"))
	bin := e.bin
	data := e.data
	runDir := agent.RunDirFor(filepath.Join(data, "agent"))
	// runc's state lives under the run directory; the shared default root
	// must gain nothing (older runs on this machine may have left entries
	// there: only new ones count).
	sharedRunc := filepath.Join("/run/containerd/runc", agent.DefaultNamespace)
	runcBefore := map[string]bool{}
	if ents, err := os.ReadDir(sharedRunc); err == nil {
		for _, e := range ents {
			runcBefore[e.Name()] = true
		}
	}

	e.start()
	e.wait("the worker running", 5*time.Minute, func() (bool, string) { return e.running("worker", 1, "") })
	e.stop()
	shims := func() []string { return pidsMentioning(filepath.Join(data, "agent", "containerd")) }
	if len(shims()) == 0 {
		t.Fatal("no container kept running after Ctrl-C: nothing for down to do")
	}
	nsFiles, _ := filepath.Glob(filepath.Join(runDir, "netns", "*"))
	if len(nsFiles) == 0 {
		t.Fatalf("no network namespace files under %s while pods run", runDir)
	}

	// Stdout and stderr together: what a user sees on the terminal. The
	// lines say what was done; the log (info lines of every pod and of
	// containerd) stays out of it without -v.
	out, err := e.run(bin, "down", "--data-dir", data)
	if err != nil {
		t.Fatalf("capstan down: %v\n%s", err, out)
	}
	t.Logf("capstan down:\n%s", out)
	for _, w := range []string{"✓ pods stopped and removed: ", "✓ bridge removed", "✓ service proxy: nftables table ip capstan removed", "✓ run directory removed", "the data directory " + data + " is kept"} {
		if !strings.Contains(out, w) {
			t.Errorf("down output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "removed: 0 (") || strings.Contains(out, "level=") {
		t.Errorf("down removed no pods, or logged to the terminal:\n%s", out)
	}
	// A second down finds nothing and says so: it used to print "pods
	// stopped and removed: 0" and "run directory removed" (the one the
	// containerd it starts made) every time.
	out, err = e.run(bin, "down", "--data-dir", data)
	if err != nil || strings.Contains(out, "✓") || strings.Contains(out, "level=") || !strings.Contains(out, "nothing left to stop") {
		t.Errorf("second capstan down: %v\n%s", err, out)
	}
	// The logs rotated out of capstan.log go with the rest.
	rotated := filepath.Join(data, "capstan-2026-12-01T10-00-00.000.log")
	if err := os.WriteFile(rotated, []byte("an older log\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = e.run(bin, "down", "--data-dir", data, "--purge")
	if err != nil {
		t.Fatalf("capstan down --purge: %v\n%s", err, out)
	}
	t.Logf("capstan down --purge:\n%s", out)
	if !strings.Contains(out, "✓ data directory "+data+" removed") || strings.Contains(out, "pods stopped") || strings.Contains(out, "level=") {
		t.Errorf("down --purge after down:\n%s", out)
	}
	if left := shims(); len(left) > 0 {
		t.Errorf("processes of the cluster left: %v", left)
	}
	for _, p := range append([]string{runDir, data, rotated}, nsFiles...) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && (strings.Contains(string(b), runDir+"/") || strings.Contains(string(b), data+"/")) {
		t.Errorf("mounts left under %s or %s", runDir, data)
	}
	if out, err := e.run("nft", "list", "table", "ip", "capstan"); err == nil {
		t.Errorf("nftables table ip capstan left:\n%s", out)
	}
	if out, err := e.run("ip", "link", "show", "capstan0"); err == nil {
		t.Errorf("bridge left:\n%s", out)
	}
	if ents, err := os.ReadDir(sharedRunc); err == nil {
		for _, e := range ents {
			if !runcBefore[e.Name()] {
				t.Errorf("runc state left in %s: %s", sharedRunc, e.Name())
			}
		}
	}
	// Idempotent: nothing left, nothing touched.
	if out, err := e.run(bin, "down", "--data-dir", data, "--purge"); err != nil || !strings.Contains(out, "nothing to do: no cluster at "+data) {
		t.Errorf("second capstan down: %v\n%s", err, out)
	}
	if err := exec.Command("test", "-e", data).Run(); err == nil {
		t.Errorf("the second down recreated %s", data)
	}
}

// pidsMentioning lists the processes whose command line contains s.
func pidsMentioning(s string) []string {
	var out []string
	for _, p := range testenv.Processes(s) {
		out = append(out, fmt.Sprintf("%d: %s", p.PID, strings.Join(p.Args, " ")))
	}
	return out
}

// TestDownLeavesAnotherClustersBridge: a second cluster on the same
// network namespace (a `capstan up` that failed because the first one runs,
// say) shares the bridge capstan0, the proxy's table ip capstan and the
// egress table. Its `capstan down` removed them, and the first cluster's
// pods lost their network and services. Now down leaves a bridge that
// still has ports once its own pods are gone (another cluster's pods),
// with the tables, and says so; a bridge nobody uses it still removes.
func TestDownLeavesAnotherClustersBridge(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "ip", "nft", "nsenter", "go")
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "capstan")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	ns := fmt.Sprintf("capstan-down-%d", os.Getpid())
	run := func(args ...string) (string, error) {
		b, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		return string(b), err
	}
	must := func(args ...string) {
		t.Helper()
		if out, err := run(args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("ip", "netns", "del", ns) // a leftover of a killed run
	must("ip", "netns", "add", ns)
	t.Cleanup(func() { run("ip", "netns", "del", ns) }) // takes the bridge and tables with it
	must("ip", "-n", ns, "link", "add", "capstan0", "type", "bridge")
	must("ip", "-n", ns, "addr", "add", "10.88.0.1/24", "dev", "capstan0")
	must("ip", "-n", ns, "link", "set", "capstan0", "up")
	must("ip", "netns", "exec", ns, "nft", "add", "table", "ip", "capstan")
	must("ip", "netns", "exec", ns, "nft", "add", "table", "ip", "capstan-egress")

	// The other cluster's pod: a veth on the bridge.
	must("ip", "-n", ns, "link", "add", "vethother", "type", "veth", "peer", "name", "vethpod")
	must("ip", "-n", ns, "link", "set", "vethother", "master", "capstan0")
	// The second cluster's data directory (its `capstan up` failed).
	data := filepath.Join(tmp, "other")
	if err := os.MkdirAll(filepath.Join(data, "agent"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(agent.RunDirFor(filepath.Join(data, "agent"))) })
	down := func() string {
		t.Helper()
		out, err := run("nsenter", "--net=/run/netns/"+ns, bin, "down", "--data-dir", data)
		if err != nil {
			t.Fatalf("capstan down: %v\n%s", err, out)
		}
		return out
	}
	out := down()
	if !strings.Contains(out, "! bridge capstan0 is not this node's: 1 ports still attached") || !strings.Contains(out, "vethother") {
		t.Errorf("down output does not say the bridge is another cluster's:\n%s", out)
	}
	if strings.Contains(out, "✓ bridge removed") || strings.Contains(out, "nftables table ip capstan removed") {
		t.Errorf("down claims to have removed another cluster's network:\n%s", out)
	}
	for _, args := range [][]string{
		{"ip", "-n", ns, "link", "show", "capstan0"},
		{"ip", "netns", "exec", ns, "nft", "list", "table", "ip", "capstan"},
		{"ip", "netns", "exec", ns, "nft", "list", "table", "ip", "capstan-egress"},
	} {
		if out, err := run(args...); err != nil {
			t.Errorf("another cluster's network removed by down: %v: %v\n%s", args, err, out)
		}
	}

	// Once nothing is attached, the bridge serves nobody: down removes it,
	// with the tables.
	must("ip", "-n", ns, "link", "del", "vethother")
	out = down()
	if !strings.Contains(out, "✓ bridge removed") || !strings.Contains(out, "✓ service proxy: nftables table ip capstan removed") {
		t.Errorf("down of the bridge's own cluster:\n%s", out)
	}
	if out, err := run("ip", "-n", ns, "link", "show", "capstan0"); err == nil {
		t.Errorf("own bridge left:\n%s", out)
	}
	if out, err := run("ip", "netns", "exec", ns, "nft", "list", "table", "ip", "capstan"); err == nil {
		t.Errorf("own proxy table left:\n%s", out)
	}

	// Again: nothing left to remove, and down does not say it removed it.
	out = down()
	for _, claim := range []string{"bridge removed", "nftables table ip capstan removed", "routes to other nodes"} {
		if strings.Contains(out, claim) {
			t.Errorf("second down claims %q though it was gone:\n%s", claim, out)
		}
	}
}
