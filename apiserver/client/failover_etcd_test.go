package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	a, b, c = twoServers(t, cluster, store.EtcdOptions{Endpoints: cluster.Endpoints()}, wrapA)
	return a, b, c, cluster
}

// twoServers starts two API servers on cluster, a's store opened with
// optsA and wrapped by wrapA, b's on every member, and returns them with
// a client given both, a first.
func twoServers(t *testing.T, cluster *etcdtest.Cluster, optsA store.EtcdOptions, wrapA func(*store.Etcd) store.Backend) (a, b *apiservertest.Cluster, c *client.Client) {
	t.Helper()
	open := func(opts store.EtcdOptions) *store.Etcd {
		st, err := store.OpenEtcd(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a = apiservertest.Start(t, apiservertest.Options{Backend: wrapA(open(optsA))})
	dirB := t.TempDir()
	copyFiles(t, dirB, a.DataDir, "pki/ca.crt", "pki/ca.key")
	keys, err := os.ReadDir(filepath.Join(a.DataDir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		copyFiles(t, dirB, a.DataDir, filepath.Join("secrets", k.Name()))
	}
	b = apiservertest.Start(t, apiservertest.Options{DataDir: dirB, Backend: open(store.EtcdOptions{Endpoints: cluster.Endpoints()})})
	return a, b, bothServers(t, a, b)
}

// bothServers returns a new client given a and b, a first.
func bothServers(t *testing.T, a, b *apiservertest.Cluster) *client.Client {
	t.Helper()
	cfg := *a.Config
	cfg.Servers = []string{b.URL()}
	c, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
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

// freezeOnCreate is a server's etcd store that freezes the way to member
// (a black hole) once a create of the pod named ambiguous has read what
// it needs, before its commit is sent: etcd then gives the commit no
// answer, as when a network fails under a write.
type freezeOnCreate struct {
	*store.Etcd
	member *etcdtest.Member
}

func (f *freezeOnCreate) SetHooks(h store.Hooks) {
	f.Etcd.SetHooks(&freezeHooks{Hooks: h, member: f.member})
}

type freezeHooks struct {
	store.Hooks
	member *etcdtest.Member
}

func (h *freezeHooks) BeforeCreate(tx store.Allocations, obj api.Object) error {
	if obj.Meta().Name == "ambiguous" {
		h.member.Freeze()
	}
	return h.Hooks.BeforeCreate(tx, obj)
}

func (h *freezeHooks) NodeOf(obj api.Object) string {
	if ni, ok := h.Hooks.(store.NodeIndex); ok {
		return ni.NodeOf(obj)
	}
	return ""
}

// Two servers on one etcd, and the first cut off from it: a write to it
// failed 503 StoreUnavailable saying it was not sent, and a client given
// both servers returned that error instead of sending the write to the
// second, as it does a read (capstan apply and the agents' status writes
// failed though the second server could take them). The server now says
// in its answer that the write was not applied, and the client sends such
// a write, and only such, to the next server at once: a create, an update
// and a status update land on the second server. A write whose outcome is
// unknown (etcd gave its commit no answer) is still not sent twice.
func TestClientSendsWriteNotAppliedToNextServer(t *testing.T) {
	ctx := t.Context()
	cluster, err := etcdtest.Start(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cut := cluster.Members[0]
	var healed sync.Once
	heal := func() { healed.Do(cut.Heal) }
	t.Cleanup(heal)
	// a reaches etcd only through member 0, b through the other two,
	// which keep the quorum.
	optsA := store.EtcdOptions{Endpoints: cluster.Endpoints()[:1], RequestTimeout: 3 * time.Second}
	stA := &freezeOnCreate{member: cut}
	a, b, _ := twoServers(t, cluster, optsA, func(st *store.Etcd) store.Backend { stA.Etcd = st; return stA })
	if _, err := a.Client.Create(ctx, pod("p0")); err != nil {
		t.Fatal(err)
	}

	cut.Partition()
	testenv.Eventually(t, 60*time.Second, "the first server to answer a write 'not applied'", func() bool {
		_, err := a.Client.Create(ctx, pod("probe"))
		var se *client.StatusError
		return errors.As(err, &se) && se.Reason == wire.ReasonStoreUnavailable && se.NotApplied
	})
	landsOnB := func(what string, write func(c *client.Client) (api.Object, error)) api.Object {
		t.Helper()
		c := bothServers(t, a, b)
		out, err := write(c)
		if err != nil {
			t.Fatalf("%s with the first server cut off from etcd: %v; want the second server to take it", what, err)
		}
		if c.Server() != b.URL() {
			t.Fatalf("%s: the client uses %s, want the second server %s", what, c.Server(), b.URL())
		}
		return out
	}
	landsOnB("a create", func(c *client.Client) (api.Object, error) { return c.Create(ctx, pod("p1")) })
	cur, err := b.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "p0"})
	if err != nil {
		t.Fatal(err)
	}
	p := cur.(*api.Pod)
	p.Metadata.Labels = map[string]string{"tier": "web"}
	p = landsOnB("an update", func(c *client.Client) (api.Object, error) { return c.Update(ctx, p) }).(*api.Pod)
	p.Status.Phase = api.PodRunning
	landsOnB("a status update", func(c *client.Client) (api.Object, error) { return c.UpdateStatus(ctx, p) })
	got, err := b.Client.Get(ctx, api.KeyOf(p))
	if err != nil {
		t.Fatal(err)
	}
	if gp := got.(*api.Pod); gp.Metadata.Labels["tier"] != "web" || gp.Status.Phase != api.PodRunning {
		t.Fatalf("p0 after the update and the status update: labels %v, phase %q; want tier=web, %s", gp.Metadata.Labels, gp.Status.Phase, api.PodRunning)
	}
	if _, err := b.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "p1"}); err != nil {
		t.Fatalf("the create sent on: %v", err)
	}

	// A write etcd may have applied is not sent twice.
	heal()
	testenv.Eventually(t, 60*time.Second, "the first server to take writes again", func() bool {
		_, err := a.Client.Create(ctx, pod("probe2"))
		return err == nil
	})
	c := bothServers(t, a, b)
	_, err = c.Create(ctx, pod("ambiguous"))
	var se *client.StatusError
	if !errors.As(err, &se) || se.Reason != wire.ReasonStoreUnavailable || se.NotApplied || !strings.Contains(err.Error(), "may have been applied") {
		t.Fatalf("a create whose commit etcd did not answer: %v; want 503 StoreUnavailable saying it may have been applied, without notApplied", err)
	}
	// Frozen, the member may have been etcd's leader: b answers once the
	// other two have elected one.
	var gerr error
	testenv.Eventually(t, 60*time.Second, "the second server to answer a read", func() bool {
		_, gerr = b.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "ambiguous"})
		return !errors.As(gerr, &se) || se.Reason != wire.ReasonStoreUnavailable
	})
	if !client.IsNotFound(gerr) {
		t.Fatalf("the second server has the create whose outcome was unknown (%v): the client sent it twice", gerr)
	}
	if c.Server() != b.URL() {
		t.Fatalf("after a write whose outcome was unknown the client uses %s, want later requests to go to %s", c.Server(), b.URL())
	}
}
