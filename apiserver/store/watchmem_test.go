package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// bigPod is a pod of about size bytes of JSON.
// nearlyMiB is the size of a big pod's filler: 1 MiB less room for the
// rest of the pod, which the cap of a pod's encoding leaves.
const nearlyMiB = 1<<20 - 4<<10

func bigPod(name string, size int) *api.Pod {
	p := testPod("shop", name, "")
	p.Metadata.Labels["filler"] = strings.Repeat("x", size)
	return p
}

// waitUntil polls cond until it holds or fails the test at the deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitLive waits until w has caught up and gets live events.
func waitLive(t *testing.T, w *Watcher) {
	t.Helper()
	waitUntil(t, "the watcher to catch up", func() bool {
		_, live := w.Progress()
		return live
	})
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestSlowWatchersFromZeroShareRecords: watchers that catch up from
// revision 0 over large records and never read hold one batch of at most
// WatchBufferBytes, shared between them, instead of a copy of the log
// each (8 such watchers over 2.5 MB Node statuses took 600 MB).
func TestSlowWatchersFromZeroShareRecords(t *testing.T) {
	const records, size, watchers = 40, nearlyMiB, 8
	const budget = 15 << 19 // 7.5 MiB: 7 events of nearly 1 MiB fit, not 8
	s := openTest(t, Options{WatchBufferBytes: budget})
	ctx := t.Context()
	for i := 0; i < records; i++ {
		if _, err := s.Create(ctx, bigPod(fmt.Sprintf("p-%d", i), size)); err != nil {
			t.Fatal(err)
		}
	}
	// Other kinds' events are not copied for a pod watcher either.
	n := api.KindNode.New()
	n.Meta().Name = "n1"
	if _, err := s.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	base := heapAlloc()
	ws := make([]*Watcher, watchers)
	for i := range ws {
		w, err := s.Watch(ctx, WatchOptions{Kind: api.KindPod})
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
	}
	// Each feeder has queued its first batch (the 7 events that fit the
	// budget) and is stuck sending the first of them, 6 left queued.
	waitUntil(t, "every watcher to fill its first batch", func() bool {
		for _, w := range ws {
			w.mu.Lock()
			stuck := w.inHand && len(w.queue) == 6
			w.mu.Unlock()
			if !stuck {
				return false
			}
		}
		return true
	})
	for i, w := range ws {
		w.mu.Lock()
		if w.bytes > budget {
			t.Errorf("watcher %d holds %d bytes, over its %d", i, w.bytes, budget)
		}
		for j, e := range w.queue {
			if e != ws[0].queue[j] {
				t.Errorf("watcher %d: event %d is a copy of its own, not shared", i, e.Rev)
			}
		}
		w.mu.Unlock()
	}
	// What the watchers hold is one shared batch (plus the event each
	// has in hand), not a batch or a log each.
	grew := int64(heapAlloc()) - int64(base)
	t.Logf("%d slow watchers grew the heap by %d MiB", watchers, grew>>20)
	if grew > 3*budget {
		t.Fatalf("%d slow watchers grew the heap by %d MiB; want at most %d MiB", watchers, grew>>20, 3*budget>>20)
	}
	// A reader still gets every event, in order.
	got := collect(t, ws[0], records)
	for i, e := range got {
		if e.Rev != int64(i+1) || len(e.Object) < size {
			t.Fatalf("event %d: revision %d, %d bytes", i, e.Rev, len(e.Object))
		}
	}
}

// TestLiveWatcherCutOffByBytes: a live watcher that stops reading is cut
// off once the events queued for it hold more than WatchBufferBytes, long
// before it is WatchBuffer events behind; a reader next to it gets every
// event.
func TestLiveWatcherCutOffByBytes(t *testing.T) { eachBackend(t, testLiveWatcherCutOffByBytes) }

func testLiveWatcherCutOffByBytes(t *testing.T, b backend) {
	const records, size = 12, nearlyMiB
	s, base := b.open(t, Options{WatchBuffer: 1024, WatchBufferBytes: 4 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := s.Watch(ctx, WatchOptions{Kind: api.KindPod, Since: base})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := s.Watch(ctx, WatchOptions{Kind: api.KindPod, Since: base})
	if err != nil {
		t.Fatal(err)
	}
	b.waitLive(t, slow)
	// The fast watcher reads each event before the next write.
	for i := 0; i < records; i++ {
		if _, err := s.Create(ctx, bigPod(fmt.Sprintf("p-%d", i), size)); err != nil {
			t.Fatal(err)
		}
		if got := collect(t, fast, 1); got[0].Rev != base+int64(i+1) {
			t.Fatalf("fast watcher got revision %d, want %d", got[0].Rev, base+int64(i+1))
		}
	}
	closed := make(chan int)
	go func() {
		n := 0
		for range slow.C {
			n++
		}
		closed <- n
	}()
	select {
	case n := <-closed:
		if !errors.Is(slow.Err(), ErrWatcherTooSlow) || n >= records {
			t.Fatalf("slow watcher: %d events, err %v; want cut off with ErrWatcherTooSlow", n, slow.Err())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a watcher 12 MiB behind with a 4 MiB bound was not cut off")
	}
}
