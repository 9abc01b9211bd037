package reconcile_test

import (
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// TestRecorderCountsRepeats records the same happening three times and a
// different one once: two Event objects, the first counted to three.
func TestRecorderCountsRepeats(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	clock := reconcile.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := &reconcile.Recorder{Client: cl.Client, Reporter: "test", Now: clock.Now}
	obj := api.ObjectRef{Kind: api.KindWorkload, App: "shop", Name: "web", UID: "u1"}
	for i := range 3 {
		clock.Step(time.Second)
		r.Record(t.Context(), reconcile.Event{Object: obj, Type: api.EventWarning, Reason: "DriftReverted", Message: "edit " + string(rune('a'+i))})
	}
	r.Record(t.Context(), reconcile.Event{Object: obj, Type: api.EventNormal, Reason: "Other", Message: "x"})
	// Nodes are cluster-scoped: only logged.
	r.Record(t.Context(), reconcile.Event{Object: api.ObjectRef{Kind: api.KindNode, Name: "n1"}, Type: api.EventWarning, Reason: "NodeNotReady"})

	objs, _, err := cl.Client.List(t.Context(), api.KindEvent, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Fatalf("%d events, want 2 (one per object and reason)", len(objs))
	}
	for _, o := range objs {
		e := o.(*api.Event).Spec
		if e.Reason != "DriftReverted" {
			continue
		}
		if e.Count != 3 || e.Message != "edit c" || !e.LastSeen.After(e.FirstSeen) || e.Reporter != "test" {
			t.Fatalf("repeated event: count %d, message %q, first %s last %s; want count 3, the last message, last after first", e.Count, e.Message, e.FirstSeen, e.LastSeen)
		}
		return
	}
	t.Fatal("no DriftReverted event")
}

// TestRecorderNewObjectSameName: an object made again under the same name
// (an ordered replica kv-0, a new UID) does not inherit the count and the
// first-seen time of the old one's event: its count starts over.
func TestRecorderNewObjectSameName(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := reconcile.NewFakeClock(start)
	r := &reconcile.Recorder{Client: cl.Client, Reporter: "test", Now: clock.Now}
	old := api.ObjectRef{Kind: api.KindPod, App: "db", Name: "kv-0", UID: "old"}
	for range 5 {
		clock.Step(time.Second)
		r.Record(t.Context(), reconcile.Event{Object: old, Type: api.EventWarning, Reason: "BackOff", Message: "Back-off restarting failed container kv"})
	}
	clock.Step(time.Minute)
	now := clock.Now()
	r.Record(t.Context(), reconcile.Event{Object: api.ObjectRef{Kind: api.KindPod, App: "db", Name: "kv-0", UID: "new"}, Type: api.EventWarning, Reason: "BackOff", Message: "Back-off restarting failed container kv"})
	objs, _, err := cl.Client.List(t.Context(), api.KindEvent, client.ListOptions{App: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("%d events, want 1", len(objs))
	}
	e := objs[0].(*api.Event).Spec
	if e.Object.UID != "new" || e.Count != 1 || !e.FirstSeen.Equal(now) {
		t.Errorf("event of the new kv-0: uid %s, count %d, first seen %s; want uid new, count 1, first seen %s (not the old pod's 5 since %s)",
			e.Object.UID, e.Count, e.FirstSeen, now, start)
	}
}

// A source that merged repeats before recording (the agent, within its
// dedup window) gives their number: the stored count adds it up.
func TestRecorderAddsCount(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	r := &reconcile.Recorder{Client: cl.Client, Reporter: "test"}
	obj := api.ObjectRef{Kind: api.KindPod, App: "shop", Name: "web-1", UID: "u1"}
	for _, n := range []int32{5, 0, 3} {
		r.Record(t.Context(), reconcile.Event{Object: obj, Type: api.EventWarning, Reason: "Unhealthy", Message: "probe failed", Count: n})
	}
	objs, _, err := cl.Client.List(t.Context(), api.KindEvent, client.ListOptions{App: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].(*api.Event).Spec.Count != 9 {
		t.Fatalf("events %v, want one counted to 9 (5, then 1 for a count of 0, then 3)", objs)
	}
}
