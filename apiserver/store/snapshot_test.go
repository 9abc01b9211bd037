package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// A snapshot taken while writes go on opens as a store at the revision it
// reports, holding exactly the objects written up to it.
func TestSnapshotUnderWrites(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	for i := range 50 {
		if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("before-%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("during-%d", i), "")); err != nil {
				t.Error(err)
				return
			}
		}
	})
	path := filepath.Join(t.TempDir(), "snap.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := s.Snapshot(ctx, f)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if rev < 50 {
		t.Fatalf("snapshot at revision %d, want at least 50", rev)
	}
	copied, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("open the snapshot: %v", err)
	}
	defer copied.Close()
	if err := copied.Check(); err != nil {
		t.Fatal(err)
	}
	if copied.Revision() != rev {
		t.Fatalf("snapshot opens at revision %d, reported %d", copied.Revision(), rev)
	}
	got, _, err := copied.List(ctx, api.KindPod, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := s.List(ctx, api.KindPod, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range want {
		if o.Meta().ResourceVersion <= rev {
			n++
		}
	}
	if len(got) != n {
		t.Fatalf("snapshot holds %d pods, the store had %d at revision %d", len(got), n, rev)
	}
}

// A snapshot whose reader left stops.
func TestSnapshotStopsWithContext(t *testing.T) {
	s := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Snapshot(ctx, &bytesSink{}); err == nil {
		t.Fatal("snapshot with an ended context succeeded")
	}
}

type bytesSink struct{ n int }

func (b *bytesSink) Write(p []byte) (int, error) { b.n += len(p); return len(p), nil }

// A restored store's revision moves past every revision a client of the
// original may hold, and a watch from any of them must list again.
func TestBumpRevision(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "capstan.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("p%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rev, err := BumpRevision(path, 1000)
	if err != nil || rev != 1005 {
		t.Fatalf("BumpRevision = %d, %v; want 1005", rev, err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Revision() != 1005 {
		t.Fatalf("revision %d after the bump, want 1005", s.Revision())
	}
	for _, since := range []int64{0, 3, 5, 7, 1004} {
		if _, err := s.Watch(ctx, WatchOptions{Since: since}); !errors.Is(err, ErrCompacted) {
			t.Errorf("watch from %d: %v, want ErrCompacted", since, err)
		}
	}
	w, err := s.Watch(ctx, WatchOptions{Since: 1005})
	if err != nil {
		t.Fatalf("watch from the new revision: %v", err)
	}
	created, err := s.Create(ctx, testPod("shop", "new", ""))
	if err != nil {
		t.Fatal(err)
	}
	if created.Meta().ResourceVersion != 1006 {
		t.Fatalf("first write after the bump at %d, want 1006", created.Meta().ResourceVersion)
	}
	if e := <-w.C; e.Rev != 1006 {
		t.Fatalf("watch delivered revision %d, want 1006", e.Rev)
	}
	pods, _, err := s.List(ctx, api.KindPod, ListOptions{})
	if err != nil || len(pods) != 6 {
		t.Fatalf("%d pods after the bump, %v; want 6", len(pods), err)
	}
}
