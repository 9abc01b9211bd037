package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// countingKV records the most operations one transaction held.
type countingKV struct {
	clientv3.KV
	mu  sync.Mutex
	max int
}

func (k *countingKV) Txn(ctx context.Context) clientv3.Txn {
	return &countingTxn{Txn: k.KV.Txn(ctx), kv: k}
}

type countingTxn struct {
	clientv3.Txn
	kv *countingKV
}

func (t *countingTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.kv.mu.Lock()
	t.kv.max = max(t.kv.max, len(ops))
	t.kv.mu.Unlock()
	t.Txn = t.Txn.Then(ops...)
	return t
}

// countingEtcd opens an Etcd store under a fresh prefix whose client
// counts the operations of each transaction.
func countingEtcd(t *testing.T) (*Etcd, *countingKV) {
	t.Helper()
	cli, err := testCluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	kv := &countingKV{KV: cli.KV}
	cli.KV = kv
	dst, err := OpenEtcd(t.Context(), EtcdOptions{Client: cli, Prefix: fmt.Sprintf("/test/%d/", etcdPrefixes.Add(1))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	return dst, kv
}

// A load into etcd keeps to etcd's default --max-txn-ops (128), as
// docs/ha.md promises, whatever the number of records: with 127 records
// the last transaction used to hold them, the tokens document and the
// revision base, 129 operations, which a default etcd refuses.
func TestLoadEtcdKeepsToDefaultMaxTxnOps(t *testing.T) {
	ctx := t.Context()
	for _, n := range []int{126, 127, 128, 255} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			src := openTest(t, Options{})
			src.SetHooks(podNodes{})
			for i := range n {
				if _, err := src.Create(ctx, testPod("shop", fmt.Sprintf("web-%03d", i), "n1")); err != nil {
					t.Fatal(err)
				}
			}
			dst, kv := countingEtcd(t)
			l, err := LoadEtcd(ctx, dst, src, map[string][]byte{"tokens": []byte(`{"tokens":[]}`)})
			if err != nil {
				t.Fatal(err)
			}
			if l.Objects != n || kv.max > loadBatch {
				t.Fatalf("loaded %d objects, the largest transaction held %d operations; want %d objects in transactions of at most %d", l.Objects, kv.max, n, loadBatch)
			}
		})
	}
}

// haltingDumper dumps from, and after the first after records waits for
// release (a migration cut halfway: the server stops mid-copy).
type haltingDumper struct {
	from    Dumper
	after   int
	halted  chan struct{}
	release chan error
}

func (d *haltingDumper) Dump(ctx context.Context, each func(int64, Record) error) (int64, error) {
	n := 0
	return d.from.Dump(ctx, func(rev int64, r Record) error {
		if n++; n == d.after+1 {
			close(d.halted)
			if err := <-d.release; err != nil {
				return err
			}
		}
		return each(rev, r)
	})
}

// A migration into etcd cut halfway (the server stopped mid-copy) leaves
// a prefix no server runs on: a server started on it with --store etcd
// used to open it as a store of half the objects, with revisions below
// the old store's; now it refuses, saying how to start again.
func TestLoadEtcdCutHalfwayIsNotAStore(t *testing.T) {
	ctx := t.Context()
	src := openTest(t, Options{})
	src.SetHooks(podNodes{})
	for i := range 300 {
		if _, err := src.Create(ctx, testPod("shop", fmt.Sprintf("web-%03d", i), "n1")); err != nil {
			t.Fatal(err)
		}
	}
	dst := openEtcdTest(t, Options{})
	d := &haltingDumper{from: src, after: 200, halted: make(chan struct{}), release: make(chan error)}
	loaded := make(chan error, 1)
	go func() {
		_, err := LoadEtcd(ctx, dst, d, nil)
		loaded <- err
	}()
	select {
	case <-d.halted:
	case err := <-loaded:
		t.Fatalf("the load ended before it was cut: %v", err)
	}
	cut := errors.New("the server stopped")
	defer func() {
		d.release <- cut
		if err := <-loaded; !errors.Is(err, cut) {
			t.Errorf("the cut load: %v, want %v", err, cut)
		}
	}()

	// 128 pods are in etcd by now, and no revision base.
	_, err := OpenEtcd(ctx, EtcdOptions{Endpoints: testCluster.Endpoints(), Prefix: dst.opts.Prefix})
	if !errors.Is(err, ErrIncompleteMigration) || !strings.Contains(err.Error(), "etcdctl del --prefix "+dst.opts.Prefix) || !strings.Contains(err.Error(), "capstan store read-write") {
		t.Fatalf("opening a store a migration is still copying (or was cut in): %v; want %v naming etcdctl del and capstan store read-write", err, ErrIncompleteMigration)
	}
}

// A migration into bbolt cut halfway leaves no capstan.db: the copy is
// made beside it and takes its name only when whole. A server started
// there used to open the half-made file as its store (without its
// revision, so below every revision its clients held).
func TestLoadBoltCutHalfwayLeavesNoStore(t *testing.T) {
	ctx := t.Context()
	src := openEtcdTest(t, Options{})
	for i := range 300 {
		if _, err := src.Create(ctx, testPod("shop", fmt.Sprintf("web-%03d", i), "n1")); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "capstan.db")
	d := &haltingDumper{from: src, after: 200, halted: make(chan struct{}), release: make(chan error)}
	loaded := make(chan error, 1)
	go func() {
		_, err := LoadBolt(ctx, path, d)
		loaded <- err
	}()
	select {
	case <-d.halted:
	case err := <-loaded:
		t.Fatalf("the load ended before it was cut: %v", err)
	}
	_, statErr := os.Lstat(path)
	cut := errors.New("the server stopped")
	d.release <- cut
	if err := <-loaded; !errors.Is(err, cut) {
		t.Errorf("the cut load: %v, want %v", err, cut)
	}
	if !errors.Is(statErr, os.ErrNotExist) {
		t.Fatalf("%s halfway through a load: %v, want no such file until the copy is whole", path, statErr)
	}

	// A load after the cut one (whose leftovers a dead server could not
	// remove) makes the whole store.
	if err := os.WriteFile(path+".incomplete", []byte("half a copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := LoadBolt(ctx, path, src)
	if err != nil || l.Objects != 300 {
		t.Fatalf("the load after a cut one: %+v, %v; want 300 objects", l, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "capstan.db" {
		t.Fatalf("the directory after the load: %v, %v; want capstan.db alone", entries, err)
	}
	back, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if back.Revision() != l.Head {
		t.Fatalf("the loaded store at revision %d, want %d", back.Revision(), l.Head)
	}
}
