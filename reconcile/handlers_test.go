package reconcile

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestIndexMixesKindsAndFollowsUpdates(t *testing.T) {
	x := NewIndex(func(o api.Object) []string {
		if ow := o.Meta().Owner; ow != nil {
			return []string{ow.UID}
		}
		return nil
	})
	h := x.Handler()
	owned := func(k api.Kind, name, owner string) api.Object {
		o := k.New()
		o.Meta().App, o.Meta().Name = "shop", name
		if owner != "" {
			o.Meta().Owner = &api.OwnerRef{Kind: api.KindApp, Name: "shop", UID: owner}
		}
		return o
	}
	w, s := owned(api.KindWorkload, "web", "u1"), owned(api.KindService, "web", "u1")
	h.OnAdd(w)
	h.OnAdd(s)
	if n := x.Len("u1"); n != 2 {
		t.Fatalf("a workload and a service of the same name: %d in the bucket, want 2", n)
	}
	s2 := owned(api.KindService, "web", "u2")
	h.OnUpdate(s, s2)
	if x.Len("u1") != 1 || x.Len("u2") != 1 {
		t.Fatalf("after an owner change: u1 has %d, u2 has %d; want 1 and 1", x.Len("u1"), x.Len("u2"))
	}
	h.OnDelete(w)
	h.OnDelete(s2)
	if x.Len("u1")+x.Len("u2") != 0 {
		t.Fatal("deleted objects are still indexed")
	}
}

func TestWrittenPrefersNewer(t *testing.T) {
	var w Written
	obj := func(rv int64) api.Object {
		o := api.KindWorkload.New()
		o.Meta().ResourceVersion = rv
		return o
	}
	if got := w.Newer("k", obj(3)); got.Meta().ResourceVersion != 3 {
		t.Fatal("without a write the cache wins")
	}
	w.Put("k", obj(5))
	if got := w.Newer("k", obj(4)); got.Meta().ResourceVersion != 5 {
		t.Fatal("a stale cache must not hide our newer write")
	}
	if got := w.Newer("k", nil); got.Meta().ResourceVersion != 5 {
		t.Fatal("a cache without the object must not hide our write")
	}
	if got := w.Newer("k", obj(6)); got.Meta().ResourceVersion != 6 {
		t.Fatal("a cache that caught up wins")
	}
	if got := w.Newer("k", obj(1)); got.Meta().ResourceVersion != 1 {
		t.Fatal("the write was not forgotten once the cache caught up")
	}
}

func TestParallel(t *testing.T) {
	var n, live, peak atomic.Int32
	items := make([]int, 100)
	err := Parallel(4, items, func(int) error {
		cur := live.Add(1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		defer live.Add(-1)
		if n.Add(1)%10 == 0 {
			return errors.New("boom")
		}
		return nil
	})
	if n.Load() != 100 {
		t.Fatalf("%d calls, want 100", n.Load())
	}
	if peak.Load() > 4 {
		t.Fatalf("%d calls at once, want at most 4", peak.Load())
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 10 {
		t.Fatalf("errors: %v; want the 10 failures joined", err)
	}
}
