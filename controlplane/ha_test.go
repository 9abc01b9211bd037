package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/backup"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/etcdtest"
	"github.com/capstanhq/capstan/internal/testenv"
	bolt "go.etcd.io/bbolt"
)

// haServer is one control plane of several on one etcd.
type haServer struct {
	cp     *ControlPlane
	cancel context.CancelFunc
	done   chan error
}

func (s *haServer) stop() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	err := <-s.done
	s.cp.Close()
	return err
}

// startServers runs n control planes on cluster, sharing the first one's
// CA as files (copied into the others' data directories before they
// start) with its secrets key ring; the tokens they share through the
// store.
func startServers(t *testing.T, cluster *etcdtest.Cluster, n int) []*haServer {
	t.Helper()
	return startServersWith(t, cluster, n, nil)
}

// startServersWith is startServers with each server's Options changed by
// edit (nil: none) before it starts.
func startServersWith(t *testing.T, cluster *etcdtest.Cluster, n int, edit func(*Options)) []*haServer {
	t.Helper()
	var out []*haServer
	var first string
	for i := range n {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("server-%d", i))
		if i > 0 {
			for _, f := range []string{"pki/ca.crt", "pki/ca.key", "secrets/store.key", "secrets/cluster.agekey"} {
				b, err := os.ReadFile(filepath.Join(first, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		opts := Options{
			DataDir: dir,
			API:     apiserver.Options{Listen: "127.0.0.1:0"},
			Store:   StoreOptions{Backend: StoreEtcd, Etcd: store.EtcdOptions{Endpoints: cluster.Endpoints()}},
			Leader:  LeaderOptions{TTL: 2 * time.Second, ID: fmt.Sprintf("server-%d", i)},
		}
		if edit != nil {
			edit(&opts)
		}
		cp, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = dir
		}
		ctx, cancel := context.WithCancel(context.Background())
		s := &haServer{cp: cp, cancel: cancel, done: make(chan error, 1)}
		go func() { s.done <- cp.Start(ctx) }()
		t.Cleanup(func() {
			if err := s.stop(); err != nil {
				t.Errorf("server %d: %v", i, err)
			}
		})
		out = append(out, s)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, what, cond)
}

func testApp(name string) *api.App {
	app := api.KindApp.New().(*api.App)
	app.Metadata = api.ObjectMeta{Name: name, App: name}
	app.Spec.Workloads = []api.AppWorkload{{Name: "web", Spec: api.WorkloadSpec{Replicas: 1, Template: api.PodTemplate{
		Containers: []api.Container{{Name: "web", Image: "example/web:v1"}}}}}}
	return app
}

// Several servers on one etcd: every one serves the API, exactly one
// leads (runs the controllers), and when it stops another leads within
// the lease's TTL and its controllers work; the old term's writes are
// refused.
func TestSeveralServersOneLeader(t *testing.T) {
	cluster, err := etcdtest.Start(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close) // after the servers' (cleanups run last first)
	servers := startServers(t, cluster, 3)
	var cfg *client.Config
	for i, s := range servers {
		c, err := client.LoadConfig(s.cp.Server().AdminConfigPath())
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			cfg = c
		} else {
			cfg.Servers = append(cfg.Servers, c.Server)
		}
	}
	// Never two leaders at once, sampled all along.
	var most atomic.Int32
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			n := int32(0)
			for _, s := range servers {
				if s.cp.Leading() {
					n++
				}
			}
			if n > most.Load() {
				most.Store(n)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	leaderOf := func() int {
		for i, s := range servers {
			if s.cp.Leading() {
				return i
			}
		}
		return -1
	}
	waitFor(t, "a leader", func() bool { return leaderOf() >= 0 })
	ctx := t.Context()
	// Each server answers with the same CA and admin token.
	for _, u := range cfg.URLs() {
		one := *cfg
		one.Server, one.Servers = u, nil
		c, err := client.New(&one)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "server "+u+" ready", func() bool { return c.Do(ctx, http.MethodGet, "/readyz", nil, nil) == nil })
		if _, _, err := c.List(ctx, api.KindApp, client.ListOptions{}); err != nil {
			t.Fatalf("list through %s: %v", u, err)
		}
	}
	admin, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	workloadOf := func(app string) func() bool {
		return func() bool {
			_, err := admin.Get(ctx, api.Key{Kind: api.KindWorkload, App: app, Name: "web"})
			return err == nil
		}
	}
	if _, err := admin.Create(ctx, testApp("one")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the leader's app controller makes app one's workload", workloadOf("one"))

	first := leaderOf()
	oldFence := servers[first].cp.fenceHeader()
	if err := servers[first].stop(); err != nil {
		t.Fatalf("stop the leader: %v", err)
	}
	waitFor(t, "a new leader", func() bool { i := leaderOf(); return i >= 0 && i != first })
	if _, err := admin.Create(ctx, testApp("two")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new leader's app controller makes app two's workload", workloadOf("two"))

	// A write under the old term (a paused leader waking up) is refused.
	stale := admin.WithHeader(wire.FenceHeader, func() string { return oldFence })
	if _, err := stale.Create(ctx, testApp("three")); !hasReason(err, wire.ReasonFenced) {
		t.Fatalf("a write under the old term: %v, want 412 Fenced", err)
	}
	if _, err := admin.Get(ctx, api.Key{Kind: api.KindApp, App: "three", Name: "three"}); !client.IsNotFound(err) {
		t.Fatalf("the fenced write was applied: %v", err)
	}
	close(stopSampling)
	<-sampled
	if n := most.Load(); n != 1 {
		t.Fatalf("at most %d servers led at once, want 1", n)
	}
}

func hasReason(err error, r wire.Reason) bool {
	se, ok := err.(*client.StatusError)
	return ok && se.Reason == r
}

// Servers on one store share the token table: a token made on one works
// on the others (a join too, and its uses count across servers), and one
// revoked on one stops working on all.
func TestTokensSharedAcrossServers(t *testing.T) {
	cluster := startEtcd(t)
	servers := startServers(t, cluster, 2)
	ctx := t.Context()
	a, b := servers[0].cp.Server(), servers[1].cp.Server()
	cfgA, err := client.LoadConfig(a.AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	// A's admin token on B.
	onB := *cfgA
	onB.Server = b.URL()
	adminB, err := client.New(&onB)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "server B ready", func() bool { return adminB.Do(ctx, http.MethodGet, "/readyz", nil, nil) == nil })
	if _, _, err := adminB.List(ctx, api.KindNode, client.ListOptions{}); err != nil {
		t.Fatalf("server A's admin token on server B: %v", err)
	}
	// A one-use join token made on A lets one node in through B, and no
	// second one through A.
	adminA, err := client.New(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	var made wire.CreateTokenResponse
	if err := adminA.Do(ctx, http.MethodPost, "/tokens", wire.CreateTokenRequest{Role: apiserver.RoleJoin, Uses: 1, TTL: time.Hour}, &made); err != nil {
		t.Fatal(err)
	}
	join := made.Token
	if _, err := client.Join(ctx, b.URL(), join, "n1"); err != nil {
		t.Fatalf("join through B with a token made on A: %v", err)
	}
	if _, err := client.Join(ctx, a.URL(), join, "n2"); err == nil {
		t.Fatal("a one-use join token let a second node in through the other server")
	}
	// A viewer token revoked on B stops working on A.
	tok, created, err := a.Tokens().Create(apiserver.RoleViewer, "short-lived", 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	viewerA := *cfgA
	viewerA.Token = tok
	va, err := client.New(&viewerA)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := va.List(ctx, api.KindNode, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the viewer token known on B", func() bool {
		for _, tk := range b.Tokens().List() {
			if tk.ID == created.ID {
				return true
			}
		}
		return false
	})
	if err := b.Tokens().Revoke(created.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the token revoked on B refused on A", func() bool {
		_, _, err := va.List(ctx, api.KindNode, client.ListOptions{})
		return err != nil && strings.Contains(err.Error(), "revoked")
	})
}

// A backup of a control plane on etcd holds etcd's snapshot (a bbolt file
// with etcd's key bucket, the cluster's objects in it) and the PKI.
func TestBackupOnEtcd(t *testing.T) {
	cluster := startEtcd(t)
	s := startServers(t, cluster, 1)[0]
	ctx := t.Context()
	admin, err := client.FromFile(s.cp.Server().AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready", func() bool { return admin.Do(ctx, http.MethodGet, "/readyz", nil, nil) == nil })
	if _, err := admin.Create(ctx, testApp("kept")); err != nil {
		t.Fatal(err)
	}
	body, err := admin.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	dir := filepath.Join(t.TempDir(), "restored")
	m, err := backup.Restore(body, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Store != "etcd" || m.Revision == 0 || !slices.Contains(m.Files, "pki/ca.key") {
		t.Fatalf("manifest = %+v", m)
	}
	db, err := bolt.Open(filepath.Join(dir, backup.EtcdSnapshotFile), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("the snapshot is not an etcd database: %v", err)
	}
	defer db.Close()
	found := false
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return fmt.Errorf("no key bucket")
		}
		return b.ForEach(func(_, v []byte) error {
			if strings.Contains(string(v), "/capstan/objects/apps/kept/kept") {
				found = true
			}
			return nil
		})
	})
	if err != nil || !found {
		t.Fatalf("the snapshot does not hold app kept: %v", err)
	}
}

// On etcd the steps of a transaction share its revision: an informer gets
// every one of them, also when its watch resumes in the middle of one.
func TestInformerSeesEveryStepOfATransaction(t *testing.T) {
	cluster := startEtcd(t)
	s := startServers(t, cluster, 1)[0]
	ctx := t.Context()
	admin, err := client.FromFile(s.cp.Server().AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready", func() bool { return admin.Do(ctx, http.MethodGet, "/readyz", nil, nil) == nil })
	inf := client.NewInformer(admin, api.KindPod, client.ListOptions{App: "txn"}, nil)
	ictx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- inf.Start(ictx) }()
	defer func() { cancel(); <-done }()
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	var ops []client.TxnOp
	for i := range 3 {
		p := api.KindPod.New().(*api.Pod)
		p.Metadata = api.ObjectMeta{Name: fmt.Sprintf("p%d", i), App: "txn"}
		p.Spec.Containers = []api.Container{{Name: "c", Image: "example/c:v1"}}
		ops = append(ops, wire.CreateOp(p))
	}
	out, err := admin.Txn(ctx, ops)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Meta().ResourceVersion != out[2].Meta().ResourceVersion {
		t.Fatalf("the steps have revisions %d and %d: not one etcd transaction", out[0].Meta().ResourceVersion, out[2].Meta().ResourceVersion)
	}
	waitFor(t, "the informer has the three pods of the transaction", func() bool { return len(inf.List()) == 3 })
}

// A server whose data directory was made without the first server's CA
// would make a CA of its own, which no agent trusts: it refuses to start
// on the shared store and says which files to copy.
func TestServerWithAnotherCARefused(t *testing.T) {
	cluster := startEtcd(t)
	startServers(t, cluster, 1)
	_, err := New(Options{
		DataDir: filepath.Join(t.TempDir(), "stranger"),
		API:     apiserver.Options{Listen: "127.0.0.1:0"},
		Store:   StoreOptions{Backend: StoreEtcd, Etcd: store.EtcdOptions{Endpoints: cluster.Endpoints()}},
		Leader:  LeaderOptions{TTL: 2 * time.Second, ID: "stranger"},
	})
	if err == nil || !strings.Contains(err.Error(), "is not the cluster's") || !strings.Contains(err.Error(), "copy ca.crt and ca.key") {
		t.Fatalf("a server with a CA of its own on the shared store: %v", err)
	}
}

// startEtcd runs a one-member etcd for the test, stopped after the
// servers started later (cleanups run last first).
func startEtcd(t *testing.T) *etcdtest.Cluster {
	t.Helper()
	cluster, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster
}
