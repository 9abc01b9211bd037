package client_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/internal/etcdtest"
)

// cutOff is a server's etcd store that can be cut off from etcd: its
// reads then fail as etcd's do when no member answers.
type cutOff struct {
	*store.Etcd
	cut atomic.Bool
}

func (c *cutOff) List(ctx context.Context, kind api.Kind, opts store.ListOptions) ([]api.Object, int64, error) {
	if c.cut.Load() {
		return nil, 0, fmt.Errorf("%w: no answer in time: %w", store.ErrUnavailable, context.DeadlineExceeded)
	}
	return c.Etcd.List(ctx, kind, opts)
}

// copyFiles copies the named files of the data directory src into dst,
// readable by their owner only, as an admin does for a second server.
func copyFiles(t *testing.T, dst, src string, names ...string) {
	t.Helper()
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// Two servers on one etcd, and the first is cut off from it: its reads
// answer 503 "store unavailable ... use another API server", which the
// client took as the answer, so a client given both servers kept failing
// on the first. A read now goes on to the next server at once, and later
// requests stay there.
func TestClientMovesOnFromServerWithoutItsStore(t *testing.T) {
	ctx := t.Context()
	cluster, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	open := func() *store.Etcd {
		st, err := store.OpenEtcd(ctx, store.EtcdOptions{Endpoints: cluster.Endpoints()})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	stA := &cutOff{Etcd: open()}
	a := apiservertest.Start(t, apiservertest.Options{Backend: stA})
	dirB := t.TempDir()
	copyFiles(t, dirB, a.DataDir, "pki/ca.crt", "pki/ca.key")
	keys, err := os.ReadDir(filepath.Join(a.DataDir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		copyFiles(t, dirB, a.DataDir, filepath.Join("secrets", k.Name()))
	}
	b := apiservertest.Start(t, apiservertest.Options{DataDir: dirB, Backend: open()})
	if _, err := a.Client.Create(ctx, pod("p0")); err != nil {
		t.Fatal(err)
	}
	cfg := *a.Config
	cfg.Servers = []string{b.URL()}
	c, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}

	stA.cut.Store(true)
	pods, _, err := c.List(ctx, api.KindPod, client.ListOptions{})
	if err != nil || len(pods) != 1 {
		t.Fatalf("list with the first server cut off from etcd: %d pods, %v; want the second server's answer, 1 pod", len(pods), err)
	}
	if c.Server() != b.URL() {
		t.Fatalf("client uses %s, want the second server %s", c.Server(), b.URL())
	}
	if _, err := c.Create(ctx, pod("p1")); err != nil {
		t.Fatalf("a write after the move: %v", err)
	}
}
