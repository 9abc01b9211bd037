package store

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestGroupCommitRerunKeepsCompareAndSwap: when a write fails inside a
// group commit, the others run again; their compare-and-swap must compare
// the resourceVersion the caller sent, not the one the aborted run
// stamped on the object (every independent update failed as a conflict).
func TestGroupCommitRerunKeepsCompareAndSwap(t *testing.T) {
	eachBackend(t, testGroupCommitRerunKeepsCompareAndSwap)
}

func testGroupCommitRerunKeepsCompareAndSwap(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t, Options{})
	const n = 64
	pods := make([]api.Object, n)
	for i := range n {
		p, err := s.Create(ctx, testPod("shop", fmt.Sprintf("p-%d", i), ""))
		if err != nil {
			t.Fatal(err)
		}
		pods[i] = p
	}
	for round := range 5 {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := api.Clone(pods[i].(*api.Pod))
				p.Metadata.Labels["round"] = fmt.Sprint(round)
				if i%2 == 0 {
					p.Metadata.ResourceVersion = 1 // stale: fails, and makes its group run again
					_, errs[i] = s.Txn(ctx, []Op{{Type: OpUpdate, Object: p}})
					return
				}
				out, err := s.Txn(ctx, []Op{{Type: OpUpdate, Object: p}})
				if err == nil {
					pods[i] = out[0]
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i := 1; i < n; i += 2 {
			if errs[i] != nil {
				t.Fatalf("round %d: independent update %d failed: %v", round, i, errs[i])
			}
		}
	}
}
