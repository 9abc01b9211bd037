package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/internal/etcdtest"
)

// slotHooks give each service one of a few slots through Allocations, as
// the API server's allocator gives VIPs: the slot it asks for when it is
// free, else the first free slot; released on delete.
type slotHooks struct{ slots int }

func (h slotHooks) BeforeCreate(tx Allocations, obj api.Object) error {
	owner := api.KeyOf(obj).String()
	if want := obj.Meta().Annotations["slot"]; want != "" {
		if holder, taken := tx.Get("slot/" + want); taken && holder != owner {
			return fmt.Errorf("slot %s is taken by %s", want, holder)
		}
		return tx.Put("slot/"+want, owner)
	}
	for i := range h.slots {
		k := "slot/" + strconv.Itoa(i)
		if _, taken := tx.Get(k); !taken {
			obj.Meta().Annotations = map[string]string{"slot": strconv.Itoa(i)}
			return tx.Put(k, owner)
		}
	}
	return errors.New("no free slot")
}
func (slotHooks) BeforeUpdate(Allocations, api.Object, api.Object) error { return nil }
func (slotHooks) AfterDelete(tx Allocations, obj api.Object) error {
	return tx.Delete("slot/" + obj.Meta().Annotations["slot"])
}

func testService(name string) *api.Service {
	s := api.KindService.New().(*api.Service)
	s.Metadata = api.ObjectMeta{Name: name, App: "shop"}
	return s
}

// Two servers on one etcd racing for allocations never hand one out
// twice: the allocation is read and written in the create's transaction,
// which commits only if no key it read has changed. The loser runs again
// on the object as it was sent (its re-run once asked for the slot the
// lost run had picked, and failed: "taken").
func TestEtcdAllocationsAcrossServers(t *testing.T) {
	ctx := t.Context()
	const slots = 16
	a := openEtcdTest(t, Options{})
	b, err := OpenEtcd(ctx, EtcdOptions{Endpoints: testCluster.Endpoints(), Prefix: a.opts.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.SetHooks(slotHooks{slots})
	b.SetHooks(slotHooks{slots})
	var wg sync.WaitGroup
	errs := make(chan error, slots)
	for i := range slots {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Create(ctx, testService(fmt.Sprintf("svc-%d", i))); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("create: %v", err)
	}
	objs, _, err := a.List(ctx, api.KindService, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owner := map[string]string{}
	for _, o := range objs {
		slot := o.Meta().Annotations["slot"]
		if prev, dup := owner[slot]; dup {
			t.Fatalf("slot %s given to %s and %s", slot, prev, o.Meta().Name)
		}
		owner[slot] = o.Meta().Name
	}
	if len(owner) != slots {
		t.Fatalf("%d slots taken by %d services", len(owner), len(objs))
	}
	if _, err := b.Create(ctx, testService("one-too-many")); err == nil {
		t.Fatal("a create got a slot from a full range")
	}
	// A delete on one server frees the slot for the other.
	gone, err := a.Delete(ctx, api.Key{Kind: api.KindService, App: "shop", Name: "svc-3"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Create(ctx, testService("late"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := again.Meta().Annotations["slot"], gone.Meta().Annotations["slot"]; got != want {
		t.Fatalf("the freed slot was %s, the next create got %s", want, got)
	}
}

// restoreCluster brings every stopped member back and heals every
// partition when the test ends, for the tests after it.
func restoreCluster(t *testing.T) {
	t.Cleanup(func() {
		for _, m := range testCluster.Members {
			m.Heal()
			if !m.Running() {
				if err := m.Restart(); err != nil {
					t.Errorf("restart %s: %v", m.Name, err)
				}
			}
		}
		if err := testCluster.WaitLeader(30 * time.Second); err != nil {
			t.Error(err)
		}
	})
}

// pairTxn creates a-i and b-i in one transaction.
func pairTxn(ctx context.Context, s Store, i int) ([]api.Object, error) {
	return s.Txn(ctx, []Op{
		{Type: OpCreate, Object: testPod("shop", fmt.Sprintf("a-%d", i), "")},
		{Type: OpCreate, Object: testPod("shop", fmt.Sprintf("b-%d", i), "")},
	})
}

// writeUntil runs writers of pair transactions until stop, and returns
// the acknowledged ones (index -> revision) and how many failed.
func writeUntil(ctx context.Context, s Store, writers int, stop <-chan struct{}, next func() int) (map[int]int64, int) {
	var mu sync.Mutex
	acked, failed := map[int]int64{}, 0
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := next()
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				out, err := pairTxn(cctx, s, i)
				cancel()
				mu.Lock()
				if err == nil {
					acked[i] = out[0].Meta().ResourceVersion
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return acked, failed
}

// checkPairs: every acknowledged pair is stored at its revision, and no
// pair is half there (a transaction cut by the failure applied fully or
// not at all).
func checkPairs(t *testing.T, s Store, acked map[int]int64, tried int) {
	t.Helper()
	objs, _, err := s.List(t.Context(), api.KindPod, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]int64{}
	for _, o := range objs {
		have[o.Meta().Name] = o.Meta().ResourceVersion
	}
	for i, rev := range acked {
		if have[fmt.Sprintf("a-%d", i)] != rev || have[fmt.Sprintf("b-%d", i)] != rev {
			t.Fatalf("acknowledged pair %d at revision %d: stored a at %d, b at %d", i, rev, have[fmt.Sprintf("a-%d", i)], have[fmt.Sprintf("b-%d", i)])
		}
	}
	for i := range tried {
		_, a := have[fmt.Sprintf("a-%d", i)]
		_, b := have[fmt.Sprintf("b-%d", i)]
		if a != b {
			t.Fatalf("pair %d is half written: a %v, b %v", i, a, b)
		}
	}
}

// The etcd leader is killed while transactions are in flight: every
// acknowledged transaction is kept, none is half applied, and writes go
// on once the other two members elect a new leader.
func TestEtcdMemberKilledMidTransaction(t *testing.T) {
	restoreCluster(t)
	ctx := t.Context()
	s := openEtcdTest(t, Options{})
	var mu sync.Mutex
	n := 0
	next := func() int { mu.Lock(); defer mu.Unlock(); n++; return n - 1 }
	stop := make(chan struct{})
	result := make(chan map[int]int64, 1)
	go func() {
		acked, _ := writeUntil(ctx, s, 8, stop, next)
		result <- acked
	}()
	waitUntil(t, "writes before the kill", func() bool { mu.Lock(); defer mu.Unlock(); return n > 50 })
	leader := testCluster.Leader()
	if leader == nil {
		t.Fatal("no etcd leader")
	}
	leader.Stop()
	mu.Lock()
	atKill := n
	mu.Unlock()
	// Writes succeed again through the other members.
	waitUntil(t, "a write after the kill", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := s.Create(cctx, testPod("shop", fmt.Sprintf("after-%d", time.Now().UnixNano()), ""))
		return err == nil
	})
	waitUntil(t, "writes after the kill", func() bool { mu.Lock(); defer mu.Unlock(); return n > atKill+50 })
	close(stop)
	acked := <-result
	mu.Lock()
	tried := n
	mu.Unlock()
	checkPairs(t, s, acked, tried)
}

// The server is cut off from the etcd leader (its connections to the
// leader drop and new ones are refused; the members still reach each
// other): writes go on through the followers, and a watch opened before
// the cut delivers every write exactly once, in order.
func TestEtcdPartitionFromLeader(t *testing.T) {
	restoreCluster(t)
	ctx := t.Context()
	s := openEtcdTest(t, Options{WatchBuffer: 100_000})
	base := s.Revision()
	w, err := s.Watch(ctx, WatchOptions{Kind: api.KindPod, Since: base})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	next := func() int { mu.Lock(); defer mu.Unlock(); n++; return n - 1 }
	stop := make(chan struct{})
	result := make(chan map[int]int64, 1)
	go func() {
		acked, failed := writeUntil(ctx, s, 4, stop, next)
		t.Logf("partition: %d writes failed", failed)
		result <- acked
	}()
	waitUntil(t, "writes before the partition", func() bool { mu.Lock(); defer mu.Unlock(); return n > 30 })
	leader := testCluster.Leader()
	if leader == nil {
		t.Fatal("no etcd leader")
	}
	if dropped := leader.Partition(); dropped == 0 {
		t.Fatal("the server had no connection to the etcd leader to cut")
	}
	mu.Lock()
	atCut := n
	mu.Unlock()
	waitUntil(t, "writes through the followers", func() bool { mu.Lock(); defer mu.Unlock(); return n > atCut+50 })
	close(stop)
	acked := <-result
	mu.Lock()
	tried := n
	mu.Unlock()
	checkPairs(t, s, acked, tried)

	// The watch saw each stored pod once, in revision order.
	objs, rev, err := s.List(ctx, api.KindPod, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var last int64
	for len(seen) < len(objs) {
		e := collect(t, w, 1)[0]
		if e.Rev < last {
			t.Fatalf("event at revision %d after %d", e.Rev, last)
		}
		last = e.Rev
		if e.Type != Added || seen[e.Key.Name] {
			t.Fatalf("event %s %s at %d: want each pod added once", e.Type, e.Key.Name, e.Rev)
		}
		seen[e.Key.Name] = true
	}
	if last != rev {
		t.Fatalf("the watch reached revision %d, the list %d", last, rev)
	}
}

// Compaction while a watcher is behind: a watcher within its bounds still
// gets every event in order (etcd sent them before the compaction); one
// cut off as too slow cannot resume from its old revision (ErrCompacted)
// and relists instead; a watch from the compacted revision works.
func TestEtcdCompactionUnderSlowWatcher(t *testing.T) {
	ctx := t.Context()
	s := openEtcdTest(t, Options{WatchBuffer: 8})
	base := s.Revision()
	behind, err := s.Watch(ctx, WatchOptions{Since: base})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := OpenEtcd(ctx, EtcdOptions{Endpoints: testCluster.Endpoints(), Prefix: s.opts.Prefix, WatchBuffer: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	patient, err := s2.Watch(ctx, WatchOptions{Since: base})
	if err != nil {
		t.Fatal(err)
	}
	const writes = 40
	for i := range writes {
		if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("p-%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(ctx, base+writes); err != nil {
		t.Fatal(err)
	}
	for i, e := range collect(t, patient, writes) {
		if e.Rev != base+int64(i+1) {
			t.Fatalf("event %d at revision %d, want %d", i, e.Rev, base+int64(i+1))
		}
	}
	n := 0
	var last int64
	for e := range behind.C {
		n++
		last = e.Rev
	}
	if !errors.Is(behind.Err(), ErrWatcherTooSlow) || n >= writes {
		t.Fatalf("slow watcher: %d events, err %v; want cut off with ErrWatcherTooSlow", n, behind.Err())
	}
	if _, err := s.Watch(ctx, WatchOptions{Since: max(last, base)}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("resume from %d after compaction at %d: %v, want ErrCompacted", last, base+writes, err)
	}
	_, rev, err := s.List(ctx, api.KindPod, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, WatchOptions{Since: rev})
	if err != nil {
		t.Fatalf("watch from the list's revision %d: %v", rev, err)
	}
	if _, err := s.Create(ctx, testPod("shop", "after", "")); err != nil {
		t.Fatal(err)
	}
	if e := collect(t, w, 1)[0]; e.Key.Name != "after" {
		t.Fatalf("after relist: event for %s", e.Key.Name)
	}
}

// TestEtcdProgressWaitsForTheWholeTransaction: the events of an etcd
// transaction share its revision; while only the first has been queued
// and read, Progress must not report that revision (a bookmark there
// would make a resuming client skip the others). The hook holds the
// watch between the transaction's events.
func TestEtcdProgressWaitsForTheWholeTransaction(t *testing.T) {
	ctx := t.Context()
	s := openEtcdTest(t, Options{})
	held, release := make(chan struct{}), make(chan struct{})
	s.pushHook = func(e *Event) {
		if e.Key.Name == "a" {
			held <- struct{}{}
			<-release
		}
	}
	w, err := s.Watch(ctx, WatchOptions{Since: s.Revision()})
	if err != nil {
		t.Fatal(err)
	}
	txn := make(chan int64, 1)
	go func() {
		out, err := s.Txn(ctx, []Op{
			{Type: OpCreate, Object: testPod("shop", "a", "")},
			{Type: OpCreate, Object: testPod("shop", "b", "")},
		})
		if err != nil {
			t.Error(err)
			txn <- 0
			return
		}
		txn <- out[0].Meta().ResourceVersion
	}()
	<-held
	rev := <-txn
	if e := collect(t, w, 1)[0]; e.Key.Name != "a" {
		t.Fatalf("first event for %s", e.Key.Name)
	}
	if got, ok := w.Progress(); ok && got >= rev {
		t.Fatalf("progress %d with the transaction at %d half delivered", got, rev)
	}
	close(release)
	if e := collect(t, w, 1)[0]; e.Key.Name != "b" {
		t.Fatalf("second event for %s", e.Key.Name)
	}
	waitUntil(t, "progress to reach the transaction", func() bool {
		got, ok := w.Progress()
		return ok && got >= rev
	})
}

// Two of three members down: writes fail with an error instead of
// hanging past their deadline, an open watch ends (it requires a leader)
// instead of going quiet, and writes work again once a quorum is back.
func TestEtcdQuorumLost(t *testing.T) {
	restoreCluster(t)
	ctx := t.Context()
	prefix := openEtcdTest(t, Options{}).opts.Prefix
	s, err := OpenEtcd(ctx, EtcdOptions{Endpoints: testCluster.Endpoints(), Prefix: prefix, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := s.Watch(ctx, WatchOptions{Since: s.Revision()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, testPod("shop", "before", "")); err != nil {
		t.Fatal(err)
	}
	collect(t, w, 1)
	testCluster.Members[0].Stop()
	testCluster.Members[1].Stop()
	_, err = s.Create(ctx, testPod("shop", "without-quorum", ""))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a write without a quorum: %v, want ErrUnavailable", err)
	}
	// The documents (the token table) too, on a context without a
	// deadline, as the token table's callers give.
	docErr := make(chan error, 2)
	go func() {
		_, _, err := s.Document(context.Background(), "tokens")
		docErr <- err
		_, err = s.PutDocument(context.Background(), "tokens", []byte("[]"), 0)
		docErr <- err
	}()
	for _, what := range []string{"a document read", "a document write"} {
		select {
		case err := <-docErr:
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("%s without a quorum: %v, want ErrUnavailable", what, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s without a quorum hangs", what)
		}
	}
	select {
	case _, ok := <-w.C:
		for ok {
			_, ok = <-w.C
		}
		if w.Err() == nil {
			t.Fatal("the watch ended without an error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the watch went on without a leader")
	}
	for _, m := range testCluster.Members[:2] {
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "a write with the quorum back", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := s.Create(cctx, testPod("shop", fmt.Sprintf("after-%d", time.Now().UnixNano()), ""))
		return err == nil
	})
}

// Start compacts etcd's history each interval up to the revision it saw
// an interval before: a watch from before that is refused, one from after
// it works.
func TestEtcdStartCompacts(t *testing.T) {
	ctx := t.Context()
	prefix := openEtcdTest(t, Options{}).opts.Prefix
	s, err := OpenEtcd(ctx, EtcdOptions{Endpoints: testCluster.Endpoints(), Prefix: prefix, CompactInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := s.Revision()
	for i := range 3 {
		if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("p-%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Start(sctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitUntil(t, "the history before the writes to be compacted", func() bool {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel() // not compacted yet: drop this watch
		_, err := s.Watch(wctx, WatchOptions{Since: base})
		return errors.Is(err, ErrCompacted)
	})
	if _, err := s.Watch(ctx, WatchOptions{Since: s.Revision()}); err != nil {
		t.Fatalf("watch from the current revision: %v", err)
	}
}

// An idle watch from revision 0 (a fresh cluster, nothing of its kind
// written) can still say how far it is: Progress waits for etcd's
// progress notification instead of answering "don't know" until an event
// comes, so the API's end-of-lifetime bookmark is sent.
func TestEtcdProgressOfAnIdleWatch(t *testing.T) {
	cluster, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx := t.Context()
	s, err := OpenEtcd(ctx, EtcdOptions{Endpoints: cluster.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := s.Watch(ctx, WatchOptions{Kind: api.KindPod})
	if err != nil {
		t.Fatal(err)
	}
	cur := s.Revision()
	rev, ok := w.Progress()
	if !ok || rev < cur {
		t.Fatalf("progress of an idle watch: %d, %v; want at least %d", rev, ok, cur)
	}
}
