package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/registry"
	"github.com/spf13/cobra"
)

// startUp runs `capstan up ARGS` in process until the returned stop is
// called; stop returns the command's error.
func startUp(t *testing.T, args ...string) (*testenv.SyncBuffer, <-chan error, context.CancelFunc) {
	t.Helper()
	out := &testenv.SyncBuffer{}
	root := newRootCmd()
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs(append([]string{"up"}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() { done <- root.ExecuteContext(ctx); close(finished) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			t.Error("capstan up did not stop")
		}
	})
	return out, done, cancel
}

func imageTarballs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"hello", "api"} {
		src := t.TempDir()
		if err := os.WriteFile(filepath.Join(src, name), []byte("#!/bin/true\n"+name), 0o755); err != nil {
			t.Fatal(err)
		}
		img, err := registry.PackDir(src, registry.ImageConfig{Entrypoint: []string{"/" + name}})
		if err != nil {
			t.Fatal(err)
		}
		if err := registry.WriteTarball(img, "127.0.0.1:5000/examples/"+name+":v1", filepath.Join(dir, name+".tar")); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func appFrontendReplicas(t *testing.T, cfgPath string) int32 {
	t.Helper()
	cfg, err := client.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := c.Get(context.Background(), api.Key{Kind: api.KindApp, App: "shop", Name: "shop"})
	if err != nil {
		return -1
	}
	for _, w := range obj.(*api.App).Spec.Workloads {
		if w.Name == "frontend" {
			return w.Spec.Replicas
		}
	}
	return -1
}

// TestUpControlPlaneJourney runs `capstan up --no-agent` (no root): the
// demo repository is made and tracked, image tarballs are pushed, the
// progress lines and next steps are printed; a commit to the demo
// repository reaches the cluster; a restart keeps the repository, the
// images and the store.
func TestUpControlPlaneJourney(t *testing.T) {
	dataDir := t.TempDir()
	images := imageTarballs(t)
	args := []string{"--no-agent", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--registry-addr", "127.0.0.1:0", "--images", images}
	out, done, stop := startUp(t, args...)
	waitOutput(t, out, done, "Capstan is up.")
	adminCfg := filepath.Join(dataDir, "admin.yaml")
	demoDir := filepath.Join(dataDir, "demo-repo")
	lines := strings.Split(out.String(), "\n")
	want := []string{
		"✓ data directory " + dataDir,
		"✓ demo repository " + demoDir + " at ",
		"✓ store ready at " + filepath.Join(dataDir, "capstan.db"),
		"✓ API server on https://127.0.0.1:",
		"✓ registry on 127.0.0.1:",
		"✓ images pushed: examples/api:v1, examples/hello:v1",
		"✓ app shop synced at commit ",
	}
	for i, w := range want {
		if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
			t.Fatalf("line %d: want prefix %q; output:\n%s", i, w, out.String())
		}
	}
	for _, w := range []string{"(created from examples/repo)", "export CAPSTAN_CONFIG=" + adminCfg, "capstan rollout status shop -w", "cd " + demoDir} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	if got := appFrontendReplicas(t, adminCfg); got != 3 {
		t.Fatalf("frontend replicas %d, want 3 from the example", got)
	}
	// Item 12 of issue 12: the demo names the registry up runs, not
	// 127.0.0.1:5000; the admin config carries its push credentials.
	regAddr := strings.Fields(strings.TrimPrefix(lines[4], "✓ registry on "))[0]
	committed := gitCmd(t, demoDir, "show", "main:shop.cue")
	if !strings.Contains(committed, `"`+regAddr+`/examples/hello:v1"`) || strings.Contains(committed, "127.0.0.1:5000") {
		t.Errorf("demo shop.cue does not name the registry at %s:\n%s", regAddr, committed)
	}
	if cfg, err := client.LoadConfig(adminCfg); err != nil || !cfg.Registry.Serves(regAddr) || cfg.Registry.Password == "" {
		t.Errorf("admin config lacks the registry's push credentials: %+v, %v", cfg, err)
	}

	// A commit in the demo repository reaches the cluster.
	shop := filepath.Join(demoDir, "shop.cue")
	b, err := os.ReadFile(shop)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "replicas: 3", "replicas: 5", 1)
	if edited == string(b) {
		t.Fatal("example has no 'replicas: 3' to edit")
	}
	if err := os.WriteFile(shop, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, demoDir, "-c", "user.name=U", "-c", "user.email=u@example.com", "commit", "-qam", "scale the frontend")
	head := gitCmd(t, demoDir, "rev-parse", "HEAD")
	deadline := time.Now().Add(30 * time.Second)
	for appFrontendReplicas(t, adminCfg) != 5 {
		if time.Now().After(deadline) {
			t.Fatal("the commit never reached the app")
		}
		<-time.After(20 * time.Millisecond)
	}

	// Ctrl-C stops cleanly.
	stop()
	if err := waitDone(t, done); err != nil {
		t.Fatalf("up after cancel: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "stopped; everything is kept in "+dataDir) {
		t.Errorf("no stop line:\n%s", out.String())
	}
	if left := logLeft(t, dataDir); len(left) > 0 {
		t.Errorf("capstan up stopped and left of its log: %v", left)
	}

	// A restart resumes: same repository, images not pushed again, the
	// app as the last commit left it.
	out, done, _ = startUp(t, args...)
	waitOutput(t, out, done, "Capstan is up.")
	for _, w := range []string{
		"✓ demo repository " + demoDir + " at " + api.ShortCommit(head) + " (kept from the last run)",
		"✓ images already in the registry: examples/api:v1, examples/hello:v1",
		"✓ app shop synced at commit " + api.ShortCommit(head),
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("restart output lacks %q:\n%s", w, out.String())
		}
	}
	if got := appFrontendReplicas(t, adminCfg); got != 5 {
		t.Errorf("after restart frontend replicas %d, want 5", got)
	}
}

func TestUpRootCheck(t *testing.T) {
	if err := needRoot(1000, false); err == nil || !strings.Contains(err.Error(), "needs root") || !strings.Contains(err.Error(), "--no-agent") {
		t.Errorf("non-root with the agent: %v", err)
	}
	if err := needRoot(1000, true); err != nil {
		t.Errorf("non-root with --no-agent: %v", err)
	}
	if err := needRoot(0, false); err != nil {
		t.Errorf("root: %v", err)
	}
}

// `capstan up --help` said "(default: off; repeatable) (default
// [127.0.0.1:5000])" for --registry-addr: the server's "off" does not
// hold for up.
func TestUpHelpRegistryDefault(t *testing.T) {
	out, err := run(t, "up", "--help")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "--registry-addr") {
			line = l
		}
	}
	if !strings.Contains(line, "(default [127.0.0.1:5000])") || strings.Contains(line, "default: off") {
		t.Errorf("--registry-addr help: %q", line)
	}
}

// A second capstan up on a network namespace where one runs failed with
// "listen tcp ...:10250: bind: address already in use (pass --serve-addr)",
// a flag capstan up does not take. The error now says what holds such a
// port and what to do.
func TestUpNodeErrorHint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, busy := net.Listen("tcp", ln.Addr().String())
	if !errors.Is(busy, syscall.EADDRINUSE) {
		t.Fatalf("second listen on %s: %v, want EADDRINUSE", ln.Addr(), busy)
	}
	err = upNodeError(fmt.Errorf("node vm: serve logs and exec: %w", busy))
	for _, w := range []string{"address already in use", "network namespace of its own", "--dns-addr off", "docs/up.md"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("the cause is lost: %v", err)
	}
	other := errors.New("containerd: not found")
	if got := upNodeError(other); got != other {
		t.Errorf("another error changed: %v", got)
	}
	if upNodeError(nil) != nil {
		t.Error("nil became an error")
	}
}

// A pod with a host port on `capstan up`'s node failed with "host ports
// are disabled on this node (start the agent with --host-ports)", and
// capstan up had no such flag: descriptor.md's hostPort could not work on
// the newcomer's cluster. up's --host-ports reaches its agent.
func TestUpHostPorts(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--host-ports"}, true},
	} {
		var f upFlags
		cmd := &cobra.Command{Use: "up"}
		f.register(cmd)
		if err := cmd.Flags().Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		o := f.agentOptions(agent.Options{NodeName: "vm"})
		if o.HostPorts != tc.want || o.NodeName != "vm" {
			t.Errorf("up %v: agent options HostPorts %v NodeName %q, want %v and vm", tc.args, o.HostPorts, o.NodeName, tc.want)
		}
	}
}
