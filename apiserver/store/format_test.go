package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/capstanhq/capstan/apiserver/api"
)

// editMeta changes the meta bucket of the closed store file at path.
func editMeta(t *testing.T, path string, edit func(meta *bolt.Bucket) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return edit(tx.Bucket(bucketMeta)) }); err != nil {
		t.Fatal(err)
	}
}

// readMeta returns the store's recorded format and version.
func readMeta(t *testing.T, path string) (format int64, ver string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		format, ver = readInt(tx.Bucket(bucketMeta), keyFormat), string(tx.Bucket(bucketMeta).Get(keyVersion))
		return nil
	})
	return format, ver
}

// Upgrades and downgrades of the binary on one store file (docs/ha.md,
// Upgrading): a store from before the format was recorded opens and is
// stamped; a later minor release opens it; an earlier one is then refused
// with what to do, leaving the file as it was (before, it opened and
// failed on every object holding a field it did not know); a patch
// release back, and a development build, open it.
func TestOpenRefusesStoreOfNewerRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "capstan.db")
	open := func(ver string) (*Bolt, error) {
		s, err := Open(path, Options{Version: ver})
		if err == nil {
			t.Cleanup(func() { s.Close() })
		}
		return s, err
	}
	s, err := open("v1.3.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(context.Background(), testPod("shop", "web-1", "n1")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// As a release before the format was recorded left it.
	editMeta(t, path, func(meta *bolt.Bucket) error {
		return errors.Join(meta.Delete(keyFormat), meta.Delete(keyVersion))
	})

	s, err = open("v1.4.1")
	if err != nil {
		t.Fatalf("a store of before the format was recorded: %v", err)
	}
	if _, err := s.Get(context.Background(), api.Key{Kind: api.KindPod, App: "shop", Name: "web-1"}); err != nil {
		t.Fatalf("the pod of the older release: %v", err)
	}
	s.Close()
	if f, v := readMeta(t, path); f != storeFormat || v != "v1.4.1" {
		t.Fatalf("after an open by v1.4.1 the store records format %d, version %q", f, v)
	}

	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = open("v1.3.9")
	if !errors.Is(err, ErrNewerStore) || !strings.Contains(err.Error(), "last opened by Capstan v1.4.1 (store format 1), this binary is v1.3.9") ||
		!strings.Contains(err.Error(), "run v1.4.1 or newer on it") || !strings.Contains(err.Error(), "restore") {
		t.Fatalf("a downgrade to v1.3.9: %v, want ErrNewerStore saying what to run", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("the refused open changed the file")
	}

	for _, ver := range []string{"v1.4.0", "dev", "84a5072"} {
		s, err = open(ver)
		if err != nil {
			t.Fatalf("open by %s (a patch back, or not a release): %v", ver, err)
		}
		s.Close()
		if _, v := readMeta(t, path); v != "v1.4.1" {
			t.Fatalf("after an open by %s the store records version %q, want v1.4.1, the newest", ver, v)
		}
	}

	// capstan restore opens the file a server is to serve, and leaves
	// the version alone.
	s, err = Open(path, Options{Version: "v1.9.0", NoRecord: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, v := readMeta(t, path); v != "v1.4.1" {
		t.Fatalf("an open with NoRecord by v1.9.0 recorded version %q", v)
	}

	editMeta(t, path, func(meta *bolt.Bucket) error { return writeInt(meta, keyFormat, storeFormat+1) })
	if _, err := open("dev"); !errors.Is(err, ErrNewerStore) || !strings.Contains(err.Error(), "store format 2") {
		t.Fatalf("a store of a later format: %v, want ErrNewerStore", err)
	}
}

// addUnknownField gives the stored object at k a field this binary does
// not know, as a newer server writing it would.
func addUnknownField(t *testing.T, s Backend, k api.Key) {
	t.Helper()
	add := func(v []byte) []byte {
		out := bytes.Replace(v, []byte(`"spec":{`), []byte(`"spec":{"fieldOfTomorrow":{"on":true},`), 1)
		if bytes.Equal(out, v) {
			t.Fatalf("no spec in the stored %s: %s", k, v)
		}
		return out
	}
	ctx := context.Background()
	switch s := s.(type) {
	case *Bolt:
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(k.Kind))
			return b.Put(objectKey(k), add(b.Get(objectKey(k))))
		})
		if err != nil {
			t.Fatal(err)
		}
	case *Etcd:
		resp, err := s.cli.Get(ctx, s.objectKey(k))
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get the stored %s: %v", k, err)
		}
		if _, err := s.cli.Put(ctx, s.objectKey(k), string(add(resp.Kvs[0].Value))); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("no way to write into a %T", s)
	}
}

// Servers of two releases share an etcd store during a rolling upgrade
// (docs/cluster.md#upgrading): the older ones read, watch and update
// objects the newer ones gave fields they do not know. Before, the store
// refused to decode such an object ("unknown field"), so every Get, List
// and update of it failed on the older servers.
func TestReadsObjectsOfNewerServer(t *testing.T) { eachBackend(t, testReadsObjectsOfNewerServer) }

func testReadsObjectsOfNewerServer(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t, Options{})
	created, err := s.Create(ctx, testPod("shop", "web-1", "n1"))
	if err != nil {
		t.Fatal(err)
	}
	k := api.KeyOf(created)
	wctx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	w, err := s.Watch(wctx, WatchOptions{Kind: api.KindPod, Since: created.Meta().ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	addUnknownField(t, s, k)

	got, err := s.Get(ctx, k)
	if err != nil || got.(*api.Pod).Spec.NodeName != "n1" {
		t.Fatalf("get of an object a newer server wrote: %v, %v", got, err)
	}
	objs, _, err := s.List(ctx, api.KindPod, ListOptions{})
	if err != nil || len(objs) != 1 {
		t.Fatalf("list of an object a newer server wrote: %d objects, %v", len(objs), err)
	}
	p := got.(*api.Pod)
	p.Status.Phase = api.PodRunning
	if _, err := s.Update(ctx, p); err != nil {
		t.Fatalf("update of an object a newer server wrote: %v", err)
	}
	if _, ok := s.(*Etcd); ok { // the direct write is an event on etcd alone
		ev := collect(t, w, 1)[0]
		if obj, err := ev.Decode(); err != nil || obj.(*api.Pod).Spec.NodeName != "n1" {
			t.Fatalf("watch event of an object a newer server wrote: %v", err)
		}
	}
}
