package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/controlplane/leader"
	"github.com/capstanhq/capstan/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// haCluster is three `capstan server` processes (this test binary run as
// capstan) on a three-member etcd, sharing the first one's CA.
type haCluster struct {
	t       testing.TB
	etcd    *etcdtest.Cluster
	cli     *clientv3.Client
	ttl     time.Duration
	dirs    []string
	addrs   []string
	mu      sync.Mutex
	procs   []*exec.Cmd
	elector *leader.Elector
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startHACluster(t testing.TB, ttl time.Duration) *haCluster {
	t.Helper()
	etcd, err := etcdtest.Start(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Close)
	cli, err := etcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	el, err := leader.New(leader.Options{Client: cli, Prefix: "/capstan/leader"})
	if err != nil {
		t.Fatal(err)
	}
	h := &haCluster{t: t, etcd: etcd, cli: cli, ttl: ttl, procs: make([]*exec.Cmd, 3), elector: el}
	t.Cleanup(h.killAll)
	for i := range 3 {
		h.dirs = append(h.dirs, filepath.Join(t.TempDir(), fmt.Sprintf("server-%d", i)))
		h.addrs = append(h.addrs, freeAddr(t))
	}
	h.start(0)
	waitUntil(t, "server 0's CA", func() bool {
		_, err := os.Stat(filepath.Join(h.dirs[0], "admin.yaml"))
		return err == nil
	})
	for i := 1; i < 3; i++ {
		for _, f := range []string{"ca.crt", "ca.key"} {
			b, err := os.ReadFile(filepath.Join(h.dirs[0], "pki", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(h.dirs[i], "pki"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(h.dirs[i], "pki", f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		h.start(i)
	}
	return h
}

// start runs server i.
func (h *haCluster) start(i int) {
	cmd := exec.Command(os.Args[0], "server", "--store", "etcd", "--etcd-endpoints", strings.Join(h.etcd.Endpoints(), ","),
		"--data-dir", h.dirs[i], "--listen", h.addrs[i], "--leader-lease-ttl", h.ttl.String(), "--leader-id", fmt.Sprintf("server-%d", i))
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	h.procs[i] = cmd
	h.mu.Unlock()
}

// kill SIGKILLs server i.
func (h *haCluster) kill(i int) {
	h.mu.Lock()
	cmd := h.procs[i]
	h.procs[i] = nil
	h.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
}

func (h *haCluster) killAll() {
	for i := range h.procs {
		h.kill(i)
	}
}

// leader returns the index of the leading server, -1 when none leads.
func (h *haCluster) leader(ctx context.Context) int {
	id, err := h.elector.Leader(ctx)
	if err != nil || !strings.HasPrefix(id, "server-") {
		return -1
	}
	var i int
	fmt.Sscanf(id, "server-%d", &i)
	return i
}

// BenchmarkLeaderFailover measures the time from the leading server's
// SIGKILL to another server leading, with the default lease TTL; the
// killed server is started again between runs. It reports p50 and max.
func BenchmarkLeaderFailover(b *testing.B) {
	ctx := b.Context()
	h := startHACluster(b, leader.DefaultTTL)
	waitUntil(b, "a leader", func() bool { return h.leader(ctx) >= 0 })
	var times []time.Duration
	for b.Loop() {
		first := h.leader(ctx)
		h.kill(first)
		killed := time.Now()
		waitUntil(b, "a new leader", func() bool { i := h.leader(ctx); return i >= 0 && i != first })
		times = append(times, time.Since(killed))
		h.start(first)
	}
	slices.Sort(times)
	b.ReportMetric(times[len(times)/2].Seconds(), "p50-s")
	b.ReportMetric(times[len(times)-1].Seconds(), "max-s")
}
