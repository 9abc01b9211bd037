package etcdtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/capstanhq/capstan/internal/testenv"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// StartBinary runs one etcd member from the etcd binary on PATH (Debian's
// etcd-server, which `make deps` installs: the version operators run,
// older than the embedded server) on loopback ports, with its data in a
// directory of t's, and returns its client URL. It is killed when t ends.
// flags are added to its command line.
func StartBinary(t testing.TB, flags ...string) string {
	t.Helper()
	bin := testenv.RequireBinaries(t, "etcd")[0]
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	client, peer := "http://"+ports[0], "http://"+ports[1]
	dir := t.TempDir()
	cmd := exec.Command(bin, append([]string{
		"--name", "binary", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "binary=" + peer, "--log-level", "error", "--logger", "zap",
	}, flags...)...)
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	testenv.Eventually(t, 30*time.Second, "etcd ("+bin+") to answer on "+client, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Get(ctx, "health")
		return err == nil
	})
	return client
}
