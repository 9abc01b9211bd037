package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/internal/etcdtest"
)

// TestStoreMigrate moves a running cluster from bbolt to etcd and back
// with capstan store migrate: the old store is read-only for the copy and
// after it, the server restarted on the new store has the same objects
// (UIDs), tokens and CA, its revisions go on above the old store's, and
// the node (its watch at an old revision) keeps heartbeating and runs new
// pods without losing the ones it had.
func TestStoreMigrate(t *testing.T) {
	ctx := t.Context()
	etcd, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Close)
	endpoints := strings.Join(etcd.Endpoints(), ",")

	srv := apiservertest.Start(t, apiservertest.Options{})
	dir, addr, cfg := srv.DataDir, srv.Server.Addr(), srv.Server.AdminConfigPath()
	if out, err := run(t, "token", "create", "--description", "kept", "--config", cfg); err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	startHollowNode(t, srv)
	pods := map[string]string{} // name -> UID
	runPod := func(c *client.Client, name string) { pods[name] = runHollowPod(t, c, name).Meta().UID }
	// checkPods: every pod made so far is there with its UID, Running.
	checkPods := func(c *client.Client, where string) {
		t.Helper()
		for name, uid := range pods {
			o, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: name})
			if err != nil || o.Meta().UID != uid || o.(*api.Pod).Status.Phase != api.PodRunning {
				t.Fatalf("%s: pod %s = %v, %v; want UID %s running", where, name, o, err, uid)
			}
		}
	}
	heartbeats := func(c *client.Client, where string) {
		t.Helper()
		since := time.Now()
		waitUntil(t, "h-0's lease renewed "+where, func() bool {
			o, err := c.Get(ctx, api.Key{Kind: api.KindLease, Name: "h-0"})
			return err == nil && o.(*api.Lease).Spec.RenewTime.After(since)
		})
	}
	runPod(srv.Client, "before")
	ca := string(srv.Server.PKI().CAPEM)

	// bbolt -> etcd.
	out, err := run(t, "store", "migrate", "--to", "etcd", "--etcd-endpoints", endpoints, "--config", cfg)
	if err != nil {
		t.Fatalf("store migrate --to etcd: %v\n%s", err, out)
	}
	if !strings.Contains(out, "from bbolt into etcd") || !strings.Contains(out, "--store etcd --etcd-endpoints "+endpoints) {
		t.Fatalf("store migrate said %q", out)
	}
	boltRev := srv.Store.Revision()
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: "refused", App: "shop"}
	p.Spec.Containers = []api.Container{{Name: "web", Image: "example/web:v1"}}
	if _, err := srv.Client.Create(ctx, p); err == nil || !strings.Contains(err.Error(), "read-only") || !strings.Contains(err.Error(), "--store etcd") {
		t.Fatalf("a create after the migration: %v, want refused as read-only, naming the new store's flags", err)
	}
	if out, err := run(t, "token", "create", "--config", cfg); err == nil || !strings.Contains(out+err.Error(), "read-only") {
		t.Fatalf("token create after the migration: %v\n%s; want refused", err, out)
	}
	if out, err := run(t, "store", "status", "--config", cfg); err != nil || !strings.Contains(out, "read-only: migrated to etcd") {
		t.Fatalf("store status: %v\n%s", err, out)
	}
	if out, err := run(t, "store", "migrate", "--to", "etcd", "--etcd-endpoints", endpoints, "--etcd-prefix", "/other/", "--config", cfg); err == nil || !strings.Contains(err.Error(), "read-only already") {
		t.Fatalf("a second migration: %v\n%s; want refused", err, out)
	}
	checkPods(srv.Client, "the read-only store")
	srv.Stop()

	openEtcd := func() store.Backend {
		st, err := store.OpenEtcd(ctx, store.EtcdOptions{Endpoints: etcd.Endpoints()})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	srv = apiservertest.Start(t, apiservertest.Options{DataDir: dir, Listen: addr, Backend: openEtcd()})
	if got := string(srv.Server.PKI().CAPEM); got != ca {
		t.Fatal("the server on etcd has another CA")
	}
	st, err := srv.Client.StoreReadOnly(ctx)
	if err != nil || st.ReadOnly {
		t.Fatalf("the etcd store: %+v, %v; want writable", st, err)
	}
	if _, rev, err := srv.Client.List(ctx, api.KindPod, client.ListOptions{}); err != nil || rev <= boltRev {
		t.Fatalf("list on etcd at revision %d, %v; want above bbolt's %d", rev, err, boltRev)
	}
	checkPods(srv.Client, "on etcd")
	heartbeats(srv.Client, "on etcd")
	runPod(srv.Client, "on-etcd")
	if out, err := run(t, "token", "ls", "--config", cfg); err != nil || !strings.Contains(out, "kept") || !strings.Contains(out, "test node") {
		t.Fatalf("token ls on etcd: %v\n%s", err, out)
	}

	// etcd -> bbolt: the old file is refused (and the store stays
	// writable); moved away, the migration goes through.
	if out, err := run(t, "store", "migrate", "--to", "bbolt", "--config", cfg); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("store migrate --to bbolt onto the old file: %v\n%s; want refused", err, out)
	}
	if st, err := srv.Client.StoreReadOnly(ctx); err != nil || st.ReadOnly {
		t.Fatalf("the etcd store after a refused migration: %+v, %v; want writable", st, err)
	}
	if err := os.Rename(filepath.Join(dir, "capstan.db"), filepath.Join(dir, "capstan.db.before-etcd")); err != nil {
		t.Fatal(err)
	}
	_, etcdRev, err := srv.Client.List(ctx, api.KindPod, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "store", "migrate", "--to", "bbolt", "--config", cfg); err != nil || !strings.Contains(out, "from etcd into bbolt") || !strings.Contains(out, "stop the other servers") {
		t.Fatalf("store migrate --to bbolt: %v\n%s", err, out)
	}
	srv.Stop()
	srv = apiservertest.Start(t, apiservertest.Options{DataDir: dir, Listen: addr})
	if got := srv.Store.Revision(); got <= etcdRev {
		t.Fatalf("bbolt store at %d after the migration back, want above etcd's %d", got, etcdRev)
	}
	checkPods(srv.Client, "back on bbolt")
	heartbeats(srv.Client, "back on bbolt")
	runPod(srv.Client, "back")
	if out, err := run(t, "token", "ls", "--config", cfg); err != nil || !strings.Contains(out, "kept") || !strings.Contains(out, "test node") {
		t.Fatalf("token ls back on bbolt: %v\n%s", err, out)
	}
}
