package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/capstanhq/capstan/apiserver/api"
)

func openTest(t testing.TB, opts Options) *Bolt {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "capstan.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetHooks(podNodes{})
	return s
}

// podNodes binds pods to their spec's node, as the API server's hooks do.
type podNodes struct{}

func (podNodes) BeforeCreate(Allocations, api.Object) error             { return nil }
func (podNodes) BeforeUpdate(Allocations, api.Object, api.Object) error { return nil }
func (podNodes) AfterDelete(Allocations, api.Object) error              { return nil }
func (podNodes) NodeOf(obj api.Object) string {
	if p, ok := obj.(*api.Pod); ok {
		return p.Spec.NodeName
	}
	return ""
}

func testPod(app, name, node string) *api.Pod {
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: name, App: app, Labels: map[string]string{"tier": "web"}}
	p.Spec.NodeName = node
	p.Spec.Containers = []api.Container{{Name: "web", Image: "example/web:v1"}}
	return p
}

func TestCreateGetUpdateDelete(t *testing.T) { eachBackend(t, testCreateGetUpdateDelete) }

func testCreateGetUpdateDelete(t *testing.T, b backend) {
	ctx := context.Background()
	s, base := b.open(t, Options{})
	created, err := s.Create(ctx, testPod("shop", "web-1", ""))
	if err != nil {
		t.Fatal(err)
	}
	m := created.Meta()
	if m.ResourceVersion != base+1 || m.UID == "" || m.Generation != 1 || m.CreatedAt.IsZero() {
		t.Fatalf("created meta = %+v", m)
	}
	if _, err := s.Create(ctx, testPod("shop", "web-1", "")); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	got, err := s.Get(ctx, api.KeyOf(created))
	if err != nil || got.Meta().UID != m.UID {
		t.Fatalf("get = %v, %v", got, err)
	}

	// A status-only change keeps the generation; a spec change bumps it.
	p := got.(*api.Pod)
	p.Status.Phase = api.PodRunning
	stale := api.Clone(p) // Update sets the new resourceVersion on p
	up, err := s.Update(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if up.Meta().Generation != 1 || up.Meta().ResourceVersion != base+2 {
		t.Fatalf("after status update: %+v", up.Meta())
	}
	p2 := up.(*api.Pod)
	p2.Spec.NodeName = "n1"
	up2, err := s.Update(ctx, p2)
	if err != nil {
		t.Fatal(err)
	}
	if up2.Meta().Generation != 2 {
		t.Fatalf("generation after spec change = %d, want 2", up2.Meta().Generation)
	}

	// Compare-and-swap: the stale copy loses.
	stale.Status.Phase = api.PodFailed
	if _, err := s.Update(ctx, stale); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	if _, err := s.Delete(ctx, api.KeyOf(p), 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale delete: %v, want ErrConflict", err)
	}
	if _, err := s.Delete(ctx, api.KeyOf(p), up2.Meta().ResourceVersion); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, api.KeyOf(p)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := s.Update(ctx, stale); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update after delete: %v", err)
	}
	if s.Revision() != base+4 {
		t.Fatalf("revision = %d, want %d", s.Revision(), base+4)
	}
}

func TestListFilters(t *testing.T) { eachBackend(t, testListFilters) }

func testListFilters(t *testing.T, b backend) {
	ctx := context.Background()
	s, base := b.open(t, Options{})
	for _, p := range []*api.Pod{testPod("shop", "a", "n1"), testPod("shop", "b", "n2"), testPod("blog", "c", "n1"), testPod("shopping", "d", "")} {
		if _, err := s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	other := testPod("shop", "e", "n1")
	other.Metadata.Labels = map[string]string{"tier": "db"}
	if _, err := s.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts ListOptions
		want []string
	}{
		{"all", ListOptions{}, []string{"blog/c", "shop/a", "shop/b", "shop/e", "shopping/d"}},
		{"app", ListOptions{App: "shop"}, []string{"shop/a", "shop/b", "shop/e"}},
		{"node", ListOptions{Node: "n1"}, []string{"blog/c", "shop/a", "shop/e"}},
		{"labels", ListOptions{App: "shop", Labels: map[string]string{"tier": "web"}}, []string{"shop/a", "shop/b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, rev, err := s.List(ctx, api.KindPod, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if rev != base+5 {
				t.Errorf("list revision = %d, want %d", rev, base+5)
			}
			var got []string
			for _, o := range objs {
				got = append(got, api.KeyOf(o).ObjectKey())
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTxnAllOrNothing(t *testing.T) { eachBackend(t, testTxnAllOrNothing) }

func testTxnAllOrNothing(t *testing.T, b backend) {
	ctx := context.Background()
	s, base := b.open(t, Options{})
	if _, err := s.Create(ctx, testPod("shop", "taken", "")); err != nil {
		t.Fatal(err)
	}
	_, err := s.Txn(ctx, []Op{
		{Type: OpCreate, Object: testPod("shop", "new-1", "")},
		{Type: OpCreate, Object: testPod("shop", "taken", "")},
	})
	var te *TxnError
	if !errors.As(err, &te) || te.Index != 1 || !errors.Is(err, ErrExists) {
		t.Fatalf("txn error = %v, want step 1 ErrExists", err)
	}
	if _, err := s.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "new-1"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed txn left new-1 behind: %v", err)
	}
	if s.Revision() != base+1 {
		t.Fatalf("revision = %d after failed txn, want %d", s.Revision(), base+1)
	}
	out, err := s.Txn(ctx, []Op{
		{Type: OpCreate, Object: testPod("shop", "new-1", "")},
		{Type: OpDelete, Key: api.Key{Kind: api.KindPod, App: "shop", Name: "taken"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want0, want1 := base+2, base+3
	if b.sharedTxnRevision {
		want1 = want0
	}
	if out[0].Meta().ResourceVersion != want0 || out[1].Meta().ResourceVersion != want1 {
		t.Fatalf("txn revisions = %d, %d; want %d, %d", out[0].Meta().ResourceVersion, out[1].Meta().ResourceVersion, want0, want1)
	}
}

// collect reads n events from w or fails at the deadline.
func collect(t *testing.T, w *Watcher, n int) []Event {
	t.Helper()
	var out []Event
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case e, ok := <-w.C:
			if !ok {
				t.Fatalf("watch closed after %d events: %v", len(out), w.Err())
			}
			out = append(out, e)
		case <-deadline:
			t.Fatalf("got %d events, want %d", len(out), n)
		}
	}
	return out
}

func TestWatchFromOldRevisionExactlyOnceInOrder(t *testing.T) {
	eachBackend(t, testWatchFromOldRevisionExactlyOnceInOrder)
}

func testWatchFromOldRevisionExactlyOnceInOrder(t *testing.T, b backend) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, base := b.open(t, Options{WatchBuffer: 100000})
	const before, writers, each = 50, 8, 50
	for i := 0; i < before; i++ {
		if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("old-%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	// Watch from revision 10 while concurrent writers keep writing: the
	// watcher must see 11..end exactly once, in order, across the switch
	// from replay to live events.
	w, err := s.Watch(ctx, WatchOptions{Kind: api.KindPod, Since: base + 10})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("w%d-%d", g, i), "")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	total := before + writers*each
	events := collect(t, w, total-10)
	for i, e := range events {
		if e.Rev != base+int64(11+i) {
			t.Fatalf("event %d has revision %d, want %d", i, e.Rev, base+int64(11+i))
		}
		if e.Type != Added {
			t.Fatalf("event %d type %s", i, e.Type)
		}
		obj, err := e.Decode()
		if err != nil || obj.Meta().ResourceVersion != e.Rev {
			t.Fatalf("event %d object = %v, %v", i, obj, err)
		}
	}
	select {
	case e := <-w.C:
		t.Fatalf("extra event %d", e.Rev)
	default:
	}
}

func TestWatchFilters(t *testing.T) { eachBackend(t, testWatchFilters) }

func testWatchFilters(t *testing.T, b backend) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, base := b.open(t, Options{})
	w, err := s.Watch(ctx, WatchOptions{Kind: api.KindPod, Node: "n1", Since: base})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Create(ctx, testPod("shop", "a", ""))  // unbound: not for n1
	_, _ = s.Create(ctx, testPod("shop", "b", "n2")) // other node
	bound := p.(*api.Pod)
	bound.Spec.NodeName = "n1"
	if _, err := s.Update(ctx, bound); err != nil { // now bound to n1
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, api.KeyOf(bound), 0); err != nil {
		t.Fatal(err)
	}
	got := collect(t, w, 2)
	if got[0].Type != Modified || got[0].Key.Name != "a" || got[1].Type != Deleted || got[1].Rev != base+4 {
		t.Fatalf("events = %+v", got)
	}
}

func TestWatchCompacted(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{MaxEvents: 5})
	for i := 0; i < 20; i++ {
		if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("p-%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Compact()
	if err != nil || n != 15 {
		t.Fatalf("compact = %d, %v; want 15", n, err)
	}
	if _, err := s.Watch(ctx, WatchOptions{Since: 3}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("watch from 3: %v, want ErrCompacted", err)
	}
	w, err := s.Watch(ctx, WatchOptions{Since: 15})
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, w, 5); got[0].Rev != 16 || got[4].Rev != 20 {
		t.Fatalf("events from 15: %d..%d", got[0].Rev, got[4].Rev)
	}
}

func TestCompactByAge(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := openTest(t, Options{MaxEventAge: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("p-%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(2 * time.Minute)
	if _, err := s.Create(ctx, testPod("shop", "fresh", "")); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Compact(); err != nil || n != 3 {
		t.Fatalf("compact = %d, %v; want the 3 old events", n, err)
	}
	if s.CompactedRevision() != 3 {
		t.Fatalf("compacted revision = %d", s.CompactedRevision())
	}
}

func TestSlowWatcherIsClosed(t *testing.T) { eachBackend(t, testSlowWatcherIsClosed) }

func testSlowWatcherIsClosed(t *testing.T, b backend) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, base := b.open(t, Options{WatchBuffer: 4})
	slow, err := s.Watch(ctx, WatchOptions{Since: base})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := s.Watch(ctx, WatchOptions{Since: base})
	if err != nil {
		t.Fatal(err)
	}
	// Live watchers are cut off; one still catching up from the log is
	// only held back by its reader.
	b.waitLive(t, slow)
	// The fast watcher reads each event before the next write, so a busy
	// machine cannot put it behind too.
	for i := 0; i < 20; i++ {
		if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("p-%d", i), "")); err != nil {
			t.Fatal(err)
		}
		if got := collect(t, fast, 1); got[0].Rev != base+int64(i+1) {
			t.Fatalf("fast watcher got revision %d, want %d", got[0].Rev, base+int64(i+1))
		}
	}
	n := 0
	for range slow.C {
		n++
	}
	if !errors.Is(slow.Err(), ErrWatcherTooSlow) || n >= 20 {
		t.Fatalf("slow watcher: %d events, err %v; want closed with ErrWatcherTooSlow", n, slow.Err())
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "capstan.db")
	ctx := context.Background()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("p-%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Revision() != 10 {
		t.Fatalf("revision after reopen = %d", s.Revision())
	}
	objs, _, _ := s.List(ctx, api.KindPod, ListOptions{})
	if len(objs) != 10 {
		t.Fatalf("%d objects after reopen", len(objs))
	}
	if _, err := Open(path, Options{}); err == nil {
		t.Fatal("second Open of a file in use succeeded")
	}
}

func FuzzDecodeLog(f *testing.F) {
	f.Add(encodeLog(Added, 1, api.Key{Kind: api.KindPod, App: "a", Name: "b"}, "n1", []byte(`{}`)))
	f.Add([]byte{'M', 0, 0, 0, 0, 0, 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeLog(1, b)
		if err != nil {
			return
		}
		again := encodeLog(e.Type, logTime(b), e.Key, e.Node, e.Object)
		if string(again) != string(b) && b[0] == again[0] {
			// Non-minimal varints decode but re-encode shorter; only check
			// that the re-encoding decodes to the same event.
			e2, err := decodeLog(1, again)
			if err != nil || e2.Key != e.Key || e2.Node != e.Node || string(e2.Object) != string(e.Object) {
				t.Fatalf("round trip changed %+v -> %+v (%v)", e, e2, err)
			}
		}
	})
}

// TestGroupCommitIsolatesFailures: writes that fail in a shared
// transaction do not take the others down, and each gets its own answer.
func TestGroupCommitIsolatesFailures(t *testing.T) { eachBackend(t, testGroupCommitIsolatesFailures) }

func testGroupCommitIsolatesFailures(t *testing.T, b backend) {
	ctx := context.Background()
	s, base := b.open(t, Options{})
	const n = 64
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("p-%d", i)
			if i%2 == 0 {
				name = "contended" // 32 creates of one name: one wins
			}
			_, errs[i] = s.Create(ctx, testPod("shop", name, ""))
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case i%2 == 1 && err != nil:
			t.Fatalf("independent write %d failed: %v", i, err)
		case i%2 == 0 && err == nil:
			won++
		case i%2 == 0 && !errors.Is(err, ErrExists):
			t.Fatalf("contended write %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d contended creates succeeded, want 1", won)
	}
	objs, rev, _ := s.List(ctx, api.KindPod, ListOptions{})
	if len(objs) != n/2+1 || rev != base+int64(n/2+1) {
		t.Fatalf("%d objects at revision %d, want %d at %d", len(objs), rev, n/2+1, base+int64(n/2+1))
	}
	s.Close()
	if _, err := s.Create(ctx, testPod("shop", "late", "")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// TestWatchFromFutureRevision: a watch from a revision the store has not
// reached is refused; it used to be accepted and then deliver the events
// below it.
func TestWatchFromFutureRevision(t *testing.T) { eachBackend(t, testWatchFromFutureRevision) }

func testWatchFromFutureRevision(t *testing.T, b backend) {
	ctx := t.Context()
	s, base := b.open(t, Options{})
	for i := 0; i < 3; i++ {
		if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("p-%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Watch(ctx, WatchOptions{Since: base + 10}); !errors.Is(err, ErrFutureRevision) {
		t.Fatalf("watch from 10 with the store at 3: %v, want ErrFutureRevision", err)
	}
	w, err := s.Watch(ctx, WatchOptions{Since: base + 3})
	if err != nil {
		t.Fatalf("watch from the current revision: %v", err)
	}
	if _, err := s.Create(ctx, testPod("shop", "next", "")); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, w, 1); got[0].Rev != base+4 {
		t.Fatalf("first event from 3 has revision %d, want 4", got[0].Rev)
	}
}

func TestSlowCommitWarnsOnceASecond(t *testing.T) {
	var buf bytes.Buffer
	s := openTest(t, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	var st bolt.TxStats
	st.IncWriteTime(180 * time.Millisecond)
	s.slowCommit(200*time.Millisecond, 15*time.Millisecond, &st, 64)
	s.slowCommit(300*time.Millisecond, 15*time.Millisecond, &st, 64) // within the second: counted only
	out := buf.String()
	if strings.Count(out, "slow commit") != 1 || !strings.Contains(out, "took=200ms writes=64 apply=15ms") || !strings.Contains(out, "disk=180ms") {
		t.Fatalf("want one warning of the first slow commit, got:\n%s", out)
	}
	s.slowLogged = s.slowLogged.Add(-time.Second)
	s.slowCommit(250*time.Millisecond, 15*time.Millisecond, &st, 8)
	if out := buf.String(); strings.Count(out, "slow commit") != 2 || !strings.Contains(out, "slow_commits=2") {
		t.Fatalf("want a second warning counting both slow commits since the first, got:\n%s", out)
	}
}

// Open refuses a bbolt file that is not a Capstan store (an etcd snapshot
// unpacked where the store goes) and leaves it as it was; a new file and a
// Capstan store open.
func TestOpenRefusesForeignBoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "capstan.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"key", "meta", "lease"} { // as an etcd member's database
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := Open(path, Options{}); !errors.Is(err, ErrNotStore) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open of an etcd database: %v, want ErrNotStore", err)
	}
	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	})
	db.Close()
	if strings.Join(names, ",") != "key,lease,meta" {
		t.Fatalf("the refused file's buckets became %v", names)
	}

	fresh := filepath.Join(t.TempDir(), "capstan.db")
	for range 2 { // made, then opened again
		s, err := Open(fresh, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}
