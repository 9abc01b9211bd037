package store

import (
	"fmt"
	"testing"
)

// TestProgressNeverSplitsATransaction: a watcher that has read only the
// first event of a transaction must not be told it has everything up to
// the transaction's last revision; a bookmark there would make a client
// resuming from it skip the rest of the transaction. (On etcd every event
// of a transaction has one revision, and the progress moved past it once
// the first was queued.)
func TestProgressNeverSplitsATransaction(t *testing.T) {
	eachBackend(t, testProgressNeverSplitsATransaction)
}

func testProgressNeverSplitsATransaction(t *testing.T, b backend) {
	ctx := t.Context()
	s, base := b.open(t, Options{})
	w, err := s.Watch(ctx, WatchOptions{Since: base})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		out, err := s.Txn(ctx, []Op{
			{Type: OpCreate, Object: testPod("shop", fmt.Sprintf("a-%d", i), "")},
			{Type: OpCreate, Object: testPod("shop", fmt.Sprintf("b-%d", i), "")},
			{Type: OpCreate, Object: testPod("shop", fmt.Sprintf("c-%d", i), "")},
		})
		if err != nil {
			t.Fatal(err)
		}
		last := out[2].Meta().ResourceVersion
		for j := range 3 {
			collect(t, w, 1)
			if rev, ok := w.Progress(); j < 2 && ok && rev >= last {
				t.Fatalf("transaction %d: after %d of its 3 events, progress says %d (the transaction is at %d)", i, j+1, rev, last)
			}
		}
	}
}
