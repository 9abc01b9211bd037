package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	bolt "go.etcd.io/bbolt"
)

// migrateHooks give services slots (allocations) and bind pods to nodes.
type migrateHooks struct{ slotHooks }

func (h migrateHooks) BeforeCreate(tx Allocations, obj api.Object) error {
	if _, ok := obj.(*api.Service); ok {
		return h.slotHooks.BeforeCreate(tx, obj)
	}
	return nil
}
func (h migrateHooks) AfterDelete(tx Allocations, obj api.Object) error {
	if _, ok := obj.(*api.Service); ok {
		return h.slotHooks.AfterDelete(tx, obj)
	}
	return nil
}
func (migrateHooks) NodeOf(obj api.Object) string { return podNodes{}.NodeOf(obj) }

// fillForMigration writes pods on three nodes and services holding
// slots 0, 1, 3 and 4 (slot 2's service deleted), and returns the pods by
// name.
func fillForMigration(t *testing.T, s Store) map[string]*api.Pod {
	t.Helper()
	ctx := t.Context()
	pods := map[string]*api.Pod{}
	for i := range 300 {
		p, err := s.Create(ctx, testPod("shop", fmt.Sprintf("web-%03d", i), fmt.Sprintf("n%d", i%4))) // n3: unbound below
		if err != nil {
			t.Fatal(err)
		}
		pods[p.Meta().Name] = p.(*api.Pod)
	}
	for i := range 5 {
		if _, err := s.Create(ctx, testService(fmt.Sprintf("svc-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Delete(ctx, api.Key{Kind: api.KindService, App: "shop", Name: "svc-2"}, 0); err != nil {
		t.Fatal(err)
	}
	return pods
}

// checkMigrated checks that dst holds src's pods (same UIDs and specs,
// the node index kept), that the allocations came along (a new service
// gets the one free slot, 2), that every revision is above from's last,
// and that a watch from an old revision is compacted.
func checkMigrated(t *testing.T, dst Store, pods map[string]*api.Pod, from int64) {
	t.Helper()
	ctx := t.Context()
	got, rev, err := dst.List(ctx, api.KindPod, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(pods) || rev <= from || dst.Revision() <= from {
		t.Fatalf("after the migration: %d pods at revision %d (store at %d), want %d above %d", len(got), rev, dst.Revision(), len(pods), from)
	}
	for _, o := range got {
		p, want := o.(*api.Pod), pods[o.Meta().Name]
		if want == nil || p.Metadata.UID != want.Metadata.UID || p.Spec.NodeName != want.Spec.NodeName || p.Metadata.ResourceVersion <= from {
			t.Fatalf("migrated pod %s: %+v, want UID %s on %q at a revision above %d", o.Meta().Name, p.Metadata, want.Metadata.UID, want.Spec.NodeName, from)
		}
	}
	onN1, _, err := dst.List(ctx, api.KindPod, ListOptions{Node: "n1"})
	if err != nil || len(onN1) != 75 {
		t.Fatalf("pods on n1 after the migration: %d, %v; want 75", len(onN1), err)
	}
	// A compare-and-swap with a resourceVersion of the old store fails.
	stale := pods["web-000"]
	stale.Metadata.Labels = map[string]string{"tier": "stale"}
	if _, err := dst.Update(ctx, stale); !errors.Is(err, ErrConflict) {
		t.Fatalf("update at the old store's resourceVersion %d: %v, want ErrConflict", stale.Metadata.ResourceVersion, err)
	}
	// A client resuming from the old store's revision lists again.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the watchers
	if _, err := dst.Watch(wctx, WatchOptions{Since: from}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("watch from the old store's revision %d: %v, want ErrCompacted", from, err)
	}
	w, err := dst.Watch(wctx, WatchOptions{Since: rev, Kind: api.KindService})
	if err != nil {
		t.Fatalf("watch from the list's revision: %v", err)
	}
	svc, err := dst.Create(ctx, testService("svc-new"))
	if err != nil {
		t.Fatal(err)
	}
	if slot := svc.Meta().Annotations["slot"]; slot != "2" {
		t.Fatalf("a new service after the migration got slot %s, want 2 (the others are held)", slot)
	}
	if e := <-w.C; e.Key.Name != "svc-new" || e.Rev != svc.Meta().ResourceVersion || e.Rev <= rev {
		t.Fatalf("event after the migration: %s %s at %d, want svc-new at %d", e.Type, e.Key, e.Rev, svc.Meta().ResourceVersion)
	}
	if _, err := dst.Delete(ctx, api.KeyOf(svc), 0); err != nil {
		t.Fatal(err)
	}
}

// A cluster moves from bbolt to etcd and back: the source is read-only
// for the copy and after it, the copy keeps objects, nodes and
// allocations, and revisions go on above the source's.
func TestMigrateBoltToEtcdAndBack(t *testing.T) {
	ctx := t.Context()
	hooks := migrateHooks{slotHooks{slots: 8}}
	src := openTest(t, Options{})
	src.SetHooks(hooks)
	pods := fillForMigration(t, src)

	const why = "migrating to etcd: writes resume once the servers restart on it"
	if err := src.SetReadOnly(ctx, why); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Create(ctx, testPod("shop", "late", "")); !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), why) {
		t.Fatalf("create on the read-only store: %v, want ErrReadOnly saying why", err)
	}
	if got, err := src.ReadOnly(ctx); err != nil || got != why {
		t.Fatalf("ReadOnly = %q, %v", got, err)
	}
	boltRev := src.Revision()

	target := openEtcdTest(t, Options{})
	l, err := LoadEtcd(ctx, target, src, map[string][]byte{"tokens": []byte(`{"tokens":[]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if l.Objects != 304 || l.Allocations != 4 || l.Revision != boltRev || l.Head <= boltRev {
		t.Fatalf("loaded %+v; want 304 objects, 4 allocations, revision %d", l, boltRev)
	}
	if _, err := LoadEtcd(ctx, target, src, nil); err == nil || !strings.Contains(err.Error(), "etcdctl del --prefix") {
		t.Fatalf("a second load into the same prefix: %v, want a refusal naming etcdctl del", err)
	}
	// Servers open the store after the load (the base is read then).
	e, err := OpenEtcd(ctx, EtcdOptions{Endpoints: testCluster.Endpoints(), Prefix: target.opts.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.SetHooks(hooks)
	if e.Revision() != l.Head {
		t.Fatalf("etcd store at %d after the load, want %d", e.Revision(), l.Head)
	}
	if doc, _, err := e.Document(ctx, "tokens"); err != nil || string(doc) != `{"tokens":[]}` {
		t.Fatalf("the tokens document after the load: %q, %v", doc, err)
	}
	checkMigrated(t, e, pods, boltRev)

	// And back, with the etcd store read-only for every server on it.
	other, err := OpenEtcd(ctx, EtcdOptions{Endpoints: testCluster.Endpoints(), Prefix: target.opts.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := e.SetReadOnly(ctx, "migrating to bbolt"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create(ctx, testPod("shop", "late", "")); !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "migrating to bbolt") {
		t.Fatalf("create through another server of the read-only store: %v, want ErrReadOnly", err)
	}
	if _, err := other.PutDocument(ctx, "tokens", []byte("{}"), 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("a document written while read-only: %v, want ErrReadOnly", err)
	}
	etcdRev := e.Revision()
	path := filepath.Join(t.TempDir(), "capstan.db")
	lb, err := LoadBolt(ctx, path, e)
	if err != nil {
		t.Fatal(err)
	}
	if lb.Objects != 304 || lb.Allocations != 4 || lb.Revision != etcdRev || lb.Head != etcdRev+1 {
		t.Fatalf("loaded %+v; want 304 objects, 4 allocations, revision %d", lb, etcdRev)
	}
	if _, err := LoadBolt(ctx, path, e); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("a load onto an existing file: %v, want a refusal", err)
	}
	back, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	back.SetHooks(hooks)
	if err := back.Check(); err != nil {
		t.Fatal(err)
	}
	pods2, _, err := e.List(ctx, api.KindPod, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*api.Pod{}
	for _, o := range pods2 {
		byName[o.Meta().Name] = o.(*api.Pod)
	}
	checkMigrated(t, back, byName, etcdRev)

	// The switch clears: the old store takes writes again.
	if err := src.SetReadOnly(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Create(ctx, testPod("shop", "late", "")); err != nil {
		t.Fatalf("create after the switch cleared: %v", err)
	}
}

// The switch holds across a restart of the store.
func TestReadOnlySurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "capstan.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetReadOnly(ctx, "migrated to etcd"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Create(ctx, testPod("shop", "web", "")); !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "migrated to etcd") {
		t.Fatalf("create after a reopen: %v, want ErrReadOnly", err)
	}
	if n, err := s.Compact(); err != nil {
		t.Fatalf("compaction of a read-only store: %d, %v", n, err)
	}
}

// BenchmarkMigrate measures the read-only window of a migration: copying
// 30,000 pods (about 1 KiB of JSON each) and 30,000 allocations from
// bbolt into the package's three-member etcd cluster, and from that etcd
// store into a new bbolt file.
func BenchmarkMigrate(b *testing.B) {
	ctx := context.Background()
	src := openTest(b, Options{})
	const n = 30000
	for i := 0; i < n; i += 1000 {
		ops := make([]Op, 0, 1000)
		for j := i; j < i+1000; j++ {
			p := testPod("shop", fmt.Sprintf("web-%05d", j), fmt.Sprintf("n%d", j%1000))
			p.Metadata.Annotations = map[string]string{"note": strings.Repeat("x", 600)}
			ops = append(ops, Op{Type: OpCreate, Object: p})
		}
		if _, err := src.Txn(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	err := src.db.Update(func(tx *bolt.Tx) error {
		for i := range n {
			if err := tx.Bucket(bucketAllo).Put(fmt.Appendf(nil, "ip/10.%d.%d.%d", i>>16, (i>>8)&255, i&255), []byte("shop/web")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		dst := openEtcdTest(b, Options{})
		t0 := time.Now()
		if _, err := LoadEtcd(ctx, dst, src, nil); err != nil {
			b.Fatal(err)
		}
		toEtcd := time.Since(t0)
		e, err := OpenEtcd(ctx, EtcdOptions{Endpoints: testCluster.Endpoints(), Prefix: dst.opts.Prefix})
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if _, err := LoadBolt(ctx, filepath.Join(b.TempDir(), "back.db"), e); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(toEtcd.Seconds(), "s-bbolt-to-etcd")
		b.ReportMetric(time.Since(t0).Seconds(), "s-etcd-to-bbolt")
		e.Close()
	}
}
