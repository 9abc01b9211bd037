package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdAnchor is an etcd server started for a benchmark, with a client.
type etcdAnchor struct {
	Client  *clientv3.Client
	Version string
}

// startEtcd runs Debian's etcd (etcd-server) on loopback ports with its
// data in a temporary directory, fsync on (etcd's default), plaintext,
// history compacted every minute. It
// returns nil, after logging that the anchor is skipped, when etcd is not
// installed.
func startEtcd(b *testing.B) *etcdAnchor {
	b.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		b.Logf("anchor etcd: skipped (not installed: apt-get install etcd-server, or make deps)")
		return nil
	}
	out, _ := exec.Command(bin, "--version").Output()
	var version string
	fmt.Sscanf(string(out), "etcd Version: %s", &version)
	client, peer := freePort(b), freePort(b)
	dir := b.TempDir()
	cmd := exec.Command(bin,
		"--name", "anchor", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "anchor=http://"+peer, "--log-level", "error", "--logger", "zap",
		"--quota-backend-bytes", fmt.Sprint(int64(8)<<30),
		// Compacts its history every minute, as Capstan's store does.
		"--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1m")
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatalf("anchor etcd: start %s: %v", bin, err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatalf("anchor etcd: client: %v", err)
	}
	b.Cleanup(func() { c.Close() })
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "health")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("anchor etcd: not serving after 30 s: %v\n%s", err, log)
		}
		<-tick.C
	}
	b.Logf("anchor etcd %s on %s (plaintext gRPC, fsync on)", version, client)
	return &etcdAnchor{Client: c, Version: version}
}

func freePort(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
