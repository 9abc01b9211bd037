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
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "containerd", "runc", "nft", "ip", "nsenter", "curl", "git")
	bin, imgs := buildUpInputs(t)
	ns, hostIP := newUpNetns(t)
	data := filepath.Join(t.TempDir(), "cluster")
	e := &upEnv{t: t, bin: bin, ns: ns, data: data, imgs: imgs, repo: filepath.Join(data, "demo-repo"), hostIP: hostIP}
	t.Cleanup(e.cleanup)
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

	out, err := e.run(bin, "down", "--data-dir", data, "--purge")
	if err != nil {
		t.Fatalf("capstan down --purge: %v\n%s", err, out)
	}
	t.Logf("capstan down --purge:\n%s", out)
	for _, w := range []string{"✓ pods stopped and removed: ", "✓ bridge removed", "✓ service proxy: nftables table ip capstan removed", "✓ data directory " + data + " removed"} {
		if !strings.Contains(out, w) {
			t.Errorf("down output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "removed: 0 (") {
		t.Errorf("down removed no pods:\n%s", out)
	}
	if left := shims(); len(left) > 0 {
		t.Errorf("processes of the cluster left: %v", left)
	}
	for _, p := range append([]string{runDir, data}, nsFiles...) {
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
