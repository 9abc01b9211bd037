package reconcile_test

import (
	"context"
	"errors"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/reconcile"
)

type runFunc func(ctx context.Context) error

func (f runFunc) Start(ctx context.Context) error { return f(ctx) }

// managerWithNode returns a manager of a new API server that holds one
// node, n1.
func managerWithNode(t *testing.T) *reconcile.Manager {
	t.Helper()
	cl := apiservertest.Start(t, apiservertest.Options{})
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	if _, err := cl.Client.Create(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	m, err := reconcile.NewManager(reconcile.ManagerOptions{Client: cl.Client})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestManagerSyncsInformersFirst: a component starts only after the shared
// informers hold their first list, and both components asking for the same
// kind get one informer.
func TestManagerSyncsInformersFirst(t *testing.T) {
	m := managerWithNode(t)
	a, b := m.Informer(api.KindNode), m.Informer(api.KindNode)
	if a != b {
		t.Fatal("two informers for one kind: want one shared")
	}
	ctx, cancel := context.WithCancel(t.Context())
	seen := make(chan int, 1)
	m.Add(runFunc(func(ctx context.Context) error {
		seen <- len(a.List())
		cancel()
		<-ctx.Done()
		return nil
	}))
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got := <-seen; got != 1 {
		t.Fatalf("component saw %d nodes at start, want 1 (caches synced first)", got)
	}
	if err := m.Start(t.Context()); err == nil {
		t.Fatal("second Start: want an error")
	}
}

// TestManagerSharesIndexes: controllers asking for the same kind filed by
// the same indexer get one index, fed by the shared informer, so a cache of
// 30,000 pods is not filed again for each of them.
func TestManagerSharesIndexes(t *testing.T) {
	m := managerWithNode(t)
	byName := reconcile.Indexer{Name: "name", BucketsOf: func(o api.Object) []string { return []string{o.Meta().Name} }}
	a, b := m.Index(api.KindNode, byName), m.Index(api.KindNode, byName)
	if a != b {
		t.Fatal("two indexes of one kind by one indexer: want one shared")
	}
	if m.Index(api.KindNode, reconcile.ByApp) == a || m.Index(api.KindPod, byName) == a {
		t.Fatal("another indexer or another kind got the same index")
	}
	ctx, cancel := context.WithCancel(t.Context())
	seen := make(chan int, 1)
	m.Add(runFunc(func(ctx context.Context) error {
		seen <- a.Len("n1")
		cancel()
		<-ctx.Done()
		return nil
	}))
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got := <-seen; got != 1 {
		t.Fatalf("the shared index held %d nodes named n1 at start, want 1 (fed by the informer)", got)
	}
}

// TestManagerStopsOthersOnFailure: the first component to fail stops the
// rest, and Start returns its error.
func TestManagerStopsOthersOnFailure(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	m, err := reconcile.NewManager(reconcile.ManagerOptions{Client: cl.Client})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	stopped := make(chan struct{})
	m.Add(runFunc(func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil }))
	m.Add(runFunc(func(context.Context) error { return boom }))
	if err := m.Start(t.Context()); !errors.Is(err, boom) {
		t.Fatalf("Start: %v, want %v", err, boom)
	}
	<-stopped
}

func TestManagerNeedsClient(t *testing.T) {
	if _, err := reconcile.NewManager(reconcile.ManagerOptions{}); err == nil {
		t.Fatal("NewManager without a client: want an error")
	}
}
