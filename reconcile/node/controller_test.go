package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/reconcile"
)

// A reconcile that runs again on the same cached pods after evicting them
// (the deletes not yet seen by the informer) records no second Evicted
// event: each eviction is one event with count 1.
func TestEvictionRecordedOnce(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	ctx := context.Background()
	c := cl.Client
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	if _, err := c.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		p := api.KindPod.New().(*api.Pod)
		p.Metadata = api.ObjectMeta{Name: name, App: "shop"}
		p.Spec.NodeName = "n1"
		p.Spec.Containers = []api.Container{{Name: "web", Image: "127.0.0.1:5000/examples/hello:v1"}}
		if _, err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	clock := reconcile.NewFakeClock(time.Now())
	m, err := reconcile.NewManager(reconcile.ManagerOptions{Client: c, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := New(m, Options{Decide: DecideOptions{GracePeriod: 10 * time.Second, EvictionTimeout: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	// Sync the caches, then freeze them: the informers stop, so the pods
	// stay cached after they are deleted.
	ictx, stop := context.WithCancel(ctx)
	done, err := reconcile.RunInformers(ictx, ctrl.nodes, ctrl.leases, ctrl.pods)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	<-done
	if _, err := ctrl.Reconcile(ctx, "n1"); err != nil { // first look: alive now
		t.Fatal(err)
	}
	clock.Step(time.Minute)
	for range 2 {
		if _, err := ctrl.Reconcile(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
	}
	pods, _, err := c.List(ctx, api.KindPod, client.ListOptions{App: "shop"})
	if err != nil || len(pods) != 0 {
		t.Fatalf("pods after eviction: %d, %v; want none", len(pods), err)
	}
	evs, _, err := c.List(ctx, api.KindEvent, client.ListOptions{App: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	evicted := 0
	for _, o := range evs {
		e := o.(*api.Event).Spec
		if e.Reason != ReasonEvicted {
			continue
		}
		evicted++
		if e.Count != 1 {
			t.Errorf("Evicted event of %s recorded %d times, want once", e.Object.Name, e.Count)
		}
	}
	if evicted != 2 {
		t.Errorf("%d Evicted events, want one per pod (2)", evicted)
	}
}

// A pod bound to a node that no longer exists (the Node was deleted, or
// never registered) would stay forever, counted by its workload and never
// replaced: the node controller deletes it at once, with one Evicted
// event, and leaves the pods of existing nodes alone.
func TestPodsOfDeletedNodeEvicted(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	c := cl.Client
	for _, name := range []string{"n1", "n2"} {
		n := api.KindNode.New().(*api.Node)
		n.Metadata.Name = name
		if _, err := c.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	for name, node := range map[string]string{"a": "n1", "b": "ghost", "c": "n2"} {
		p := api.KindPod.New().(*api.Pod)
		p.Metadata = api.ObjectMeta{Name: name, App: "shop"}
		p.Spec.NodeName = node
		p.Spec.Containers = []api.Container{{Name: "web", Image: "127.0.0.1:5000/examples/hello:v1"}}
		if _, err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	m, err := reconcile.NewManager(reconcile.ManagerOptions{Client: c, Clock: reconcile.NewFakeClock(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Add(ctrl)
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("manager: %v", err)
		}
	})
	podNames := func() map[string]bool {
		objs, _, err := c.List(ctx, api.KindPod, client.ListOptions{App: "shop"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, o := range objs {
			out[o.Meta().Name] = true
		}
		return out
	}
	testenv.Eventually(t, 10*time.Second, "pod b of a node never registered deleted", func() bool { return !podNames()["b"] })
	if _, err := c.Delete(ctx, api.Key{Kind: api.KindNode, Name: "n1"}, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "pod a of deleted node n1 deleted", func() bool { return !podNames()["a"] })
	if !podNames()["c"] {
		t.Fatal("pod c of node n2, which exists, was deleted")
	}
	// The events are written after the deletes.
	evicted := func() map[string]string {
		evs, _, err := c.List(ctx, api.KindEvent, client.ListOptions{App: "shop"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, o := range evs {
			if e := o.(*api.Event).Spec; e.Reason == ReasonEvicted {
				if e.Count != 1 {
					t.Errorf("Evicted event of %s recorded %d times, want once", e.Object.Name, e.Count)
				}
				out[e.Object.Name] = e.Message
			}
		}
		return out
	}
	testenv.Eventually(t, 10*time.Second, "Evicted events of a and b", func() bool { return len(evicted()) >= 2 })
	if ev := evicted(); len(ev) != 2 || !strings.Contains(ev["a"], "node n1 does not exist") || !strings.Contains(ev["b"], "node ghost does not exist") {
		t.Errorf("Evicted events %q; want one for a (node n1 does not exist) and one for b (node ghost does not exist)", ev)
	}
}
