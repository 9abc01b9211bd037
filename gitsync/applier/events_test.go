package applier_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync/applier"
)

// TestRejectedAppRecordsEvent: a commit whose descriptor of a running app
// is rejected records a Warning event on the App naming the commit and
// the first error (what 'capstan describe app' shows), as Argo CD and
// Flux do; each rejected commit counts it up once, a re-sync of the same
// commit does not, and the app that applied gets none.
func TestRejectedAppRecordsEvent(t *testing.T) {
	cl, ap, ctx := startDemo(t)
	apply := func(commit int, files map[string]string) {
		t.Helper()
		if err := ap.Apply(ctx, demoSnapshot(commit, files)); err != nil {
			t.Fatalf("commit %d: %v", commit, err)
		}
	}
	rejected := func(app string) []*api.Event {
		t.Helper()
		objs, _, err := cl.Client.List(ctx, api.KindEvent, client.ListOptions{App: app})
		if err != nil {
			t.Fatal(err)
		}
		var out []*api.Event
		for _, o := range objs {
			if e := o.(*api.Event); e.Spec.Reason == applier.EventSyncRejected {
				out = append(out, e)
			}
		}
		return out
	}
	good := `apps: web: pods: web: containers: c: image: "reg/web:v1"` + "\n"
	apply(1, map[string]string{"web.cue": good, "bad.cue": `apps: bad: pods: web: containers: c: image: "reg/bad:v1"` + "\n"})
	if evs := rejected("bad"); len(evs) != 0 {
		t.Fatalf("after a good commit: %d SyncRejected events, want none", len(evs))
	}
	broken := map[string]string{"web.cue": good, "bad.cue": `apps: bad: pods: web: replicas: -3, containers: c: image: "reg/bad:v1"` + "\n"}
	apply(2, broken)
	evs := rejected("bad")
	if len(evs) != 1 {
		t.Fatalf("after a rejected commit: %d SyncRejected events of app bad, want 1", len(evs))
	}
	e := evs[0]
	if e.Spec.Type != api.EventWarning || e.Spec.Object.Kind != api.KindApp || e.Spec.Object.Name != "bad" || e.Spec.Count != 1 {
		t.Errorf("event %+v, want a Warning about app bad, count 1", e.Spec)
	}
	if !strings.Contains(e.Spec.Message, api.ShortCommit(fmt.Sprintf("%040x", 2))) || !strings.Contains(e.Spec.Message, "bad.cue:1:") {
		t.Errorf("message %q names neither the commit nor the error's file:line", e.Spec.Message)
	}
	apply(2, broken) // the same commit again (a poll): nothing new
	broken["other.cue"] = "// unrelated\n"
	apply(3, broken)
	if evs := rejected("bad"); len(evs) != 1 || evs[0].Spec.Count != 2 {
		t.Errorf("after a second rejected commit: %d events (count %v), want 1 counted up to 2", len(evs), evs)
	}
	if evs := rejected("web"); len(evs) != 0 {
		t.Errorf("app web applied, yet has %d SyncRejected events", len(evs))
	}
}

// TestRejectedNewAppIsShown: a new app whose first commit is rejected is
// an App with no pod groups, health Missing and the sync error, and its
// event says nothing was deployed (there is no last good revision to run);
// a rejected change to an app that applied before still says the last
// good revision keeps running.
func TestRejectedNewAppIsShown(t *testing.T) {
	cl, ap, ctx := startDemo(t)
	bad := map[string]string{"bad.cue": `apps: bad: pods: web: replicas: -3, containers: c: image: "reg/bad:v1"` + "\n"}
	if err := ap.Apply(ctx, demoSnapshot(1, bad)); err != nil {
		t.Fatal(err)
	}
	obj, err := cl.Client.Get(ctx, api.Key{Kind: api.KindApp, App: "bad", Name: "bad"})
	if err != nil {
		t.Fatalf("the rejected new app is not shown: %v", err)
	}
	a := obj.(*api.App)
	if len(a.Spec.Workloads) != 0 || a.Status.Health != api.HealthMissing || a.Status.LastSyncResult != api.SyncRejected || !a.Status.NeverApplied() {
		t.Errorf("app %+v: want no pod groups, health Missing, last sync Rejected, never applied", a.Status)
	}
	objs, _, err := cl.Client.List(ctx, api.KindEvent, client.ListOptions{App: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("%d events about app bad, want 1", len(objs))
	}
	msg := objs[0].(*api.Event).Spec.Message
	if !strings.Contains(msg, "nothing was deployed: app bad has no earlier revision that applied") || strings.Contains(msg, "last good revision") {
		t.Errorf("event %q: want it to say nothing was deployed, never a last good revision", msg)
	}
	if msg != a.Status.LastSyncMessage {
		t.Errorf("status message %q, event %q: want the same", a.Status.LastSyncMessage, msg)
	}
}
