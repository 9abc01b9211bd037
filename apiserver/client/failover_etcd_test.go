package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/etcdtest"
	"github.com/capstanhq/capstan/internal/testenv"
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

// twoServersOnEtcd starts a one-member etcd cluster and two API servers
// on it (a's store is wrapA's answer), and returns them with a client
// given both, a first.
func twoServersOnEtcd(t *testing.T, wrapA func(*store.Etcd) store.Backend) (a, b *apiservertest.Cluster, c *client.Client, cluster *etcdtest.Cluster) {
	t.Helper()
	cluster, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	open := func() *store.Etcd {
		st, err := store.OpenEtcd(t.Context(), store.EtcdOptions{Endpoints: cluster.Endpoints()})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a = apiservertest.Start(t, apiservertest.Options{Backend: wrapA(open())})
	dirB := t.TempDir()
	copyFiles(t, dirB, a.DataDir, "pki/ca.crt", "pki/ca.key")
	keys, err := os.ReadDir(filepath.Join(a.DataDir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		copyFiles(t, dirB, a.DataDir, filepath.Join("secrets", k.Name()))
	}
	b = apiservertest.Start(t, apiservertest.Options{DataDir: dirB, Backend: open()})
	cfg := *a.Config
	cfg.Servers = []string{b.URL()}
	if c, err = client.New(&cfg); err != nil {
		t.Fatal(err)
	}
	return a, b, c, cluster
}

// With etcd down, a read on a client given several API servers waited
// 10 s (the store's request timeout) on each before "store unavailable",
// half a minute with three servers, even though each server knew (its
// /readyz said so), and the error did not say what to check. A server
// that knows etcd is out of reach now answers 503 StoreUnavailable at
// once (within 2 s at most), and the client's error names what to check.
// The read runs under a deadline short of the old 10 s: it must end with
// the servers' answer before it.
func TestClientFailsFastWhenNoServerReachesEtcd(t *testing.T) {
	a, b, c, cluster := twoServersOnEtcd(t, func(st *store.Etcd) store.Backend { return st })
	if _, err := c.Create(t.Context(), pod("p0")); err != nil {
		t.Fatal(err)
	}
	cluster.Members[0].Stop()
	for _, s := range []*apiservertest.Cluster{a, b} {
		testenv.Eventually(t, 30*time.Second, "/readyz of "+s.URL()+" failing with etcd down", func() bool {
			return s.Client.Do(t.Context(), http.MethodGet, "/readyz", nil, nil) != nil
		})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
	defer cancel()
	_, _, err := c.List(ctx, api.KindPod, client.ListOptions{})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Reason != wire.ReasonStoreUnavailable || ctx.Err() != nil {
		t.Fatalf("list with etcd down: %v (deadline passed: %v); want 503 StoreUnavailable from the servers before the 8 s deadline", err, ctx.Err())
	}
	for _, want := range []string{"none of the 2 API servers answered", "etcd members are up and hold a quorum", "--etcd-endpoints"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error with etcd down says %q; want it to say %q", err, want)
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
	stA := &cutOff{}
	a, b, c, _ := twoServersOnEtcd(t, func(st *store.Etcd) store.Backend { stA.Etcd = st; return stA })
	if _, err := a.Client.Create(ctx, pod("p0")); err != nil {
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
