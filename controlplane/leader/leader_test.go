package leader

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/internal/etcdtest"
	"github.com/capstanhq/capstan/internal/testenv"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func etcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	cluster, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cli, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func elector(t *testing.T, cli *clientv3.Client, id string) *Elector {
	t.Helper()
	e, err := New(Options{Client: cli, Prefix: "/capstan/leader", TTL: 2 * time.Second, ID: id})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, what, cond)
}

// One server leads at a time; when it resigns, or its lease is lost (it
// was paused past its TTL), the next one leads with a term of its own.
func TestElection(t *testing.T) {
	ctx := t.Context()
	cli := etcdClient(t)
	a, b, c := elector(t, cli, "a"), elector(t, cli, "b"), elector(t, cli, "c")
	ta, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		t   *Term
		err error
	}
	bDone, cDone := make(chan result, 1), make(chan result, 1)
	go func() { t, err := b.Campaign(ctx); bDone <- result{t, err} }()
	// b's key is in the election before c's: b is next.
	waitFor(t, "b campaigning", func() bool {
		resp, err := cli.Get(ctx, "/capstan/leader/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 2
	})
	go func() { t, err := c.Campaign(ctx); cDone <- result{t, err} }()
	if id, err := a.Leader(ctx); err != nil || id != "a" {
		t.Fatalf("leader = %q, %v; want a", id, err)
	}
	select {
	case r := <-bDone:
		t.Fatalf("b leads while a does: %+v", r)
	default:
	}

	if err := ta.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	<-ta.Done()
	rb := <-bDone
	if rb.err != nil {
		t.Fatal(rb.err)
	}
	if rb.t.Rev <= ta.Rev || rb.t.Key == ta.Key || rb.t.Header() == ta.Header() {
		t.Fatalf("b's term %s@%d does not follow a's %s@%d", rb.t.Key, rb.t.Rev, ta.Key, ta.Rev)
	}
	if id, _ := a.Leader(ctx); id != "b" {
		t.Fatalf("leader = %q, want b", id)
	}

	// b is paused past its lease: etcd lets the lease go (here: revoked
	// from outside, as its expiry would), b's term ends, c leads.
	if _, err := cli.Revoke(ctx, rb.t.sess.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rb.t.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("b's term did not end with its lease")
	}
	rc := <-cDone
	if rc.err != nil {
		t.Fatal(rc.err)
	}
	if id, _ := a.Leader(ctx); id != "c" {
		t.Fatalf("leader = %q, want c", id)
	}
	rc.t.Resign(ctx)
}

// A campaign ends with its context.
func TestCampaignCancelled(t *testing.T) {
	cli := etcdClient(t)
	ta, err := elector(t, cli, "a").Campaign(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Resign(context.Background())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := elector(t, cli, "b").Campaign(ctx); done <- err }()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled campaign won")
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no client", Options{Prefix: "/p"}, "etcd client"},
		{"no prefix", Options{Client: &clientv3.Client{}}, "prefix"},
		{"short TTL", Options{Client: &clientv3.Client{}, Prefix: "/p", TTL: time.Second}, "at least 2s"},
		{"fractional TTL", Options{Client: &clientv3.Client{}, Prefix: "/p", TTL: 2500 * time.Millisecond}, "whole seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
		})
	}
}

// A server waiting for its turn whose lease expires meanwhile (cut off
// from etcd, or paused, for longer than the TTL) campaigns again with a
// new lease: etcd's campaign went on waiting without its key and, once the
// leader before it went, won a term that had ended before it began; the
// server's controllers started and it exited as having lost the
// leadership (seen after a total etcd outage: the follower led for 5 ms).
func TestCampaignAgainAfterLeaseExpiredWhileWaiting(t *testing.T) {
	ctx := t.Context()
	cli := etcdClient(t)
	ta, err := elector(t, cli, "a").Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		t   *Term
		err error
	}
	bDone := make(chan result, 1)
	go func() { t, err := elector(t, cli, "b").Campaign(ctx); bDone <- result{t, err} }()
	var bKey *mvccpb.KeyValue
	waitFor(t, "b campaigning", func() bool {
		resp, err := cli.Get(ctx, "/capstan/leader/", clientv3.WithPrefix())
		if err != nil {
			return false
		}
		for _, kv := range resp.Kvs {
			if string(kv.Value) == "b" {
				bKey = kv
			}
		}
		return bKey != nil
	})
	// b's lease goes (here: revoked from outside, as its expiry would),
	// then a resigns.
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(bKey.Lease)); err != nil {
		t.Fatal(err)
	}
	if err := ta.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	var rb result
	select {
	case rb = <-bDone:
	case <-time.After(30 * time.Second):
		t.Fatal("b does not lead after a resigned")
	}
	if rb.err != nil {
		t.Fatal(rb.err)
	}
	defer rb.t.Resign(context.Background())
	resp, err := cli.Get(ctx, rb.t.Key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != rb.t.Rev {
		t.Fatalf("b leads with key %s@%d, which etcd does not hold (%v): a term that ended before it began", rb.t.Key, rb.t.Rev, resp.Kvs)
	}
	if rb.t.Key == string(bKey.Key) {
		t.Fatalf("b leads with the key of its expired lease, %s", rb.t.Key)
	}
	select {
	case <-rb.t.Done():
		t.Fatal("b's term ended as it began")
	default:
	}
	if id, err := elector(t, cli, "c").Leader(ctx); err != nil || id != "b" {
		t.Fatalf("leader = %q, %v; want b", id, err)
	}
}
