package client_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
)

func pod(name string) *api.Pod {
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: name, App: "shop"}
	p.Spec.Containers = []api.Container{{Name: "web", Image: "example/web:v1"}}
	return p
}

// recorder logs what handlers saw, per key.
type recorder struct {
	mu     sync.Mutex
	revs   map[string][]int64 // revisions seen per key, in order
	events int
}

func (r *recorder) handler() client.Handler {
	rec := func(o api.Object) {
		r.mu.Lock()
		defer r.mu.Unlock()
		k := o.Meta().Name
		r.revs[k] = append(r.revs[k], o.Meta().ResourceVersion)
		r.events++
	}
	return client.Handler{
		OnAdd:    rec,
		OnUpdate: func(_, o api.Object) { rec(o) },
		OnDelete: rec,
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// checkCache compares the informer's cache with the store.
func checkCache(t *testing.T, inf *client.Informer, st *store.Bolt) {
	t.Helper()
	objs, rev, err := st.List(context.Background(), api.KindPod, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("informer at revision %d", rev), func() bool { return inf.Revision() >= rev })
	cached := inf.List()
	if len(cached) != len(objs) {
		t.Fatalf("cache has %d objects, store %d", len(cached), len(objs))
	}
	for i := range objs {
		if api.KeyOf(cached[i]) != api.KeyOf(objs[i]) || cached[i].Meta().ResourceVersion != objs[i].Meta().ResourceVersion {
			t.Fatalf("cache[%d] = %s@%d, store %s@%d", i, api.KeyOf(cached[i]), cached[i].Meta().ResourceVersion, api.KeyOf(objs[i]), objs[i].Meta().ResourceVersion)
		}
	}
}

func TestInformerResumesAcrossServerRestart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := apiservertest.Start(t, apiservertest.Options{})
	rec := &recorder{revs: map[string][]int64{}}
	inf := client.NewInformer(c.Client, api.KindPod, client.ListOptions{}, nil)
	inf.AddHandler(rec.handler())
	done := make(chan error, 1)
	go func() { done <- inf.Start(ctx) }()
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	writes := 0
	for i := 0; i < 20; i++ {
		if _, err := c.Client.Create(ctx, pod(fmt.Sprintf("p%d", i))); err != nil {
			t.Fatal(err)
		}
		writes++
	}
	checkCache(t, inf, c.Store)

	// Restart the server on the same address mid-watch.
	addr := c.Server.Addr()
	c.Stop()
	c2 := apiservertest.Start(t, apiservertest.Options{DataDir: c.DataDir, Listen: addr})
	for i := 0; i < 20; i++ {
		k := api.Key{Kind: api.KindPod, App: "shop", Name: fmt.Sprintf("p%d", i)}
		switch i % 3 {
		case 0:
			if _, err := c2.Client.Delete(ctx, k, client.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		default:
			obj, err := c2.Client.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			obj.Meta().Labels = map[string]string{"round": "2"}
			if _, err := c2.Client.Update(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
		writes++
	}
	for i := 20; i < 30; i++ {
		if _, err := c2.Client.Create(ctx, pod(fmt.Sprintf("p%d", i))); err != nil {
			t.Fatal(err)
		}
		writes++
	}
	checkCache(t, inf, c2.Store)

	// Exactly one handler call per write, in revision order per key.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.events != writes {
		t.Fatalf("handlers saw %d events for %d writes", rec.events, writes)
	}
	for k, revs := range rec.revs {
		for i := 1; i < len(revs); i++ {
			if revs[i] <= revs[i-1] {
				t.Fatalf("%s: revisions out of order or repeated: %v", k, revs)
			}
		}
	}
	cancel()
	<-done
}

func TestInformerRelistsAfterCompaction(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := apiservertest.Start(t, apiservertest.Options{Store: store.Options{MaxEvents: 3}})
	for i := 0; i < 5; i++ {
		if _, err := c.Client.Create(ctx, pod(fmt.Sprintf("p%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{revs: map[string][]int64{}}
	inf := client.NewInformer(c.Client, api.KindPod, client.ListOptions{}, nil)
	inf.AddHandler(rec.handler())
	go func() { _ = inf.Start(ctx) }()
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	addr := c.Server.Addr()
	c.Stop()
	// While the informer is cut off: delete two, add many, compact past
	// its revision.
	st, err := store.Open(c.DataDir+"/capstan.db", store.Options{MaxEvents: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"p0", "p1"} {
		if _, err := st.Delete(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: n}, 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := 5; i < 15; i++ {
		if _, err := st.Create(ctx, pod(fmt.Sprintf("p%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Compact(); err != nil {
		t.Fatal(err)
	}
	st.Close()
	c2 := apiservertest.Start(t, apiservertest.Options{DataDir: c.DataDir, Listen: addr, Store: store.Options{MaxEvents: 3}})
	checkCache(t, inf, c2.Store)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.revs["p0"]) != 2 || len(rec.revs["p14"]) != 1 {
		t.Fatalf("relist diff: p0 %v, p14 %v; want add+delete and one add", rec.revs["p0"], rec.revs["p14"])
	}
}

func TestSharedInformers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := apiservertest.Start(t, apiservertest.Options{})
	f := client.NewInformers(c.Client, nil)
	a, b := f.For(api.KindPod, client.ListOptions{}), f.For(api.KindPod, client.ListOptions{})
	if a != b || f.For(api.KindPod, client.ListOptions{Node: "n1"}) == a {
		t.Fatal("For does not share by kind and filter")
	}
	early := &recorder{revs: map[string][]int64{}}
	a.AddHandler(early.handler())
	if _, err := c.Client.Create(ctx, pod("p0")); err != nil {
		t.Fatal(err)
	}
	// Two components start the same informer: one watch runs.
	done := make(chan error, 2)
	go func() { done <- a.Start(ctx) }()
	go func() { done <- b.Start(ctx) }()
	if err := a.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	// A handler added after the first list gets the cache as adds, then
	// every change once.
	late := &recorder{revs: map[string][]int64{}}
	a.AddHandler(late.handler())
	if _, err := c.Client.Create(ctx, pod("p1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both handlers see p1", func() bool {
		early.mu.Lock()
		defer early.mu.Unlock()
		late.mu.Lock()
		defer late.mu.Unlock()
		return len(early.revs["p1"]) == 1 && len(late.revs["p1"]) == 1
	})
	late.mu.Lock()
	if len(late.revs["p0"]) != 1 {
		t.Errorf("late handler saw p0 %d times, want once", len(late.revs["p0"]))
	}
	late.mu.Unlock()
	cancel()
	<-done
	<-done
}

// TestInformerRelistsWhenStoreIsBehind: after the server comes back with a
// store behind the informer's revision (wiped, or restored from a backup),
// the watch is refused and the informer lists again; it used to resume
// forever, or take events of the new store as if they were newer.
func TestInformerRelistsWhenStoreIsBehind(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := apiservertest.Start(t, apiservertest.Options{})
	for i := 0; i < 5; i++ {
		if _, err := c.Client.Create(ctx, pod(fmt.Sprintf("old%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	inf := client.NewInformer(c.Client, api.KindPod, client.ListOptions{}, nil)
	go func() { _ = inf.Start(ctx) }()
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	addr := c.Server.Addr()
	c.Stop()
	if err := os.Remove(filepath.Join(c.DataDir, "capstan.db")); err != nil {
		t.Fatal(err)
	}
	c2 := apiservertest.Start(t, apiservertest.Options{DataDir: c.DataDir, Listen: addr})
	for i := 0; i < 2; i++ {
		if _, err := c2.Client.Create(ctx, pod(fmt.Sprintf("new%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the informer's cache to hold the new store's pods", func() bool {
		cached := inf.List()
		return len(cached) == 2 && cached[0].Meta().Name == "new0" && cached[1].Meta().Name == "new1"
	})
}
