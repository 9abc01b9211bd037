package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/registry"
)

// Fixed names: sweep finds a crashed run's leftovers by them.
const (
	// Base holds every file of a Cluster: binary, logs, server and agent
	// data, containerd, registry. Short, for containerd's socket paths.
	Base         = "/var/lib/capstan-e2e"
	nsPrefix     = "cse2e-"
	switchNS     = nsPrefix + "sw"
	serverNS     = nsPrefix + "srv"
	rootVeth     = "cse2e0"
	cgroupParent = "/capstan-e2e"
	// subnet is the hosts' network: .1 the root namespace, .2 the server,
	// .10 and up the agent hosts.
	subnet     = "10.99.240."
	serverPort = "7443"
	// registryUser is the registry's basic-auth user: a registry off
	// loopback must have one.
	registryUser, registryPassword = "e2e", "e2e-password"
)

// BinaryEnv names an environment variable: when set, the tests use that
// capstan binary instead of building ./cmd/capstan.
const BinaryEnv = "CAPSTAN_E2E_BINARY"

// Options size a Cluster.
type Options struct {
	// Hosts is the number of agent hosts. Default 3.
	Hosts int
	// GracePeriod and EvictionTimeout are the server's node controller
	// flags. Default 20 s and 40 s (the server's defaults).
	GracePeriod, EvictionTimeout time.Duration
	// ClusterRegistry serves the images from the server's own registry
	// and has the agents join with join tokens (see registry.go). Default:
	// a registry in the root namespace, agents with node tokens.
	ClusterRegistry bool
	// ServerArgs are more flags for `capstan server` (e.g. --repo).
	ServerArgs []string
}

// Cluster is a running server with agents on network-namespace hosts.
type Cluster struct {
	t    testing.TB
	opts Options
	// Bin is the capstan binary built for the test.
	Bin string
	// Admin talks to the API with the admin's credentials (from the root
	// namespace, over the bridge).
	Admin       *client.Client
	AdminConfig *client.Config
	// Registry is the registry's HOST:PORT and Image the echo image in it.
	Registry, Image string
	Hosts           []*Host

	server *process
	ctrd   string // containerd socket
}

// Host is one agent host: a network namespace with its agent.
type Host struct {
	Name, NS, Address string
	// Dir holds the agent's data and run directories and its config.
	Dir string
	c   *Cluster
	// agent is the running agent process, nil when stopped.
	agent *process
	// joinToken joins the agent under Options.ClusterRegistry.
	joinToken string
}

// process is a child started in a network namespace.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// New builds the binary and the images, sweeps what an earlier run left,
// makes the network and starts the server and the agents; it returns once
// every node is Ready. Everything is removed when the test ends.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "containerd", "containerd-shim-runc-v2", "runc", "ip", "nsenter", "nft", "go")
	if opts.Hosts == 0 {
		opts.Hosts = 3
	}
	if opts.GracePeriod == 0 {
		opts.GracePeriod = 20 * time.Second
	}
	if opts.EvictionTimeout == 0 {
		opts.EvictionTimeout = 40 * time.Second
	}
	if err := sweep(); err != nil {
		t.Fatalf("e2e: sweep a previous run's leftovers: %v", err)
	}
	c := &Cluster{t: t, opts: opts}
	t.Cleanup(c.cleanup)
	for _, d := range []string{"logs", "bin"} {
		if err := os.MkdirAll(filepath.Join(Base, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	c.Bin = filepath.Join(Base, "bin", "capstan")
	if bin := os.Getenv(BinaryEnv); bin != "" {
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatalf("e2e: $%s: %v", BinaryEnv, err)
		}
		if err := os.WriteFile(c.Bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		c.goBuild("./cmd/capstan", c.Bin, false)
	}
	c.network()
	if !opts.ClusterRegistry {
		c.startRegistry()
	}
	c.startContainerd()
	c.startServer()
	if opts.ClusterRegistry {
		c.pushToClusterRegistry()
	}
	for i := range opts.Hosts {
		h := &Host{Name: fmt.Sprintf("h%d", i), NS: fmt.Sprintf("%sh%d", nsPrefix, i), Address: fmt.Sprintf("%s%d", subnet, 10+i), c: c}
		h.Dir = filepath.Join(Base, h.Name)
		c.Hosts = append(c.Hosts, h)
		c.addHost(h.NS, fmt.Sprintf("h%d", i), h.Address)
		h.writeConfig()
		h.Start()
	}
	for _, h := range c.Hosts {
		h.WaitReady()
	}
	return c
}

// moduleRoot is the directory of go.mod.
func moduleRoot(t testing.TB) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("e2e: find the module root: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// goBuild builds pkg (relative to the module root) into out; static for
// an image.
func (c *Cluster) goBuild(pkg, out string, static bool) {
	c.t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = moduleRoot(c.t)
	cmd.Env = os.Environ()
	if static {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("e2e: go build %s: %v\n%s", pkg, err, b)
	}
}

func (c *Cluster) run(args ...string) string {
	c.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("e2e: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// network makes the switch namespace with its bridge, the root
// namespace's port on it (10.99.240.1) and the server's host.
func (c *Cluster) network() {
	c.run("ip", "netns", "add", switchNS)
	c.run("ip", "-n", switchNS, "link", "add", "br0", "type", "bridge")
	c.run("ip", "-n", switchNS, "link", "set", "br0", "up")
	c.run("ip", "link", "add", rootVeth, "type", "veth", "peer", "name", "root", "netns", switchNS)
	c.run("ip", "-n", switchNS, "link", "set", "root", "master", "br0", "up")
	c.run("ip", "addr", "add", subnet+"1/24", "dev", rootVeth)
	c.run("ip", "link", "set", rootVeth, "up")
	c.addHost(serverNS, "srv", subnet+"2")
}

// addHost makes namespace ns with eth0 (address addr/24) plugged into the
// switch as port.
func (c *Cluster) addHost(ns, port, addr string) {
	c.run("ip", "netns", "add", ns)
	c.run("ip", "-n", switchNS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	c.run("ip", "-n", switchNS, "link", "set", port, "master", "br0", "up")
	c.run("ip", "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	c.run("ip", "-n", ns, "link", "set", "eth0", "up")
	c.run("ip", "-n", ns, "link", "set", "lo", "up")
	c.run("ip", "-n", ns, "route", "add", "default", "via", subnet+"1")
	c.run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
}

// startRegistry serves the test images on the root namespace's bridge
// address, with basic auth (required off loopback), and pushes the echo
// image.
func (c *Cluster) startRegistry() {
	c.t.Helper()
	reg, err := registry.New(registry.Options{
		Addr: subnet + "1:0", RootDir: filepath.Join(Base, "registry"),
		Users:  map[string]string{registryUser: registryPassword},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		c.t.Fatalf("e2e: registry: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Start(ctx) }()
	c.t.Cleanup(func() { cancel(); <-done })
	select {
	case <-reg.Ready():
	case err := <-done:
		done <- err
		c.t.Fatalf("e2e: registry did not start: %v", err)
	}
	c.Registry = reg.Addr()
	root := filepath.Join(Base, "images", "echo")
	if err := os.MkdirAll(root, 0o755); err != nil {
		c.t.Fatal(err)
	}
	c.goBuild("./test/e2e/testdata/echo", filepath.Join(root, "echo"), true)
	img, err := registry.PackDir(root, registry.ImageConfig{Entrypoint: []string{"/echo"}})
	if err != nil {
		c.t.Fatalf("e2e: pack the echo image: %v", err)
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer pcancel()
	c.Image = c.Registry + "/e2e/echo:v1"
	if _, err := registry.Push(pctx, img, c.Image, registry.RemoteOptions{Insecure: true, Username: registryUser, Password: registryPassword}); err != nil {
		c.t.Fatalf("e2e: push %s: %v", c.Image, err)
	}
}

// startContainerd runs the one containerd all agents share, in the root
// namespace (a unix socket reaches it from every network namespace).
func (c *Cluster) startContainerd() {
	c.t.Helper()
	proc, err := runtime.NewProcess(runtime.ProcessOptions{Dir: filepath.Join(Base, "ctrd"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		c.t.Fatalf("e2e: containerd: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Start(ctx) }()
	// Registered after cleanup's, so it runs first: containerd stops
	// before the sweep, once the agents are gone.
	c.t.Cleanup(func() { c.stopAgents(); cancel(); <-done })
	select {
	case <-proc.Ready():
	case err := <-done:
		done <- err
		c.t.Fatalf("e2e: containerd did not start: %v", err)
	case <-time.After(time.Minute):
		c.t.Fatal("e2e: containerd not ready within a minute")
	}
	c.ctrd = proc.Address()
}

// start runs the binary with args in network namespace ns, logging to logs/name.log.
func (c *Cluster) start(name, ns string, args ...string) *process {
	c.t.Helper()
	logPath := filepath.Join(Base, "logs", name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	// nsenter switches the network namespace only: ip netns exec would also
	// give the child a private mount namespace, hiding the pods' namespace
	// files from containerd and runc.
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns, "--", c.Bin}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("e2e: start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p
}

// stop sends sig and waits up to a minute, then SIGKILLs.
func (p *process) stop(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (c *Cluster) startServer() {
	c.t.Helper()
	dir := filepath.Join(Base, "server")
	args := []string{"server", "--data-dir", dir, "--listen", subnet + "2:" + serverPort,
		"--node-grace-period", c.opts.GracePeriod.String(), "--pod-eviction-timeout", c.opts.EvictionTimeout.String()}
	args = append(args, c.opts.ServerArgs...)
	c.server = c.start("server", serverNS, append(args, c.registryServerArgs()...)...)
	admin := filepath.Join(dir, "admin.yaml")
	c.waitFor("the server's admin config", time.Minute, func() bool {
		c.checkAlive(c.server)
		cfg, err := client.LoadConfig(admin)
		if err != nil {
			return false
		}
		c.AdminConfig = cfg
		return true
	})
	var err error
	if c.Admin, err = client.New(c.AdminConfig); err != nil {
		c.t.Fatalf("e2e: admin client: %v", err)
	}
	c.waitFor("the server to be ready", time.Minute, func() bool {
		c.checkAlive(c.server)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.Admin.Do(ctx, http.MethodGet, "/readyz", nil, nil) == nil
	})
}

// checkAlive fails the test when p has exited.
func (c *Cluster) checkAlive(p *process) {
	c.t.Helper()
	select {
	case <-p.done:
		c.t.Fatalf("e2e: %s exited: %v\n%s", p.name, p.err, tail(p.log, 40))
	default:
	}
}

// NodeToken makes a token for role node:name through the API.
func (c *Cluster) NodeToken(name string) string {
	c.t.Helper()
	var out wire.CreateTokenResponse
	if err := c.Admin.Do(context.Background(), http.MethodPost, "/tokens",
		wire.CreateTokenRequest{Role: apiserver.RoleNodePrefix + name, Description: "e2e " + name}, &out); err != nil {
		c.t.Fatalf("e2e: node token for %s: %v", name, err)
	}
	return out.Token
}

// writeConfig writes the agent's client config (node credentials) and a
// docker config with the registry's credentials.
func (h *Host) writeConfig() {
	t := h.c.t
	t.Helper()
	if h.c.opts.ClusterRegistry {
		h.writeJoinToken()
		return
	}
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := *h.c.AdminConfig
	cfg.Token = h.c.NodeToken(h.Name)
	if err := client.SaveConfig(filepath.Join(h.Dir, "config.yaml"), &cfg); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(registryUser + ":" + registryPassword))
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{h.c.Registry: map[string]string{"auth": auth}}})
	if err := os.WriteFile(filepath.Join(h.Dir, "docker.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Start runs the host's agent. It runs, besides the pods, the routes to
// the other hosts' pod CIDRs, the service proxy and the cluster DNS on the
// host's address (the agent's defaults).
func (h *Host) Start() {
	h.c.t.Helper()
	if h.c.opts.ClusterRegistry {
		h.agent = h.c.start("agent-"+h.Name, h.NS, h.joinArgs()...)
		return
	}
	h.agent = h.c.start("agent-"+h.Name, h.NS, "agent",
		"--config", filepath.Join(h.Dir, "config.yaml"),
		"--node-name", h.Name, "--address", h.Address,
		"--data-dir", filepath.Join(h.Dir, "data"), "--run-dir", filepath.Join(h.Dir, "run"),
		"--containerd-address", h.c.ctrd, "--containerd-namespace", nsPrefix+h.Name,
		"--cgroup-parent", cgroupParent+"/"+h.Name,
		"--insecure-registry", h.c.Registry, "--docker-config", filepath.Join(h.Dir, "docker.json"))
}

// Kill SIGKILLs the host's agent, as a crash would; its containers keep
// running.
func (h *Host) Kill() {
	if h.agent != nil {
		h.agent.stop(syscall.SIGKILL)
		h.agent = nil
	}
}

// CutLink takes the host off the switch.
func (h *Host) CutLink() { h.c.run("ip", "-n", switchNS, "link", "set", h.Name, "down") }

// RestoreLink puts the host back on the switch.
func (h *Host) RestoreLink() { h.c.run("ip", "-n", switchNS, "link", "set", h.Name, "up") }

// WaitReady waits until the host's Node is Ready with a fresh transition.
func (h *Host) WaitReady() {
	h.c.t.Helper()
	last := "no node"
	defer func() {
		if h.c.t.Failed() {
			h.c.t.Logf("node %s at the end: %s", h.Name, last)
		}
	}()
	h.c.waitFor("node "+h.Name+" to be Ready", 2*time.Minute, func() bool {
		if h.agent != nil {
			h.c.checkAlive(h.agent)
		}
		n, ok := h.c.Node(h.Name)
		if !ok {
			return false
		}
		cond := api.FindCondition(n.Status.Conditions, api.NodeReady)
		if cond != nil {
			last = fmt.Sprintf("Ready=%s %s: %s (since %s)", cond.Status, cond.Reason, cond.Message, cond.LastTransitionTime.Format(time.RFC3339Nano))
		}
		return cond != nil && cond.Status == api.ConditionTrue
	})
}

// Node reads a Node through the admin client.
func (c *Cluster) Node(name string) (*api.Node, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o, err := c.Admin.Get(ctx, api.Key{Kind: api.KindNode, Name: name})
	if err != nil {
		return nil, false
	}
	return o.(*api.Node), true
}

// stopAgents stops every running agent gracefully (they leave their
// containers; the sweep removes those).
func (c *Cluster) stopAgents() {
	for _, h := range c.Hosts {
		if h.agent != nil {
			h.agent.stop(syscall.SIGTERM)
			h.agent = nil
		}
	}
}

// cleanup stops the processes and sweeps; on failure it shows the logs.
func (c *Cluster) cleanup() {
	if c.t.Failed() {
		if ents, err := os.ReadDir(filepath.Join(Base, "logs")); err == nil {
			for _, e := range ents {
				c.t.Logf("--- %s (last lines)\n%s", e.Name(), tail(filepath.Join(Base, "logs", e.Name()), 60))
			}
		}
	}
	c.stopAgents()
	if c.server != nil {
		c.server.stop(syscall.SIGTERM)
	}
	if err := sweep(); err != nil {
		c.t.Errorf("e2e: cleanup: %v", err)
	}
	if mps, _ := mountsUnder(Base); len(mps) > 0 {
		c.t.Errorf("e2e: cleanup left mounts: %v", mps)
	}
}

// waitFor polls cond every 50 ms until it holds, failing the test after
// timeout.
func (c *Cluster) waitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("e2e: timed out after %s waiting for %s", timeout, what)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CLI runs the capstan binary in the root namespace with the given client
// config and returns its combined output and error.
func (c *Cluster) CLI(config string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.Bin, append([]string{"--config", config}, args...)...).CombinedOutput()
	return string(out), err
}

// AdminConfigPath is the server's admin client config.
func (c *Cluster) AdminConfigPath() string { return filepath.Join(Base, "server", "admin.yaml") }

// ConfigPath is the host's agent client config (node credentials).
func (h *Host) ConfigPath() string { return filepath.Join(h.Dir, "config.yaml") }

// JoinAgent runs `capstan agent --server URL --token token` on host h as
// node, with a data directory of its own, and returns its output and exit
// error once it exits (or after a minute, killed). Meant for tokens that
// must be refused: a refused agent exits at once.
func (c *Cluster) JoinAgent(h *Host, token, node string) (string, error) {
	dir := filepath.Join(Base, "join-"+node)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/"+h.NS, "--", c.Bin, "agent",
		"--server", c.AdminConfig.Server, "--token", token, "--node-name", node, "--address", h.Address,
		"--data-dir", filepath.Join(dir, "data"), "--run-dir", filepath.Join(dir, "run"),
		"--containerd-address", c.ctrd, "--containerd-namespace", nsPrefix+node,
		"--cgroup-parent", cgroupParent+"/"+node)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
