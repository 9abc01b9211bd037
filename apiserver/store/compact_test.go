package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// fillLog writes n change-log events: updates of a few pods, 1,000 to a
// transaction.
func fillLog(tb testing.TB, s *Bolt, n int) {
	tb.Helper()
	ctx := context.Background()
	const pods = 100
	for i := 0; i < pods; i++ {
		if _, err := s.Create(ctx, testPod("fill", fmt.Sprintf("p-%d", i), "")); err != nil {
			tb.Fatal(err)
		}
	}
	for done := pods; done < n; {
		ops := make([]Op, 0, 1000)
		for len(ops) < 1000 && done < n {
			ops = append(ops, Op{Type: OpUpdate, Object: testPod("fill", fmt.Sprintf("p-%d", done%pods), "")})
			done++
		}
		if _, err := s.Txn(ctx, ops); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestCompactInBoundedBatches: dropping 100,000 events happens in batches
// of at most CompactBatch events, each committed on its own, so writers
// get through between them (one transaction held every writer for 27 s).
func TestCompactInBoundedBatches(t *testing.T) {
	const events, keep, batch = 100_000, 1_000, 1_000
	s := openTest(t, Options{MaxEvents: keep, CompactBatch: batch})
	fillLog(t, s, events)
	var batches []int
	wroteBetween := false
	s.compactHook = func(n int) {
		batches = append(batches, n)
		if len(batches) != 1 {
			return
		}
		// A writer gets through while compaction is under way, and the
		// first batch is already visible to watchers.
		if _, err := s.Create(context.Background(), testPod("shop", "between", "")); err != nil {
			t.Errorf("create between compaction batches: %v", err)
			return
		}
		if c := s.CompactedRevision(); c != batch {
			t.Errorf("compacted revision after the first batch = %d, want %d", c, batch)
			return
		}
		wroteBetween = true
	}
	n, err := s.Compact()
	if err != nil {
		t.Fatal(err)
	}
	// The create in between took one more revision, so one more event
	// is beyond the kept count.
	if want := events + 1 - keep; n != want {
		t.Fatalf("compact dropped %d events, want %d", n, want)
	}
	sum := 0
	for i, b := range batches {
		if b > batch {
			t.Fatalf("batch %d deleted %d events, more than %d", i, b, batch)
		}
		sum += b
	}
	if sum != n || len(batches) < n/batch {
		t.Fatalf("%d batches deleting %d events; want at least %d batches deleting %d", len(batches), sum, n/batch, n)
	}
	if !wroteBetween {
		t.Fatal("no write got through between compaction batches")
	}
	if c := s.CompactedRevision(); c != int64(n) {
		t.Fatalf("compacted revision = %d, want %d", c, n)
	}
	w, err := s.Watch(t.Context(), WatchOptions{Kind: api.KindPod, Since: int64(n)})
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, w, keep); got[0].Rev != int64(n)+1 || got[keep-1].Rev != int64(events+1) {
		t.Fatalf("events kept: %d..%d, want %d..%d", got[0].Rev, got[keep-1].Rev, n+1, events+1)
	}
	if n, err := s.Compact(); err != nil || n != 0 {
		t.Fatalf("second compact = %d, %v; want nothing to drop", n, err)
	}
}
