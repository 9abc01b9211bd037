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
